package identity

import (
	"crypto/ed25519"
	"testing"
)

func BenchmarkSignMemory(b *testing.B) {
	s := NewMemorySigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	msg := make([]byte, 256)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := s.Sign(NamespaceBundle, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignAgent(b *testing.B) {
	_, priv := newEd25519(b)
	s, closer, err := DialAgent(serveAgent(b, newKeyring(b, priv)))
	if err != nil {
		b.Fatal(err)
	}
	defer closer.Close()
	msg := make([]byte, 256)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := s.Sign(NamespaceBundle, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s := NewMemorySigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	msg := make([]byte, 256)
	sig, err := s.Sign(NamespaceBundle, msg)
	if err != nil {
		b.Fatal(err)
	}
	pub := s.PublicKey()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := Verify(pub, NamespaceBundle, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseArmored(b *testing.B) {
	_, _, armored, _ := readTestdata(b)
	for b.Loop() {
		if _, _, _, err := ParseArmored(armored); err != nil {
			b.Fatal(err)
		}
	}
}
