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
	// ErrUnknown is returned for an account that has no record. It wraps
	// [store.ErrNotFound], so errors.Is matches either.
	ErrUnknown = fmt.Errorf("trust: unknown account: %w", store.ErrNotFound)
	// ErrKeyMismatch is returned by Verify and Accept when the key is
	// neither the pinned key nor the pending key of the account.
	ErrKeyMismatch = errors.New("trust: key is neither the pinned nor the pending account key")
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

// An EventKind says what an observation or a user decision changed.
type EventKind uint8

const (
	// EventNone: nothing the user needs to know about.
	EventNone EventKind = iota
	// EventFirstUse: a new account key was pinned as TOFU.
	EventFirstUse
	// EventKeyChanged: a key other than the pinned one was seen; the
	// record is now Changed.
	EventKeyChanged
	// EventDistrusted: the user distrusted the account (returned by
	// [Store.Distrust]); nothing from it is accepted any more. It is never
	// reported as a key change.
	EventDistrusted
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
	case EventDistrusted:
		return "distrusted"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// An Event reports a trust change for the user interface.
type Event struct {
	Kind EventKind
	JID  string
	// Old is the pinned key before the event (nil for EventFirstUse); New
	// is the key observed (the pinned key for EventDistrusted).
	Old, New ed25519.PublicKey
}

// bucket holds every record, keyed by bare JID.
const bucket = "trust/acct"

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

// checkArgs checks a JID and a key that must be an Ed25519 public key.
func checkArgs(jid string, key ed25519.PublicKey) error {
	if err := checkJID(jid); err != nil {
		return err
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	}
	return nil
}

// decode parses the record stored under jid and checks that it belongs
// there.
func decode(jid string, data []byte) (Record, error) {
	var r Record
	if err := r.UnmarshalBinary(data); err != nil {
		return Record{}, fmt.Errorf("trust: record of %s: %w", jid, err)
	}
	if r.JID != jid {
		return Record{}, fmt.Errorf("%w: record of %s stored under %s", errRecord, r.JID, jid)
	}
	return r, nil
}

// load reads the record of an account.
func load(tx store.Tx, jid string) (Record, error) {
	data, err := tx.Get(bucket, jid)
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, ErrUnknown
	}
	if err != nil {
		return Record{}, fmt.Errorf("trust: %w", err)
	}
	return decode(jid, data)
}

