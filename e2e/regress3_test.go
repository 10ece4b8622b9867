package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// R4: replay-cache expiry is fixed at acceptance (expires + lifetime at
// that time); prekey deletion uses the lifetime at Refresh time. If the
// lifetime is raised, an old first message is accepted again.
func TestRegressionReplayAfterLifetimeChange(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	signer, _ := identity.GenerateMemorySigner()
	st := store.NewMemory()
	day := 24 * time.Hour
	be, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: st, Now: clk.now, PrekeyLifetime: 2 * day})
	if err != nil {
		t.Fatal(err)
	}
	b := &testEngine{be, st}
	introduce(t, a, b)
	first := send(t, a, b, "hello")
	recv(t, a, b, first, "hello")
	recv(t, b, a, send(t, b, a, "reply"), "reply")
	recv(t, a, b, send(t, a, b, "x"), "x")
	// Operator raises the prekey lifetime to 14 days and restarts.
	be2, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: st, Now: clk.now, PrekeyLifetime: 14 * day})
	if err != nil {
		t.Fatal(err)
	}
	b2 := &testEngine{be2, st}
	clk.t = clk.t.Add(5 * day) // past old expiry+2d, well before expiry+14d
	if err := b2.Refresh(); err != nil {
		t.Fatal(err)
	}
	_, _, rerr := b2.OpenChat(chatCtx(a, b2), first)
	t.Logf("replay: %v", rerr)
	if rerr == nil {
		t.Errorf("replayed first message accepted again after lifetime change")
	}
	if _, _, err := b2.OpenChat(chatCtx(a, b2), send(t, a, b2, "y")); err != nil {
		t.Logf("session after replay: %v", err)
	}
}

// The unsafe case: the session the first message created is gone (say a
// later handshake replaced it before it was established). The replay
// cache alone must still refuse the old first message while its prekey
// exists, whatever the lifetime was when the entry was written.
func TestRegressionReplayCacheOutlivesLifetimeChange(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	signer, _ := identity.GenerateMemorySigner()
	st := store.NewMemory()
	day := 24 * time.Hour
	be, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: st, Now: clk.now, PrekeyLifetime: 2 * day})
	if err != nil {
		t.Fatal(err)
	}
	b := &testEngine{be, st}
	introduce(t, a, b)
	first := send(t, a, b, "hello")
	recv(t, a, b, first, "hello")
	be2, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: st, Now: clk.now, PrekeyLifetime: 14 * day})
	if err != nil {
		t.Fatal(err)
	}
	b2 := &testEngine{be2, st}
	clk.t = clk.t.Add(5 * day)
	if err := b2.Refresh(); err != nil {
		t.Fatal(err)
	}
	st.Update(func(tx store.Tx) error { return tx.Delete(bucketSessions, dev(a).key()) })
	if _, _, err := b2.OpenChat(chatCtx(a, b2), first); !errors.Is(err, ErrReplay) {
		t.Fatalf("old first message after a lifetime change: %v, want ErrReplay", err)
	}
}
