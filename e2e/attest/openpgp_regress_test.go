package attest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// pgpSign makes an in-process key with the given user id parts (as
// openpgp.NewEntity takes them) and cfg, and signs st with it.
func pgpSign(t *testing.T, name, email string, cfg *packet.Config, st Statement) (*OpenPGPVerifier, []byte) {
	t.Helper()
	if cfg == nil {
		cfg = &packet.Config{}
	}
	cfg.Algorithm = packet.PubKeyAlgoEdDSA
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewOpenPGPVerifier(armoredPublic(t, e))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, e, bytes.NewReader(st.Bytes()), cfg); err != nil {
		t.Fatal(err)
	}
	return v, b.Bytes()
}

// TestRegressOpenPGPSignerMustNameJID is finding 5 of the first review:
// an OpenPGP attestation by a configured key counted as verified whatever
// its user ids said ("by spec"), so any trusted key vouched for any JID.
func TestRegressOpenPGPSignerMustNameJID(t *testing.T) {
	st := testStatement() // alice@example.org
	v, sig := pgpSign(t, "Carol", "carol@example.org", nil, st)
	res := v.Verify(st, sig)
	if res.Status == Verified {
		t.Fatalf("carol's key vouches for alice: %v", res)
	}
	if !strings.Contains(res.Detail, "carol@example.org") || !strings.Contains(res.Detail, "alice@example.org") {
		t.Errorf("detail %q does not name both identities", res.Detail)
	}
}

// TestRegressOpenPGPXMPPURI checks that a user id naming the JID as an
// XMPP URI, or as its email part, verifies with no remark (finding 5).
func TestRegressOpenPGPXMPPURI(t *testing.T) {
	st := testStatement()
	for _, c := range [][2]string{
		{"Alice", "xmpp:alice@example.org"},
		{"Alice", "alice@EXAMPLE.ORG"},
		{"xmpp:alice@example.org", ""},
	} {
		v, sig := pgpSign(t, c[0], c[1], nil, st)
		if res := v.Verify(st, sig); res.Status != Verified || res.Detail != "" {
			t.Errorf("user id %q <%s>: %v, want verified with no remark", c[0], c[1], res)
		}
	}
}

// TestRegressOpenPGPExpired checks that an expired signing key is
// reported as expired, with its date, not as a failure (finding 7).
func TestRegressOpenPGPExpired(t *testing.T) {
	st := testStatement()
	made := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	v, sig := pgpSign(t, "Alice", "alice@example.org",
		&packet.Config{KeyLifetimeSecs: 3600, Time: func() time.Time { return made }}, st)
	res := v.Verify(st, sig)
	want := made.Add(time.Hour).UTC().Format(time.DateTime)
	if res.Status == Verified || res.Status == Failed || !strings.Contains(res.Detail, "expired on "+want) {
		t.Fatalf("expired key: %v, want expired on %s", res, want)
	}
	v.Now = func() time.Time { return made.Add(30 * time.Minute) }
	if res := v.Verify(st, sig); res.Status != Verified {
		t.Fatalf("checked while the key was valid: %v", res)
	}
}
