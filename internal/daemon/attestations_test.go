package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
)

// attestTestdata copies files of e2e/attest/testdata into dir.
func attestTestdata(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "..", "e2e", "attest", "testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

const attestationConfig = `
[[keys.attestation]]
type = "openpgp"
file = "openpgp-ed25519.sig.asc"

[[keys.attestation]]
type = "x509-cms"
file = "sub/cms-ec.der"

[[keys.attestation]]
type = "keybase-proof"
file = "` + "%ABS%" + `"

[trust]
openpgp_keys = ["openpgp-ed25519.pub.asc", "openpgp-rsa3072.pub.asc"]
x509_roots = "cms-ca.pem"
`

func TestAttestationConfig(t *testing.T) {
	dir := t.TempDir()
	attestTestdata(t, dir, "openpgp-ed25519.sig.asc", "openpgp-ed25519.pub.asc", "openpgp-rsa3072.pub.asc", "cms-ca.pem")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	attestTestdata(t, filepath.Join(dir, "sub"), "cms-ec.der")
	abs := filepath.Join(t.TempDir(), "proof.txt")
	if err := os.WriteFile(abs, []byte("proof"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := minimal + strings.Replace(attestationConfig, "%ABS%", abs, 1)
	c, err := Parse([]byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []AttestationConfig{
		{"openpgp", filepath.Join(dir, "openpgp-ed25519.sig.asc")},
		{"x509-cms", filepath.Join(dir, "sub", "cms-ec.der")},
		{"keybase-proof", abs},
	}
	if len(c.Keys.Attestation) != len(want) {
		t.Fatalf("attestations %+v", c.Keys.Attestation)
	}
	for i := range want {
		if c.Keys.Attestation[i] != want[i] {
			t.Errorf("attestation %d: %+v, want %+v", i, c.Keys.Attestation[i], want[i])
		}
	}
	if len(c.Trust.OpenPGPKeys) != 2 || c.Trust.OpenPGPKeys[1] != filepath.Join(dir, "openpgp-rsa3072.pub.asc") ||
		c.Trust.X509Roots != filepath.Join(dir, "cms-ca.pem") {
		t.Fatalf("trust %+v", c.Trust)
	}
	pgp, err := c.Trust.openPGPVerifier()
	if err != nil || len(pgp.Keyring) != 2 {
		t.Fatalf("keyring: %v", err)
	}
	// The testdata signatures are over the testdata statement.
	stText, err := os.ReadFile(filepath.Join("..", "..", "e2e", "attest", "testdata", "statement.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.ParseStatement(stText)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, "openpgp-ed25519.sig.asc"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.Trust.Registry()
	if err != nil {
		t.Fatal(err)
	}
	res := reg.Verify(st, []attest.Attestation{{Type: "openpgp", Data: sig}, {Type: "keybase-proof", Data: []byte("proof")}})
	if res[0].Status != attest.Verified || res[1].Status != attest.Unsupported {
		t.Fatalf("results %v", res)
	}
}

func TestAttestationConfigErrors(t *testing.T) {
	dir := t.TempDir()
	attestTestdata(t, dir, "openpgp-ed25519.sig.asc", "openpgp-ed25519.pub.asc", "cms-ca.pem")
	big := filepath.Join(dir, "big.asc")
	if err := os.WriteFile(big, make([]byte, maxAttestationFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	entry := func(typ, file string) string {
		return "[[keys.attestation]]\ntype = \"" + typ + "\"\nfile = \"" + file + "\"\n"
	}
	for _, tc := range []struct {
		extra, key string
	}{
		{entry("openpgp", "missing.asc"), "keys.attestation[0].file"},
		{entry("openpgp", "big.asc"), "keys.attestation[0].file"},
		{entry("openpgp", ""), "keys.attestation[0].file"},
		{entry("OpenPGP", "openpgp-ed25519.sig.asc"), "keys.attestation[0].type"},
		{entry("self", "openpgp-ed25519.sig.asc"), "keys.attestation[0].type"},
		{entry("openpgp", "openpgp-ed25519.sig.asc") + entry("x", "nope"), "keys.attestation[1].file"},
		{strings.Repeat(entry("openpgp", "openpgp-ed25519.sig.asc"), maxConfAttestations+1), "keys.attestation"},
		{"[trust]\nopenpgp_keys = [\"missing.asc\"]\n", "trust.openpgp_keys"},
		{"[trust]\nopenpgp_keys = [\"cms-ca.pem\"]\n", "trust.openpgp_keys"},
		{"[trust]\nx509_roots = \"missing.pem\"\n", "trust.x509_roots"},
		{"[trust]\nx509_roots = \"openpgp-ed25519.pub.asc\"\n", "trust.x509_roots"},
	} {
		_, err := Parse([]byte(minimal+tc.extra), dir)
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrConfig) {
			t.Errorf("want a FieldError for %s, got %v", tc.key, err)
			continue
		}
		if fe.Key != tc.key {
			t.Errorf("error %v names %s, want %s", err, fe.Key, tc.key)
		}
	}
	for _, extra := range []string{
		"[[keys.attestation]]\ntype = \"openpgp\"\nfile = \"openpgp-ed25519.sig.asc\"\npath = \"x\"\n",
		"[trust]\nopenpgp_key = [\"openpgp-ed25519.pub.asc\"]\n",
	} {
		var uk *UnknownKeysError
		if _, err := Parse([]byte(minimal+extra), dir); !errors.As(err, &uk) {
			t.Errorf("%q: want unknown keys, got %v", extra, err)
		}
	}
}

func TestOwnAttestations(t *testing.T) {
	dir := t.TempDir()
	attestTestdata(t, dir, "openpgp-ed25519.sig.asc", "cms-ec.der")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a signature"), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	st := attest.Statement{JID: "alice@example.test", Key: signer.PublicKey()}
	keys := KeysConfig{Attestation: []AttestationConfig{
		{"openpgp", filepath.Join(dir, "openpgp-ed25519.sig.asc")}, // well-formed; its signer is unknown here
		{"keybase-proof", garbage},                                 // unknown types are not checked
	}}
	atts, warnings, err := ownAttestations(keys, nil, signer, st)
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	if len(atts) != 3 || atts[0].Type != "self" || atts[1].Type != "openpgp" || atts[2].Type != "keybase-proof" {
		t.Fatalf("attestations %+v", atts)
	}
	if r := (attest.SelfVerifier{}).Verify(st, atts[0].Data); r.Status != attest.Verified {
		t.Fatalf("self attestation: %v", r)
	}
	for _, bad := range []AttestationConfig{
		{"openpgp", garbage},
		{"x509-cms", garbage},
		{"x509-cms", filepath.Join(dir, "cms-ec.der")}, // a valid CMS over another statement
		{"openpgp", filepath.Join(dir, "missing")},
	} {
		_, _, err := ownAttestations(KeysConfig{Attestation: []AttestationConfig{bad}}, nil, signer, st)
		var fe *AttestationFileError
		if !errors.As(err, &fe) || fe.File != bad.File {
			t.Errorf("%+v: want an AttestationFileError naming the file, got %v", bad, err)
		}
	}
}
