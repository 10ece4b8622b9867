package e2e

import (
	"errors"
	"fmt"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// msgID is the (chain, number) pair that selects a message key.
type msgID struct{ idx, n uint32 }

// entryID reads the header of the single entry of blob.
func entryID(t *testing.T, blob []byte) msgID {
	t.Helper()
	_, es, err := parseEntries(blob)
	if err != nil || len(es) != 1 {
		t.Fatalf("entries: %v", err)
	}
	r := reader{b: es[0].body}
	switch es[0].kind & kindMask {
	case kindInit:
		readInitBlock(&r)
	case kindResp:
		readRespBlock(&r)
	}
	h := readHeader(&r, es[0].kind&kindMask != kindShort)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return msgID{h.idx, h.n}
}

// TestStoreFailureNeverReusesKeys fails the store at every write of a long
// exchange, on both sides, and shows: a failed seal releases no ciphertext;
// a failed open acknowledges nothing and the message opens later; no two
// released messages of one sender ever use the same message key; nothing
// acknowledged is lost.
func TestStoreFailureNeverReusesKeys(t *testing.T) {
	clk := newClock()
	mk := func(jid string) (*testEngine, *store.Faulty) {
		f := store.NewFaulty(store.NewMemory())
		signer, _ := identity.GenerateMemorySigner()
		e, err := newCertified(t, Config{JID: jid, Signer: signer, Store: f, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		return &testEngine{e, f}, f
	}
	a, fa := mk("alice@example.org")
	b, fb := mk("bob@example.net")
	introduce(t, a, b)

	used := map[string]map[msgID]bool{a.JID(): {}, b.JID(): {}}
	delivered := 0
	for i := 0; i < 120; i++ {
		from, to, ff, ft := a, b, fa, fb
		if i%3 == 2 {
			from, to, ff, ft = b, a, fb, fa
		}
		body := fmt.Sprintf("message %d", i)
		c := chatCtx(from, to)
		// Every 4th seal fails at commit: no ciphertext may come out.
		if i%4 == 1 {
			ff.FailCommit(1)
			el, err := from.SealChat(c, []Device{dev(to)}, body, false)
			if !errors.Is(err, store.ErrInjected) || el != nil {
				t.Fatalf("seal with failing store: %v, %v", el, err)
			}
		}
		el, err := from.SealChat(c, []Device{dev(to)}, body, false)
		if err != nil {
			t.Fatal(err)
		}
		id := entryID(t, el.Blob)
		if used[from.JID()][id] {
			t.Fatalf("message key %v of %s used twice", id, from.JID())
		}
		used[from.JID()][id] = true
		// Every 3rd open fails at commit: nothing is acknowledged, and the
		// same message opens on the retry.
		if i%3 == 0 {
			ft.FailCommit(1)
			if got, _, err := to.OpenChat(c, el); !errors.Is(err, store.ErrInjected) || got != "" {
				t.Fatalf("open with failing store: %q, %v", got, err)
			}
		}
		recv(t, from, to, el, body)
		delivered++
	}
	if delivered != 120 || fa.Injected()+fb.Injected() == 0 {
		t.Fatalf("delivered %d, injected %d", delivered, fa.Injected()+fb.Injected())
	}
}

// TestBoltPersistence runs a conversation across engine restarts on the
// bbolt store: sessions, prekeys and replay caches survive.
func TestBoltPersistence(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	sa, _ := identity.GenerateMemorySigner()
	sb, _ := identity.GenerateMemorySigner()
	open := func(name string, s identity.Signer, jid string) *testEngine {
		st, err := store.OpenBolt(dir + "/" + name + ".db")
		if err != nil {
			t.Fatal(err)
		}
		e, err := newCertified(t, Config{JID: jid, Signer: s, Store: st, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		return &testEngine{e, st}
	}
	a := open("a", sa, "alice@example.org")
	b := open("b", sb, "bob@example.net")
	introduce(t, a, b)
	first := send(t, a, b, "one")
	recv(t, a, b, first, "one")
	recv(t, b, a, send(t, b, a, "two"), "two")
	late := send(t, a, b, "late")
	recv(t, a, b, send(t, a, b, "three"), "three")
	devA, devB := a.Device(), b.Device()
	a.store.Close()
	b.store.Close()

	a = open("a", sa, "alice@example.org")
	b = open("b", sb, "bob@example.net")
	if a.Device() != devA || b.Device() != devB {
		t.Fatal("device ids changed across restart")
	}
	recv(t, a, b, late, "late")
	if _, _, err := b.OpenChat(chatCtx(a, b), first); !errors.Is(err, ErrReplay) {
		t.Fatalf("first message replayed after restart: %v", err)
	}
	recv(t, b, a, send(t, b, a, "four"), "four")
	recv(t, a, b, send(t, a, b, "five"), "five")
	a.store.Close()
	b.store.Close()
}
