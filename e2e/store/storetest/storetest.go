// Package storetest is a conformance test suite for implementations of
// [store.Store].
//
// Call [Run] from a test with a function that opens a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
//	}
//
// The suite checks the contract written on [store.Store] and [store.Tx]
// plus the behaviour that every implementation in package store shares:
// values copied in and out, read-only View ([store.ErrReadOnly]), rollback
// when fn fails or panics, isolation of uncommitted writes from concurrent
// Views, serialisable Updates, ForEach over a snapshot, and a transaction that
// refuses use after its function returned.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
)

// Run runs the conformance suite as subtests of t. open must return a new,
// empty store for each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Missing", testMissing},
		{"PutGet", testPutGet},
		{"EmptyValue", testEmptyValue},
		{"InvalidNames", testInvalidNames},
		{"CopyIn", testCopyIn},
		{"CopyOut", testCopyOut},
		{"Delete", testDelete},
		{"ForEachOrder", testForEachOrder},
		{"ForEachSeesOwnWrites", testForEachOwnWrites},
		{"ForEachSnapshot", testForEachSnapshot},
		{"ForEachError", testForEachError},
		{"Rollback", testRollback},
		{"RollbackPanic", testRollbackPanic},
		{"ReadOnlyView", testReadOnlyView},
		{"TxAfterReturn", testTxAfterReturn},
		{"Isolation", testIsolation},
		{"Serialisable", testSerialisable},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			closed := false
			t.Cleanup(func() {
				if !closed {
					s.Close()
				}
			})
			if tc.name == "Close" {
				closed = true
			}
			tc.fn(t, s)
		})
	}
}

func put(t *testing.T, s store.Store, bucket, key string, value []byte) {
	t.Helper()
	if err := s.Update(func(tx store.Tx) error { return tx.Put(bucket, key, value) }); err != nil {
		t.Fatalf("Put(%q, %q): %v", bucket, key, err)
	}
}

