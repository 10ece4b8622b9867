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

// HashSize returns the digest size in bytes of the named fingerprint hash
// function (sha-1, sha-224, sha-256, sha-384, sha-512), and false for any
// other name.
func HashSize(hash string) (int, bool) {
	n, ok := hashSizes[hash]
	return n, ok
}

// ValidateFingerprint checks a XEP-0320 fingerprint: a known hash name and
// a value of colon-separated hex byte pairs (RFC 8122 §5) of the digest
// size of that hash. The value is taken after trimming surrounding
// whitespace; upper- and lower-case hex are accepted. The error, if any,
// matches [ErrMalformed]. This is a syntax check only: comparing a
// fingerprint with a certificate is the dtls package's job.
func ValidateFingerprint(hash, value string) error {
	if err := checkFingerprint(hash, strings.TrimSpace(value)); err != nil {
		return &ParseError{Field: "fingerprint", Reason: err.Error()}
	}
	return nil
}

func checkFingerprint(hash, v string) error {
	size, ok := hashSizes[hash]
	if !ok {
		return errors.New("unknown hash function " + truncate(hash))
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
