package trust

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// A Level is how far an account's pinned identity key is trusted. The
// numeric values are part of the storage format.
type Level uint8

const (
	// Unknown is the zero Level: no key has been seen for the account.
	// Stored records never have it.
	Unknown Level = 0
	// TOFU means the key was pinned on first use and not verified.
	TOFU Level = 1
	// Verified means the user verified the pinned key out of band;
	// Record.Method says how.
	Verified Level = 2
	// Changed means a different key (Record.PendingKey) was seen for the
	// account. The new key is not accepted until the user acts; the pinned
	// one still is.
	Changed Level = 3
	// Distrusted means the user revoked trust in the account's key.
	Distrusted Level = 4
)

var levelNames = [...]string{"unknown", "tofu", "verified", "changed", "distrusted"}

// String returns the lower-case name of l.
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// Verification methods. Method names are tokens of 1 to 64 characters from
// [a-z0-9.-], so mechanisms added later fit without a format change.
const (
	MethodFingerprint = "fingerprint" // manual fingerprint comparison
	MethodSAS         = "sas"         // short authentication string
	MethodQR          = "qr"          // scanned QR code
	MethodOpenPGP     = "openpgp"     // OpenPGP signature over the account statement
	MethodX509CMS     = "x509-cms"    // X.509 CMS signature over the account statement
)

// Limits of the record format.
const (
	// MaxJIDLen is the longest bare JID accepted, in bytes (RFC 7622
	// allows 1023 for the localpart and for the domainpart).
	MaxJIDLen = 2047
	// MaxMethodLen is the longest verification method name.
	MaxMethodLen = 64
)

// recordVersion is the first byte of an encoded record. Version 1 was the
// per-device record (with a device id); version 2 is per account.
const recordVersion = 2

// timeLen is the encoded size of a time: Unix seconds and nanoseconds.
const timeLen = 8 + 4

// fixed part of an encoded record: version, level, JID length, key,
// pending flag, method length, four times.
const recordFixedLen = 1 + 1 + 2 + ed25519.PublicKeySize + 1 + 1 + 4*timeLen

// A Record is the trust state of one account (bare JID): the account
// identity key that is pinned for it and how far the user trusts it. The
// account's devices are certified by that key, so they need no record of
// their own. The zero Record has Level [Unknown] and is not valid for
// storage. Records hold only public keys.
type Record struct {
	JID string // bare JID
	// Key is the pinned account identity key.
	Key   ed25519.PublicKey
	Level Level
	// Method is how the pinned key was verified. It is set when Level is
	// Verified, may stay set while Changed (the pinned key had been
	// verified before the change), and is empty otherwise.
	Method string
	// PendingKey is the new key seen while Level is Changed; nil otherwise.
	PendingKey ed25519.PublicKey
	FirstSeen  time.Time // when the account was first pinned
	// VerifiedAt is when the pinned key was verified; zero when Method is
	// empty.
	VerifiedAt time.Time
	// ChangedAt is when PendingKey was seen; zero unless Level is Changed.
	ChangedAt time.Time
	UpdatedAt time.Time // last change of the record
}

// Accepts reports whether messages from devices certified by key may be
// accepted for the account: key is the pinned key and the record is TOFU,
// Verified or Changed. A pending (changed) key is never accepted until the
// user verifies or accepts it; the pinned key keeps working meanwhile, so
// that a server presenting a substituted key can raise an alert but cannot
// cut a working session. Nothing is accepted from a Distrusted account.
func (r Record) Accepts(key ed25519.PublicKey) bool {
	return (r.Level == TOFU || r.Level == Verified || r.Level == Changed) && keyEqual(r.Key, key)
}

// keyEqual compares two public keys in constant time.
func keyEqual(a, b ed25519.PublicKey) bool {
	return len(a) == ed25519.PublicKeySize && len(b) == ed25519.PublicKeySize &&
		subtle.ConstantTimeCompare(a, b) == 1
}

var errRecord = errors.New("trust: invalid record")

