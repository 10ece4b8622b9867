// Package c2sfront is the gateway's local client-to-server listener: a
// loopback-only XMPP server that a local client (Profanity, slixmpp,
// go-sendxmpp) logs into instead of the real server. It owns TLS (a local
// self-signed certificate whose SHA-256 fingerprint the user pins), SASL
// against one local credential, resource binding and the connection
// bounds; the gateway composer receives each bound session through a
// Handler and decides what passes upstream.
package c2sfront

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// Credential is the local account's secret as stored in the config: SCRAM
// salted keys (RFC 5802/7677), never the password itself.
type Credential struct {
	Salt       []byte
	Iterations int
	StoredKey  [32]byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  [32]byte // HMAC(SaltedPassword, "Server Key")
}

// Credential bounds.
const (
	minIterations = 4096
	maxIterations = 1 << 20
	minSaltLen    = 16
	maxSaltLen    = 64
	maxPassword   = 1024
)

// ErrBadCredential reports an unusable stored credential.
var ErrBadCredential = errors.New("c2sfront: bad stored credential (salt 16..64 bytes, iterations 4096..1048576); regenerate it with NewCredential")

// NewCredential derives a stored credential from password with a fresh
// random salt.
func NewCredential(password string, iterations int) (Credential, error) {
	if password == "" || len(password) > maxPassword {
		return Credential{}, errors.New("c2sfront: the local password must be 1..1024 bytes")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Credential{}, fmt.Errorf("c2sfront: salt: %w", err)
	}
	c := Credential{Salt: salt, Iterations: iterations}
	if err := c.check(); err != nil {
		return Credential{}, err
	}
	c.StoredKey, c.ServerKey = c.keys([]byte(password))
	return c, nil
}

func (c Credential) check() error {
	if len(c.Salt) < minSaltLen || len(c.Salt) > maxSaltLen || c.Iterations < minIterations || c.Iterations > maxIterations {
		return ErrBadCredential
	}
	return nil
}

// saltedPassword is SCRAM's Hi(password, salt, i).
func (c Credential) saltedPassword(password []byte) []byte {
	sp, err := pbkdf2.Key(sha256.New, string(password), c.Salt, c.Iterations, sha256.Size)
	if err != nil {
		panic("c2sfront: pbkdf2: " + err.Error()) // only for out-of-range lengths, excluded by check
	}
	return sp
}

func (c Credential) keys(password []byte) (stored, server [32]byte) {
	sp := c.saltedPassword(password)
	clientKey := mac(sp, "Client Key")
	stored = sha256.Sum256(clientKey)
	copy(server[:], mac(sp, "Server Key"))
	return stored, server
}

func mac(key []byte, label string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	return h.Sum(nil)
}

// Verify reports whether password matches the stored keys (used by PLAIN
// over TLS). The comparison is constant-time.
func (c Credential) Verify(password []byte) bool {
	if c.check() != nil || len(password) == 0 || len(password) > maxPassword {
		return false
	}
	stored, server := c.keys(password)
	return subtle.ConstantTimeCompare(stored[:], c.StoredKey[:])&subtle.ConstantTimeCompare(server[:], c.ServerKey[:]) == 1
}
