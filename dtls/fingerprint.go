package dtls

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Hash function textual names of RFC 8122 §5 (IANA "Hash Function Textual
// Names"), as used in a=fingerprint and in the XEP-0320 hash attribute.
const (
	HashSHA256 = "sha-256" // what securejingle sends; required of every peer
	HashSHA384 = "sha-384"
	HashSHA512 = "sha-512"
	hashSHA1   = "sha-1" // refused: RFC 8122 §5 deprecates it
)

// maxFingerprintText bounds the peer-controlled value before any parsing:
// the longest accepted digest (SHA-512, 64 bytes) as colon-separated hex.
const maxFingerprintText = 64*3 - 1

// ErrUnsupportedHash is matched by a [*FingerprintError] for a hash function
// that is not accepted: sha-1 (too weak), md5, md2 and unknown names.
var ErrUnsupportedHash = errors.New("dtls: unsupported fingerprint hash function")

// ErrMalformedFingerprint is matched by a [*FingerprintError] for a value
// that is not colon-separated hex pairs of exactly the hash's length.
var ErrMalformedFingerprint = errors.New("dtls: malformed fingerprint")

// FingerprintError reports a fingerprint that was refused. Err is
// [ErrUnsupportedHash] or [ErrMalformedFingerprint]. It is a plain value,
// safe for concurrent reads.
type FingerprintError struct {
	Hash   string // the hash name as received (truncated if long)
	Reason string // human-readable detail
	Err    error
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("%v: hash %q: %s", e.Err, e.Hash, e.Reason)
}

// Unwrap returns [ErrUnsupportedHash] or [ErrMalformedFingerprint].
func (e *FingerprintError) Unwrap() error { return e.Err }

// Fingerprint is a certificate fingerprint (RFC 8122 §5): the digest named
// by Hash over the DER encoding of the certificate.
//
// The zero value is "no fingerprint" ([Fingerprint.IsZero]); it is never
// equal to anything and a [Binding] with it refuses every certificate.
// A Fingerprint is a plain value, safe for concurrent reads; do not modify
// Value while it is shared.
type Fingerprint struct {
	Hash  string // lower-case textual name, e.g. [HashSHA256]
	Value []byte // the digest, of exactly the hash's size
}

// IsZero reports whether f carries no fingerprint.
func (f Fingerprint) IsZero() bool { return f.Hash == "" && len(f.Value) == 0 }

// String returns the value in the form of SDP a=fingerprint and of the
// XEP-0320 element text: upper-case hex pairs separated by colons
// ("AB:CD:..."). The hash name is not included. The zero value gives "".
func (f Fingerprint) String() string {
	const hexdigits = "0123456789ABCDEF"
	if len(f.Value) == 0 {
		return ""
	}
	b := make([]byte, 0, len(f.Value)*3-1)
	for i, c := range f.Value {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexdigits[c>>4], hexdigits[c&0x0f])
	}
	return string(b)
}

// Equal reports whether f and g name the same hash function and digest.
// The digests are compared in constant time; a zero or malformed
// fingerprint is equal to nothing.
func (f Fingerprint) Equal(g Fingerprint) bool {
	n, ok := hashSize(f.Hash)
	if !ok || f.Hash != g.Hash || len(f.Value) != n {
		return false
	}
	return subtle.ConstantTimeCompare(f.Value, g.Value) == 1
}

// validate checks that f names an accepted hash and has its exact length.
func (f Fingerprint) validate() error {
	n, ok := hashSize(f.Hash)
	if !ok {
		return unsupported(f.Hash)
	}
	if len(f.Value) != n {
		return &FingerprintError{Hash: f.Hash, Reason: fmt.Sprintf("digest is %d bytes, want %d", len(f.Value), n), Err: ErrMalformedFingerprint}
	}
	return nil
}

// ParseFingerprint parses the hash name and value of an SDP a=fingerprint
// attribute or a XEP-0320 <fingerprint/> element, strictly.
//
// The hash name must be sha-256, sha-384 or sha-512 (ASCII case is ignored;
// the result carries the lower-case name). sha-1, md5, md2 and unknown names
// give a [*FingerprintError] matching [ErrUnsupportedHash]. Leading and
// trailing white space of both arguments is ignored. The value must be hex
// pairs separated by single colons, giving exactly the hash's size; upper- and
// lower-case digits are accepted (RFC 8122 writes upper case, some clients
// send lower case). Anything else gives a [*FingerprintError] matching
// [ErrMalformedFingerprint]. The length is checked before the value is
// decoded.
func ParseFingerprint(hashName, value string) (Fingerprint, error) {
	name := strings.ToLower(strings.TrimSpace(hashName))
	n, ok := hashSize(name)
	if !ok {
		return Fingerprint{}, unsupported(strings.TrimSpace(hashName))
	}
	v := strings.TrimSpace(value)
	if want := n*3 - 1; len(v) != want {
		return Fingerprint{}, &FingerprintError{Hash: name, Reason: fmt.Sprintf("value has %d characters, want %d", min(len(v), maxFingerprintText+1), want), Err: ErrMalformedFingerprint}
	}
	out := make([]byte, n)
	for i := range n {
		p := i * 3
		if i > 0 && v[p-1] != ':' {
			return Fingerprint{}, &FingerprintError{Hash: name, Reason: fmt.Sprintf("no colon before byte %d", i), Err: ErrMalformedFingerprint}
		}
		hi, ok1 := unhex(v[p])
		lo, ok2 := unhex(v[p+1])
		if !ok1 || !ok2 {
			return Fingerprint{}, &FingerprintError{Hash: name, Reason: fmt.Sprintf("byte %d is not two hex digits", i), Err: ErrMalformedFingerprint}
		}
		out[i] = hi<<4 | lo
	}
	return Fingerprint{Hash: name, Value: out}, nil
}

// Sum returns the fingerprint of der under the hash function named by one
// of [HashSHA256], [HashSHA384] or [HashSHA512]; any other name gives a
// [*FingerprintError] matching [ErrUnsupportedHash].
func Sum(hashName string, der []byte) (Fingerprint, error) {
	h, ok := newHash(hashName)
	if !ok {
		return Fingerprint{}, unsupported(hashName)
	}
	h.Write(der)
	return Fingerprint{Hash: hashName, Value: h.Sum(nil)}, nil
}

func unsupported(name string) error {
	reason := "unknown hash function"
	switch strings.ToLower(name) {
	case hashSHA1:
		reason = "sha-1 is too weak (RFC 8122 §5)"
	case "md5", "md2":
		reason = "md5 and md2 are broken"
	case "":
		reason = "no hash function named"
	}
	if len(name) > 32 {
		name = name[:32]
	}
	return &FingerprintError{Hash: name, Reason: reason, Err: ErrUnsupportedHash}
}

func hashSize(name string) (int, bool) {
	switch name {
	case HashSHA256:
		return sha256.Size, true
	case HashSHA384:
		return sha512.Size384, true
	case HashSHA512:
		return sha512.Size, true
	}
	return 0, false
}

func newHash(name string) (hash.Hash, bool) {
	switch name {
	case HashSHA256:
		return sha256.New(), true
	case HashSHA384:
		return sha512.New384(), true
	case HashSHA512:
		return sha512.New(), true
	}
	return nil, false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
