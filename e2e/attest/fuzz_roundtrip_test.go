package attest

import (
	"bytes"
	"testing"
)

// FuzzStatementUse: a parsed statement validates, re-encodes byte for
// byte, gives a verify URI that parses back to a URI matching it, and
// every verifier, the fingerprint blocks and the SAS of its bytes take it
// without a panic. Seeded from testdata/statement.txt (the target fails
// when it is missing).
func FuzzStatementUse(f *testing.F) {
	f.Add(vector(f, "statement.txt"))
	f.Add(testStatement().Bytes())
	reg := NewRegistry(SelfVerifier{}, &OpenPGPVerifier{}, NewX509Verifier(nil))
	sigs := [][]byte{vector(f, "openpgp-ed25519.sig.asc"), vector(f, "cms-ec.der")}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatement(b)
		if err != nil {
			return
		}
		if err := st.Validate(); err != nil {
			t.Fatalf("parsed statement does not validate: %v", err)
		}
		st2, err := ParseStatement(st.Bytes())
		if err != nil || !bytes.Equal(st2.Bytes(), b) {
			t.Fatalf("round trip: %q -> %q (%v)", b, st2.Bytes(), err)
		}
		u := VerifyURI{JID: st.JID, Key: st.Key}
		u2, err := ParseVerifyURI(u.String())
		if err != nil {
			t.Fatalf("verify URI %q of a parsed statement does not parse: %v", u.String(), err)
		}
		if u2.String() != u.String() || !u2.Matches(st) {
			t.Fatalf("verify URI round trip: %q -> %q", u.String(), u2.String())
		}
		_ = FingerprintBlocks(st.Key)
		// (SAS is left out: one Argon2id evaluation per input would stall the fuzzer.)
		atts := []Attestation{{Type: TypeSelf, Data: b}, {Type: TypeOpenPGP, Data: sigs[0]}, {Type: TypeX509CMS, Data: sigs[1]}}
		for _, r := range reg.Verify(st, atts) {
			_ = r.String()
		}
	})
}
