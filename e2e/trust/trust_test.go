package trust

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/store"
)

const alice = "alice@example.org"

// testKey returns a distinct deterministic public key.
func testKey(i byte) ed25519.PublicKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = i
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

var k1, k2, k3 = testKey(1), testKey(2), testKey(3)

// clock is a manual clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// op is one user or protocol action in a transition table.
type op struct {
	kind   string // observe, verify, accept, distrust, remove
	key    ed25519.PublicKey
	method string
}

func observe(k ed25519.PublicKey) op { return op{kind: "observe", key: k} }
func verify(k ed25519.PublicKey) op  { return op{kind: "verify", key: k, method: MethodSAS} }
func accept(k ed25519.PublicKey) op  { return op{kind: "accept", key: k} }

var (
	distrust = op{kind: "distrust"}
	remove   = op{kind: "remove"}
)

func (o op) run(s *Store) (Record, Event, error) {
	switch o.kind {
	case "observe":
		return s.Observe(alice, o.key)
	case "verify":
		r, err := s.Verify(alice, o.key, o.method)
		return r, Event{}, err
	case "accept":
		r, err := s.Accept(alice, o.key)
		return r, Event{}, err
	case "distrust":
		return s.Distrust(alice)
	case "remove":
		return Record{}, Event{}, s.Remove(alice)
	}
	panic("unknown op " + o.kind)
}

// Starting states, as op sequences.
var (
	stUnknown         = []op{}
	stTOFU            = []op{observe(k1)}
	stVerified        = []op{observe(k1), verify(k1)}
	stChanged         = []op{observe(k1), observe(k2)}
	stChangedVerified = []op{observe(k1), verify(k1), observe(k2)}
	stDistrusted      = []op{observe(k1), distrust}
)