// check validates the invariants of a storable record.
func (r *Record) check() error {
	if err := checkJID(r.JID); err != nil {
		return err
	}
	if len(r.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: key length %d", errRecord, len(r.Key))
	}
	if r.Method != "" {
		if err := checkMethod(r.Method); err != nil {
			return err
		}
	}
	for _, t := range []time.Time{r.FirstSeen, r.VerifiedAt, r.ChangedAt, r.UpdatedAt} {
		if !timeOK(t) {
			return fmt.Errorf("%w: time out of range", errRecord)
		}
	}
	if r.Method == "" && !r.VerifiedAt.IsZero() {
		return fmt.Errorf("%w: verification time without a method", errRecord)
	}
	if r.Level != Changed && !r.ChangedAt.IsZero() {
		return fmt.Errorf("%w: change time on a %v record", errRecord, r.Level)
	}
	pending := r.PendingKey != nil
	if pending && len(r.PendingKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: pending key length %d", errRecord, len(r.PendingKey))
	}
	switch r.Level {
	case TOFU, Distrusted:
		if pending || r.Method != "" {
			return fmt.Errorf("%w: %v record with a pending key or method", errRecord, r.Level)
		}
	case Verified:
		if pending || r.Method == "" {
			return fmt.Errorf("%w: verified record without method or with a pending key", errRecord)
		}
	case Changed:
		if !pending {
			return fmt.Errorf("%w: changed record without pending key", errRecord)
		}
		if keyEqual(r.Key, r.PendingKey) {
			return fmt.Errorf("%w: pending key equals pinned key", errRecord)
		}
	default:
		return fmt.Errorf("%w: level %d", errRecord, r.Level)
	}
	return nil
}

// checkJID accepts a non-empty bare JID: valid UTF-8, no resource, no
// control characters, at most MaxJIDLen bytes. It does not normalise.
func checkJID(jid string) error {
	if jid == "" || len(jid) > MaxJIDLen || !utf8.ValidString(jid) {
		return fmt.Errorf("%w: %q", ErrInvalidJID, jid)
	}
	for _, c := range jid {
		if c == '/' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %q", ErrInvalidJID, jid)
		}
	}
	return nil
}

// Stored times lie between the zero time (year 1) and the end of year 9999.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

func timeOK(t time.Time) bool {
	return minUnix <= t.Unix() && t.Unix() <= maxUnix
}

func checkMethod(m string) error {
	if m == "" || len(m) > MaxMethodLen {
		return fmt.Errorf("%w: %q", ErrInvalidMethod, m)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%w: %q", ErrInvalidMethod, m)
		}
	}
	return nil
}

// MarshalBinary encodes r in the versioned record format:
//
//	version (1) = 2
//	level (1)
//	JID length (2, big endian), JID
//	key (32)
//	pending flag (1) = 0 or 1, then the pending key (32) if 1
//	method length (1), method
//	first seen: Unix seconds (8, signed), nanoseconds (4, < 1e9)
//	verified at, changed at, updated at: the same (a zero time is year 1)
//
// It fails if r breaks an invariant documented on [Record]. Times are
// stored in UTC without monotonic reading.
func (r Record) MarshalBinary() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, recordFixedLen+len(r.JID)+len(r.Method)+len(r.PendingKey))
	b = append(b, recordVersion, byte(r.Level))
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.JID)))
	b = append(b, r.JID...)
	b = append(b, r.Key...)
	if r.PendingKey != nil {
		b = append(b, 1)
		b = append(b, r.PendingKey...)
	} else {
		b = append(b, 0)
	}
	b = append(b, byte(len(r.Method)))
	b = append(b, r.Method...)
	for _, t := range []time.Time{r.FirstSeen, r.VerifiedAt, r.ChangedAt, r.UpdatedAt} {
		b = appendTime(b, t)
	}
	return b, nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// UnmarshalBinary decodes a record written by [Record.MarshalBinary]. It
// rejects unknown versions, wrong lengths, invalid field values, records
// that break an invariant, and trailing data, so that re-encoding a decoded
// record gives back the input.
func (r *Record) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); v != recordVersion {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: unknown version %d", errRecord, v)
	}
	var out Record
	out.Level = Level(d.byte())
	out.JID = string(d.bytes(int(d.uint16())))
	out.Key = ed25519.PublicKey(d.bytes(ed25519.PublicKeySize))
	switch d.byte() {
	case 0:
	case 1:
		out.PendingKey = ed25519.PublicKey(d.bytes(ed25519.PublicKeySize))
	default:
		d.fail("pending flag")
	}
	out.Method = string(d.bytes(int(d.byte())))
	out.FirstSeen = d.time()
	out.VerifiedAt = d.time()
	out.ChangedAt = d.time()
	out.UpdatedAt = d.time()
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing data")
	}
	if d.err != nil {
		return d.err
	}
	if err := out.check(); err != nil {
		return err
	}
	*r = out
	return nil
}

// decoder reads big-endian fields; after the first error every read
// returns zero values and err keeps the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errRecord, what)
	}
	d.b = nil
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail("length")
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uint16() uint16 {
	if v := d.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) time() time.Time {
	v := d.bytes(timeLen)
	if v == nil {
		return time.Time{}
	}
	sec := int64(binary.BigEndian.Uint64(v))
	nsec := binary.BigEndian.Uint32(v[8:])
	if nsec >= 1e9 || sec < minUnix || sec > maxUnix {
		d.fail("time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
