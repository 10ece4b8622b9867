// Package c2sfront is the gateway's local client-to-server listener: a
// loopback-only XMPP server that a local client (Profanity, slixmpp,
// go-sendxmpp) logs into instead of the real server. It owns TLS (a local
// self-signed certificate whose SHA-256 fingerprint the user pins), SASL
// against one local credential, resource binding, XEP-0198 stream
// management on the local stream (acknowledgements, no resumption) and
// the connection bounds; the gateway composer receives each bound session
// through a Handler and decides what passes upstream. docs/protocol.md
// §22.1 is its specification.
package c2sfront

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// credentialScheme is the RFC 5803 scheme name of the stored format.
const credentialScheme = "SCRAM-SHA-256"

// MarshalText encodes c in the RFC 5803 form
// "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>"
// (standard base64 with padding), the form [ParseCredential] reads.
func (c Credential) MarshalText() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding
	return []byte(credentialScheme + "$" + strconv.Itoa(c.Iterations) + ":" + b64.EncodeToString(c.Salt) + "$" +
		b64.EncodeToString(c.StoredKey[:]) + ":" + b64.EncodeToString(c.ServerKey[:])), nil
}

// ParseCredential parses the form MarshalText writes (surrounding
// whitespace, such as a final newline, is allowed). Parsing is strict:
// canonical decimal, strict base64, exact key lengths and the bounds of
// [NewCredential]; anything else is [ErrBadCredential].
func ParseCredential(s string) (Credential, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, credentialScheme+"$")
	if !ok || len(s) > 512 {
		return Credential{}, ErrBadCredential
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return Credential{}, ErrBadCredential
	}
	iter, salt64, ok1 := strings.Cut(params, ":")
	stored64, server64, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return Credential{}, ErrBadCredential
	}
	n, err := strconv.Atoi(iter)
	if err != nil || strconv.Itoa(n) != iter {
		return Credential{}, ErrBadCredential
	}
	b64 := base64.StdEncoding.Strict()
	salt, err1 := b64.DecodeString(salt64)
	stored, err2 := b64.DecodeString(stored64)
	server, err3 := b64.DecodeString(server64)
	if err1 != nil || err2 != nil || err3 != nil || len(stored) != 32 || len(server) != 32 {
		return Credential{}, ErrBadCredential
	}
	c := Credential{Salt: salt, Iterations: n}
	copy(c.StoredKey[:], stored)
	copy(c.ServerKey[:], server)
	if err := c.check(); err != nil {
		return Credential{}, err
	}
	return c, nil
}
