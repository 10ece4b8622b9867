package e2e

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// A SuiteID names an algorithm suite on the wire (16 bits).
type SuiteID uint16

// Registered suites. The numbers are wire values; see docs/protocol.md,
// "Suite registry".
const (
	SuiteXWingAES     SuiteID = 0x0001 // MLKEM768X25519 + HKDF-SHA256 + AES-256-GCM + Ed25519 (default)
	SuiteXWingChaCha  SuiteID = 0x0002 // MLKEM768X25519 + HKDF-SHA256 + ChaCha20-Poly1305 + Ed25519
	SuiteX25519AES    SuiteID = 0x0003 // DHKEM(X25519) + HKDF-SHA256 + AES-256-GCM + Ed25519
	SuiteX25519ChaCha SuiteID = 0x0004 // DHKEM(X25519) + HKDF-SHA256 + ChaCha20-Poly1305 + Ed25519
)

// HPKE identifiers (RFC 9180 and draft-ietf-hpke-pq).
const (
	kemXWing      uint16 = 0x647a
	kemX25519     uint16 = 0x0020
	kdfHKDFSHA256 uint16 = 0x0001
	aeadAES256GCM uint16 = 0x0002
	aeadChaCha    uint16 = 0x0003
)

// A Suite is a named combination of algorithms. The handshake uses the HPKE
// KEM, KDF and AEAD; the ratchet uses X25519 for its DH steps, the KDF's hash
// in HKDF and HMAC, and the AEAD for messages; identity signatures use the
// signature scheme.
//
// Suites are immutable values; the registry is read-only after init.
type Suite struct {
	ID        SuiteID
	Name      string // readable name, as shown to users and in the spec
	KEM       uint16 // HPKE KEM id
	KDF       uint16 // HPKE KDF id
	AEAD      uint16 // HPKE AEAD id
	Signature string // identity signature scheme
	PQ        bool   // the KEM resists a quantum adversary (hybrid)
}

var suites = map[SuiteID]*Suite{
	SuiteXWingAES:     {SuiteXWingAES, "SJ_MLKEM768X25519_HKDFSHA256_AES256GCM_ED25519", kemXWing, kdfHKDFSHA256, aeadAES256GCM, "ed25519", true},
	SuiteXWingChaCha:  {SuiteXWingChaCha, "SJ_MLKEM768X25519_HKDFSHA256_CHACHA20POLY1305_ED25519", kemXWing, kdfHKDFSHA256, aeadChaCha, "ed25519", true},
	SuiteX25519AES:    {SuiteX25519AES, "SJ_X25519_HKDFSHA256_AES256GCM_ED25519", kemX25519, kdfHKDFSHA256, aeadAES256GCM, "ed25519", false},
	SuiteX25519ChaCha: {SuiteX25519ChaCha, "SJ_X25519_HKDFSHA256_CHACHA20POLY1305_ED25519", kemX25519, kdfHKDFSHA256, aeadChaCha, "ed25519", false},
}

// DefaultSuites is the default preference order: post-quantum hybrid first.
var DefaultSuites = []SuiteID{SuiteXWingAES, SuiteXWingChaCha, SuiteX25519AES, SuiteX25519ChaCha}

// LookupSuite returns the registered suite for id, or nil if this
// implementation does not know it. Unknown suites are ignored, never fatal.
func LookupSuite(id SuiteID) *Suite { return suites[id] }

// SuiteByName returns the registered suite with the given readable name.
func SuiteByName(name string) *Suite {
	for _, s := range suites {
		if strings.EqualFold(s.Name, name) {
			return s
		}
	}
	return nil
}

// String returns the suite's readable name.
func (id SuiteID) String() string {
	if s := suites[id]; s != nil {
		return s.Name
	}
	return fmt.Sprintf("unknown-suite-0x%04x", uint16(id))
}

func (s *Suite) hpke() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	kem, err := hpke.NewKEM(s.KEM)
	if err != nil {
		panic("e2e: registered suite with unknown KEM")
	}
	kdf, err := hpke.NewKDF(s.KDF)
	if err != nil {
		panic("e2e: registered suite with unknown KDF")
	}
	aead, err := hpke.NewAEAD(s.AEAD)
	if err != nil {
		panic("e2e: registered suite with unknown AEAD")
	}
	return kem, kdf, aead
}

// newAEAD returns the suite's message AEAD keyed with a 32-byte key.
func (s *Suite) newAEAD(key []byte) cipher.AEAD {
	switch s.AEAD {
	case aeadAES256GCM:
		b, err := aes.NewCipher(key)
		if err != nil {
			panic(err)
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			panic(err)
		}
		return a
	case aeadChaCha:
		a, err := chacha20poly1305.New(key)
		if err != nil {
			panic(err)
		}
		return a
	}
	panic("e2e: registered suite with unknown AEAD")
}

// bestMutual returns the first suite in the responder's preference list that
// the initiator also offers and this implementation knows. This is the only
// suite a handshake may choose; anything else is a downgrade.
func bestMutual(responder, initiator []SuiteID) (SuiteID, bool) {
	for _, r := range responder {
		if suites[r] == nil {
			continue
		}
		for _, i := range initiator {
			if i == r {
				return r, true
			}
		}
	}
	return 0, false
}

// validSuiteList checks a peer-supplied list: bounded, no duplicates.
// Unknown ids are allowed and kept (they are signed as sent).
func validSuiteList(l []SuiteID) error {
	if len(l) == 0 || len(l) > maxSuites {
		return malformed("suite list length %d", len(l))
	}
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[i] == l[j] {
				return malformed("duplicate suite %d", l[i])
			}
		}
	}
	return nil
}

func appendSuites(b *builder, l []SuiteID) {
	b.u8(uint8(len(l)))
	for _, s := range l {
		b.u16(uint16(s))
	}
}

func readSuites(r *reader) []SuiteID {
	n := int(r.u8("suite count"))
	if n == 0 || n > maxSuites {
		r.fail("suite count")
		return nil
	}
	l := make([]SuiteID, n)
	for i := range l {
		l[i] = SuiteID(r.u16("suite"))
	}
	return l
}
