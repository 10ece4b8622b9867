package gateway

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/policy"
)

// fingerprint returns the fingerprint of key, or "no key" for anything
// that is not an Ed25519 public key.
func fingerprint(key ed25519.PublicKey) string {
	if len(key) != ed25519.PublicKeySize {
		return "no key"
	}
	return identity.Fingerprint(key)
}

// TrustEventDetail is the text shown to the user for a trust store event.
// Trust is per account: the texts name the account (bare JID) and its
// account key, never a device.
func TrustEventDetail(ev trust.Event) string {
	switch ev.Kind {
	case trust.EventFirstUse:
		return fmt.Sprintf("first contact with %s: account key pinned (TOFU), fingerprint %s; verify it to be sure it is theirs",
			ev.JID, fingerprint(ev.New))
	case trust.EventKeyChanged:
		return fmt.Sprintf("%s's account key changed: pinned %s, presented %s; the new key is not used until you verify or accept it (the pinned key keeps working). If %s did not replace their key, this is a phantom: someone with their password, or the server, is trying to slip in a key of its own",
			ev.JID, fingerprint(ev.Old), fingerprint(ev.New), ev.JID)
	case trust.EventDistrusted:
		return fmt.Sprintf("you distrusted %s's account key %s: nothing from %s is accepted until you verify or accept the key again",
			ev.JID, fingerprint(ev.New), ev.JID)
	}
	return fmt.Sprintf("%s: trust %v", ev.JID, ev.Kind)
}

// untrustedBundle reports a bundle the trust store refused, saying why
// from the account's trust record: a distrusted account is reported as
// distrusted, never as a key change (the key is the one the user
// distrusted); anything else is a changed account key.
func (g *Gateway) untrustedBundle(bare string, bu *e2e.Bundle) {
	var rec trust.Record
	if g.cfg.Trust != nil {
		rec, _ = g.cfg.Trust.Lookup(bare)
	}
	f := g.peerFacts(policy.KindChat, policy.DirectionIncoming, bare)
	f.PeerDevice, f.Protection, f.Signaling = bu.Device, policy.ProtectionE2EUnverified, policy.SignalingNone
	var ev Event
	if rec.Level == trust.Distrusted {
		ev = Event{Kind: EventDistrusted, From: bare, Detail: fmt.Sprintf("device %d of %s was not used: ", bu.Device, bare) +
			TrustEventDetail(trust.Event{Kind: trust.EventDistrusted, JID: bare, Old: rec.Key, New: rec.Key})}
		f.Trust = policy.TrustDistrusted
	} else {
		ev = Event{Kind: EventKeyChanged, From: bare, Detail: fmt.Sprintf("device %d of %s presents another account key: ", bu.Device, bare) +
			TrustEventDetail(trust.Event{Kind: trust.EventKeyChanged, JID: bare, Old: rec.Key, New: bu.Account})}
		f.Trust = policy.TrustKeyChanged
	}
	g.events.publish(ev)
	g.decide(context.Background(), f)
}
