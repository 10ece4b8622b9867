package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/ssh"
)

// SSHSIG constants from OpenSSH PROTOCOL.sshsig.
const (
	sshsigMagic   = "SSHSIG"
	sshsigHashAlg = "sha512"
)

// ErrBadSignature is returned when a signature does not verify. It carries
// no detail on purpose.
var ErrBadSignature = errors.New("identity: bad signature")

// SignedData returns the SSHSIG blob that is actually signed for message
// under namespace: MAGIC_PREAMBLE, namespace, reserved, hash algorithm and
// the SHA-512 of the message, each as an SSH string.
func SignedData(namespace string, message []byte) []byte {
	if namespace == "" {
		panic("identity: empty SSHSIG namespace")
	}
	h := sha512.Sum512(message)
	b := make([]byte, 0, len(sshsigMagic)+4+len(namespace)+4+4+len(sshsigHashAlg)+4+len(h))
	b = append(b, sshsigMagic...)
	b = appendString(b, []byte(namespace))
	b = appendString(b, nil)
	b = appendString(b, []byte(sshsigHashAlg))
	b = appendString(b, h[:])
	return b
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Verify checks a raw Ed25519 signature made by a [Signer] for message under
// namespace. It returns [ErrBadSignature] for any mismatch, including a
// malformed key or signature.
func Verify(pub ed25519.PublicKey, namespace string, message, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	if !ed25519.Verify(pub, SignedData(namespace, message), sig) {
		return ErrBadSignature
	}
	return nil
}

// Fingerprint returns the OpenSSH SHA256 fingerprint of an identity key,
// "SHA256:" followed by unpadded base64, exactly as `ssh-keygen -l` prints
// it, so users can compare it with their agent's listing.
func Fingerprint(pub ed25519.PublicKey) string {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic("identity: invalid Ed25519 public key")
	}
	h := sha256.Sum256(k.Marshal())
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}
