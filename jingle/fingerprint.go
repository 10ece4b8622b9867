package jingle

import (
	"errors"
	"strconv"
	"strings"
)

// hashSizes are the digest sizes of the hash functions a XEP-0320
// fingerprint may name (RFC 8122 §5, the IANA "Hash Function Textual
// Names" registry); md2 and md5 are refused.
var hashSizes = map[string]int{
	"sha-1":   20,
	"sha-224": 28,
	"sha-256": 32,
	"sha-384": 48,
	"sha-512": 64,
}

// hashNames lists hashSizes in order of strength.
var hashNames = []string{"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"}

// sendableHashes are the hash functions of fingerprints that Marshal
// emits: the ones the dtls package accepts for a binding.
var sendableHashes = map[string]bool{"sha-256": true, "sha-384": true, "sha-512": true}

// HashNames returns the lower-case names of the fingerprint hash
// functions that [Parse] accepts: sha-1, sha-224, sha-256, sha-384 and
// sha-512. sha-1 and sha-224 are accepted only so that a peer's offer can
// be read and classified by policy; what may bind a DTLS session is the
// dtls package's decision (sha-256, sha-384 and sha-512), and Marshal
// refuses to emit the others (see [ErrWeakFingerprint]). Each call returns
// a new slice.
func HashNames() []string { return append([]string(nil), hashNames...) }

// HashSize returns the digest size in bytes of the named fingerprint hash
// function (sha-1, sha-224, sha-256, sha-384, sha-512; ASCII case is
// ignored, RFC 8122 §5), and false for any other name.
func HashSize(hash string) (int, bool) {
	n, ok := hashSizes[strings.ToLower(hash)]
	return n, ok
}

// ValidateFingerprint checks a XEP-0320 fingerprint: a known hash name
// (ASCII case ignored, as RFC 8122 §5 says; no surrounding whitespace) and
// a value of colon-separated hex byte pairs (RFC 8122 §5) of the digest
// size of that hash. The value is taken after trimming surrounding
// whitespace; upper- and lower-case hex are accepted. The error, if any,
// matches [ErrMalformed]. This is a syntax check only: which hash
// functions may bind a session, and comparing a fingerprint with a
// certificate, is the dtls package's job.
func ValidateFingerprint(hash, value string) error {
	if err := checkFingerprint(strings.ToLower(hash), strings.TrimSpace(value)); err != nil {
		return &ParseError{Field: "fingerprint", Reason: err.Error()}
	}
	return nil
}

// checkFingerprint checks a lower-case hash name and a trimmed value.
func checkFingerprint(hash, v string) error {
	size, ok := hashSizes[hash]
	if !ok {
		return errors.New("unknown hash function " + strconv.Quote(truncate(hash)))
	}
	if len(v) != 3*size-1 {
		return errors.New("fingerprint value is not " + hash + " (colon-separated hex, " + strconv.Itoa(size) + " bytes)")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if i%3 == 2 {
			if c != ':' {
				return errors.New("fingerprint value is not colon-separated hex")
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return errors.New("fingerprint value is not colon-separated hex")
		}
	}
	return nil
}
