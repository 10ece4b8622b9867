package trust_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

func Example() {
	ts := trust.New(store.NewMemory(), nil)
	oldKey, _, _ := ed25519.GenerateKey(nil)
	newKey, _, _ := ed25519.GenerateKey(nil)

	r, ev, _ := ts.Observe("juliet@capulet.example", 1, oldKey)
	fmt.Println(ev.Kind, r.Level, r.Accepts(oldKey))

	r, ev, _ = ts.Observe("juliet@capulet.example", 1, newKey)
	fmt.Println(ev.Kind, r.Level, r.Accepts(newKey))

	// The user compares fingerprints with Juliet and confirms the new key.
	r, _ = ts.Verify("juliet@capulet.example", 1, newKey, trust.MethodFingerprint)
	fmt.Println(r.Level, r.Method, r.Accepts(newKey))
	// Output:
	// first-use tofu true
	// key-changed changed false
	// verified fingerprint true
}
