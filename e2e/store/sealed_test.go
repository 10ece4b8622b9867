package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/store/storetest"
)

// fixedKey returns a KeyFunc that always gives the key filled with b and
// records the salts and create flags it was called with.
func fixedKey(b byte, calls *[]bool) store.KeyFunc {
	return func(salt []byte, create bool) ([store.KeySize]byte, error) {
		if len(salt) != store.SaltSize {
			return [store.KeySize]byte{}, errors.New("bad salt")
		}
		if calls != nil {
			*calls = append(*calls, create)
		}
		var k [store.KeySize]byte
		for i := range k {
			k[i] = b
		}
		return k, nil
	}
}

func seal(t testing.TB, inner store.Store, key store.KeyFunc) store.Store {
	t.Helper()
	s, err := store.Sealed(inner, key)
	if err != nil {
		inner.Close()
		t.Fatal(err)
	}
	return s
}

func TestSealedConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return seal(t, store.NewMemory(), fixedKey(1, nil)) })
}

func TestSealedBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return seal(t, openBolt(t), fixedKey(1, nil)) })
}

func TestSealedFaultyConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return seal(t, store.NewFaulty(store.NewMemory()), fixedKey(1, nil))
	})
}

func mustPut(t *testing.T, s store.Store, bucket, key string, v []byte) {
	t.Helper()
	if err := s.Update(func(tx store.Tx) error { return tx.Put(bucket, key, v) }); err != nil {
		t.Fatal(err)
	}
}

func sealedGet(s store.Store, bucket, key string) (v []byte, err error) {
	err = s.View(func(tx store.Tx) error {
		v, err = tx.Get(bucket, key)
		return err
	})
	return v, err
}

// rawGet and rawPut reach the inner store under hidden names.
func rawGet(t *testing.T, inner store.Store, b, k string) []byte {
	t.Helper()
	v, err := sealedGet(inner, b, k)
	if err != nil {
		t.Fatalf("inner Get: %v", err)
	}
	return v
}

func TestSealedReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sealed.db")
	inner, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	var calls []bool
	s := seal(t, inner, fixedKey(7, &calls))
	mustPut(t, s, "e2e/sessions", "bob@example.net/1", []byte("ratchet"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	inner, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	s = seal(t, inner, fixedKey(7, &calls))
	defer s.Close()
	if v, err := sealedGet(s, "e2e/sessions", "bob@example.net/1"); err != nil || string(v) != "ratchet" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	if len(calls) != 2 || !calls[0] || calls[1] {
		t.Fatalf("key function calls (create flags) %v, want [true false]", calls)
	}
}

func TestSealedWrongKey(t *testing.T) {
	inner := store.NewMemory()
	defer inner.Close()
	s := seal(t, inner, fixedKey(1, nil))
	mustPut(t, s, "b", "k", []byte("v"))
	if _, err := store.Sealed(inner, fixedKey(2, nil)); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("Sealed with another key: %v, want ErrWrongKey", err)
	}
	// The right key still opens it.
	s2 := seal(t, inner, fixedKey(1, nil))
	if v, err := sealedGet(s2, "b", "k"); err != nil || string(v) != "v" {
		t.Fatalf("right key: %q, %v", v, err)
	}
}

func TestSealedKeyUnavailable(t *testing.T) {
	inner := store.NewMemory()
	defer inner.Close()
	seal(t, inner, fixedKey(1, nil))
	errAgent := errors.New("agent gone")
	failing := func([]byte, bool) ([store.KeySize]byte, error) { return [store.KeySize]byte{}, errAgent }
	_, err := store.Sealed(inner, failing)
	if !errors.Is(err, store.ErrKeyUnavailable) || !errors.Is(err, errAgent) {
		t.Fatalf("Sealed with a failing key function: %v, want ErrKeyUnavailable wrapping the cause", err)
	}
	// Also when creating.
	fresh := store.NewMemory()
	defer fresh.Close()
	if _, err := store.Sealed(fresh, failing); !errors.Is(err, store.ErrKeyUnavailable) || !errors.Is(err, errAgent) {
		t.Fatalf("creating with a failing key function: %v", err)
	}
	// Nothing was written: a later open with a working key creates it.
	var calls []bool
	seal(t, fresh, fixedKey(1, &calls))
	if len(calls) != 1 || !calls[0] {
		t.Fatalf("after a failed creation: calls %v, want a creation", calls)
	}
}

