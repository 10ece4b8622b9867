package trust

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/securejingle/securejingle/e2e/store"
)

// Errors returned by [Store] methods. Callers branch on them.
var (
	// ErrUnknown is returned for a device that has no record. It wraps
	// [store.ErrNotFound], so errors.Is matches either.
	ErrUnknown = fmt.Errorf("trust: unknown device: %w", store.ErrNotFound)
	// ErrKeyMismatch is returned by Verify and Accept when the key is
	// neither the pinned key nor the pending key of the device.
	ErrKeyMismatch = errors.New("trust: key is neither the pinned nor the pending key")
	// ErrInvalidJID is returned for an empty, over-long, non-UTF-8 JID or
	// one that carries a resource.
	ErrInvalidJID = errors.New("trust: invalid bare JID")
	// ErrInvalidMethod is returned by Verify for a method name that is not
	// a token of [a-z0-9.-].
	ErrInvalidMethod = errors.New("trust: invalid verification method")
	// ErrInvalidKey is returned for a key that is not an Ed25519 public key
	// (32 bytes).
	ErrInvalidKey = errors.New("trust: invalid identity key")
)

// An EventKind says what an observation changed.
type EventKind uint8

const (
	// EventNone: nothing the user needs to know about.
	EventNone EventKind = iota
	// EventFirstUse: a new device was pinned as TOFU.
	EventFirstUse
	// EventKeyChanged: a key other than the pinned one was seen; the
	// record is now Changed.
	EventKeyChanged
)

// String returns the name of k.
func (k EventKind) String() string {
	switch k {
	case EventNone:
		return "none"
	case EventFirstUse:
		return "first-use"
	case EventKeyChanged:
		return "key-changed"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// An Event reports a trust change for the user interface.
type Event struct {
	Kind   EventKind
	JID    string
	Device uint32
	// Old is the pinned key before the event (nil for EventFirstUse); New
	// is the key observed.
	Old, New ed25519.PublicKey
}

// bucketPrefix starts the name of every bucket the package writes.
const bucketPrefix = "trust/dev/"

func bucketFor(jid string) string { return bucketPrefix + jid }

func keyFor(device uint32) string { return fmt.Sprintf("%08x", device) }

// A Store keeps trust records in a [store.Store]. It is safe for concurrent
// use as far as the underlying store is; every method is one transaction.
// The zero Store is not usable: create one with [New].
type Store struct {
	s   store.Store
	now func() time.Time
}

// New returns a Store over s. now supplies timestamps; nil means time.Now.
func New(s store.Store, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{s: s, now: now}
}

func (s *Store) timestamp() time.Time {
	return s.now().Round(0).UTC()
}

func checkArgs(jid string, key ed25519.PublicKey) error {
	if err := checkJID(jid); err != nil {
		return err
	}
	if key != nil && len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	}
	return nil
}

// load reads the record of a device and checks that it belongs there.
func load(tx store.Tx, jid string, device uint32) (Record, error) {
	data, err := tx.Get(bucketFor(jid), keyFor(device))
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, ErrUnknown
	}
	if err != nil {
		return Record{}, fmt.Errorf("trust: %w", err)
	}
	var r Record
	if err := r.UnmarshalBinary(data); err != nil {
		return Record{}, fmt.Errorf("trust: record of %s device %d: %w", jid, device, err)
	}
	if r.JID != jid || r.Device != device {
		return Record{}, fmt.Errorf("%w: record of %s device %d stored under %s device %d", errRecord, r.JID, r.Device, jid, device)
	}
	return r, nil
}

func save(tx store.Tx, r Record) error {
	data, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	if err := tx.Put(bucketFor(r.JID), keyFor(r.Device), data); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}

func cloneKey(k ed25519.PublicKey) ed25519.PublicKey {
	if k == nil {
		return nil
	}
	return append(ed25519.PublicKey(nil), k...)
}