func TestTransitions(t *testing.T) {
	tests := []struct {
		name    string
		setup   []op
		do      op
		err     error     // expected error; state must then be unchanged
		event   EventKind // for observe
		evOld   ed25519.PublicKey
		level   Level
		key     ed25519.PublicKey
		pending ed25519.PublicKey
		method  string
	}{
		// Observe.
		{name: "unknown/observe", setup: stUnknown, do: observe(k1), event: EventFirstUse, level: TOFU, key: k1},
		{name: "tofu/observe same", setup: stTOFU, do: observe(k1), event: EventNone, evOld: k1, level: TOFU, key: k1},
		{name: "tofu/observe other", setup: stTOFU, do: observe(k2), event: EventKeyChanged, evOld: k1, level: Changed, key: k1, pending: k2},
		{name: "verified/observe same", setup: stVerified, do: observe(k1), event: EventNone, evOld: k1, level: Verified, key: k1, method: MethodSAS},
		{name: "verified/observe other", setup: stVerified, do: observe(k2), event: EventKeyChanged, evOld: k1, level: Changed, key: k1, pending: k2, method: MethodSAS},
		{name: "changed/observe pending again", setup: stChanged, do: observe(k2), event: EventNone, evOld: k1, level: Changed, key: k1, pending: k2},
		{name: "changed/observe pinned", setup: stChanged, do: observe(k1), event: EventNone, evOld: k1, level: Changed, key: k1, pending: k2},
		{name: "changed/observe third key", setup: stChanged, do: observe(k3), event: EventKeyChanged, evOld: k1, level: Changed, key: k1, pending: k3},
		{name: "distrusted/observe same", setup: stDistrusted, do: observe(k1), event: EventNone, evOld: k1, level: Distrusted, key: k1},
		// A distrusted account stays distrusted whatever key is presented: the
		// change is reported, the decision is not lifted (review finding).
		{name: "distrusted/observe other", setup: stDistrusted, do: observe(k2), event: EventKeyChanged, evOld: k1, level: Distrusted, key: k1},

		// Verify.
		{name: "unknown/verify", setup: stUnknown, do: verify(k1), level: Verified, key: k1, method: MethodSAS},
		{name: "tofu/verify pinned", setup: stTOFU, do: verify(k1), level: Verified, key: k1, method: MethodSAS},
		{name: "tofu/verify other", setup: stTOFU, do: verify(k2), err: ErrKeyMismatch, level: TOFU, key: k1},
		{name: "tofu/verify bad method", setup: stTOFU, do: op{kind: "verify", key: k1, method: "Bad Method"}, err: ErrInvalidMethod, level: TOFU, key: k1},
		{name: "verified/verify again other method", setup: stVerified, do: op{kind: "verify", key: k1, method: MethodOpenPGP}, level: Verified, key: k1, method: MethodOpenPGP},
		{name: "changed/verify pending", setup: stChanged, do: verify(k2), level: Verified, key: k2, method: MethodSAS},
		{name: "changed/verify pinned", setup: stChanged, do: verify(k1), level: Verified, key: k1, method: MethodSAS},
		{name: "changed/verify third", setup: stChanged, do: verify(k3), err: ErrKeyMismatch, level: Changed, key: k1, pending: k2},
		{name: "distrusted/verify pinned", setup: stDistrusted, do: verify(k1), level: Verified, key: k1, method: MethodSAS},
		{name: "distrusted/verify other", setup: stDistrusted, do: verify(k2), err: ErrKeyMismatch, level: Distrusted, key: k1},

		// Accept.
		{name: "unknown/accept", setup: stUnknown, do: accept(k1), err: ErrUnknown},
		{name: "tofu/accept pinned", setup: stTOFU, do: accept(k1), level: TOFU, key: k1},
		{name: "tofu/accept other", setup: stTOFU, do: accept(k2), err: ErrKeyMismatch, level: TOFU, key: k1},
		{name: "verified/accept pinned", setup: stVerified, do: accept(k1), level: Verified, key: k1, method: MethodSAS},
		{name: "changed/accept pending", setup: stChanged, do: accept(k2), level: TOFU, key: k2},
		{name: "changed/accept pinned", setup: stChanged, do: accept(k1), level: TOFU, key: k1},
		{name: "changed/accept third", setup: stChanged, do: accept(k3), err: ErrKeyMismatch, level: Changed, key: k1, pending: k2},
		{name: "changed verified/accept pending", setup: stChangedVerified, do: accept(k2), level: TOFU, key: k2},
		{name: "changed verified/accept pinned", setup: stChangedVerified, do: accept(k1), level: Verified, key: k1, method: MethodSAS},
		{name: "distrusted/accept pinned", setup: stDistrusted, do: accept(k1), level: TOFU, key: k1},
		{name: "distrusted/accept other", setup: stDistrusted, do: accept(k2), err: ErrKeyMismatch, level: Distrusted, key: k1},

		// Distrust.
		{name: "unknown/distrust", setup: stUnknown, do: distrust, err: ErrUnknown},
		{name: "tofu/distrust", setup: stTOFU, do: distrust, event: EventDistrusted, evOld: k1, level: Distrusted, key: k1},
		{name: "verified/distrust", setup: stVerified, do: distrust, event: EventDistrusted, evOld: k1, level: Distrusted, key: k1},
		{name: "changed/distrust", setup: stChanged, do: distrust, event: EventDistrusted, evOld: k1, level: Distrusted, key: k1},
		{name: "distrusted/distrust", setup: stDistrusted, do: distrust, event: EventDistrusted, evOld: k1, level: Distrusted, key: k1},

		// Remove.
		{name: "unknown/remove", setup: stUnknown, do: remove},
		{name: "tofu/remove", setup: stTOFU, do: remove},
		{name: "verified/remove", setup: stVerified, do: remove},
		{name: "changed/remove", setup: stChanged, do: remove},
		{name: "removed/observe other", setup: []op{observe(k1), verify(k1), remove}, do: observe(k2), event: EventFirstUse, level: TOFU, key: k2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(store.NewMemory(), newClock().now)
			for _, o := range tc.setup {
				if _, _, err := o.run(s); err != nil {
					t.Fatalf("setup %s: %v", o.kind, err)
				}
			}
			before, beforeErr := s.Lookup(alice)
			r, ev, err := tc.do.run(s)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("%s: error %v, want %v", tc.do.kind, err, tc.err)
				}
			} else if err != nil {
				t.Fatalf("%s: %v", tc.do.kind, err)
			}
			after, lookupErr := s.Lookup(alice)
			if tc.level == Unknown {
				if !errors.Is(lookupErr, ErrUnknown) || !errors.Is(lookupErr, store.ErrNotFound) {
					t.Fatalf("Lookup: %v, want ErrUnknown (and store.ErrNotFound)", lookupErr)
				}
				return
			}
			if lookupErr != nil {
				t.Fatalf("Lookup: %v", lookupErr)
			}
			if tc.err != nil {
				if beforeErr != nil || !recordsEqual(before, after) {
					t.Errorf("failed %s changed the record:\n%+v\n%+v", tc.do.kind, before, after)
				}
			} else if tc.do.kind != "remove" && !recordsEqual(r, after) {
				t.Errorf("returned record differs from the stored one:\n%+v\n%+v", r, after)
			}
			if after.Level != tc.level || !keyEqual(after.Key, tc.key) || after.Method != tc.method {
				t.Errorf("record: level %v key #%d method %q; want %v #%d %q",
					after.Level, keyIndex(after.Key), after.Method, tc.level, keyIndex(tc.key), tc.method)
			}
			if keyIndex(after.PendingKey) != keyIndex(tc.pending) {
				t.Errorf("pending key #%d, want #%d", keyIndex(after.PendingKey), keyIndex(tc.pending))
			}
			if tc.do.kind == "observe" || tc.do.kind == "distrust" {
				wantNew := tc.do.key
				if tc.do.kind == "distrust" {
					wantNew = after.Key // the event names the distrusted key
				}
				if ev.Kind != tc.event || ev.JID != alice ||
					!keyEqual(ev.New, wantNew) || keyIndex(ev.Old) != keyIndex(tc.evOld) {
					t.Errorf("event %v old #%d new #%d, want %v old #%d new #%d",
						ev.Kind, keyIndex(ev.Old), keyIndex(ev.New), tc.event, keyIndex(tc.evOld), keyIndex(wantNew))
				}
			}
			// The time stamps follow the level.
			if (after.Method != "") == after.VerifiedAt.IsZero() {
				t.Errorf("method %q with VerifiedAt %v", after.Method, after.VerifiedAt)
			}
			if (after.Level == Changed) == after.ChangedAt.IsZero() {
				t.Errorf("level %v with ChangedAt %v", after.Level, after.ChangedAt)
			}
			// Accepts follows the level.
			wantAccept := after.Level == TOFU || after.Level == Verified || after.Level == Changed
			if after.Accepts(after.Key) != wantAccept {
				t.Errorf("Accepts(pinned) = %v at level %v", !wantAccept, after.Level)
			}
			if after.PendingKey != nil && after.Accepts(after.PendingKey) {
				t.Error("pending key accepted")
			}
		})
	}
}

