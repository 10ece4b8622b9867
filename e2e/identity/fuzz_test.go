package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzArmoredVerify: whatever ParseArmored accepts can be verified and
// fingerprinted without a panic, and the armored SSHSIG of the testdata
// message still verifies after Armor and ParseArmored again.
func FuzzArmoredVerify(f *testing.F) {
	pub, msg, armored, armored256 := readTestdata(f)
	f.Add(armored)
	f.Add(armored256)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ns, sig, err := ParseArmored(b)
		if err != nil {
			return
		}
		_ = Fingerprint(p)
		ok := Verify(p, ns, msg, sig) == nil
		p2, ns2, sig2, err := ParseArmored(Armor(p, ns, sig))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if ok2 := Verify(p2, ns2, msg, sig2) == nil; ok2 != ok {
			t.Fatalf("verification changed in a round trip: %v -> %v", ok, ok2)
		}
		if ok && !p.Equal(pub) {
			t.Fatal("a signature of another key verified the testdata message")
		}
	})
}

// FuzzKeyFile feeds any bytes as an OpenSSH private key file to LoadFile
// and PublicKeyFromFile: no panic, every error classified where the
// documentation promises one, and both agree on the public key of
// whatever loads, which then signs verifiably.
func FuzzKeyFile(f *testing.F) {
	n := 0
	for _, name := range []string{"fuzz-key-ed25519", "fuzz-key-ed25519-pass", "fuzz-key-ecdsa", "sshsig-key.pub"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		n++
	}
	if n == 0 {
		f.Fatal("no seeds in testdata")
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "key")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// No passphrase callback: a fuzzed KDF round count must not be run.
		s, err := LoadFile(path, nil)
		pub, perr := PublicKeyFromFile(path)
		if err != nil {
			if errors.Is(err, ErrIncorrectPassphrase) {
				t.Fatalf("no passphrase was tried, got %v", err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("LoadFile accepted what PublicKeyFromFile rejects: %v", perr)
		}
		if !bytes.Equal(s.PublicKey(), pub) || len(pub) != ed25519.PublicKeySize {
			t.Fatal("LoadFile and PublicKeyFromFile disagree on the key")
		}
		_ = Fingerprint(pub)
		sig, err := s.Sign(NamespaceBundle, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		if Verify(pub, NamespaceBundle, []byte("m"), sig) != nil {
			t.Fatal("a loaded key's signature does not verify")
		}
		a := Armor(pub, NamespaceBundle, sig)
		if p2, _, _, err := ParseArmored(a); err != nil || !p2.Equal(pub) {
			t.Fatalf("armored signature of a loaded key: %v", err)
		}
	})
}
