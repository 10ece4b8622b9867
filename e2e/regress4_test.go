package e2e

import (
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// R5: after the operator drops the classic suites (PQ only), a first message
// built from the previous bundle still gets a classic X25519 session.
func TestRegressionRemovedSuiteStillAccepted(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk, SuiteX25519AES) // classic-only peer (or attacker-chosen)
	signer, _ := identity.GenerateMemorySigner()
	st := store.NewMemory()
	be, _ := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: st, Now: clk.now})
	old := be.Bundle()
	be2, err := newCertified(t, Config{JID: "bob@example.net", Signer: signer, Store: st, Now: clk.now, Suites: []SuiteID{SuiteXWingAES}})
	if err != nil {
		t.Fatal(err)
	}
	b := &testEngine{be2, st}
	if err := a.AddBundle(b.JID(), old); err != nil { // server serves the old bundle
		t.Fatal(err)
	}
	b.AddBundle(a.JID(), a.Bundle())
	if _, p, err := b.OpenChat(chatCtx(a, b), send(t, a, b, "hi")); err == nil {
		t.Errorf("PQ-only responder accepted a %v session", p.Suite)
	}
}
