package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Armored SSHSIG constants from OpenSSH PROTOCOL.sshsig, sections 2 and 3.
const (
	sshsigVersion  = 1
	armorBegin     = "-----BEGIN SSH SIGNATURE-----"
	armorEnd       = "-----END SSH SIGNATURE-----"
	armorLineWidth = 70 // what ssh-keygen writes
)

var (
	// ErrMalformedSignature is returned by [ParseArmored] for input that is
	// not a well-formed armored SSH signature.
	ErrMalformedSignature = errors.New("identity: malformed SSH signature")

	// ErrUnsupportedSignature is returned by [ParseArmored] for a
	// well-formed SSH signature this package does not accept: another
	// version, key type or hash algorithm than version 1, ssh-ed25519 and
	// sha512.
	ErrUnsupportedSignature = errors.New("identity: unsupported SSH signature")
)

// Armor returns the armored SSHSIG form (OpenSSH PROTOCOL.sshsig) of sig, a
// raw signature made by a [Signer] with key pub for namespace, as written by
// `ssh-keygen -Y sign` and accepted by `ssh-keygen -Y verify`. It ends with
// a newline. Armor panics if pub or sig has the wrong length or namespace is
// empty; it does not check that sig is valid.
func Armor(pub ed25519.PublicKey, namespace string, sig []byte) []byte {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || namespace == "" {
		panic("identity: invalid Armor arguments")
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic("identity: invalid Ed25519 public key")
	}
	var sigBlob []byte
	sigBlob = appendString(sigBlob, []byte(ssh.KeyAlgoED25519))
	sigBlob = appendString(sigBlob, sig)

	var blob []byte
	blob = append(blob, sshsigMagic...)
	blob = binary.BigEndian.AppendUint32(blob, sshsigVersion)
	blob = appendString(blob, sshPub.Marshal())
	blob = appendString(blob, []byte(namespace))
	blob = appendString(blob, nil) // reserved
	blob = appendString(blob, []byte(sshsigHashAlg))
	blob = appendString(blob, sigBlob)

	b64 := base64.StdEncoding.EncodeToString(blob)
	var out bytes.Buffer
	out.WriteString(armorBegin + "\n")
	for len(b64) > armorLineWidth {
		out.WriteString(b64[:armorLineWidth] + "\n")
		b64 = b64[armorLineWidth:]
	}
	out.WriteString(b64 + "\n")
	out.WriteString(armorEnd + "\n")
	return out.Bytes()
}