func keyIndex(k ed25519.PublicKey) int {
	for i, c := range []ed25519.PublicKey{k1, k2, k3} {
		if keyEqual(k, c) {
			return i + 1
		}
	}
	if k == nil {
		return 0
	}
	return -1
}

func recordsEqual(a, b Record) bool {
	return a.JID == b.JID && keyEqual(a.Key, b.Key) &&
		a.Level == b.Level && a.Method == b.Method &&
		a.FirstSeen.Equal(b.FirstSeen) && a.UpdatedAt.Equal(b.UpdatedAt) &&
		a.VerifiedAt.Equal(b.VerifiedAt) && a.ChangedAt.Equal(b.ChangedAt) &&
		keyIndex(a.PendingKey) == keyIndex(b.PendingKey) &&
		(a.PendingKey == nil) == (b.PendingKey == nil)
}

func TestTimestamps(t *testing.T) {
	c := newClock()
	s := New(store.NewMemory(), c.now)
	r1, _, err := s.Observe(alice, k1)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.FirstSeen.Equal(r1.UpdatedAt) || r1.FirstSeen.Location() != time.UTC ||
		!r1.VerifiedAt.IsZero() || !r1.ChangedAt.IsZero() {
		t.Errorf("first use: %+v", r1)
	}
	r2, _, _ := s.Observe(alice, k1)
	if !r2.UpdatedAt.Equal(r1.UpdatedAt) {
		t.Error("observing the pinned key changed UpdatedAt")
	}
	rv, _ := s.Verify(alice, k1, MethodQR)
	if !rv.VerifiedAt.After(r1.UpdatedAt) || !rv.VerifiedAt.Equal(rv.UpdatedAt) {
		t.Errorf("verify: VerifiedAt %v UpdatedAt %v", rv.VerifiedAt, rv.UpdatedAt)
	}
	r3, _, _ := s.Observe(alice, k2)
	if !r3.FirstSeen.Equal(r1.FirstSeen) || !r3.UpdatedAt.After(rv.UpdatedAt) ||
		!r3.ChangedAt.Equal(r3.UpdatedAt) || !r3.VerifiedAt.Equal(rv.VerifiedAt) {
		t.Errorf("key change: %+v (first seen %v, verified %v)", r3, r1.FirstSeen, rv.VerifiedAt)
	}
	r4, _ := s.Accept(alice, k1)
	if r4.Level != Verified || !r4.ChangedAt.IsZero() || !r4.VerifiedAt.Equal(rv.VerifiedAt) {
		t.Errorf("pending key dismissed: %+v", r4)
	}
}

