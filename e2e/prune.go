package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/securejingle/securejingle/e2e/store"
)

// Bounds on the state kept for peers who are not roster contacts
// ("strangers"): whatever a stranger can make us store is capped and
// expires. See docs/protocol.md, "Bounds for strangers".
const (
	// MaxStrangerDevices caps the stranger devices with stored state
	// (bundle, session, shadow, trust record); beyond it the least
	// recently active are forgotten.
	MaxStrangerDevices = 256
	// StrangerIdleTimeout is how long the state of a stranger device is
	// kept without any message to or from it.
	StrangerIdleTimeout = 30 * 24 * time.Hour
	// activityResolution is how often the last-activity time of one
	// device is rewritten at most (one write per device and minute).
	activityResolution = time.Minute
)

// bucketActivity holds, for stranger devices, "jid/device" -> the time of
// the last message to or from it (big-endian Unix seconds).
const bucketActivity = "e2e/activity"

// PruneConfig says which peer state [Engine.PruneStrangers] may drop.
type PruneConfig struct {
	// Keep reports whether the state of d is kept whatever its age: the
	// own account, roster contacts, devices the user decided on (verified
	// or distrusted). It runs inside the pruning transaction.
	Keep func(tx store.Tx, d Device) (bool, error)
	// Forget, if not nil, is called inside the transaction for every
	// account whose last device was dropped, to drop state kept outside
	// the engine's buckets (the account's trust record).
	Forget func(tx store.Tx, jid string) error
	// MaxDevices caps the devices not kept; zero means
	// MaxStrangerDevices.
	MaxDevices int
	// Idle is how long a device not kept may stay without activity; zero
	// means StrangerIdleTimeout.
	Idle time.Duration
	// Now is the current time; zero means the engine's clock.
	Now time.Time
}

// NoteActivity records that a message was exchanged with the stranger
// device d now, so that [Engine.PruneStrangers] keeps its state for
// another idle timeout. The time is rewritten at most once a minute per
// device. Call it for peers that are not roster contacts only.
func (e *Engine) NoteActivity(d Device) error {
	now := e.cfg.Now()
	var last time.Time
	err := e.cfg.Store.View(func(tx store.Tx) error {
		var err error
		last, err = activityOf(tx, d)
		return err
	})
	if err == nil && now.Sub(last) < activityResolution && !now.Before(last) {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return e.cfg.Store.Update(func(tx store.Tx) error { return putActivity(tx, d.key(), now) })
}

func activityOf(tx store.Tx, d Device) (time.Time, error) {
	v, err := tx.Get(bucketActivity, d.key())
	if err != nil {
		return time.Time{}, err
	}
	if len(v) != 8 {
		return time.Time{}, malformed("activity record")
	}
	return time.Unix(int64(binary.BigEndian.Uint64(v)), 0), nil
}

func putActivity(tx store.Tx, key string, t time.Time) error {
	return tx.Put(bucketActivity, key, binary.BigEndian.AppendUint64(nil, uint64(t.Unix())))
}

// parseDeviceKey splits a "jid/device" store key.
func parseDeviceKey(k string) (Device, bool) {
	i := strings.LastIndexByte(k, '/')
	if i <= 0 {
		return Device{}, false
	}
	id, err := strconv.ParseUint(k[i+1:], 10, 32)
	d := Device{JID: k[:i], ID: uint32(id)}
	if err != nil || d.key() != k {
		return Device{}, false
	}
	return d, true
}

// strangerBuckets hold per-device state a stranger can make us store.
var strangerBuckets = []string{bucketPeers, bucketSessions, bucketShadows, bucketCertExp}

// PruneStrangers forgets the state of peer devices that c does not keep
// (bundle, session, receive-only shadow, activity record, and through
// c.Forget the trust record) when they were idle longer than c.Idle, and
// then the least recently active ones beyond c.MaxDevices. A device seen
// for the first time here counts as active now. It returns the devices
// dropped, in no particular order. Run it periodically and after storing
// state for a stranger.
func (e *Engine) PruneStrangers(c PruneConfig) ([]Device, error) {
	if c.Keep == nil {
		return nil, errors.New("e2e: PruneStrangers needs a Keep function")
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = MaxStrangerDevices
	}
	if c.Idle <= 0 {
		c.Idle = StrangerIdleTimeout
	}
	if c.Now.IsZero() {
		c.Now = e.cfg.Now()
	}
	type candidate struct {
		d    Device
		last time.Time
	}
	var dropped []Device
	err := e.cfg.Store.Update(func(tx store.Tx) error {
		dropped = dropped[:0]
		seen := map[string]bool{}
		var cands []candidate
		for _, b := range strangerBuckets {
			err := tx.ForEach(b, func(k string, _ []byte) error {
				if seen[k] {
					return nil
				}
				seen[k] = true
				d, ok := parseDeviceKey(k)
				if !ok {
					return nil
				}
				keep, err := c.Keep(tx, d)
				if err != nil || keep {
					return err
				}
				last, err := activityOf(tx, d)
				if err != nil {
					// Unknown (or unreadable) activity: start the clock now.
					last = c.Now
					if err := putActivity(tx, k, last); err != nil {
						return err
					}
				}
				cands = append(cands, candidate{d, last})
				return nil
			})
			if err != nil {
				return err
			}
		}
		// Oldest first; the key breaks ties so the order is stable.
		slices.SortFunc(cands, func(a, b candidate) int {
			if c := a.last.Compare(b.last); c != 0 {
				return c
			}
			return strings.Compare(a.d.key(), b.d.key())
		})
		for i, cd := range cands {
			if c.Now.Sub(cd.last) <= c.Idle && len(cands)-i <= c.MaxDevices {
				break
			}
			if err := e.forgetDevice(tx, cd.d, c.Forget); err != nil {
				return err
			}
			dropped = append(dropped, cd.d)
		}
		// Activity records of devices with no state left (or kept).
		keepActivity := map[string]bool{}
		for _, cd := range cands {
			keepActivity[cd.d.key()] = true
		}
		for _, d := range dropped {
			delete(keepActivity, d.key())
		}
		_, err := deleteWhere(tx, bucketActivity, func(k string, _ []byte) bool { return !keepActivity[k] })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("e2e: pruning stranger state: %w", err)
	}
	for _, d := range dropped {
		e.releaseHandshake(d)
	}
	return dropped, nil
}

// forgetDevice deletes every engine record of d inside tx.
func (e *Engine) forgetDevice(tx store.Tx, d Device, forget func(store.Tx, string) error) error {
	for _, b := range append(strangerBuckets, bucketActivity) {
		if err := tx.Delete(b, d.key()); err != nil {
			return err
		}
	}
	// The account's own state (device list, trust record) goes with its
	// last device.
	prefix := d.JID + "/"
	for _, b := range strangerBuckets {
		left := false
		if err := tx.ForEach(b, func(k string, _ []byte) error {
			left = left || strings.HasPrefix(k, prefix)
			return nil
		}); err != nil {
			return err
		}
		if left {
			return nil
		}
	}
	if err := tx.Delete(bucketDevLists, d.JID); err != nil {
		return err
	}
	if forget != nil {
		return forget(tx, d.JID)
	}
	return nil
}
