package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"crypto/ed25519"

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
	return e.update(func(tx store.Tx) error { return putActivity(tx, d.key(), now) })
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
	err := e.update(func(tx store.Tx) error {
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

// forgetDevice deletes every engine record of d inside tx. With the
// account's last device, its list and trust record go too, and a small
// tombstone remembers the account key and list version (see tombstone).
func (e *Engine) forgetDevice(tx store.Tx, d Device, forget func(store.Tx, string) error) error {
	var account ed25519.PublicKey
	if v, err := tx.Get(bucketPeers, d.key()); err == nil {
		if bu, err := ParseBundle(v); err == nil {
			account = bu.Account
		}
	}
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
	var version uint64
	if l, err := loadDeviceList(tx, d.JID); err == nil && l != nil {
		version, account = l.Version, l.Account
	}
	if err := tx.Delete(bucketDevLists, d.JID); err != nil {
		return err
	}
	if account != nil {
		if err := e.putTombstone(tx, d.JID, tombstone{at: e.cfg.Now(), version: version, account: account}); err != nil {
			return err
		}
	}
	if forget != nil {
		return forget(tx, d.JID)
	}
	return nil
}

// A tombstone is what is kept of a stranger account whose state was
// pruned: when, the highest device list version held, and the account key
// that was pinned. It stops pruning from undoing what the state
// protected: an older list (bringing back a revoked device) is still
// refused, and the first contact after pruning under another account key
// is reported as a key change, not as a silent first use. At most
// maxTombstones are kept, the oldest dropped first.
type tombstone struct {
	at       time.Time
	version  uint64            // 0 once a list was stored again
	account  ed25519.PublicKey // the account key pinned before pruning
	restored bool              // the pin was restored (done once)
}

// bucketTombstones holds jid -> tombstone.
const bucketTombstones = "e2e/tombstones"

// maxTombstones bounds the tombstones (about 80 bytes plus the JID each).
const maxTombstones = 4096

func (t tombstone) marshal() []byte {
	var b builder
	b.u64(uint64(t.at.Unix()))
	b.u64(t.version)
	b.raw(t.account)
	if t.restored {
		b.u8(1)
	} else {
		b.u8(0)
	}
	return b
}

func parseTombstone(v []byte) (tombstone, error) {
	r := reader{b: v}
	t := tombstone{at: time.Unix(int64(r.u64("tombstone time")), 0)}
	t.version = r.u64("tombstone version")
	t.account = ed25519.PublicKey(r.fixed(ed25519.PublicKeySize, "tombstone key"))
	switch r.u8("tombstone flag") {
	case 0:
	case 1:
		t.restored = true
	default:
		r.fail("tombstone flag")
	}
	return t, r.done()
}

func loadTombstone(tx store.Tx, jid string) (tombstone, bool) {
	v, err := tx.Get(bucketTombstones, jid)
	if err != nil {
		return tombstone{}, false
	}
	t, err := parseTombstone(v)
	return t, err == nil
}

// putTombstone stores t for jid, dropping the oldest beyond the cap.
func (e *Engine) putTombstone(tx store.Tx, jid string, t tombstone) error {
	if err := tx.Put(bucketTombstones, jid, t.marshal()); err != nil {
		return err
	}
	n, oldest, oldestAt := 0, "", time.Time{}
	if err := tx.ForEach(bucketTombstones, func(k string, v []byte) error {
		n++
		if ot, err := parseTombstone(v); err == nil && (oldest == "" || ot.at.Before(oldestAt)) && k != jid {
			oldest, oldestAt = k, ot.at
		}
		return nil
	}); err != nil {
		return err
	}
	if n > maxTombstones && oldest != "" {
		return tx.Delete(bucketTombstones, oldest)
	}
	return nil
}

// restorePin applies jid's tombstone, once, before its account key is
// checked: the key pinned before pruning is pinned again, so another key
// shows as a change. It runs only where the key check itself would pin.
func (e *Engine) restorePin(tx store.Tx, jid string, account ed25519.PublicKey) error {
	t, ok := loadTombstone(tx, jid)
	if !ok || t.restored || e.cfg.Trust == nil {
		return nil
	}
	if !equalKeys(t.account, account) {
		if _, err := e.cfg.Trust.Check(tx, jid, t.account); err != nil {
			return err
		}
	}
	t.restored = true
	return tx.Put(bucketTombstones, jid, t.marshal())
}
