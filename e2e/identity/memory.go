package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
)

// keySigner is a [Signer] holding the private key in process memory. It
// backs [NewMemorySigner], [GenerateMemorySigner] and [LoadFile].
//
// It is safe for concurrent use: its fields are never written after
// construction.
type keySigner struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// NewMemorySigner returns a [Signer] for priv, which must be a 64-byte
// Ed25519 private key; it panics otherwise. The signer keeps its own copy of
// the key in process memory, so it is meant for tests, benchmarks and
// ephemeral keys; a long-lived identity key belongs in a key file or an agent.
//
// The returned Signer is safe for concurrent use. Printing it shows only the
// key's fingerprint.
func NewMemorySigner(priv ed25519.PrivateKey) Signer {
	if len(priv) != ed25519.PrivateKeySize {
		panic("identity: invalid Ed25519 private key length")
	}
	return newKeySigner(priv)
}

// GenerateMemorySigner returns a [Signer] for a fresh random Ed25519 key held
// in process memory, with the same caveats as [NewMemorySigner].
func GenerateMemorySigner() (Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generating key: %w", err)
	}
	s := newKeySigner(priv)
	clear(priv)
	return s, nil
}

func newKeySigner(priv ed25519.PrivateKey) *keySigner {
	p := make(ed25519.PrivateKey, ed25519.PrivateKeySize)
	copy(p, priv)
	return &keySigner{priv: p, pub: p.Public().(ed25519.PublicKey)}
}

// PublicKey implements [Signer]. The caller may modify the returned slice.
func (s *keySigner) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.pub...)
}

// Sign implements [Signer].
func (s *keySigner) Sign(namespace string, message []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, SignedData(namespace, message)), nil
}

// String returns a description naming the key by its fingerprint, so that
// printing a signer never prints key material.
func (s *keySigner) String() string {
	return "identity.Signer(" + Fingerprint(s.pub) + ")"
}

// GoString is like String, for %#v.
func (s *keySigner) GoString() string { return s.String() }
