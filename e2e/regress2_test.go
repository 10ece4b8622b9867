package e2e

import (
	"fmt"
	"testing"

	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// R3: strangers fill the pending-handshake cap; a roster contact is then
// refused, and the slots are not freed after handshakeTimeout unless the
// application happens to call Refresh.
func TestRegressionPendingCapBlocksRoster(t *testing.T) {
	clk := newClock()
	cfg := access.DefaultConfig()
	cfg.Mode = access.Anyone
	ac, _ := access.New(cfg, clk.now)
	signer, _ := identity.GenerateMemorySigner()
	b, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: store.NewMemory(), Now: clk.now, Access: ac})
	if err != nil {
		t.Fatal(err)
	}
	bob := &testEngine{b, nil}
	first := func(s *testEngine, onRoster bool) error {
		s.AddBundle(bob.JID(), bob.Bundle())
		el, err := s.SealChat(chatCtx(s, bob), []Device{dev(bob)}, "hi", true)
		if err != nil {
			t.Fatal(err)
		}
		c := chatCtx(s, bob)
		c.PeerOnRoster = onRoster
		_, _, err = bob.OpenChat(c, el)
		return err
	}
	n := 0
	for d := 0; d < 13; d++ { // 13 attacker accounts, 5 devices each
		for i := 0; i < 5; i++ {
			if err := first(newTestEngine(t, fmt.Sprintf("spam%d@evil.example", d), clk), false); err == nil {
				n++
			}
		}
		clk.t = clk.t.Add(5e9) // stay under the global rate
	}
	t.Logf("attacker holds %d slots, stats %+v", n, ac.Stats())
	clk.t = clk.t.Add(handshakeTimeout * 3)
	friend := newTestEngine(t, "friend@example.org", clk)
	if err := first(friend, true); err != nil {
		t.Errorf("roster contact's first message 30 minutes later (no Refresh): %v", err)
	}
}
