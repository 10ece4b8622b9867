package e2e

import (
	"errors"
	"fmt"
	"testing"

	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// TestOpportunisticAccessControl: strangers' first messages (with inline
// bundles) pass access control only as configured, are rate limited, and
// pending handshakes are capped; roster contacts still get through.
func TestOpportunisticAccessControl(t *testing.T) {
	clk := newClock()
	cfg := access.DefaultConfig()
	cfg.Mode = access.Anyone
	cfg.Burst, cfg.GlobalBurst, cfg.MaxPending = 2, 1000, 4
	ac, err := access.New(cfg, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := identity.GenerateMemorySigner()
	b, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: store.NewMemory(), Now: clk.now, Access: ac})
	if err != nil {
		t.Fatal(err)
	}
	bob := &testEngine{b, nil}
	first := func(s *testEngine, onRoster bool) error {
		if err := s.AddBundle(bob.JID(), bob.Bundle()); err != nil {
			t.Fatal(err)
		}
		el, err := s.SealChat(chatCtx(s, bob), []Device{dev(bob)}, "hello stranger", true)
		if err != nil {
			t.Fatal(err)
		}
		c := chatCtx(s, bob)
		c.PeerOnRoster = onRoster
		_, _, err = bob.OpenChat(c, el)
		return err
	}
	// Four strangers fill the pending-handshake cap (no acknowledgements).
	for i := 0; i < 4; i++ {
		if err := first(newTestEngine(t, fmt.Sprintf("s%d@spam.example", i), clk), false); err != nil {
			t.Fatalf("stranger %d: %v", i, err)
		}
	}
	if err := first(newTestEngine(t, "s9@spam.example", clk), false); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("fifth pending handshake: %v, want ErrAccessDenied", err)
	}
	if st := ac.Stats(); st.Pending != 4 {
		t.Fatalf("pending = %d", st.Pending)
	}
	// Refused attempts take no slot; after the timeout the slots free up.
	clk.t = clk.t.Add(handshakeTimeout + 1)
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	if st := ac.Stats(); st.Pending != 0 {
		t.Fatalf("pending after timeout = %d", st.Pending)
	}
	// One stranger retrying with new sessions is rate limited.
	s := newTestEngine(t, "flood@spam.example", clk)
	var denied int
	for i := 0; i < 6; i++ {
		s.store.Update(func(tx store.Tx) error { return tx.Delete(bucketSessions, dev(bob).key()) })
		if err := first(s, false); errors.Is(err, ErrAccessDenied) {
			denied++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if denied == 0 {
		t.Fatal("a stranger's flood of first messages was never limited")
	}
}
