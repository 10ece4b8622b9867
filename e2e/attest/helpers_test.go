package attest

import (
	"crypto/ed25519"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
)

// testSeed gives a fixed identity key so statements are reproducible.
var testSeed = [32]byte{
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
}

func testKey() ed25519.PrivateKey { return newKeyFromSeed(testSeed) }

func newKeyFromSeed(seed [32]byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seed[:]) }

func testStatement() Statement {
	return Statement{JID: "alice@example.org", Key: testKey().Public().(ed25519.PublicKey)}
}

// keySigner is an in-memory identity.Signer for tests.
type keySigner struct{ priv ed25519.PrivateKey }

func (s keySigner) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

func (s keySigner) Sign(namespace string, message []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, identity.SignedData(namespace, message)), nil
}

var _ identity.Signer = keySigner{}

func mustSelf(t testing.TB, priv ed25519.PrivateKey, st Statement) Attestation {
	t.Helper()
	a, err := SignSelf(keySigner{priv}, st)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// otherKey returns a second fixed account key, not testKey's.
func otherKey() ed25519.PublicKey {
	seed := testSeed
	seed[0] ^= 0xff
	return newKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

// bobStatement is the statement of a second account, for the SAS.
func bobStatement() Statement { return Statement{JID: "bob@example.net", Key: otherKey()} }
