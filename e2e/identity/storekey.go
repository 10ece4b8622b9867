package identity

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// NamespaceStoreKey is the SSHSIG namespace of the signature from which
// [StoreKey] derives the key that encrypts a device's state at rest. It is
// used for nothing else: no other signature securejingle makes, asks for,
// publishes or verifies is under it. Never sign anything else under it
// (`ssh-keygen -Y sign -n store-key.v1@securejingle.org` gives the store key
// away).
const NamespaceStoreKey = "store-key.v1@securejingle.org"

// storeKeyChallengeLabel starts the signed challenge and names its purpose.
const storeKeyChallengeLabel = "securejingle store key v1: this signature is a secret key; never publish it\x00"

// storeKeyHKDFLabel is the HKDF-SHA256 info of the store key.
const storeKeyHKDFLabel = "securejingle store key v1"

// StoreKeySize is the size of the key [StoreKey] returns.
const StoreKeySize = 32

// Bounds of the inputs of [StoreKey].
const (
	// MinStoreSaltSize and MaxStoreSaltSize bound the per-store salt.
	MinStoreSaltSize = 16
	MaxStoreSaltSize = 64
	// maxStoreKeyJID is the longest JID (RFC 7622: three parts of at most
	// 1023 bytes each, plus separators).
	maxStoreKeyJID = 3071
)

var (
	// ErrNondeterministicSigner is returned by [NewStoreKey] when two
	// signatures of the same challenge differ: the key cannot derive a
	// stable store key.
	ErrNondeterministicSigner = errors.New("identity: the account key signs non-deterministically, so it cannot unlock the store: use a standard Ed25519 key (ssh-keygen -t ed25519) in ssh-agent or a key file")

	// errStoreKeyInput reports a malformed JID or salt.
	errStoreKeyInput = errors.New("identity: store key")
)

// StoreKey derives the 32-byte key that encrypts a device's state at rest
// from the account identity key: the signer signs a fixed challenge naming
// the purpose, the bare JID and the store's random salt under
// [NamespaceStoreKey]; the signature is checked against the signer's public
// key and the key is HKDF-SHA256 over it (info "securejingle store key v1",
// salt the store salt).
//
// Ed25519 signatures are deterministic (RFC 8032), so the same key, JID and
// salt give the same store key each time, while nobody without the private
// key can compute it. The signature is a safe secret because only the
// holder of the account key can produce it (Ed25519 is existentially
// unforgeable under chosen-message attack), it reveals nothing about the
// private key, and it is never written or published: the namespace is used
// by nothing else, and SSHSIG framing makes a signature under another
// namespace a signature of different data. Whoever can use the agent (any
// process with access to SSH_AUTH_SOCK, or a host the agent is forwarded to)
// can derive the key too; that is the same trust the account key itself
// needs. See docs/protocol.md §17.4.
//
// jid must be a bare JID (no resource) of at most 3071 bytes; salt must be
// [MinStoreSaltSize] to [MaxStoreSaltSize] bytes. Errors from the signer are
// wrapped, so callers can tell an unreachable agent with errors.Is/As.
func StoreKey(s Signer, jid string, salt []byte) ([StoreKeySize]byte, error) {
	var key [StoreKeySize]byte
	sig, err := storeKeySignature(s, jid, salt)
	if err != nil {
		return key, err
	}
	return deriveStoreKey(sig, salt)
}

// NewStoreKey is [StoreKey] for a store being created: it signs the
// challenge twice and fails with [ErrNondeterministicSigner] if the two
// signatures differ, so that a signer that would derive another key next
// time is refused before anything is sealed with it.
func NewStoreKey(s Signer, jid string, salt []byte) ([StoreKeySize]byte, error) {
	var key [StoreKeySize]byte
	first, err := storeKeySignature(s, jid, salt)
	if err != nil {
		return key, err
	}
	second, err := storeKeySignature(s, jid, salt)
	if err != nil {
		return key, err
	}
	same := subtle.ConstantTimeCompare(first, second) == 1
	clear(second)
	if !same {
		clear(first)
		return key, ErrNondeterministicSigner
	}
	return deriveStoreKey(first, salt)
}

// StoreKeyFunc returns a function for store.Sealed (a store.KeyFunc) that
// derives the key of a store for jid with s: [NewStoreKey] when the store
// is being created, [StoreKey] otherwise.
func StoreKeyFunc(s Signer, jid string) func(salt []byte, create bool) ([StoreKeySize]byte, error) {
	return func(salt []byte, create bool) ([StoreKeySize]byte, error) {
		if create {
			return NewStoreKey(s, jid, salt)
		}
		return StoreKey(s, jid, salt)
	}
}

// storeKeyChallenge returns the message signed for the store key: the label,
// then the JID and the salt, each with a 32-bit big-endian length.
func storeKeyChallenge(jid string, salt []byte) ([]byte, error) {
	switch {
	case jid == "" || len(jid) > maxStoreKeyJID:
		return nil, fmt.Errorf("%w: JID of %d bytes, want 1 to %d", errStoreKeyInput, len(jid), maxStoreKeyJID)
	case strings.Contains(jid, "/"):
		return nil, fmt.Errorf("%w: JID %q has a resource, want the bare JID", errStoreKeyInput, jid)
	case len(salt) < MinStoreSaltSize || len(salt) > MaxStoreSaltSize:
		return nil, fmt.Errorf("%w: salt of %d bytes, want %d to %d", errStoreKeyInput, len(salt), MinStoreSaltSize, MaxStoreSaltSize)
	}
	m := make([]byte, 0, len(storeKeyChallengeLabel)+8+len(jid)+len(salt))
	m = append(m, storeKeyChallengeLabel...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(jid)))
	m = append(m, jid...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(salt)))
	m = append(m, salt...)
	return m, nil
}

// storeKeySignature asks s for the store-key signature and verifies it, so
// that a faulty signer cannot seal the store under garbage.
func storeKeySignature(s Signer, jid string, salt []byte) ([]byte, error) {
	m, err := storeKeyChallenge(jid, salt)
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(NamespaceStoreKey, m)
	if err != nil {
		return nil, fmt.Errorf("identity: signing the store-key challenge: %w", err)
	}
	if err := Verify(s.PublicKey(), NamespaceStoreKey, m, sig); err != nil {
		return nil, fmt.Errorf("identity: the signer returned a store-key signature that does not verify under its key: %w", err)
	}
	return sig, nil
}

// deriveStoreKey is HKDF-SHA256 over the signature.
func deriveStoreKey(sig, salt []byte) ([StoreKeySize]byte, error) {
	var key [StoreKeySize]byte
	k, err := hkdf.Key(sha256.New, sig, salt, storeKeyHKDFLabel, StoreKeySize)
	clear(sig)
	if err != nil {
		return key, fmt.Errorf("identity: deriving the store key: %w", err)
	}
	copy(key[:], k)
	clear(k)
	return key, nil
}