// get returns the value or fails the test; absent reports ErrNotFound.
func get(t *testing.T, s store.Store, bucket, key string) (v []byte, absent bool) {
	t.Helper()
	err := s.View(func(tx store.Tx) error {
		var err error
		v, err = tx.Get(bucket, key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, true
	}
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", bucket, key, err)
	}
	return v, false
}

func keys(t *testing.T, s store.Store, bucket string) []string {
	t.Helper()
	var ks []string
	err := s.View(func(tx store.Tx) error {
		return tx.ForEach(bucket, func(k string, v []byte) error {
			ks = append(ks, k)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("ForEach(%q): %v", bucket, err)
	}
	return ks
}

func testMissing(t *testing.T, s store.Store) {
	if _, absent := get(t, s, "nobucket", "k"); !absent {
		t.Error("Get on missing bucket: want ErrNotFound")
	}
	put(t, s, "b", "k", []byte("v"))
	if _, absent := get(t, s, "b", "other"); !absent {
		t.Error("Get on missing key: want ErrNotFound")
	}
	if _, absent := get(t, s, "b", ""); !absent {
		t.Error("Get on empty key: want ErrNotFound")
	}
	if ks := keys(t, s, "nobucket"); len(ks) != 0 {
		t.Errorf("ForEach on missing bucket visited %q", ks)
	}
	// Same inside an Update.
	err := s.Update(func(tx store.Tx) error {
		if _, err := tx.Get("nobucket2", "k"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get in Update on missing bucket: %v, want ErrNotFound", err)
		}
		return tx.ForEach("nobucket2", func(k string, v []byte) error {
			return fmt.Errorf("ForEach in Update on missing bucket visited %q", k)
		})
	})
	if err != nil {
		t.Error(err)
	}
}

func testPutGet(t *testing.T, s store.Store) {
	values := map[string][]byte{
		"a":                     []byte("alpha"),
		"binary\x00\xff":        {0, 1, 2, 0xff},
		"long":                  bytes.Repeat([]byte{0xab}, 64<<10),
		"utf8-é":                []byte("é"),
		string(make([]byte, 1)): []byte("nul key"),
	}
	err := s.Update(func(tx store.Tx) error {
		for k, v := range values {
			if err := tx.Put("b", k, v); err != nil {
				return err
			}
		}
		// Read your own writes.
		for k, v := range values {
			got, err := tx.Get("b", k)
			if err != nil {
				return fmt.Errorf("Get(%q) in the writing tx: %w", k, err)
			}
			if !bytes.Equal(got, v) {
				return fmt.Errorf("Get(%q) in the writing tx: wrong value", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		got, absent := get(t, s, "b", k)
		if absent || !bytes.Equal(got, v) {
			t.Errorf("Get(%q) after commit: absent=%v, equal=%v", k, absent, bytes.Equal(got, v))
		}
	}
	// Overwrite; same key in another bucket is independent.
	put(t, s, "b", "a", []byte("beta"))
	put(t, s, "c", "a", []byte("gamma"))
	if got, _ := get(t, s, "b", "a"); string(got) != "beta" {
		t.Errorf("after overwrite got %q, want beta", got)
	}
	if got, _ := get(t, s, "c", "a"); string(got) != "gamma" {
		t.Errorf("other bucket got %q, want gamma", got)
	}
}

func testEmptyValue(t *testing.T, s store.Store) {
	put(t, s, "b", "nil", nil)
	put(t, s, "b", "empty", []byte{})
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Put("b", "inner", nil); err != nil {
			return err
		}
		v, err := tx.Get("b", "inner")
		if err != nil || len(v) != 0 {
			return fmt.Errorf("empty value in writing tx: %q, %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nil", "empty", "inner"} {
		v, absent := get(t, s, "b", k)
		if absent || len(v) != 0 {
			t.Errorf("%s: got %q absent=%v, want empty and present", k, v, absent)
		}
	}
	if got, want := keys(t, s, "b"), []string{"empty", "inner", "nil"}; !slices.Equal(got, want) {
		t.Errorf("ForEach: %q, want %q", got, want)
	}
}

func testInvalidNames(t *testing.T, s store.Store) {
	cases := []struct{ bucket, key string }{
		{"", "k"},
		{"b", ""},
		{"b", string(make([]byte, store.MaxKeySize+1))},
		{string(make([]byte, store.MaxKeySize+1)), "k"},
	}
	for _, c := range cases {
		err := s.Update(func(tx store.Tx) error { return tx.Put(c.bucket, c.key, []byte("v")) })
		if err == nil {
			t.Errorf("Put(bucket %d bytes, key %d bytes) succeeded", len(c.bucket), len(c.key))
		}
	}
	// The largest key is accepted.
	big := string(bytes.Repeat([]byte{'k'}, store.MaxKeySize))
	put(t, s, "b", big, []byte("v"))
	if _, absent := get(t, s, "b", big); absent {
		t.Error("MaxKeySize key not found")
	}
	if err := s.Update(func(tx store.Tx) error { return tx.Delete("b", "") }); err != nil {
		t.Errorf("Delete of empty key: %v", err)
	}
}

func testCopyIn(t *testing.T, s store.Store) {
	v := []byte("original")
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Put("b", "k", v); err != nil {
			return err
		}
		copy(v, "MUTATED!")
		got, err := tx.Get("b", "k")
		if err != nil {
			return err
		}
		if string(got) != "original" {
			return fmt.Errorf("value changed inside tx after caller mutated its slice: %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	copy(v, "mutated2")
	if got, _ := get(t, s, "b", "k"); string(got) != "original" {
		t.Errorf("stored value aliased the caller's slice: %q", got)
	}
}

func testCopyOut(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("original"))
	got, _ := get(t, s, "b", "k")
	copy(got, "MUTATED!")
	err := s.View(func(tx store.Tx) error {
		return tx.ForEach("b", func(k string, v []byte) error {
			copy(v, "MUTATED!")
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx store.Tx) error {
		v, err := tx.Get("b", "k")
		if err != nil {
			return err
		}
		copy(v, "MUTATED!")
		return tx.ForEach("b", func(k string, v []byte) error {
			copy(v, "MUTATED!")
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, s, "b", "k"); string(got) != "original" {
		t.Errorf("mutating a returned value changed the store: %q", got)
	}
}

func testDelete(t *testing.T, s store.Store) {
	put(t, s, "b", "k1", []byte("1"))
	put(t, s, "b", "k2", []byte("2"))
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Delete("b", "k1"); err != nil {
			return err
		}
		if err := tx.Delete("b", "absent"); err != nil {
			return fmt.Errorf("Delete of absent key: %w", err)
		}
		if err := tx.Delete("nobucket", "k"); err != nil {
			return fmt.Errorf("Delete in missing bucket: %w", err)
		}
		if _, err := tx.Get("b", "k1"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get after Delete in same tx: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, absent := get(t, s, "b", "k1"); !absent {
		t.Error("deleted key still present")
	}
	if got, want := keys(t, s, "b"), []string{"k2"}; !slices.Equal(got, want) {
		t.Errorf("ForEach after Delete: %q, want %q", got, want)
	}
	// Delete then Put again in one tx.
	err = s.Update(func(tx store.Tx) error {
		if err := tx.Delete("b", "k2"); err != nil {
			return err
		}
		return tx.Put("b", "k2", []byte("again"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, s, "b", "k2"); string(got) != "again" {
		t.Errorf("Delete then Put: got %q", got)
	}
}

func testForEachOrder(t *testing.T, s store.Store) {
	var want []string
	for i := range 300 {
		want = append(want, fmt.Sprintf("%c%03d", 'a'+i%7, i))
	}
	want = append(want, "\x00", "\xff", "A", "a")
	shuffled := slices.Clone(want)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	err := s.Update(func(tx store.Tx) error {
		for _, k := range shuffled {
			if err := tx.Put("b", k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want) // byte-wise order
	var got []string
	err = s.View(func(tx store.Tx) error {
		return tx.ForEach("b", func(k string, v []byte) error {
			if string(v) != "v"+k {
				return fmt.Errorf("ForEach: key %q has value %q", k, v)
			}
			got = append(got, k)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ForEach order:\n got %q\nwant %q", got, want)
	}
}

func testForEachOwnWrites(t *testing.T, s store.Store) {
	for _, k := range []string{"b", "d", "f", "h"} {
		put(t, s, "b", k, []byte("old"))
	}
	type kv struct{ k, v string }
	var got []kv
	err := s.Update(func(tx store.Tx) error {
		for _, w := range []kv{{"a", "new"}, {"d", "new"}, {"e", "new"}, {"z", "new"}} {
			if err := tx.Put("b", w.k, []byte(w.v)); err != nil {
				return err
			}
		}
		if err := tx.Delete("b", "f"); err != nil {
			return err
		}
		if err := tx.Delete("b", "h"); err != nil {
			return err
		}
		return tx.ForEach("b", func(k string, v []byte) error {
			got = append(got, kv{k, string(v)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []kv{{"a", "new"}, {"b", "old"}, {"d", "new"}, {"e", "new"}, {"z", "new"}}
	if !slices.Equal(got, want) {
		t.Errorf("ForEach in writing tx: %v, want %v", got, want)
	}
}

func testForEachSnapshot(t *testing.T, s store.Store) {
	for _, k := range []string{"k1", "k2", "k3"} {
		put(t, s, "b", k, []byte("v"))
	}
	var visited []string
	err := s.Update(func(tx store.Tx) error {
		return tx.ForEach("b", func(k string, v []byte) error {
			visited = append(visited, k)
			// Delete the current key and a later one, add keys before
			// and after: the iteration covers the snapshot only.
			if err := tx.Delete("b", k); err != nil {
				return err
			}
			if k == "k1" {
				if err := tx.Delete("b", "k3"); err != nil {
					return err
				}
				if err := tx.Put("b", "k0", []byte("new")); err != nil {
					return err
				}
				return tx.Put("b", "k9", []byte("new"))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k1", "k2", "k3"}; !slices.Equal(visited, want) {
		t.Errorf("visited %q, want the snapshot %q", visited, want)
	}
	if got, want := keys(t, s, "b"), []string{"k0", "k9"}; !slices.Equal(got, want) {
		t.Errorf("after writes during ForEach: %q, want %q", got, want)
	}
}

func testForEachError(t *testing.T, s store.Store) {
	put(t, s, "b", "k1", []byte("1"))
	put(t, s, "b", "k2", []byte("2"))
	stop := errors.New("stop")
	n := 0
	err := s.View(func(tx store.Tx) error {
		return tx.ForEach("b", func(k string, v []byte) error {
			n++
			return stop
		})
	})
	if !errors.Is(err, stop) {
		t.Errorf("ForEach error: %v, want the callback's error", err)
	}
	if n != 1 {
		t.Errorf("ForEach called fn %d times after it failed, want 1", n)
	}
}

func testRollback(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("committed"))
	fail := errors.New("fail")
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Put("b", "k", []byte("rolled back")); err != nil {
			return err
		}
		if err := tx.Put("b", "new", []byte("rolled back")); err != nil {
			return err
		}
		if err := tx.Put("newbucket", "k", []byte("rolled back")); err != nil {
			return err
		}
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if got, _ := get(t, s, "b", "k"); string(got) != "committed" {
		t.Errorf("rolled-back overwrite visible: %q", got)
	}
	if _, absent := get(t, s, "b", "new"); !absent {
		t.Error("rolled-back Put visible")
	}
	if ks := keys(t, s, "newbucket"); len(ks) != 0 {
		t.Errorf("rolled-back bucket has keys %q", ks)
	}
	// A rolled-back Delete leaves the key.
	err = s.Update(func(tx store.Tx) error {
		if err := tx.Delete("b", "k"); err != nil {
			return err
		}
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if _, absent := get(t, s, "b", "k"); absent {
		t.Error("rolled-back Delete took effect")
	}
}

func testRollbackPanic(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("committed"))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in fn was not propagated")
			}
		}()
		_ = s.Update(func(tx store.Tx) error {
			if err := tx.Put("b", "k", []byte("panicked")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if got, _ := get(t, s, "b", "k"); string(got) != "committed" {
		t.Errorf("write of a panicking Update visible: %q", got)
	}
	// The store is still usable.
	put(t, s, "b", "k2", []byte("after"))
	if got, _ := get(t, s, "b", "k2"); string(got) != "after" {
		t.Errorf("store unusable after panic: %q", got)
	}
}

func testReadOnlyView(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("v"))
	err := s.View(func(tx store.Tx) error {
		if err := tx.Put("b", "k2", []byte("v")); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("Put in View: %v, want ErrReadOnly", err)
		}
		if err := tx.Put("newbucket", "k", []byte("v")); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("Put of a new bucket in View: %v, want ErrReadOnly", err)
		}
		if err := tx.Delete("b", "k"); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("Delete in View: %v, want ErrReadOnly", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, absent := get(t, s, "b", "k"); absent {
		t.Error("Delete in View took effect")
	}
	if _, absent := get(t, s, "b", "k2"); !absent {
		t.Error("Put in View took effect")
	}
}

func testTxAfterReturn(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("v"))
	var saved store.Tx
	if err := s.Update(func(tx store.Tx) error { saved = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := saved.Put("b", "late", []byte("v")); err == nil {
		t.Error("Put on a finished Update tx succeeded")
	}
	if err := saved.Delete("b", "k"); err == nil {
		t.Error("Delete on a finished Update tx succeeded")
	}
	if _, err := saved.Get("b", "k"); err == nil {
		t.Error("Get on a finished Update tx succeeded")
	}
	if err := saved.ForEach("b", func(string, []byte) error { return nil }); err == nil {
		t.Error("ForEach on a finished Update tx succeeded")
	}
	if err := s.View(func(tx store.Tx) error { saved = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := saved.Get("b", "k"); err == nil {
		t.Error("Get on a finished View tx succeeded")
	}
	if _, absent := get(t, s, "b", "late"); !absent {
		t.Error("late Put took effect")
	}
	if _, absent := get(t, s, "b", "k"); absent {
		t.Error("late Delete took effect")
	}
}

// testIsolation checks that a View running while an Update's fn is in
// progress sees neither its writes nor blocks it.
func testIsolation(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("old"))
	written := make(chan struct{})
	viewed := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.Update(func(tx store.Tx) error {
			if err := tx.Put("b", "k", []byte("new")); err != nil {
				return err
			}
			if err := tx.Put("b", "k2", []byte("new")); err != nil {
				return err
			}
			close(written)
			<-viewed
			return nil
		})
	}()
	<-written
	err := s.View(func(tx store.Tx) error {
		v, err := tx.Get("b", "k")
		if err != nil {
			return err
		}
		if string(v) != "old" {
			return fmt.Errorf("concurrent View saw uncommitted value %q", v)
		}
		if _, err := tx.Get("b", "k2"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("concurrent View saw uncommitted key (err %v)", err)
		}
		return nil
	})
	close(viewed)
	if err != nil {
		t.Error(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, s, "b", "k"); string(got) != "new" {
		t.Errorf("after commit: %q, want new", got)
	}
}

// testSerialisable runs concurrent read-modify-write Updates and Views. No
// increment may be lost, and every View must see the two counters equal.
func testSerialisable(t *testing.T, s store.Store) {
	const workers, perWorker = 4, 25
	read := func(tx store.Tx, bucket string) (int, error) {
		v, err := tx.Get(bucket, "n")
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(string(v))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2*workers)
	for range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range perWorker {
				err := s.Update(func(tx store.Tx) error {
					n, err := read(tx, "x")
					if err != nil {
						return err
					}
					if err := tx.Put("x", "n", []byte(strconv.Itoa(n+1))); err != nil {
						return err
					}
					return tx.Put("y", "n", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range perWorker {
				err := s.View(func(tx store.Tx) error {
					x, err := read(tx, "x")
					if err != nil {
						return err
					}
					y, err := read(tx, "y")
					if err != nil {
						return err
					}
					if x != y {
						return fmt.Errorf("View saw a torn update: x=%d y=%d", x, y)
					}
					return nil
				})
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	var n int
	if err := s.View(func(tx store.Tx) (err error) { n, err = read(tx, "x"); return err }); err != nil {
		t.Fatal(err)
	}
	if n != workers*perWorker {
		t.Errorf("counter = %d after %d increments: lost updates", n, workers*perWorker)
	}
}

func testClose(t *testing.T, s store.Store) {
	put(t, s, "b", "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Update(func(tx store.Tx) error { return tx.Put("b", "k", []byte("x")) }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	if err := s.View(func(tx store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close: %v, want ErrClosed", err)
	}
}