// ParseArmored parses an armored SSHSIG signature and returns the signer's
// public key, the namespace and the raw 64-byte Ed25519 signature, ready for
// [Verify]. It does not verify the signature.
//
// Parsing is strict: the BEGIN and END lines must be exactly as OpenSSH
// writes them, with only base64 lines (of any width, "\n" or "\r\n" ends)
// between them and at most one line ending after; the base64 must be
// canonical; every length must be exact and nothing may follow the last
// field. Anything else gives an error wrapping [ErrMalformedSignature]. A
// version other than 1, a key or signature type other than ssh-ed25519, a
// non-empty reserved field or a hash algorithm other than sha512 gives an
// error wrapping [ErrUnsupportedSignature]; so do real RSA, ECDSA and
// security key signatures from `ssh-keygen -Y sign`, whose key and
// signature blobs are not parsed further.
func ParseArmored(b []byte) (pub ed25519.PublicKey, namespace string, sig []byte, err error) {
	blob, err := dearmor(b)
	if err != nil {
		return nil, "", nil, err
	}
	r := sshReader{b: blob}
	magic := r.bytes(len(sshsigMagic))
	version := r.uint32()
	pubBlob := r.string()
	ns := r.string()
	reserved := r.string()
	hashAlg := r.string()
	sigBlob := r.string()
	if r.failed || len(r.b) != 0 {
		return nil, "", nil, fmt.Errorf("%w: bad framing", ErrMalformedSignature)
	}
	if string(magic) != sshsigMagic {
		return nil, "", nil, fmt.Errorf("%w: bad magic", ErrMalformedSignature)
	}
	if version != sshsigVersion {
		return nil, "", nil, fmt.Errorf("%w: version %d", ErrUnsupportedSignature, version)
	}
	if len(ns) == 0 {
		return nil, "", nil, fmt.Errorf("%w: empty namespace", ErrMalformedSignature)
	}
	if len(reserved) != 0 {
		return nil, "", nil, fmt.Errorf("%w: non-empty reserved field", ErrUnsupportedSignature)
	}
	if string(hashAlg) != sshsigHashAlg {
		return nil, "", nil, fmt.Errorf("%w: hash algorithm %q, only %q is accepted", ErrUnsupportedSignature, hashAlg, sshsigHashAlg)
	}

	// The key type decides the layout of the rest of the key and of the
	// signature blob (RSA and ECDSA keys have more fields, security key
	// signatures carry flags and a counter), so another type is
	// unsupported before anything else is read.
	pr := sshReader{b: pubBlob}
	keyType := pr.string()
	if pr.failed {
		return nil, "", nil, fmt.Errorf("%w: bad public key", ErrMalformedSignature)
	}
	if string(keyType) != ssh.KeyAlgoED25519 {
		return nil, "", nil, fmt.Errorf("%w: key type %q, only %q is accepted", ErrUnsupportedSignature, keyType, ssh.KeyAlgoED25519)
	}
	key := pr.string()
	if pr.failed || len(pr.b) != 0 {
		return nil, "", nil, fmt.Errorf("%w: bad public key", ErrMalformedSignature)
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, "", nil, fmt.Errorf("%w: bad public key length", ErrMalformedSignature)
	}

	sr := sshReader{b: sigBlob}
	sigType := sr.string()
	rawSig := sr.string()
	if sr.failed || len(sr.b) != 0 {
		return nil, "", nil, fmt.Errorf("%w: bad signature blob", ErrMalformedSignature)
	}
	if string(sigType) != ssh.KeyAlgoED25519 {
		return nil, "", nil, fmt.Errorf("%w: signature type %q", ErrUnsupportedSignature, sigType)
	}
	if len(rawSig) != ed25519.SignatureSize {
		return nil, "", nil, fmt.Errorf("%w: bad signature length", ErrMalformedSignature)
	}
	return append(ed25519.PublicKey(nil), key...), string(ns), append([]byte(nil), rawSig...), nil
}

// dearmor strips the armor lines and decodes the base64 between them.
func dearmor(b []byte) ([]byte, error) {
	lines := bytes.Split(b, []byte("\n"))
	// One line ending after END is allowed, giving an empty last element.
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	for i, l := range lines {
		lines[i] = bytes.TrimSuffix(l, []byte("\r"))
	}
	if len(lines) < 3 || string(lines[0]) != armorBegin || string(lines[len(lines)-1]) != armorEnd {
		return nil, fmt.Errorf("%w: missing armor lines", ErrMalformedSignature)
	}
	var b64 []byte
	for _, l := range lines[1 : len(lines)-1] {
		if len(l) == 0 {
			return nil, fmt.Errorf("%w: empty line in armor", ErrMalformedSignature)
		}
		for _, c := range l {
			if !isBase64Char(c) {
				return nil, fmt.Errorf("%w: bad character in armor", ErrMalformedSignature)
			}
		}
		b64 = append(b64, l...)
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(string(b64))
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", ErrMalformedSignature)
	}
	return blob, nil
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

// sshReader reads SSH wire fields (RFC 4251, section 5). After the first
// short read, failed is set and every further read returns nil.
type sshReader struct {
	b      []byte
	failed bool
}

func (r *sshReader) bytes(n int) []byte {
	if r.failed || n < 0 || len(r.b) < n {
		r.failed = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *sshReader) uint32() uint32 {
	v := r.bytes(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *sshReader) string() []byte {
	n := r.uint32()
	if r.failed || uint64(n) > uint64(len(r.b)) {
		r.failed = true
		return nil
	}
	return r.bytes(int(n))
}
