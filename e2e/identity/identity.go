// Package identity holds securejingle identity keys and signs with them.
//
// An identity key is an Ed25519 key that only signs. It never encrypts and
// never leaves its backend: a [Signer] is either an OpenSSH-format key file
// (as written by `ssh-keygen -t ed25519`, optionally passphrase-protected) or
// any agent speaking the ssh-agent protocol over SSH_AUTH_SOCK, including
// the real OpenSSH ssh-agent and `securejingle agent`.
//
// Every signature uses SSHSIG framing (OpenSSH PROTOCOL.sshsig) with one
// namespace per purpose, so a signature made for one purpose can never be
// accepted for another and every signature can be checked with
// `ssh-keygen -Y verify`. See docs/protocol.md, "Identity keys".
package identity

import (
	"crypto/ed25519"
)

// SSHSIG namespaces, one per use of the identity key. They are part of the
// signed data, so they separate domains. Changing one is a wire change.
const (
	NamespaceBundle    = "bundle.v1@securejingle.org"    // device bundle
	NamespacePrekey    = "prekey.v1@securejingle.org"    // signed prekey
	NamespacePresence  = "presence.v1@securejingle.org"  // presence element
	NamespaceHandshake = "handshake.v1@securejingle.org" // handshake transcript
	NamespaceStatement = "statement.v1@securejingle.org" // account statement (self attestation)
	// Account identity key only: certificates of the account's devices
	// and the account's signed device list.
	NamespaceDevice     = "device.v1@securejingle.org"  // device certificate
	NamespaceDeviceList = "devices.v1@securejingle.org" // device list
)

// SignatureSize is the size of a raw Ed25519 signature as carried on the wire.
const SignatureSize = ed25519.SignatureSize

// A Signer signs with an Ed25519 identity key held by some backend.
//
// Implementations must be safe for concurrent use.
type Signer interface {
	// PublicKey returns the identity public key.
	PublicKey() ed25519.PublicKey
	// Sign returns the raw 64-byte Ed25519 signature over the SSHSIG
	// signed-data blob for message under namespace (hash sha512).
	Sign(namespace string, message []byte) ([]byte, error)
}
