package e2e

import (
	"encoding/binary"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// R6: one forged stanza from the server (inline bundle under a fresh key,
// claiming bob's JID and device; AEAD body garbage) turns bob's Verified/TOFU
// record into Changed and stops the working session until the user acts.
func TestRegressionForgedInlineBundleBlocksSession(t *testing.T) {
	clk := newClock()
	a := newTrustedEngine(t, "alice@example.org", clk)
	b := newTrustedEngine(t, "bob@example.net", clk)
	introduce(t, a.testEngine, b.testEngine)
	recv(t, a.testEngine, b.testEngine, send(t, a.testEngine, b.testEngine, "x"), "x")
	recv(t, b.testEngine, a.testEngine, send(t, b.testEngine, a.testEngine, "y"), "y")
	// Eve (the server) clones bob's JID and device id with her own key.
	st := store.NewMemory()
	st.Update(func(tx store.Tx) error {
		return tx.Put(bucketSelf, "device", binary.BigEndian.AppendUint32(nil, b.Device()))
	})
	es, _ := identity.GenerateMemorySigner()
	ee, err := newCertified(t, Config{JID: b.JID(), Signer: es, Store: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	eve := &testEngine{ee, st}
	eve.AddBundle(a.JID(), a.Bundle())
	el, err := eve.SealChat(chatCtx(eve, a.testEngine), []Device{dev(a.testEngine)}, "forged", true)
	if err != nil {
		t.Fatal(err)
	}
	el.Blob[len(el.Blob)-1] ^= 1 // not even a valid AEAD
	_, _, err = a.OpenChat(chatCtx(b.testEngine, a.testEngine), el)
	t.Logf("forged first message: %v", err)
	if _, _, err := a.OpenChat(chatCtx(b.testEngine, a.testEngine), send(t, b.testEngine, a.testEngine, "real")); err != nil {
		t.Errorf("real bob blocked after one forged, unauthenticated stanza: %v", err)
	}
}
