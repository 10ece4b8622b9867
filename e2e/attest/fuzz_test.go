package attest

import (
	"crypto/subtle"
	"encoding/asn1"
	"encoding/pem"
	"strings"
	"testing"
	"unicode"
)

func FuzzParseStatement(f *testing.F) {
	f.Add(vector(f, "statement.txt"))
	f.Add(testStatement().Bytes())
	st := testStatement()
	st.JID = "example.org"
	f.Add(st.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatement(b)
		if err != nil {
			return
		}
		if subtle.ConstantTimeCompare(st.Bytes(), b) != 1 {
			t.Fatalf("parse-marshal mismatch:\n%q\n%q", b, st.Bytes())
		}
	})
}

func FuzzParseVerifyURI(f *testing.F) {
	key := testStatement().Key
	for _, jid := range []string{"alice@example.org", "example.org", "ålice@例え.jp", "a+b!c@x.y"} {
		f.Add(VerifyURI{JID: jid, Key: key}.String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseVerifyURI(s)
		if err != nil {
			return
		}
		if u.String() != s {
			t.Fatalf("round trip: %q -> %q", s, u.String())
		}
		st := Statement{JID: u.JID, Key: u.Key}
		if !u.Matches(st) {
			t.Fatalf("%q does not match its own statement", s)
		}
		if _, err := ParseStatement(st.Bytes()); err != nil {
			t.Fatalf("%q gives an unparsable statement: %v", s, err)
		}
	})
}

// checkResult is the property every verifier must keep on any input.
func checkResult(t *testing.T, typ string, r Result) {
	t.Helper()
	if r.Type != typ || r.Status < Failed || r.Status > Expired {
		t.Fatalf("bad result %+v", r)
	}
	if r.Status == Failed && (r.Signer != "" || len(r.Names) != 0) {
		t.Fatalf("failed result names a signer: %+v", r)
	}
	if r.Status == Verified && !r.NamesJID {
		t.Fatalf("verified result for a signer that does not name the JID: %+v", r)
	}
}

func FuzzX509Verify(f *testing.F) {
	for _, name := range []string{"cms-ec.der", "cms-rsa.der", "cms-attached.der"} {
		sig := vector(f, name)
		f.Add(sig)
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: sig}))
	}
	st := testStatement()
	// A signer naming the JID as id-on-xmppAddr and email, for the
	// subjectAltName parser.
	p := newTestPKI(f)
	leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{sanXMPP(f, st.JID), sanEmail(st.JID)}})
	f.Add(p.signCMS(leaf, key, st.Bytes()))
	v := vectorX509Verifier(f, vector(f, "cms-ec.der"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkResult(t, TypeX509CMS, v.Verify(st, data))
	})
}

func FuzzOpenPGPVerify(f *testing.F) {
	var keys [][]byte
	for _, algo := range []string{"ed25519", "rsa3072"} {
		f.Add(vector(f, "openpgp-"+algo+".sig.asc"))
		keys = append(keys, vector(f, "openpgp-"+algo+".pub.asc"))
	}
	v, err := NewOpenPGPVerifier(keys...)
	if err != nil {
		f.Fatal(err)
	}
	st := testStatement()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkResult(t, TypeOpenPGP, v.Verify(st, data))
	})
}

// FuzzRegistry checks that any attestation gives exactly one result whose
// text is safe for a terminal.
func FuzzRegistry(f *testing.F) {
	f.Add("openpgp", vector(f, "openpgp-ed25519.sig.asc"))
	f.Add("x509-cms", vector(f, "cms-ec.der"))
	f.Add("unknown", []byte("\x1b[2J\u202e\r\n"))
	f.Add("Bad\x00", []byte{0xff})
	reg := NewRegistry(SelfVerifier{}, &OpenPGPVerifier{}, NewX509Verifier(nil))
	st := testStatement()
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		res := reg.Verify(st, []Attestation{{Type: typ, Data: data}})
		if len(res) != 1 {
			t.Fatalf("%d results", len(res))
		}
		if strings.IndexFunc(res[0].String(), func(r rune) bool {
			return r != '\n' && r != '\t' && !unicode.IsPrint(r)
		}) >= 0 {
			t.Fatalf("unsafe text %q", res[0].String())
		}
	})
}
