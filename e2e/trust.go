package e2e

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// PinningTrust is the engine's [Trust] on top of a trust store: an
// account's identity key is pinned on first use (TOFU), explicit
// verification upgrades it, and a different key for a known account is
// never used until the user verifies or accepts it. Trust is per account
// (bare JID): every device the account key certifies shares the record.
// Every event (first use, key change) is passed to OnEvent.
type PinningTrust struct {
	Store   *trust.Store
	OnEvent func(trust.Event) // may be nil; called inside the transaction
}

// Check implements [Trust].
func (p *PinningTrust) Check(tx store.Tx, jid string, key ed25519.PublicKey) (bool, error) {
	rec, ev, err := p.Store.ObserveTx(tx, jid, key)
	if err != nil {
		return false, err
	}
	if ev.Kind != trust.EventNone && p.OnEvent != nil {
		p.OnEvent(ev)
	}
	return rec.Accepts(key), nil
}

// untrustedError is ErrUntrusted with what was observed, so the engine can
// record the observation after the failed transaction rolled back. The
// device is the one that presented the key, for messages only: trust is
// decided for the account.
type untrustedError struct {
	jid    string
	device uint32
	key    ed25519.PublicKey
}

func (e *untrustedError) Error() string {
	return fmt.Sprintf("%v: the account key of %s (presented by device %d) is not accepted: verify or accept it",
		ErrUntrusted, e.jid, e.device)
}

func (e *untrustedError) Unwrap() error { return ErrUntrusted }

// checkTrust asks the trust store whether key, the account identity key of
// jid presented by one of its devices, may be used.
func (e *Engine) checkTrust(tx store.Tx, jid string, device uint32, key ed25519.PublicKey) error {
	if e.cfg.Trust == nil {
		return nil
	}
	ok, err := e.cfg.Trust.Check(tx, jid, key)
	if err != nil {
		return err
	}
	if !ok {
		return &untrustedError{jid, device, key}
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
			_, cerr := e.cfg.Trust.Check(tx, ue.jid, ue.key)
			return cerr
		})
	}
	return err
}