func TestInvalidArguments(t *testing.T) {
	s := New(store.NewMemory(), nil)
	jids := []string{"", "alice@example.org/phone", "bad\x00jid", "\xff", strings.Repeat("a", MaxJIDLen+1)}
	for _, j := range jids {
		if _, _, err := s.Observe(j, k1); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("Observe(%q): %v, want ErrInvalidJID", j, err)
		}
		if _, err := s.Verify(j, k1, MethodQR); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("Verify(%q): %v, want ErrInvalidJID", j, err)
		}
		if _, err := s.Accept(j, k1); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("Accept(%q): %v, want ErrInvalidJID", j, err)
		}
		if _, err := s.Lookup(j); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("Lookup(%q): %v, want ErrInvalidJID", j, err)
		}
		if err := s.Remove(j); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("Remove(%q): %v, want ErrInvalidJID", j, err)
		}
		if _, _, err := s.Distrust(j); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("Distrust(%q): %v, want ErrInvalidJID", j, err)
		}
	}
	// Domain-only and long-but-valid JIDs are bare JIDs.
	for _, j := range []string{"example.org", strings.Repeat("a", MaxJIDLen)} {
		if _, _, err := s.Observe(j, k1); err != nil {
			t.Errorf("Observe(%d-byte JID): %v", len(j), err)
		}
	}
	for _, k := range []ed25519.PublicKey{nil, k1[:31], append(append([]byte(nil), k1...), 0)} {
		if _, _, err := s.Observe(alice, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Observe(%d-byte key): %v, want ErrInvalidKey", len(k), err)
		}
		if _, err := s.Verify(alice, k, MethodQR); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Verify(%d-byte key): %v, want ErrInvalidKey", len(k), err)
		}
		if _, err := s.Accept(alice, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Accept(%d-byte key): %v, want ErrInvalidKey", len(k), err)
		}
	}
	for _, m := range []string{"", "SAS", "with space", strings.Repeat("a", MaxMethodLen+1), "é"} {
		if _, err := s.Verify(alice, k1, m); !errors.Is(err, ErrInvalidMethod) {
			t.Errorf("Verify(method %q): %v, want ErrInvalidMethod", m, err)
		}
	}
	// Unknown mechanisms that are valid tokens are kept.
	if r, err := s.Verify(alice, k1, "dnssec.v2"); err != nil || r.Method != "dnssec.v2" {
		t.Errorf("Verify with a new method: %v %q", err, r.Method)
	}
}

