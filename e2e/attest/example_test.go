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
	st := attest.Statement{JID: "alice@Example.ORG", Device: 1234, Key: key}
	fmt.Print(string(st.Bytes()))
	// Output:
	// securejingle identity statement v0
	// jid: alice@example.org
	// device: 1234
	// key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk
	// fingerprint: SHA256:eVkCKHnc5RjanBduU2vmOecbFl3M9wOgHdk24INJytY
}

func ExampleSAS() {
	transcriptHash := make([]byte, 32)
	fmt.Println(attest.SAS(transcriptHash))
	// Output:
	// 06134 86682 82461 02833 75339
}

func ExampleFingerprintBlocks() {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	key := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	fmt.Println(attest.FingerprintBlocks(key))
	fmt.Println(attest.VerifyURI{JID: "alice@example.org", Device: 1234, Key: key})
	// Output:
	// 79590228 79DCE518 DA9C176E 536BE639 E71B165D CCF703A0 1DD936E0 8349CAD6
	// xmpp:alice@example.org?sj-verify;d=1234;k=ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ
}
