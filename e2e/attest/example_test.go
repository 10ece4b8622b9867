package attest_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/securejingle/securejingle/e2e/attest"
)

func ExampleStatement_Bytes() {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	key := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	st := attest.Statement{JID: "alice@Example.ORG", Key: key}
	fmt.Print(string(st.Bytes()))
	// Output:
	// securejingle account statement v1
	// jid: alice@example.org
	// key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk
	// fingerprint: SHA256:eVkCKHnc5RjanBduU2vmOecbFl3M9wOgHdk24INJytY
}

func ExampleSAS() {
	key := func(first byte) ed25519.PublicKey {
		seed := make([]byte, ed25519.SeedSize)
		for i := range seed {
			seed[i] = byte(i + 1)
		}
		seed[0] = first
		return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	}
	alice := attest.Statement{JID: "alice@example.org", Key: key(0x01)}
	bob := attest.Statement{JID: "bob@example.net", Key: key(0xfe)}
	onAlice, _ := attest.SAS(alice, bob) // own statement first
	onBob, _ := attest.SAS(bob, alice)
	fmt.Println(onAlice)
	fmt.Println(onAlice == onBob)
	// Output:
	// 55439 92940 33018 62606 02062 18995
	// true
}

func ExampleFingerprintBlocks() {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	key := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	fmt.Println(attest.FingerprintBlocks(key))
	fmt.Println(attest.VerifyURI{JID: "alice@example.org", Key: key})
	// Output:
	// 79590228 79DCE518 DA9C176E 536BE639 E71B165D CCF703A0 1DD936E0 8349CAD6
	// xmpp:alice@example.org?sj-verify;k=ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ
}
