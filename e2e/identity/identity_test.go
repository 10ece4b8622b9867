package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testSigner checks that s makes signatures that verify, and that every
// kind of mismatch is rejected with ErrBadSignature.
func testSigner(t *testing.T, s Signer) {
	t.Helper()
	pub := s.PublicKey()
	msg := []byte("a device bundle")
	sig, err := s.Sign(NamespaceBundle, msg)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if len(sig) != SignatureSize {
		t.Fatalf("signature length %d, want %d", len(sig), SignatureSize)
	}
	if err := Verify(pub, NamespaceBundle, msg, sig); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !ed25519.Verify(pub, SignedData(NamespaceBundle, msg), sig) {
		t.Fatal("signature is not over SignedData")
	}

	other, err := GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return c
	}
	bad := map[string]struct {
		pub       ed25519.PublicKey
		namespace string
		msg, sig  []byte
	}{
		"wrong namespace":     {pub, NamespacePrekey, msg, sig},
		"tampered message":    {pub, NamespaceBundle, flip(msg, 0), sig},
		"longer message":      {pub, NamespaceBundle, append(append([]byte(nil), msg...), 0), sig},
		"tampered sig first":  {pub, NamespaceBundle, msg, flip(sig, 0)},
		"tampered sig middle": {pub, NamespaceBundle, msg, flip(sig, 31)},
		"tampered sig last":   {pub, NamespaceBundle, msg, flip(sig, 63)},
		"short sig":           {pub, NamespaceBundle, msg, sig[:63]},
		"long sig":            {pub, NamespaceBundle, msg, append(append([]byte(nil), sig...), 0)},
		"wrong key":           {other.PublicKey(), NamespaceBundle, msg, sig},
		"short key":           {pub[:31], NamespaceBundle, msg, sig},
		"nil key":             {nil, NamespaceBundle, msg, sig},
	}
	for name, c := range bad {
		if err := Verify(c.pub, c.namespace, c.msg, c.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}

	// PublicKey must hand out a copy.
	pub[0] ^= 0xff
	if err := Verify(s.PublicKey(), NamespaceBundle, msg, sig); err != nil {
		t.Fatalf("PublicKey returned the signer's own slice: %v", err)
	}
}

func TestMemorySigner(t *testing.T) {
	s, err := GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	testSigner(t, s)

	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	s = NewMemorySigner(priv)
	clear(priv) // the signer keeps its own copy
	testSigner(t, s)
	if got, want := s.PublicKey(), ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey); !want.Equal(got) {
		t.Fatal("NewMemorySigner lost its key when the caller's copy was cleared")
	}
}

func TestSignerDoesNotPrintKey(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = 0xab
	}
	s := NewMemorySigner(ed25519.NewKeyFromSeed(seed))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		out := fmt.Sprintf(verb, s)
		if strings.Contains(strings.ToLower(out), "abab") || strings.Contains(out, "171") {
			t.Errorf("%s prints key material: %s", verb, out)
		}
		if !strings.Contains(out, Fingerprint(s.PublicKey())) && verb != "%x" {
			t.Errorf("%s does not name the key: %s", verb, out)
		}
	}
}

func TestNewMemorySignerPanicsOnBadKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewMemorySigner(make(ed25519.PrivateKey, 32))
}

func TestGenerateAndLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	g, err := Generate(path, nil, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	testSigner(t, g)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("private key mode %#o, want 0600", perm)
	}
	pubLine, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pk, comment, _, rest, err := ssh.ParseAuthorizedKey(pubLine)
	if err != nil || len(rest) != 0 {
		t.Fatalf("ParseAuthorizedKey: %v, rest %q", err, rest)
	}
	if comment != "alice@example.org" {
		t.Errorf("comment %q", comment)
	}
	if got, _ := ed25519PublicKey(pk, "pub"); !g.PublicKey().Equal(got) {
		t.Fatal(".pub file holds another key")
	}

	s, err := LoadFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.PublicKey().Equal(g.PublicKey()) {
		t.Fatal("loaded key differs from generated key")
	}
	testSigner(t, s)

	pub, err := PublicKeyFromFile(path)
	if err != nil || !pub.Equal(g.PublicKey()) {
		t.Fatalf("PublicKeyFromFile = %v, %v", pub, err)
	}
}

func TestGenerateRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id")
	if _, err := Generate(path, nil, ""); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if _, err := Generate(path, nil, ""); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Generate: %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("existing key was overwritten")
	}

	// A stray .pub file also blocks, and no private key is left behind.
	path2 := filepath.Join(dir, "id2")
	if err := os.WriteFile(path2+".pub", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(path2, nil, ""); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Generate over .pub: %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(path2); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("private key left behind: %v", err)
	}

	if _, err := Generate(filepath.Join(dir, "id3"), nil, "bad\ncomment"); err == nil {
		t.Fatal("comment with newline accepted")
	}
}

func TestPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	g, err := Generate(path, []byte("right horse"), "")
	if err != nil {
		t.Fatal(err)
	}
	pass := func(p string) func() ([]byte, error) {
		return func() ([]byte, error) { return []byte(p), nil }
	}

	s, err := LoadFile(path, pass("right horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.PublicKey().Equal(g.PublicKey()) {
		t.Fatal("wrong key loaded")
	}
	testSigner(t, s)

	if _, err := LoadFile(path, pass("wrong horse")); !errors.Is(err, ErrIncorrectPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrIncorrectPassphrase", err)
	}
	var pm *ssh.PassphraseMissingError
	if _, err := LoadFile(path, nil); !errors.As(err, &pm) {
		t.Fatalf("nil passphrase func: %v, want *ssh.PassphraseMissingError", err)
	}
	errPrompt := errors.New("no terminal")
	if _, err := LoadFile(path, func() ([]byte, error) { return nil, errPrompt }); !errors.Is(err, errPrompt) {
		t.Fatalf("failing passphrase func: %v", err)
	}
	// The public key is readable without the passphrase.
	pub, err := PublicKeyFromFile(path)
	if err != nil || !pub.Equal(g.PublicKey()) {
		t.Fatalf("PublicKeyFromFile = %v, %v", pub, err)
	}
}

func writeKey(t *testing.T, key any) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFileRejectsOtherKeyTypes(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]any{"rsa": rsaKey, "ecdsa": ecKey} {
		path := writeKey(t, key)
		if _, err := LoadFile(path, nil); !errors.Is(err, ErrKeyType) {
			t.Errorf("%s: LoadFile = %v, want ErrKeyType", name, err)
		}
		if _, err := PublicKeyFromFile(path); !errors.Is(err, ErrKeyType) {
			t.Errorf("%s: PublicKeyFromFile = %v, want ErrKeyType", name, err)
		}
	}
	// An encrypted key of another type is rejected before any prompt.
	block, err := ssh.MarshalPrivateKeyWithPassphrase(ecKey, "", []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "enc")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	prompted := false
	_, err = LoadFile(path, func() ([]byte, error) { prompted = true; return []byte("p"), nil })
	if !errors.Is(err, ErrKeyType) || prompted {
		t.Errorf("encrypted ecdsa: LoadFile = %v (prompted %v), want ErrKeyType without prompt", err, prompted)
	}
}

func TestLoadFileRejectsOpenPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	if _, err := Generate(path, nil, ""); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(path, nil); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("mode %#o: LoadFile = %v, want ErrKeyPermissions", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path, nil); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadFileRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id")
	if _, err := Generate(path, nil, ""); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	cases := map[string][]byte{
		"empty":          nil,
		"not pem":        []byte("hello"),
		"trailing data":  append(append([]byte(nil), good...), "junk\n"...),
		"truncated body": append(append([]byte(nil), good[:len(good)/2]...), good[len(good)-40:]...),
	}
	for name, b := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(p, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "missing"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}
