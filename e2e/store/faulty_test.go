package store_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
)

// writeN writes n keys and returns the Update error. It ignores Put errors
// when ignore is set, as careless code would.
func writeN(s store.Store, n int, ignore bool) error {
	return s.Update(func(tx store.Tx) error {
		for i := range n {
			if err := tx.Put("b", strconv.Itoa(i), []byte("v")); err != nil && !ignore {
				return err
			}
		}
		return nil
	})
}

func count(t *testing.T, s store.Store) int {
	t.Helper()
	n := 0
	if err := s.View(func(tx store.Tx) error {
		return tx.ForEach("b", func(string, []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFaultyFailCommit(t *testing.T) {
	for _, name := range []string{"memory", "bolt"} {
		t.Run(name, func(t *testing.T) {
			var inner store.Store = store.NewMemory()
			if name == "bolt" {
				inner = openBolt(t)
			}
			f := store.NewFaulty(inner)
			defer f.Close()
			f.FailCommit(2)
			ran := 0
			for i := range 3 {
				err := f.Update(func(tx store.Tx) error {
					ran++
					if err := tx.Put("b", strconv.Itoa(i), []byte("v")); err != nil {
						return err
					}
					// fn sees its own write even in the failing Update.
					_, err := tx.Get("b", strconv.Itoa(i))
					return err
				})
				if wantFail := i == 1; errors.Is(err, store.ErrInjected) != wantFail || (!wantFail && err != nil) {
					t.Errorf("Update %d: %v (want injected: %v)", i+1, err, wantFail)
				}
			}
			if ran != 3 {
				t.Errorf("fn ran %d times, want 3 (fn must run before a commit fault)", ran)
			}
			err := f.View(func(tx store.Tx) error {
				for i, want := range []bool{true, false, true} {
					_, err := tx.Get("b", strconv.Itoa(i))
					if present := err == nil; present != want {
						return fmt.Errorf("key %d present=%v, want %v", i, present, want)
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			if f.Updates() != 3 || f.Injected() != 1 {
				t.Errorf("Updates=%d Injected=%d, want 3 and 1", f.Updates(), f.Injected())
			}
		})
	}
}

func TestFaultyFailAfterWrites(t *testing.T) {
	tests := []struct {
		name      string
		k, writes int
		ignore    bool
		wantErr   bool
	}{
		{"below limit", 5, 5, false, false},
		{"fail at first write", 0, 3, false, true},
		{"fail mid transaction", 2, 5, false, true},
		{"error ignored by fn", 2, 5, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := store.NewFaulty(store.NewMemory())
			f.FailAfterWrites(1, tc.k)
			err := writeN(f, tc.writes, tc.ignore)
			if tc.wantErr != errors.Is(err, store.ErrInjected) || (!tc.wantErr && err != nil) {
				t.Fatalf("Update: %v, want injected: %v", err, tc.wantErr)
			}
			want := tc.writes
			if tc.wantErr {
				want = 0
			}
			if n := count(t, f); n != want {
				t.Errorf("%d keys stored, want %d", n, want)
			}
			// The fault applies to one Update only.
			if err := writeN(f, 7, false); err != nil {
				t.Errorf("next Update: %v", err)
			}
		})
	}
}

func TestFaultyDeleteCountsAsWrite(t *testing.T) {
	f := store.NewFaulty(store.NewMemory())
	if err := writeN(f, 2, false); err != nil {
		t.Fatal(err)
	}
	f.FailAfterWrites(1, 1)
	err := f.Update(func(tx store.Tx) error {
		if err := tx.Delete("b", "0"); err != nil {
			return err
		}
		return tx.Delete("b", "1")
	})
	if !errors.Is(err, store.ErrInjected) {
		t.Fatalf("Update: %v, want ErrInjected", err)
	}
	if n := count(t, f); n != 2 {
		t.Errorf("%d keys after failed deletes, want 2", n)
	}
}

func TestFaultyReset(t *testing.T) {
	f := store.NewFaulty(store.NewMemory())
	f.FailCommit(1)
	f.FailAfterWrites(2, 0)
	f.Reset()
	for range 2 {
		if err := writeN(f, 1, false); err != nil {
			t.Fatalf("Update after Reset: %v", err)
		}
	}
	if f.Injected() != 0 {
		t.Errorf("Injected = %d after Reset", f.Injected())
	}
}

// TestFaultyEveryCrashPoint is the pattern for engine tests: fail each
// Update of a multi-step operation in turn and check an invariant.
func TestFaultyEveryCrashPoint(t *testing.T) {
	step := func(s store.Store) error {
		return s.Update(func(tx store.Tx) error {
			v, err := tx.Get("ctr", "n")
			n := 0
			if err == nil {
				n, _ = strconv.Atoi(string(v))
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.Put("ctr", "n", []byte(strconv.Itoa(n+1))); err != nil {
				return err
			}
			return tx.Put("log", strconv.Itoa(n+1), []byte("entry"))
		})
	}
	for failAt := 1; failAt <= 5; failAt++ {
		f := store.NewFaulty(store.NewMemory())
		f.FailCommit(failAt)
		ok := 0
		for range 5 {
			if err := step(f); err == nil {
				ok++
			} else if !errors.Is(err, store.ErrInjected) {
				t.Fatal(err)
			}
		}
		var n, logs int
		if err := f.View(func(tx store.Tx) error {
			v, err := tx.Get("ctr", "n")
			if err != nil {
				return err
			}
			n, _ = strconv.Atoi(string(v))
			return tx.ForEach("log", func(string, []byte) error { logs++; return nil })
		}); err != nil {
			t.Fatal(err)
		}
		if n != ok || logs != ok || ok != 4 {
			t.Errorf("failAt=%d: counter %d, log entries %d, successful steps %d; want all 4", failAt, n, logs, ok)
		}
	}
}

func TestFaultyPanics(t *testing.T) {
	f := store.NewFaulty(store.NewMemory())
	for _, fn := range []func(){
		func() { f.FailCommit(0) },
		func() { f.FailAfterWrites(0, 1) },
		func() { f.FailAfterWrites(1, -1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("bad argument did not panic")
				}
			}()
			fn()
		}()
	}
}
