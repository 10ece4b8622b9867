package e2e

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// PinningTrust is the engine's [Trust] on top of a trust store: a device's
// key is pinned on first use (TOFU), explicit verification upgrades it, and
// a different key for a known device is never used until the user verifies
// or accepts it. Every event (first use, key change) is passed to OnEvent.
type PinningTrust struct {
	Store   *trust.Store
	OnEvent func(trust.Event) // may be nil; called inside the transaction
}

// Check implements [Trust].
func (p *PinningTrust) Check(tx store.Tx, jid string, device uint32, key ed25519.PublicKey) (bool, error) {
	rec, ev, err := p.Store.ObserveTx(tx, jid, device, key)
	if err != nil {
		return false, err
	}
	if ev.Kind != trust.EventNone && p.OnEvent != nil {
		p.OnEvent(ev)
	}
	return rec.Accepts(key), nil
}

// untrustedError is ErrUntrusted with what was observed, so the engine can
// record the observation after the failed transaction rolled back.
type untrustedError struct {
	dev Device
	key ed25519.PublicKey
}

func (e *untrustedError) Error() string {
	return fmt.Sprintf("%v: %s device %d", ErrUntrusted, e.dev.JID, e.dev.ID)
}

func (e *untrustedError) Unwrap() error { return ErrUntrusted }

func (e *Engine) checkTrust(tx store.Tx, jid string, device uint32, key ed25519.PublicKey) error {
	if e.cfg.Trust == nil {
		return nil
	}
	ok, err := e.cfg.Trust.Check(tx, jid, device, key)
	if err != nil {
		return err
	}
	if !ok {
		return &untrustedError{Device{jid, device}, key}
	}
	return nil
}

// recordUntrusted persists the observation carried by an untrusted error
// whose transaction was rolled back, so the changed key stays pending for
// the user to verify or accept. It returns err unchanged.
func (e *Engine) recordUntrusted(err error) error {
	var ue *untrustedError
	if e.cfg.Trust != nil && errors.As(err, &ue) {
		e.cfg.Store.Update(func(tx store.Tx) error {
			_, cerr := e.cfg.Trust.Check(tx, ue.dev.JID, ue.dev.ID, ue.key)
			return cerr
		})
	}
	return err
}
