package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/agent"
)

func TestSelectAgentKey(t *testing.T) {
	kr := agent.NewKeyring()
	add := func(comment string) ed25519.PublicKey {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := kr.Add(agent.AddedKey{PrivateKey: priv, Comment: comment}); err != nil {
			t.Fatal(err)
		}
		return pub
	}
	if _, err := SelectAgentKey(kr, ""); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty agent: %v", err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := kr.Add(agent.AddedKey{PrivateKey: ec, Comment: "work"}); err != nil {
		t.Fatal(err)
	}
	work := add("work")
	if got, err := SelectAgentKey(kr, ""); err != nil || !got.Equal(work) {
		t.Fatalf("only Ed25519 key: %v", err)
	}
	home := add("home")
	add("dup")
	add("dup")
	for sel, want := range map[string]ed25519.PublicKey{
		"work":            work, // the ECDSA key with the same comment is ignored
		"home":            home,
		Fingerprint(home): home,
	} {
		got, err := SelectAgentKey(kr, sel)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v", sel, err)
		}
	}
	for sel, want := range map[string]error{
		"":                                 ErrAmbiguousKey,
		"dup":                              ErrAmbiguousKey,
		"nope":                             ErrNoKey,
		"Work":                             ErrNoKey,
		"SHA256:AAAA":                      ErrNoKey,
		Fingerprint(home)[:20]:             ErrNoKey,
		strings.ToLower(Fingerprint(home)): ErrNoKey,
	} {
		_, err := SelectAgentKey(kr, sel)
		if !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", sel, err, want)
		} else if sel != "dup" && !strings.Contains(err.Error(), Fingerprint(home)) {
			t.Errorf("%q: error %q does not list the keys", sel, err)
		}
	}
}
