package identity_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/securejingle/securejingle/e2e/identity"
)

// A signature is made for one namespace and verifies only under it; its
// armored form is what `ssh-keygen -Y verify` reads.
func Example() {
	seed := make([]byte, ed25519.SeedSize) // a fixed key, for a stable output
	s := identity.NewMemorySigner(ed25519.NewKeyFromSeed(seed))

	msg := []byte("alice@example.org device 1")
	sig, err := s.Sign(identity.NamespaceStatement, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(identity.Fingerprint(s.PublicKey()))
	fmt.Println(identity.Verify(s.PublicKey(), identity.NamespaceStatement, msg, sig))
	fmt.Println(identity.Verify(s.PublicKey(), identity.NamespaceBundle, msg, sig))

	armored := identity.Armor(s.PublicKey(), identity.NamespaceStatement, sig)
	_, ns, _, err := identity.ParseArmored(armored)
	fmt.Println(ns, err)
	// Output:
	// SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo
	// <nil>
	// identity: bad signature
	// statement.v1@securejingle.org <nil>
}
