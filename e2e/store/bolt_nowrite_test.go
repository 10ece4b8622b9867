package store_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
)

// TestBoltUpdateWithoutWritesDoesNotCommit: an Update that only reads
// commits nothing (no meta page write, no sync: the engine checks a
// device in one before every message), while one that writes or deletes
// commits.
func TestBoltUpdateWithoutWritesDoesNotCommit(t *testing.T) {
	s, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx store.Tx) error { return tx.Put("b", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	before := store.BoltTxID(s)
	err = s.Update(func(tx store.Tx) error {
		if _, err := tx.Get("b", "k"); err != nil {
			return err
		}
		if _, err := tx.Get("b", "absent"); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.Delete("nobucket", "k") // nothing to delete: no write
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := store.BoltTxID(s); got != before {
		t.Errorf("a read-only Update committed (tx id %d -> %d)", before, got)
	}
	if err := s.Update(func(tx store.Tx) error { return tx.Delete("b", "k") }); err != nil {
		t.Fatal(err)
	}
	if got := store.BoltTxID(s); got != before+1 {
		t.Errorf("a deleting Update: tx id %d -> %d, want one commit", before, got)
	}
	if err := s.View(func(tx store.Tx) error {
		if _, err := tx.Get("b", "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted key still there: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