func TestSealedTamperedValue(t *testing.T) {
	inner := store.NewMemory()
	defer inner.Close()
	s := seal(t, inner, fixedKey(1, nil))
	mustPut(t, s, "e2e/prekeys", "1", []byte("prekey private key"))
	hb, hk := store.SealedNames(s, "e2e/prekeys", "1")
	orig := rawGet(t, inner, hb, hk)
	for i := range orig {
		bad := bytes.Clone(orig)
		bad[i] ^= 0x01
		mustPut(t, inner, hb, hk, bad)
		if v, err := sealedGet(s, "e2e/prekeys", "1"); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("byte %d flipped: Get = %q, %v, want ErrCorrupt", i, v, err)
		}
		err := s.View(func(tx store.Tx) error {
			return tx.ForEach("e2e/prekeys", func(string, []byte) error { return nil })
		})
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("byte %d flipped: ForEach = %v, want ErrCorrupt", i, err)
		}
	}
	// Truncations, down to nothing, are errors too, not panics.
	for n := range len(orig) {
		mustPut(t, inner, hb, hk, orig[:n])
		if _, err := sealedGet(s, "e2e/prekeys", "1"); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	mustPut(t, inner, hb, hk, orig)
	if v, err := sealedGet(s, "e2e/prekeys", "1"); err != nil || string(v) != "prekey private key" {
		t.Fatalf("restored: %q, %v", v, err)
	}
}

func TestSealedMovedValue(t *testing.T) {
	inner := store.NewMemory()
	defer inner.Close()
	s := seal(t, inner, fixedKey(1, nil))
	mustPut(t, s, "e2e/sessions", "alice@example.net/1", []byte("alice session"))
	mustPut(t, s, "e2e/sessions", "mallory@example.net/1", []byte("mallory session"))
	mustPut(t, s, "e2e/peers", "mallory@example.net/1", []byte("mallory bundle"))
	hb, ha := store.SealedNames(s, "e2e/sessions", "alice@example.net/1")
	_, hm := store.SealedNames(s, "e2e/sessions", "mallory@example.net/1")
	pb, pm := store.SealedNames(s, "e2e/peers", "mallory@example.net/1")

	// Another key of the same bucket.
	mustPut(t, inner, hb, hm, rawGet(t, inner, hb, ha))
	if v, err := sealedGet(s, "e2e/sessions", "mallory@example.net/1"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("value moved to another key: %q, %v, want ErrCorrupt", v, err)
	}
	// The same key of another bucket.
	mustPut(t, inner, pb, pm, rawGet(t, inner, hb, ha))
	if v, err := sealedGet(s, "e2e/peers", "mallory@example.net/1"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("value moved to another bucket: %q, %v, want ErrCorrupt", v, err)
	}
	// A ciphertext of another store under the same key is rejected by the
	// AEAD as well: the same key but another salt gives other subkeys.
	other := store.NewMemory()
	defer other.Close()
	so := seal(t, other, fixedKey(1, nil))
	mustPut(t, so, "e2e/sessions", "alice@example.net/1", []byte("other"))
	ob, oa := store.SealedNames(so, "e2e/sessions", "alice@example.net/1")
	mustPut(t, inner, hb, ha, rawGet(t, other, ob, oa))
	if v, err := sealedGet(s, "e2e/sessions", "alice@example.net/1"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("value from another store: %q, %v, want ErrCorrupt", v, err)
	}
}