// TestOneRecordPerAccount shows that trust is per account: every key
// observed for a JID is measured against the one pinned account key, and
// List returns one record per JID in JID order.
func TestOneRecordPerAccount(t *testing.T) {
	s := New(store.NewMemory(), nil)
	for _, j := range []string{"bob@example.org", alice, "alice@example.org.evil", "carol@example.org"} {
		if _, _, err := s.Observe(j, testKey(byte(len(j)))); err != nil {
			t.Fatal(err)
		}
	}
	// Devices certified by the pinned key present the same account key:
	// nothing changes; any other key is a change of the account's key.
	key := testKey(byte(len(alice)))
	for range 3 {
		if r, ev, err := s.Observe(alice, key); err != nil || ev.Kind != EventNone || r.Level != TOFU {
			t.Fatalf("pinned key again: %v %v %v", ev.Kind, r.Level, err)
		}
	}
	if r, ev, err := s.Observe(alice, k1); err != nil || ev.Kind != EventKeyChanged || !r.Accepts(key) || r.Accepts(k1) {
		t.Fatalf("other key: %v %+v %v", ev.Kind, r, err)
	}
	rs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.JID)
	}
	if want := []string{alice, "alice@example.org.evil", "bob@example.org", "carol@example.org"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if rs, err := New(store.NewMemory(), nil).List(); err != nil || len(rs) != 0 {
		t.Errorf("List of an empty store: %v, %v", rs, err)
	}
}

// TestCorruptStore checks that a record that does not decode, or that is
// stored under another JID, is an error and not ErrUnknown.
func TestCorruptStore(t *testing.T) {
	r, _, err := New(store.NewMemory(), nil).Observe(alice, k1)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := r.MarshalBinary()
	const bob = "bob@example.org"
	v1 := append([]byte{1}, good[1:]...) // the former per-device version
	cases := map[string][]byte{"garbage": []byte("garbage"), "moved": good, "version 1": v1}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			ms := store.NewMemory()
			s := New(ms, nil)
			if err := ms.Update(func(tx store.Tx) error { return tx.Put(bucket, bob, data) }); err != nil {
				t.Fatal(err)
			}
			if _, err := s.List(); err == nil {
				t.Error("List over a corrupt record succeeded")
			}
			if _, err := s.Lookup(bob); err == nil || errors.Is(err, ErrUnknown) {
				t.Errorf("Lookup of a corrupt record: %v", err)
			}
			if _, _, err := s.Observe(bob, k2); err == nil {
				t.Error("Observe over a corrupt record succeeded")
			}
			if _, err := s.Verify(bob, k2, MethodQR); err == nil {
				t.Error("Verify over a corrupt record succeeded")
			}
		})
	}
}

