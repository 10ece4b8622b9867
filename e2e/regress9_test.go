package e2e

import (
	"bytes"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

func TestRegressionIdentityRotationKeepsOldBundle(t *testing.T) {
	clk := newClock()
	st := store.NewMemory()
	s1, _ := identity.GenerateMemorySigner()
	newCertified(t, Config{JID: "bob@example.net", Signer: s1, Store: st, Now: clk.now})
	s2, _ := identity.GenerateMemorySigner() // the old key was compromised; switch keys
	e2, err := newCertified(t, Config{JID: "bob@example.net", Signer: s2, Store: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e2.Bundle().Account, s2.PublicKey()) {
		t.Errorf("bundle still advertises the old identity key")
	}
	if err := e2.Presence().Verify("bob@example.net"); err != nil {
		t.Errorf("own presence does not verify: %v", err)
	}
}
