package attest

import (
	"encoding/asn1"
	"strings"
	"testing"
	"time"
)

// TestRegressX509SignerMustNameJID is finding 5 of the first review: a CMS
// attestation counted as verified when no identity in the signer
// certificate was the statement's JID, so any certificate under a
// configured root vouched for any JID.
func TestRegressX509SignerMustNameJID(t *testing.T) {
	p := newTestPKI(t)
	st := testStatement() // alice@example.org
	v := NewX509Verifier(p.pool())
	leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{sanEmail("carol@example.org"), sanXMPP(t, "carol@example.org")}})
	res := v.Verify(st, p.signCMS(leaf, key, st.Bytes()))
	if res.Status == Verified {
		t.Fatalf("a certificate for carol vouches for alice: %v", res)
	}
	if !strings.Contains(res.Detail, "carol@example.org") || !strings.Contains(res.Detail, "alice@example.org") {
		t.Errorf("detail %q does not name both identities", res.Detail)
	}
	leaf, key = p.leaf(leafOpts{})
	if res := v.Verify(st, p.signCMS(leaf, key, st.Bytes())); res.Status == Verified {
		t.Fatalf("a certificate naming nobody vouches for alice: %v", res)
	}
}

// TestRegressX509XMPPAddr is finding 7 of the first review: certificates
// naming the JID only as id-on-xmppAddr (RFC 6120 section 13.7.1.4) were
// not recognised.
func TestRegressX509XMPPAddr(t *testing.T) {
	p := newTestPKI(t)
	st := testStatement()
	v := NewX509Verifier(p.pool())
	for _, name := range []string{"alice@example.org", "alice@EXAMPLE.org", "Alice@example.org"} {
		leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{sanXMPP(t, name)}})
		res := v.Verify(st, p.signCMS(leaf, key, st.Bytes()))
		if res.Status != Verified || res.Detail != "" {
			t.Errorf("xmppAddr %s: %v, want verified with no remark", name, res)
		}
	}
}

// TestRegressX509ExpiredNotBadSignature is finding 7 of the first review:
// a signature by an expired certificate was reported as "bad signature".
func TestRegressX509ExpiredNotBadSignature(t *testing.T) {
	p := newTestPKI(t)
	st := testStatement()
	v := NewX509Verifier(p.pool())
	end := time.Now().AddDate(0, -1, 0).UTC().Truncate(time.Second)
	leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{sanXMPP(t, st.JID)}, notBefore: end.AddDate(-1, 0, 0), notAfter: end})
	sig := p.signCMS(leaf, key, st.Bytes())
	res := v.Verify(st, sig)
	if res.Status == Verified || res.Status == Failed || strings.Contains(res.Detail, "bad signature") ||
		!strings.Contains(res.Detail, end.Format(time.DateOnly)) {
		t.Fatalf("expired certificate: %v, want expired on %s", res, end.Format(time.DateOnly))
	}
	// Not yet valid.
	start := time.Now().AddDate(0, 1, 0).UTC().Truncate(time.Second)
	leaf, key = p.leaf(leafOpts{san: []asn1.RawValue{sanXMPP(t, st.JID)}, notBefore: start, notAfter: start.AddDate(1, 0, 0)})
	res = v.Verify(st, p.signCMS(leaf, key, st.Bytes()))
	if res.Status == Verified || res.Status == Failed || !strings.Contains(res.Detail, start.Format(time.DateOnly)) {
		t.Fatalf("not yet valid certificate: %v", res)
	}
}
