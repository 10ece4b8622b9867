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

	// Juliet's account key is pinned on first contact.
	r, ev, _ := ts.Observe("juliet@capulet.example", oldKey)
	fmt.Println(ev.Kind, r.Level, r.Accepts(oldKey))

	// Another account key for her JID is held back, the pinned one still works.
	r, ev, _ = ts.Observe("juliet@capulet.example", newKey)
	fmt.Println(ev.Kind, r.Level, r.Accepts(newKey), r.Accepts(oldKey))

	// The user compares fingerprints with Juliet and confirms the new key.
	r, _ = ts.Verify("juliet@capulet.example", newKey, trust.MethodFingerprint)
	fmt.Println(r.Level, r.Method, r.Accepts(newKey))

	// Distrusting her is reported as such.
	r, ev, _ = ts.Distrust("juliet@capulet.example")
	fmt.Println(ev.Kind, r.Level, r.Accepts(newKey))
	// Output:
	// first-use tofu true
	// key-changed changed false true
	// verified fingerprint true
	// distrusted distrusted false
}