// Observe records that key was presented for a device and reports what
// changed:
//
//   - unknown device: the key is pinned as [TOFU]; [EventFirstUse].
//   - the pinned key: no change; [EventNone]. (A Changed record stays
//     Changed until the user acts; the pinned key is still accepted.)
//   - the pending key of a Changed record: no change; [EventNone]. The
//     change was reported when the key was first seen, and the record
//     keeps saying Changed until the user acts.
//   - any other key: the record becomes [Changed] with PendingKey = key;
//     [EventKeyChanged] with Old = the pinned key. A third key replaces the
//     pending one and raises EventKeyChanged again.
//
// Observe never makes a new key acceptable by itself; check the returned
// record with [Record.Accepts].
func (s *Store) Observe(jid string, device uint32, key ed25519.PublicKey) (Record, Event, error) {
	if err := checkObserve(jid, key); err != nil {
		return Record{}, Event{}, err
	}
	// Fast path without a write transaction for the common case.
	var r Record
	var unchanged bool
	err := s.s.View(func(tx store.Tx) error {
		var err error
		r, err = load(tx, jid, device)
		if err != nil {
			return err
		}
		unchanged = keyEqual(r.Key, key) || (r.Level == Changed && keyEqual(r.PendingKey, key))
		return nil
	})
	if err == nil && unchanged {
		return r, Event{Kind: EventNone, JID: jid, Device: device, Old: cloneKey(r.Key), New: cloneKey(key)}, nil
	}
	if err != nil && !errors.Is(err, ErrUnknown) {
		return Record{}, Event{}, err
	}
	var ev Event
	err = s.s.Update(func(tx store.Tx) error {
		var err error
		r, ev, err = s.ObserveTx(tx, jid, device, key)
		return err
	})
	if err != nil {
		return Record{}, Event{}, err
	}
	return r, ev, nil
}

func checkObserve(jid string, key ed25519.PublicKey) error {
	if key == nil {
		return fmt.Errorf("%w: nil", ErrInvalidKey)
	}
	return checkArgs(jid, key)
}

// ObserveTx is [Store.Observe] inside the caller's transaction tx. If the
// caller's transaction fails, nothing is recorded.
func (s *Store) ObserveTx(tx store.Tx, jid string, device uint32, key ed25519.PublicKey) (Record, Event, error) {
	if err := checkObserve(jid, key); err != nil {
		return Record{}, Event{}, err
	}
	ev := Event{Kind: EventNone, JID: jid, Device: device, New: cloneKey(key)}
	r, err := load(tx, jid, device)
	switch {
	case errors.Is(err, ErrUnknown):
		now := s.timestamp()
		r = Record{JID: jid, Device: device, Key: cloneKey(key), Level: TOFU, FirstSeen: now, UpdatedAt: now}
		ev.Kind = EventFirstUse
	case err != nil:
		return Record{}, Event{}, err
	case keyEqual(r.Key, key):
		ev.Old = cloneKey(r.Key)
		return r, ev, nil
	case r.Level == Changed && keyEqual(r.PendingKey, key):
		ev.Old = cloneKey(r.Key)
		return r, ev, nil
	default:
		ev.Kind = EventKeyChanged
		ev.Old = cloneKey(r.Key)
		r.Level = Changed
		r.PendingKey = cloneKey(key)
		r.UpdatedAt = s.timestamp()
	}
	if err := save(tx, r); err != nil {
		return Record{}, Event{}, err
	}
	return r, ev, nil
}

// Verify records that the user verified key for the device out of band
// with method (for example [MethodFingerprint]):
//
//   - key is the pinned key: the record becomes [Verified] (a pending key
//     is dropped: the user confirmed the old key).
//   - key is the pending key of a Changed record: it becomes the pinned
//     key, Verified.
//   - the device is unknown: key is pinned as Verified (for example a QR
//     code scanned before any message).
//   - otherwise: [ErrKeyMismatch], nothing changes.
func (s *Store) Verify(jid string, device uint32, key ed25519.PublicKey, method string) (Record, error) {
	return s.update(func(tx store.Tx) (Record, error) { return s.VerifyTx(tx, jid, device, key, method) })
}

