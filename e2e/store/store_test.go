package store_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/store/storetest"
)

func openBolt(t *testing.T) store.Store { return openBoltTB(t) }

func openBoltTB(t testing.TB) store.Store {
	t.Helper()
	s, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, openBolt)
}

func TestFaultyConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewFaulty(store.NewMemory()) })
}

func TestFaultyBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewFaulty(openBolt(t)) })
}

func TestBoltPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx store.Tx) error { return tx.Put("b", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600", perm)
	}
	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(func(tx store.Tx) error {
		v, err := tx.Get("b", "k")
		if err != nil {
			return err
		}
		if string(v) != "v" {
			t.Errorf("after reopen got %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBoltSecondOpenerIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := store.OpenBolt(path)
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt of a locked file succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second OpenBolt: %v, want ErrLocked", err)
	}
}

func TestBoltOpenErrors(t *testing.T) {
	dir := t.TempDir()
	// A directory is not a database.
	if s, err := store.OpenBolt(dir); err == nil {
		s.Close()
		t.Error("OpenBolt of a directory succeeded")
	}
	// A file that is not a bbolt database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := store.OpenBolt(junk); err == nil {
		s.Close()
		t.Error("OpenBolt of a zero-filled file succeeded")
	} else if errors.Is(err, store.ErrLocked) {
		t.Errorf("OpenBolt of junk: %v, must not be ErrLocked", err)
	}
	// A missing directory.
	if _, err := store.OpenBolt(filepath.Join(dir, "missing", "x.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenBolt in a missing directory: %v, want fs.ErrNotExist", err)
	}
}
