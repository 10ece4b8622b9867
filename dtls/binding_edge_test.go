package dtls

import (
	"errors"
	"strings"
	"testing"
)

// TestBindingEdgeCases (from the first security review; it found no
// issue here): empty, short or odd Expected values never pass, parsing
// is canonical, and every certificate has a fresh key.
func TestBindingEdgeCases(t *testing.T) {
	c, _ := NewCertificate()
	der := c.DER()
	good := c.Fingerprint()
	cases := map[string]Fingerprint{
		"zero":                     {},
		"empty value":              {Hash: HashSHA256},
		"no hash":                  {Value: good.Value},
		"upper hash":               {Hash: "SHA-256", Value: good.Value},
		"sha-1":                    {Hash: "sha-1", Value: good.Value[:20]},
		"truncated":                {Hash: HashSHA256, Value: good.Value[:16]},
		"sha-384 w/ sha-256 value": {Hash: HashSHA384, Value: good.Value},
	}
	for name, fp := range cases {
		if err := (Binding{Expected: fp}).Check(der); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
	if err := (Binding{Expected: good}).Check(nil); !errors.Is(err, ErrNoPeerCertificate) {
		t.Error(err)
	}
	s384, _ := Sum(HashSHA384, der)
	if err := (Binding{Expected: s384}).Check(der); err != nil {
		t.Error(err)
	}
	// Parsing: case and whitespace do not change the bytes compared.
	a, _ := ParseFingerprint("sha-256", good.String())
	b, _ := ParseFingerprint(" SHA-256\n", "\t"+strings.ToLower(good.String())+" ")
	if !a.Equal(b) || !a.Equal(good) {
		t.Error("parse ambiguity")
	}
	c2, _ := NewCertificate()
	if c2.Fingerprint().Equal(good) || c2.key.Equal(c.key) {
		t.Error("key reuse")
	}
}
