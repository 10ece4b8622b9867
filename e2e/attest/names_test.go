package attest

import (
	"encoding/asn1"
	"strings"
	"testing"
	"time"
)

func TestSameJID(t *testing.T) {
	for _, c := range []struct {
		name, jid string
		want      bool
	}{
		{"alice@example.org", "alice@example.org", true},
		{"alice@EXAMPLE.org", "alice@example.org", true},
		{"ALICE@example.org", "alice@example.org", true},
		{"example.org", "example.org", true},
		{"alice@example.org", "example.org", false},
		{"alice@example.org/phone", "alice@example.org", false},
		{"alice@example.org.", "alice@example.org", false},
		{"alice@example.com", "alice@example.org", false},
		{"alic@example.org", "alice@example.org", false},
		{"ålice@example.org", "ålice@example.org", true},
		{"Ålice@example.org", "ålice@example.org", false},    // only ASCII is folded in the localpart
		{"\u212Aarl@example.org", "karl@example.org", false}, // Kelvin sign is not K
		{"", "alice@example.org", false},
		{" alice@example.org", "alice@example.org", false},
	} {
		if got := sameJID(c.name, c.jid); got != c.want {
			t.Errorf("sameJID(%q, %q) = %v, want %v", c.name, c.jid, got, c.want)
		}
	}
}

func TestUIDJID(t *testing.T) {
	for uid, want := range map[string]string{
		"xmpp:alice@example.org":                   "alice@example.org",
		"Alice <xmpp:alice@example.org>":           "alice@example.org",
		"Alice <alice@example.org>":                "alice@example.org",
		"Alice (xmpp:bob@example.org) <a@b.c>":     "a@b.c",
		"Alice <x@y> <alice@example.org>":          "alice@example.org",
		"Alice":                                    "",
		"Alice <alice@example.org> trailing":       "",
		"xmpp:alice@example.org <bob@example.org>": "bob@example.org",
		"<>": "",
	} {
		got, ok := uidJID(uid)
		if ok != (want != "") || got != want {
			t.Errorf("uidJID(%q) = %q, %v; want %q", uid, got, ok, want)
		}
	}
}

// TestX509NamesStrict checks the strict parse of id-on-xmppAddr.
func TestX509NamesStrict(t *testing.T) {
	p := newTestPKI(t)
	st := testStatement()
	v := NewX509Verifier(p.pool())
	ia5, _ := asn1.MarshalWithParams(st.JID, "ia5")
	u8, _ := asn1.MarshalWithParams(st.JID, "utf8")
	for name, san := range map[string]asn1.RawValue{
		"IA5String":      sanOtherName(t, oidXMPPAddr, ia5),
		"trailing bytes": sanOtherName(t, oidXMPPAddr, append(append([]byte(nil), u8...), 0x05, 0x00)),
		"bad UTF-8":      sanOtherName(t, oidXMPPAddr, []byte{0x0c, 0x02, 0xc3, 0x28}),
	} {
		leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{san, sanEmail(st.JID)}})
		if res := v.Verify(st, p.signCMS(leaf, key, st.Bytes())); res.Status != Failed || res.Signer != "" {
			t.Errorf("%s: %v, want failed", name, res)
		}
	}
	// Another otherName type is skipped, whatever it holds.
	other := sanOtherName(t, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}, ia5) // id-on-dnsSRV
	leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{other, sanXMPP(t, st.JID)}})
	if res := v.Verify(st, p.signCMS(leaf, key, st.Bytes())); res.Status != Verified ||
		len(res.Names) != 1 || res.Names[0] != st.JID || !res.NamesJID || res.Expires.IsZero() {
		t.Errorf("other otherName and xmppAddr: %+v, want verified", res)
	}
}

// TestX509UntrustedAndExpiredNames checks what an untrusted or expired
// result says about names and dates.
func TestX509UntrustedAndExpiredNames(t *testing.T) {
	p := newTestPKI(t)
	st := testStatement()
	leaf, key := p.leaf(leafOpts{san: []asn1.RawValue{sanXMPP(t, "carol@example.org")}})
	sig := p.signCMS(leaf, key, st.Bytes())
	res := NewX509Verifier(nil).Verify(st, sig)
	if res.Status != Untrusted || res.NamesJID || !strings.Contains(res.Detail, "for carol@example.org, not alice@example.org") {
		t.Errorf("no roots: %v", res)
	}
	res = NewX509Verifier(newTestPKI(t).pool()).Verify(st, sig)
	if res.Status != Untrusted || !strings.Contains(res.Detail, "not alice@example.org") {
		t.Errorf("other root: %v", res)
	}
	late := leaf.NotAfter.Add(time.Hour)
	res = NewX509Verifier(nil, WithClock(func() time.Time { return late })).Verify(st, sig)
	if res.Status != Expired || !strings.Contains(res.Detail, "no X.509 trust anchors") {
		t.Errorf("expired, no roots: %v", res)
	}
	res = NewX509Verifier(newTestPKI(t).pool(), WithClock(func() time.Time { return late })).Verify(st, sig)
	if res.Status != Expired || !strings.Contains(res.Detail, "does not chain to a configured root") {
		t.Errorf("expired, other root: %v", res)
	}
	if !res.Expires.Equal(leaf.NotAfter) {
		t.Errorf("Expires %v, want %v", res.Expires, leaf.NotAfter)
	}
}

// namelessVerifier claims every attestation verifies without checking
// names.
type namelessVerifier struct{}

func (namelessVerifier) Type() string { return "nameless" }
func (namelessVerifier) Verify(Statement, []byte) Result {
	return Result{Status: Verified, Signer: "x", Names: []string{"\x1b[2Jmallory@example.org"}}
}

// TestRegistryNeedsName checks that the registry never lets a result be
// verified without a name match, and sanitizes names.
func TestRegistryNeedsName(t *testing.T) {
	st := testStatement()
	res := NewRegistry(namelessVerifier{}).Verify(st, []Attestation{{Type: "nameless", Data: []byte{1}}})[0]
	if res.Status != Mismatch || !strings.Contains(res.Detail, st.JID) || strings.ContainsRune(res.Names[0], 0x1b) {
		t.Errorf("%+v", res)
	}
}

func TestAppendName(t *testing.T) {
	var names []string
	for i := 0; i < 2*MaxResultNames; i++ {
		names = appendName(names, string(rune('a'+i))+"@example.org")
		names = appendName(names, "a@example.org")
	}
	if len(names) != MaxResultNames {
		t.Errorf("%d names", len(names))
	}
	long := appendName(nil, strings.Repeat("é", maxNameLen))
	if len(long[0]) > maxNameLen+len("…") || !strings.HasSuffix(long[0], "…") {
		t.Errorf("long name not cut: %d bytes", len(long[0]))
	}
}
