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
	Store *trust.Store
	// OnEvent, if set, hears every event. Through the engine it is called
	// once the engine's transaction has committed, so an observation that
	// rolls back (a bundle refused after its key was looked at) is never
	// announced; a Check outside the engine calls it at once.
	OnEvent func(trust.Event)
}

// Check implements [Trust].
func (p *PinningTrust) Check(tx store.Tx, jid string, key ed25519.PublicKey) (bool, error) {
	rec, ev, err := p.Store.ObserveTx(tx, jid, key)
	if err != nil {
		return false, err
	}
	if ev.Kind != trust.EventNone && p.OnEvent != nil {
		if et, ok := tx.(*eventTx); ok {
			// Delivered once the engine's transaction has committed: an
			// observation that rolls back must not be announced.
			et.events = append(et.events, ev)
		} else {
			p.OnEvent(ev)
		}
	}
	return rec.Accepts(key), nil
}

// untrustedError is ErrUntrusted with what was observed, so the engine can
// record the observation after the failed transaction rolled back. The
// device is the one that presented the key, for messages only: trust is
// decided for the account.
type untrustedError struct {
	jid string
	key ed25519.PublicKey
	own bool // a key other than our own for our own JID
}

func (e *untrustedError) Error() string {
	if e.own {
		return fmt.Sprintf("%v: a device of our own account %s is certified by another account key than ours", ErrUntrusted, e.jid)
	}
	return fmt.Sprintf("%v: account key of %s", ErrUntrusted, e.jid)
}

func (e *untrustedError) Unwrap() error { return ErrUntrusted }

func (e *Engine) checkTrust(tx store.Tx, jid string, key ed25519.PublicKey) error {
	if e.cfg.Trust == nil {
		return nil
	}
	ok, err := e.cfg.Trust.Check(tx, jid, key)
	if err != nil {
		return err
	}
	if !ok {
		return &untrustedError{jid: jid, key: key}
	}
	return nil
}

// recordUntrusted persists the observation carried by an untrusted error
// whose transaction was rolled back, so the changed key stays pending for
// the user to verify or accept. It returns err unchanged.
func (e *Engine) recordUntrusted(err error) error {
	var ue *untrustedError
	if e.cfg.Trust != nil && errors.As(err, &ue) && !ue.own {
		e.update(func(tx store.Tx) error {
			// (The tombstone's pin, restored in the rolled-back
			// transaction, must be restored here too, or the new key
			// would be pinned as a first use.)
			if err := e.restorePin(tx, ue.jid, ue.key); err != nil {
				return err
			}
			_, cerr := e.cfg.Trust.Check(tx, ue.jid, ue.key)
			return cerr
		})
	}
	return err
}

// eventTx is the transaction the engine hands out: trust events observed
// in it are kept until it commits.
type eventTx struct {
	store.Tx
	events []trust.Event
}

// update runs fn in a store transaction and, once it committed, delivers
// the trust events observed in it (see [PinningTrust]).
func (e *Engine) update(fn func(store.Tx) error) error {
	et := &eventTx{}
	err := e.cfg.Store.Update(func(tx store.Tx) error {
		et.Tx, et.events = tx, et.events[:0]
		return fn(et)
	})
	if err == nil && len(et.events) > 0 {
		if p, ok := e.cfg.Trust.(*PinningTrust); ok && p.OnEvent != nil {
			for _, ev := range et.events {
				p.OnEvent(ev)
			}
		}
	}
	return err
}
