package attest

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// SAS returns the short authentication string of a session: 5 groups of 5
// decimal digits ("01234 56789 ..."), about 83 bits, that both peers compute
// from the same session transcript hash and compare aloud or side by side.
// A man in the middle would have to make two different transcripts give the
// same string.
//
// The digits are HKDF-SHA256 (RFC 5869) output with the transcript hash as
// input keying material, no salt and info [LabelSAS], read as 32-bit
// big-endian integers; values of 2^32 - (2^32 mod 100000) or more are
// skipped so that every group is uniform on 00000-99999.
//
// SAS panics if transcriptHash is shorter than 32 bytes: it must be the
// hash of a transcript, not the transcript's secret-free prefix.
func SAS(transcriptHash []byte) string {
	if len(transcriptHash) < sha256.Size {
		panic("attest: SAS needs a transcript hash of at least 32 bytes")
	}
	// A first draw of 16 words needs 12 rejections (each with probability
	// about 1.6e-5) to fall short; only then is the longest HKDF-SHA256
	// output derived. HKDF output of any length starts with the shorter
	// output, so the second draw extends the first.
	for _, n := range []int{64, 255 * sha256.Size} {
		okm, err := hkdf.Key(sha256.New, transcriptHash, nil, LabelSAS, n)
		if err != nil {
			panic("attest: HKDF: " + err.Error())
		}
		if s, ok := sasFromOKM(okm); ok {
			return s
		}
	}
	panic("attest: SAS: HKDF output exhausted")
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

// FingerprintBlocks returns the identity key fingerprint as 8 groups of 8
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
