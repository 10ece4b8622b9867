package identity

import (
	"errors"
	"os"
	"testing"
)

// TestRegressParseArmoredRSAECDSA is finding 7 of the first review:
// ParseArmored rejected real RSA and ECDSA signatures from `ssh-keygen -Y
// sign` as a malformed "bad public key" instead of the documented
// ErrUnsupportedSignature. The fixtures are real ssh-keygen output (see
// testdata/README.md).
func TestRegressParseArmoredRSAECDSA(t *testing.T) {
	for _, name := range []string{"sshsig-rsa.sig", "sshsig-ecdsa.sig"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			checkUnsupportedNotMalformed(t, b)
		})
	}
}

// checkUnsupportedNotMalformed checks that a well-formed signature of
// another key type is unsupported, not malformed.
func checkUnsupportedNotMalformed(t *testing.T, armored []byte) {
	t.Helper()
	pub, ns, sig, err := ParseArmored(armored)
	if !errors.Is(err, ErrUnsupportedSignature) || errors.Is(err, ErrMalformedSignature) {
		t.Fatalf("ParseArmored: %v, want only ErrUnsupportedSignature", err)
	}
	if pub != nil || ns != "" || sig != nil {
		t.Fatal("ParseArmored returned values with an error")
	}
}