func TestSealedHeaderTampered(t *testing.T) {
	cases := []struct {
		name   string
		change func(header, check []byte) (h, c []byte)
		want   error
	}{
		{"salt", func(h, c []byte) ([]byte, []byte) { h[5] ^= 1; return h, c }, store.ErrWrongKey},
		{"version", func(h, c []byte) ([]byte, []byte) { h[0] = 9; return h, c }, store.ErrCorrupt},
		{"short header", func(h, c []byte) ([]byte, []byte) { return h[:10], c }, store.ErrCorrupt},
		{"check", func(h, c []byte) ([]byte, []byte) { c[len(c)-1] ^= 1; return h, c }, store.ErrWrongKey},
		{"no check", func(h, c []byte) ([]byte, []byte) { return h, nil }, store.ErrCorrupt},
		{"no header", func(h, c []byte) ([]byte, []byte) { return nil, c }, store.ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inner := store.NewMemory()
			defer inner.Close()
			seal(t, inner, fixedKey(1, nil))
			h := rawGet(t, inner, "securejingle/sealed", "header")
			c := rawGet(t, inner, "securejingle/sealed", "check")
			h, c = tc.change(h, c)
			err := inner.Update(func(tx store.Tx) error {
				for k, v := range map[string][]byte{"header": h, "check": c} {
					var err error
					if v == nil {
						err = tx.Delete("securejingle/sealed", k)
					} else {
						err = tx.Put("securejingle/sealed", k, v)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Sealed(inner, fixedKey(1, nil)); !errors.Is(err, tc.want) {
				t.Fatalf("Sealed after the %s changed: %v, want %v", tc.name, err, tc.want)
			}
		})
	}
}

// TestSealedHeaderBucketName checks that a caller's bucket named like the
// header bucket is hidden like any other and cannot reach the header.
func TestSealedHeaderBucketName(t *testing.T) {
	inner := store.NewMemory()
	defer inner.Close()
	s := seal(t, inner, fixedKey(1, nil))
	if _, err := sealedGet(s, "securejingle/sealed", "header"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of the header through the sealed store: %v, want ErrNotFound", err)
	}
	mustPut(t, s, "securejingle/sealed", "header", []byte("x"))
	mustPut(t, s, "securejingle/sealed", "check", []byte("y"))
	if v, err := sealedGet(s, "securejingle/sealed", "header"); err != nil || string(v) != "x" {
		t.Fatalf("caller's record: %q, %v", v, err)
	}
	// The real header is untouched: the store still opens.
	seal(t, inner, fixedKey(1, nil))
}

// TestSealedRefusesUnsealedData checks that a store written without
// sealing is refused, not silently mixed with sealed records, and that an
// empty one (a bbolt file that was created but never written) is sealed.
func TestSealedRefusesUnsealedData(t *testing.T) {
	for _, name := range []string{"memory", "bolt", "faulty"} {
		t.Run(name, func(t *testing.T) {
			var inner store.Store
			switch name {
			case "memory":
				inner = store.NewMemory()
			case "bolt":
				inner = openBolt(t)
			case "faulty":
				inner = store.NewFaulty(store.NewMemory())
			}
			defer inner.Close()
			mustPut(t, inner, "e2e/prekeys", "1", []byte("private key in clear"))
			if _, err := store.Sealed(inner, fixedKey(1, nil)); !errors.Is(err, store.ErrNotSealed) {
				t.Fatalf("Sealed over unsealed data: %v, want ErrNotSealed", err)
			}
			if err := inner.Update(func(tx store.Tx) error { return tx.Delete("e2e/prekeys", "1") }); err != nil {
				t.Fatal(err)
			}
			s := seal(t, inner, fixedKey(1, nil))
			mustPut(t, s, "b", "k", []byte("v"))
		})
	}
}

// TestSealedFileHasNoPlaintext writes known secrets, bucket names and keys
// through a sealed bbolt store and checks that none of them appears in the
// file's bytes.
func TestSealedFileHasNoPlaintext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sealed.db")
	inner, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	s := seal(t, inner, fixedKey(3, nil))
	secret := []byte("PREKEY-PRIVATE-0123456789abcdef0123456789abcdef")
	names := []string{"e2e/prekeys", "trust/dev/bob@example.net", "bob@example.net/4242"}
	for i := range 50 {
		v := append(bytes.Clone(secret), byte(i))
		mustPut(t, s, "e2e/prekeys", string(rune('a'+i%26))+"-prekey", v)
		mustPut(t, s, "trust/dev/bob@example.net", "bob@example.net/4242", v)
	}
	// Overwritten and deleted values leave old pages behind in bbolt: they
	// must be ciphertext too.
	err = s.Update(func(tx store.Tx) error { return tx.Delete("trust/dev/bob@example.net", "bob@example.net/4242") })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The check: the same writes without sealing do show up, so the
	// search would find them.
	plainPath := filepath.Join(t.TempDir(), "plain.db")
	plain, err := store.OpenBolt(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, plain, "trust/dev/bob@example.net", "bob@example.net/4242", secret)
	plain.Close()
	plainRaw, _ := os.ReadFile(plainPath)
	for _, needle := range append([][]byte{secret[:16]}, []byte(names[0]), []byte(names[1]), []byte(names[2])) {
		if needle := needle; bytes.Contains(raw, needle) {
			t.Errorf("sealed file contains %q", needle)
		}
	}
	if !bytes.Contains(plainRaw, secret) || !bytes.Contains(plainRaw, []byte(names[1])) {
		t.Fatal("the unsealed control file does not contain the plaintext: the search is broken")
	}
}

// BenchmarkStore measures Get and Put, sealed against unsealed, on memory
// (the cost of sealing alone) and on bbolt (where each Put is an fsync).
func BenchmarkStore(b *testing.B) {
	value := bytes.Repeat([]byte{0x5a}, 512) // about a session record
	opens := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(*testing.B) store.Store { return store.NewMemory() }},
		{"memory-sealed", func(b *testing.B) store.Store { return seal(b, store.NewMemory(), fixedKey(1, nil)) }},
		{"bolt", func(b *testing.B) store.Store { return openBoltTB(b) }},
		{"bolt-sealed", func(b *testing.B) store.Store { return seal(b, openBoltTB(b), fixedKey(1, nil)) }},
	}
	for _, o := range opens {
		b.Run(o.name+"/Get", func(b *testing.B) {
			s := o.open(b)
			defer s.Close()
			if err := s.Update(func(tx store.Tx) error { return tx.Put("e2e/sessions", "bob@example.net/1", value) }); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.View(func(tx store.Tx) error {
					_, err := tx.Get("e2e/sessions", "bob@example.net/1")
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(o.name+"/Put", func(b *testing.B) {
			s := o.open(b)
			defer s.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Update(func(tx store.Tx) error { return tx.Put("e2e/sessions", "bob@example.net/1", value) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