// VerifyTx is [Store.Verify] inside the caller's transaction tx.
func (s *Store) VerifyTx(tx store.Tx, jid string, device uint32, key ed25519.PublicKey, method string) (Record, error) {
	if err := checkObserve(jid, key); err != nil {
		return Record{}, err
	}
	if err := checkMethod(method); err != nil {
		return Record{}, err
	}
	now := s.timestamp()
	r, err := load(tx, jid, device)
	switch {
	case errors.Is(err, ErrUnknown):
		r = Record{JID: jid, Device: device, Key: cloneKey(key), FirstSeen: now}
	case err != nil:
		return Record{}, err
	case keyEqual(r.Key, key):
	case r.Level == Changed && keyEqual(r.PendingKey, key):
		r.Key = cloneKey(key)
	default:
		return Record{}, ErrKeyMismatch
	}
	r.Level, r.Method, r.PendingKey, r.UpdatedAt = Verified, method, nil, now
	if err := save(tx, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Accept records that the user accepts key for the device without
// verifying it:
//
//   - key is the pending key of a Changed record: it becomes the pinned
//     key as [TOFU] (an earlier verification does not carry over).
//   - key is the pinned key of a Changed record: the pending key is
//     dismissed and the record returns to Verified if the pinned key had
//     been verified (Method is set), else TOFU.
//   - key is the pinned key of a Distrusted record: it becomes TOFU.
//   - key is the pinned key of a TOFU or Verified record: no change.
//   - the device is unknown: [ErrUnknown]; any other key: [ErrKeyMismatch].
func (s *Store) Accept(jid string, device uint32, key ed25519.PublicKey) (Record, error) {
	return s.update(func(tx store.Tx) (Record, error) { return s.AcceptTx(tx, jid, device, key) })
}

// AcceptTx is [Store.Accept] inside the caller's transaction tx.
func (s *Store) AcceptTx(tx store.Tx, jid string, device uint32, key ed25519.PublicKey) (Record, error) {
	if err := checkObserve(jid, key); err != nil {
		return Record{}, err
	}
	r, err := load(tx, jid, device)
	if err != nil {
		return Record{}, err
	}
	switch {
	case r.Level == Changed && keyEqual(r.PendingKey, key):
		r.Key, r.Level, r.Method = cloneKey(key), TOFU, ""
	case !keyEqual(r.Key, key):
		return Record{}, ErrKeyMismatch
	case r.Level == Changed && r.Method != "":
		r.Level = Verified
	case r.Level == Changed || r.Level == Distrusted:
		r.Level = TOFU
	default:
		return r, nil // TOFU or Verified: nothing to do
	}
	r.PendingKey, r.UpdatedAt = nil, s.timestamp()
	if err := save(tx, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Distrust records that the user does not trust the device: the record
// becomes [Distrusted], its verification method and any pending key are
// dropped, and the pinned key is kept so that a later different key still
// raises [EventKeyChanged]. An unknown device gives [ErrUnknown].
func (s *Store) Distrust(jid string, device uint32) (Record, error) {
	return s.update(func(tx store.Tx) (Record, error) { return s.DistrustTx(tx, jid, device) })
}

// DistrustTx is [Store.Distrust] inside the caller's transaction tx.
func (s *Store) DistrustTx(tx store.Tx, jid string, device uint32) (Record, error) {
	if err := checkJID(jid); err != nil {
		return Record{}, err
	}
	r, err := load(tx, jid, device)
	if err != nil {
		return Record{}, err
	}
	r.Level, r.Method, r.PendingKey, r.UpdatedAt = Distrusted, "", nil, s.timestamp()
	if err := save(tx, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Remove forgets the device, so that the next key observed for it is
// pinned as on first use. Removing an unknown device is not an error.
func (s *Store) Remove(jid string, device uint32) error {
	return s.s.Update(func(tx store.Tx) error { return s.RemoveTx(tx, jid, device) })
}

// RemoveTx is [Store.Remove] inside the caller's transaction tx.
func (s *Store) RemoveTx(tx store.Tx, jid string, device uint32) error {
	if err := checkJID(jid); err != nil {
		return err
	}
	if err := tx.Delete(bucketFor(jid), keyFor(device)); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}

// Lookup returns the record of a device, or [ErrUnknown] (which matches
// [store.ErrNotFound] too).
func (s *Store) Lookup(jid string, device uint32) (Record, error) {
	var r Record
	err := s.s.View(func(tx store.Tx) error {
		var err error
		r, err = s.LookupTx(tx, jid, device)
		return err
	})
	return r, err
}

// LookupTx is [Store.Lookup] inside the caller's transaction tx.
func (s *Store) LookupTx(tx store.Tx, jid string, device uint32) (Record, error) {
	if err := checkJID(jid); err != nil {
		return Record{}, err
	}
	return load(tx, jid, device)
}

// Devices returns the records of every known device of jid in device
// order; none is not an error.
func (s *Store) Devices(jid string) ([]Record, error) {
	var rs []Record
	err := s.s.View(func(tx store.Tx) error {
		var err error
		rs, err = s.DevicesTx(tx, jid)
		return err
	})
	return rs, err
}

// DevicesTx is [Store.Devices] inside the caller's transaction tx.
func (s *Store) DevicesTx(tx store.Tx, jid string) ([]Record, error) {
	if err := checkJID(jid); err != nil {
		return nil, err
	}
	var rs []Record
	err := tx.ForEach(bucketFor(jid), func(k string, v []byte) error {
		dev, err := strconv.ParseUint(k, 16, 32)
		if err != nil || keyFor(uint32(dev)) != k {
			return fmt.Errorf("%w: bad device key %q under %s", errRecord, k, jid)
		}
		var r Record
		if err := r.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("trust: record of %s device %d: %w", jid, dev, err)
		}
		if r.JID != jid || r.Device != uint32(dev) {
			return fmt.Errorf("%w: record of %s device %d stored under %s device %d", errRecord, r.JID, r.Device, jid, dev)
		}
		rs = append(rs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

func (s *Store) update(fn func(store.Tx) (Record, error)) (Record, error) {
	var r Record
	err := s.s.Update(func(tx store.Tx) error {
		var err error
		r, err = fn(tx)
		return err
	})
	if err != nil {
		return Record{}, err
	}
	return r, nil
}
