package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// SAS returns the short authentication string of two accounts: 6 groups
// of 5 decimal digits ("01234 56789 ..."), about 99.7 bits, that both users
// compute from their own account statement and the contact's (bare JID and
// account identity key each) and compare aloud or side by side. It names
// the accounts, not a session or a device: it is the same on both ends at
// any time, before and after any message, for every device the account
// keys certify. Equal strings mean each side holds the other's real
// account key, unless someone chose two keys whose strings collide: about
// 2^50 evaluations of a memory-hard function (64 MiB each, see
// docs/protocol.md section 9.7); the fingerprint and the QR code compare
// the full key.
//
// The order of a and b does not matter: the input keying material is the
// two canonical statements ([Statement.Bytes]), each prefixed with its
// 32-bit big-endian length, the lesser (in byte order) first. It is
// stretched with Argon2id (RFC 9106; password the input, salt [LabelSAS],
// 2 passes, 64 MiB, 1 lane, 32 bytes), and the digits are HKDF-SHA256
// (RFC 5869) output with that key, no salt and info [LabelSAS], read as
// 32-bit big-endian integers; values of 2^32 - (2^32 mod 100000) or more
// are skipped so that every group is uniform on 00000-99999. One SAS
// takes tens of milliseconds and 64 MiB: compute it when shown, not per
// message.
//
// SAS returns an error wrapping [ErrInvalidJID] or [ErrInvalidKey] if a
// or b is not a valid statement.
func SAS(a, b Statement) (string, error) {
	x, err := a.marshal()
	if err != nil {
		return "", err
	}
	y, err := b.marshal()
	if err != nil {
		return "", err
	}
	// Both statements are public; ordering them needs no constant time.
	if bytes.Compare(x, y) > 0 {
		x, y = y, x
	}
	ikm := make([]byte, 0, 8+len(x)+len(y))
	ikm = binary.BigEndian.AppendUint32(ikm, uint32(len(x)))
	ikm = append(ikm, x...)
	ikm = binary.BigEndian.AppendUint32(ikm, uint32(len(y)))
	ikm = append(ikm, y...)
	// Memory-hard stretching: the SAS is static, so an attacker placing
	// keys at first contact may search offline for two colliding ones.
	prk := argon2.IDKey(ikm, []byte(LabelSAS), sasTime, sasMemory, 1, 32)
	defer clear(prk)
	// A first draw of 16 words needs 11 rejections (each with probability
	// about 1.6e-5) to fall short; only then is the longest HKDF-SHA256
	// output derived. HKDF output of any length starts with the shorter
	// output, so the second draw extends the first.
	for _, n := range []int{64, 255 * sha256.Size} {
		okm, err := hkdf.Key(sha256.New, prk, nil, LabelSAS, n)
		if err != nil {
			return "", fmt.Errorf("attest: SAS: HKDF: %w", err)
		}
		if s, ok := sasFromOKM(okm); ok {
			return s, nil
		}
	}
	return "", errors.New("attest: SAS: HKDF output exhausted (more than 2000 rejected words; this cannot happen with SHA-256)")
}

// sasFromOKM reads the SAS groups from HKDF output by rejection sampling.
// It reports false if okm has too few acceptable words.
func sasFromOKM(okm []byte) (string, bool) {
	groups := make([]string, 0, sasGroups)
	for i := 0; i+4 <= len(okm) && len(groups) < sasGroups; i += 4 {
		v := binary.BigEndian.Uint32(okm[i:])
		if v >= sasLimit {
			continue
		}
		groups = append(groups, fmt.Sprintf("%0*d", sasGroupDigits, v%sasModulus))
	}
	return strings.Join(groups, " "), len(groups) == sasGroups
}

// FingerprintBlocks returns the account key fingerprint as 8 groups of 8
// upper-case hex digits separated by spaces, for reading aloud. It is the
// SHA-256 of the SSH wire encoding of the public key (RFC 8709), the same
// hash that identity.Fingerprint prints in base64. It panics if pub is not
// 32 bytes.
func FingerprintBlocks(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic("attest: invalid Ed25519 public key")
	}
	h := sha256.Sum256(sshWireKey(pub))
	s := strings.ToUpper(hex.EncodeToString(h[:]))
	groups := make([]string, 0, 8)
	for i := 0; i < len(s); i += 8 {
		groups = append(groups, s[i:i+8])
	}
	return strings.Join(groups, " ")
}