func save(tx store.Tx, r Record) error {
	data, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	if err := tx.Put(bucket, r.JID, data); err != nil {
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

// Observe records that key was presented as the account identity key of
// jid and reports what changed:
//
//   - unknown account: the key is pinned as [TOFU]; [EventFirstUse].
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
func (s *Store) Observe(jid string, key ed25519.PublicKey) (Record, Event, error) {
	if err := checkArgs(jid, key); err != nil {
		return Record{}, Event{}, err
	}
	// Fast path without a write transaction for the common case.
	var r Record
	var unchanged bool
	err := s.s.View(func(tx store.Tx) error {
		var err error
		r, err = load(tx, jid)
		if err != nil {
			return err
		}
		unchanged = keyEqual(r.Key, key) || (r.Level == Changed && keyEqual(r.PendingKey, key))
		return nil
	})
	if err == nil && unchanged {
		return r, Event{Kind: EventNone, JID: jid, Old: cloneKey(r.Key), New: cloneKey(key)}, nil
	}
	if err != nil && !errors.Is(err, ErrUnknown) {
		return Record{}, Event{}, err
	}
	var ev Event
	err = s.s.Update(func(tx store.Tx) error {
		var err error
		r, ev, err = s.ObserveTx(tx, jid, key)
		return err
	})
	if err != nil {
		return Record{}, Event{}, err
	}
	return r, ev, nil
}

// ObserveTx is [Store.Observe] inside the caller's transaction tx. If the
// caller's transaction fails, nothing is recorded.
func (s *Store) ObserveTx(tx store.Tx, jid string, key ed25519.PublicKey) (Record, Event, error) {
	if err := checkArgs(jid, key); err != nil {
		return Record{}, Event{}, err
	}
	ev := Event{Kind: EventNone, JID: jid, New: cloneKey(key)}
	r, err := load(tx, jid)
	switch {
	case errors.Is(err, ErrUnknown):
		now := s.timestamp()
		r = Record{JID: jid, Key: cloneKey(key), Level: TOFU, FirstSeen: now, UpdatedAt: now}
		ev.Kind = EventFirstUse
	case err != nil:
		return Record{}, Event{}, err
	case keyEqual(r.Key, key):
		ev.Old = cloneKey(r.Key)
		return r, ev, nil
	case r.Level == Changed && keyEqual(r.PendingKey, key):
		ev.Old = cloneKey(r.Key)
		return r, ev, nil
	case r.Level == Distrusted:
		// Another key for a distrusted account is reported and used no
		// more than the distrusted one: whoever presents a new key must
		// not lift the user's decision (the record stays as it is).
		ev.Kind = EventKeyChanged
		ev.Old = cloneKey(r.Key)
		return r, ev, nil
	default:
		ev.Kind = EventKeyChanged
		ev.Old = cloneKey(r.Key)
		now := s.timestamp()
		r.Level = Changed
		r.PendingKey = cloneKey(key)
		r.ChangedAt, r.UpdatedAt = now, now
	}
	if err := save(tx, r); err != nil {
		return Record{}, Event{}, err
	}
	return r, ev, nil
}

// Verify records that the user verified key as the account identity key of
// jid out of band with method (for example [MethodFingerprint]):
//
//   - key is the pinned key: the record becomes [Verified] (a pending key
//     is dropped: the user confirmed the old key).
//   - key is the pending key of a Changed record: it becomes the pinned
//     key, Verified.
//   - the account is unknown: key is pinned as Verified (for example a QR
//     code scanned before any message).
//   - otherwise: [ErrKeyMismatch], nothing changes.
func (s *Store) Verify(jid string, key ed25519.PublicKey, method string) (Record, error) {
	return s.update(func(tx store.Tx) (Record, error) { return s.VerifyTx(tx, jid, key, method) })
}

// VerifyTx is [Store.Verify] inside the caller's transaction tx.
func (s *Store) VerifyTx(tx store.Tx, jid string, key ed25519.PublicKey, method string) (Record, error) {
	if err := checkArgs(jid, key); err != nil {
		return Record{}, err
	}
	if err := checkMethod(method); err != nil {
		return Record{}, err
	}
	now := s.timestamp()
	r, err := load(tx, jid)
	switch {
	case errors.Is(err, ErrUnknown):
		r = Record{JID: jid, Key: cloneKey(key), FirstSeen: now}
	case err != nil:
		return Record{}, err
	case keyEqual(r.Key, key):
	case r.Level == Changed && keyEqual(r.PendingKey, key):
		r.Key = cloneKey(key)
	default:
		return Record{}, ErrKeyMismatch
	}
	r.Level, r.Method, r.PendingKey = Verified, method, nil
	r.VerifiedAt, r.ChangedAt, r.UpdatedAt = now, time.Time{}, now
	if err := save(tx, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Accept records that the user accepts key for the account without
// verifying it:
//
//   - key is the pending key of a Changed record: it becomes the pinned
//     key as [TOFU] (an earlier verification does not carry over).
//   - key is the pinned key of a Changed record: the pending key is
//     dismissed and the record returns to Verified if the pinned key had
//     been verified (Method is set), else TOFU.
//   - key is the pinned key of a Distrusted record: it becomes TOFU.
//   - key is the pinned key of a TOFU or Verified record: no change.
//   - the account is unknown: [ErrUnknown]; any other key: [ErrKeyMismatch].
func (s *Store) Accept(jid string, key ed25519.PublicKey) (Record, error) {
	return s.update(func(tx store.Tx) (Record, error) { return s.AcceptTx(tx, jid, key) })
}

// AcceptTx is [Store.Accept] inside the caller's transaction tx.
func (s *Store) AcceptTx(tx store.Tx, jid string, key ed25519.PublicKey) (Record, error) {
	if err := checkArgs(jid, key); err != nil {
		return Record{}, err
	}
	r, err := load(tx, jid)
	if err != nil {
		return Record{}, err
	}
	switch {
	case r.Level == Changed && keyEqual(r.PendingKey, key):
		r.Key, r.Level, r.Method, r.VerifiedAt = cloneKey(key), TOFU, "", time.Time{}
	case !keyEqual(r.Key, key):
		return Record{}, ErrKeyMismatch
	case r.Level == Changed && r.Method != "":
		r.Level = Verified
	case r.Level == Changed || r.Level == Distrusted:
		r.Level = TOFU
	default:
		return r, nil // TOFU or Verified: nothing to do
	}
	r.PendingKey, r.ChangedAt, r.UpdatedAt = nil, time.Time{}, s.timestamp()
	if err := save(tx, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Distrust records that the user does not trust the account: the record
// becomes [Distrusted], its verification method and any pending key are
// dropped, and the pinned key is kept so that a later different key still
// raises [EventKeyChanged]. The returned event has kind [EventDistrusted]
// with Old and New the pinned key, for the application to report. An
// unknown account gives [ErrUnknown].
func (s *Store) Distrust(jid string) (Record, Event, error) {
	var ev Event
	r, err := s.update(func(tx store.Tx) (Record, error) {
		var (
			r   Record
			err error
		)
		r, ev, err = s.DistrustTx(tx, jid)
		return r, err
	})
	if err != nil {
		return Record{}, Event{}, err
	}
	return r, ev, nil
}

// DistrustTx is [Store.Distrust] inside the caller's transaction tx.
func (s *Store) DistrustTx(tx store.Tx, jid string) (Record, Event, error) {
	if err := checkJID(jid); err != nil {
		return Record{}, Event{}, err
	}
	r, err := load(tx, jid)
	if err != nil {
		return Record{}, Event{}, err
	}
	r.Level, r.Method, r.PendingKey = Distrusted, "", nil
	r.VerifiedAt, r.ChangedAt, r.UpdatedAt = time.Time{}, time.Time{}, s.timestamp()
	if err := save(tx, r); err != nil {
		return Record{}, Event{}, err
	}
	return r, Event{Kind: EventDistrusted, JID: jid, Old: cloneKey(r.Key), New: cloneKey(r.Key)}, nil
}

// Remove forgets the account, so that the next key observed for it is
// pinned as on first use. Removing an unknown account is not an error.
func (s *Store) Remove(jid string) error {
	return s.s.Update(func(tx store.Tx) error { return s.RemoveTx(tx, jid) })
}

// RemoveTx is [Store.Remove] inside the caller's transaction tx.
func (s *Store) RemoveTx(tx store.Tx, jid string) error {
	if err := checkJID(jid); err != nil {
		return err
	}
	if err := tx.Delete(bucket, jid); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}

// Lookup returns the record of an account, or [ErrUnknown] (which matches
// [store.ErrNotFound] too).
func (s *Store) Lookup(jid string) (Record, error) {
	var r Record
	err := s.s.View(func(tx store.Tx) error {
		var err error
		r, err = s.LookupTx(tx, jid)
		return err
	})
	return r, err
}

// LookupTx is [Store.Lookup] inside the caller's transaction tx.
func (s *Store) LookupTx(tx store.Tx, jid string) (Record, error) {
	if err := checkJID(jid); err != nil {
		return Record{}, err
	}
	return load(tx, jid)
}

// List returns every record in JID order (the store's key order); none is
// not an error. A record that does not decode, or is stored under another
// JID, is an error.
func (s *Store) List() ([]Record, error) {
	var rs []Record
	err := s.s.View(func(tx store.Tx) error {
		var err error
		rs, err = s.ListTx(tx)
		return err
	})
	return rs, err
}

// ListTx is [Store.List] inside the caller's transaction tx.
func (s *Store) ListTx(tx store.Tx) ([]Record, error) {
	var rs []Record
	err := tx.ForEach(bucket, func(k string, v []byte) error {
		r, err := decode(k, v)
		if err != nil {
			return err
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