// TestObserveTxAtomic shows that pinning inside a failed caller transaction
// leaves nothing behind, with a store that fails at commit.
func TestObserveTxAtomic(t *testing.T) {
	f := store.NewFaulty(store.NewMemory())
	s := New(f, nil)
	f.FailCommit(1)
	err := f.Update(func(tx store.Tx) error {
		_, ev, err := s.ObserveTx(tx, alice, k1)
		if err != nil {
			return err
		}
		if ev.Kind != EventFirstUse {
			t.Errorf("event %v", ev.Kind)
		}
		// Inside the transaction the pin is visible.
		if r, err := s.LookupTx(tx, alice); err != nil || !keyEqual(r.Key, k1) {
			t.Errorf("LookupTx inside the transaction: %v", err)
		}
		return tx.Put("session", "x", []byte("ratchet state"))
	})
	if !errors.Is(err, store.ErrInjected) {
		t.Fatalf("Update: %v, want ErrInjected", err)
	}
	if _, err := s.Lookup(alice); !errors.Is(err, ErrUnknown) {
		t.Errorf("pin survived a failed transaction: %v", err)
	}
	// Same through Observe itself, then a key change that fails.
	f.FailCommit(1)
	if _, _, err := s.Observe(alice, k1); !errors.Is(err, store.ErrInjected) {
		t.Fatalf("Observe: %v, want ErrInjected", err)
	}
	if _, err := s.Lookup(alice); !errors.Is(err, ErrUnknown) {
		t.Errorf("pin survived a failed Observe: %v", err)
	}
	if _, _, err := s.Observe(alice, k1); err != nil {
		t.Fatal(err)
	}
	f.FailAfterWrites(1, 0)
	if _, _, err := s.Observe(alice, k2); !errors.Is(err, store.ErrInjected) {
		t.Fatalf("Observe: %v, want ErrInjected", err)
	}
	if r, err := s.Lookup(alice); err != nil || r.Level != TOFU || r.PendingKey != nil {
		t.Errorf("after failed key change: %+v, %v", r, err)
	}
	// The change is raised again once the store works.
	if _, ev, err := s.Observe(alice, k2); err != nil || ev.Kind != EventKeyChanged {
		t.Errorf("retry: %v %v", ev.Kind, err)
	}
}

// TestConcurrentObserve has many goroutines race to pin different keys for
// one account: exactly one pin wins and every other key is reported as a
// change.
func TestConcurrentObserve(t *testing.T) {
	s := New(store.NewMemory(), newClock().now)
	const n = 32
	events := make([]Event, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, events[i], errs[i] = s.Observe(alice, testKey(byte(10+i)))
		}()
	}
	wg.Wait()
	first, changed := 0, 0
	var pinned ed25519.PublicKey
	for i, ev := range events {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch ev.Kind {
		case EventFirstUse:
			first++
			pinned = ev.New
		case EventKeyChanged:
			changed++
		}
	}
	if first != 1 || changed != n-1 {
		t.Fatalf("%d first-use and %d key-changed events, want 1 and %d", first, changed, n-1)
	}
	r, err := s.Lookup(alice)
	if err != nil {
		t.Fatal(err)
	}
	if !keyEqual(r.Key, pinned) || r.Level != Changed {
		t.Errorf("final record: level %v, pinned key is the first-use key: %v", r.Level, keyEqual(r.Key, pinned))
	}
	for _, ev := range events {
		if ev.Kind == EventKeyChanged && !keyEqual(ev.Old, pinned) {
			t.Error("key-changed event with Old != the pinned key")
		}
	}
}

func TestBoltStore(t *testing.T) {
	bs, err := store.OpenBolt(filepath.Join(t.TempDir(), "trust.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	s := New(bs, nil)
	if _, _, err := s.Observe(alice, k1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(alice, k1, MethodFingerprint); err != nil {
		t.Fatal(err)
	}
	r, err := s.Lookup(alice)
	if err != nil || r.Level != Verified || r.Method != MethodFingerprint {
		t.Errorf("Lookup: %+v, %v", r, err)
	}
	if rs, err := s.List(); err != nil || len(rs) != 1 || !recordsEqual(rs[0], r) {
		t.Errorf("List: %+v, %v", rs, err)
	}
}

// TestNoBytesEqual forbids non-constant-time comparisons in this package.
func TestNoBytesEqual(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "bytes.Equal") {
			t.Errorf("%s uses bytes.Equal; use crypto/subtle", f)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	s := New(store.NewMemory(), nil)
	if _, _, err := s.Observe(alice, k1); err != nil {
		b.Fatal(err)
	}
	b.Run("pinned", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := s.Observe(alice, k1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first-use", func(b *testing.B) {
		s := New(store.NewMemory(), nil)
		var n uint64
		for b.Loop() {
			n++
			if _, _, err := s.Observe(strconv.FormatUint(n, 10)+"@example.org", k1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
