package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
)

// sasFormat is the SAS as docs/protocol.md section 9.7 writes it: 6 groups
// of 5 digits.
var sasFormat = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){5}$`)

// mustSAS is SAS for statements known to be valid.
func mustSAS(t testing.TB, a, b Statement) string {
	t.Helper()
	s, err := SAS(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSAS(t *testing.T) {
	alice, bob := testStatement(), bobStatement()
	ab := mustSAS(t, alice, bob)
	if again := mustSAS(t, alice, bob); again != ab {
		t.Errorf("not deterministic: %q vs %q", ab, again)
	}
	if !sasFormat.MatchString(ab) {
		t.Fatalf("bad format %q", ab)
	}
	// The domain is compared lower-cased, as in the statement.
	upper := alice
	upper.JID = "alice@EXAMPLE.org"
	if s := mustSAS(t, upper, bob); s != ab {
		t.Errorf("domain case changes the SAS: %q vs %q", s, ab)
	}
	// Every part of both accounts counts.
	for name, mod := range map[string]func(a, b *Statement){
		"alice's key":  func(a, b *Statement) { a.Key = bob.Key },
		"bob's key":    func(a, b *Statement) { b.Key = alice.Key },
		"alice's jid":  func(a, b *Statement) { a.JID = "alice@example.net" },
		"bob's jid":    func(a, b *Statement) { b.JID = "bob@example.org" },
		"jids swapped": func(a, b *Statement) { a.JID, b.JID = b.JID, a.JID },
	} {
		a, b := alice, bob
		mod(&a, &b)
		if s := mustSAS(t, a, b); s == ab {
			t.Errorf("%s: same SAS %q", name, s)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 16; i++ { // each SAS costs an Argon2id evaluation
		b := bob
		b.JID = fmt.Sprintf("bob%d@example.net", i)
		s := mustSAS(t, alice, b)
		if !sasFormat.MatchString(s) {
			t.Fatalf("bad format %q", s)
		}
		seen[s] = true
	}
	if len(seen) != 16 {
		t.Errorf("collisions among 16 SAS values: %d distinct", len(seen))
	}
	for _, bad := range []Statement{{JID: "alice@example.org/phone", Key: alice.Key}, {JID: "alice@example.org", Key: alice.Key[:31]}, {}} {
		if s, err := SAS(bad, bob); err == nil || s != "" {
			t.Errorf("SAS with invalid statement %+v: %q, %v", bad, s, err)
		}
		if _, err := SAS(bob, bad); !errors.Is(err, ErrInvalidJID) && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("SAS with invalid statement %+v: %v, want ErrInvalidJID or ErrInvalidKey", bad, err)
		}
	}
}

// TestRegressSASSameOnBothEnds: finding 7 of the first review, "the two
// ends show different SAS codes before confirmation". The SAS names the
// two accounts, so each side computes it with its own statement first and
// gets the same string; TestRegressSASSameOnBothEnds in internal/daemon
// checks two running daemons.
func TestRegressSASSameOnBothEnds(t *testing.T) {
	alice, bob := testStatement(), bobStatement()
	onAlice, onBob := mustSAS(t, alice, bob), mustSAS(t, bob, alice)
	if onAlice != onBob {
		t.Fatalf("alice reads %q, bob reads %q", onAlice, onBob)
	}
	// Statements that sort the other way round (the JID order and the key
	// order disagree) are still symmetric.
	carol := Statement{JID: "aaa@example.net", Key: otherKey()}
	if mustSAS(t, alice, carol) != mustSAS(t, carol, alice) {
		t.Fatal("SAS depends on argument order")
	}
}

// TestRegressSASGroupCount: finding 7 of the first review, "docs show 6
// groups, the code 5". The code, docs/protocol.md and docs/api.md must
// agree; the worked example of docs/protocol.md section 9.7 must be what
// the code computes for the example statements.
func TestRegressSASGroupCount(t *testing.T) {
	if got := strings.Count(mustSAS(t, testStatement(), bobStatement()), " ") + 1; got != sasGroups || sasGroups != 6 {
		t.Fatalf("SAS has %d groups, sasGroups is %d, want 6", got, sasGroups)
	}
	protocol := readDoc(t, "protocol.md")
	example := regexp.MustCompile("SAS of these two accounts is\\s+`([0-9 ]+)`").FindStringSubmatch(protocol)
	if example == nil {
		t.Fatal("docs/protocol.md section 9.7 has no worked SAS example")
	}
	if want := mustSAS(t, testStatement(), bobStatement()); example[1] != want {
		t.Errorf("docs/protocol.md shows the SAS %q, the code computes %q", example[1], want)
	}
	if !strings.Contains(protocol, "the first 6 groups joined by single spaces") || strings.Contains(protocol, "the first 5 groups") {
		t.Error("docs/protocol.md section 9.7 does not say 6 groups")
	}
	api := readDoc(t, "api.md")
	sas := regexp.MustCompile(`"sas":"([^"]*)"`).FindAllStringSubmatch(api, -1)
	if len(sas) == 0 {
		t.Fatal("docs/api.md shows no SAS")
	}
	for _, m := range sas {
		if !sasFormat.MatchString(m[1]) {
			t.Errorf("docs/api.md shows the SAS %q, not 6 groups of 5 digits", m[1])
		}
	}
}

// readDoc reads a file of docs/.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSASRejectionSampling(t *testing.T) {
	var okm []byte
	okm = binary.BigEndian.AppendUint32(okm, sasLimit)   // rejected
	okm = binary.BigEndian.AppendUint32(okm, 0xffffffff) // rejected
	okm = binary.BigEndian.AppendUint32(okm, sasLimit-1) // 99999
	okm = binary.BigEndian.AppendUint32(okm, 7)          // 00007
	okm = binary.BigEndian.AppendUint32(okm, 100000)     // 00000
	okm = binary.BigEndian.AppendUint32(okm, 123456)     // 23456
	if _, ok := sasFromOKM(okm); ok {
		t.Error("4 acceptable words gave a full SAS")
	}
	okm = binary.BigEndian.AppendUint32(okm, 4294899999) // 99999
	if _, ok := sasFromOKM(okm); ok {
		t.Error("5 acceptable words gave a full SAS")
	}
	okm = binary.BigEndian.AppendUint32(okm, 42) // 00042
	got, ok := sasFromOKM(okm)
	if !ok || got != "99999 00007 00000 23456 99999 00042" {
		t.Errorf("got %q, %v", got, ok)
	}
}

func TestFingerprintBlocks(t *testing.T) {
	pub := testStatement().Key
	fb := FingerprintBlocks(pub)
	if !regexp.MustCompile(`^[0-9A-F]{8}( [0-9A-F]{8}){7}$`).MatchString(fb) {
		t.Fatalf("bad format %q", fb)
	}
	// Same hash as identity.Fingerprint, only spelled differently.
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(identity.Fingerprint(pub), "SHA256:"))
	if err != nil {
		t.Fatal(err)
	}
	hexed := strings.ReplaceAll(fb, " ", "")
	var want strings.Builder
	for _, c := range raw {
		want.WriteString(strings.ToUpper(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])))
	}
	if hexed != want.String() {
		t.Errorf("FingerprintBlocks %s does not match identity.Fingerprint", fb)
	}
}

func TestVerifyURIRoundTrip(t *testing.T) {
	st := testStatement()
	for _, jid := range []string{"alice@example.org", "example.org", "a+b!c;d=e@x.y", "ålice@例え.jp", "a%b@x", "a?b#c@x"} {
		u := VerifyURI{JID: jid, Key: st.Key}
		s := u.String()
		if strings.ContainsAny(strings.TrimPrefix(s, "xmpp:"), " #") || strings.Count(s, "?") != 1 {
			t.Errorf("%q: unescaped characters in %q", jid, s)
		}
		got, err := ParseVerifyURI(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got.JID != jid || !got.Key.Equal(u.Key) {
			t.Errorf("round trip %q: got %+v", s, got)
		}
		st.JID = jid
		if !got.Matches(st) {
			t.Errorf("%q does not match its statement", s)
		}
	}
}

func TestVerifyURIMatches(t *testing.T) {
	st := testStatement()
	u := VerifyURI{JID: "alice@EXAMPLE.org", Key: st.Key}
	if !u.Matches(st) {
		t.Error("same identity does not match (domain case must not matter)")
	}
	for name, mod := range map[string]func(*VerifyURI){
		"jid":   func(u *VerifyURI) { u.JID = "bob@example.org" },
		"key":   func(u *VerifyURI) { u.Key = append([]byte(nil), u.Key...); u.Key[31] ^= 1 },
		"short": func(u *VerifyURI) { u.Key = u.Key[:31] },
	} {
		m := u
		mod(&m)
		if m.Matches(st) {
			t.Errorf("%s: mismatching URI matches", name)
		}
	}
}

func TestParseVerifyURIRejects(t *testing.T) {
	good := VerifyURI{JID: "alice@example.org", Key: testStatement().Key}.String()
	k := good[strings.Index(good, ";k=")+3:]
	for _, s := range []string{
		"",
		strings.Replace(good, "xmpp:", "XMPP:", 1),
		strings.Replace(good, "xmpp:", "xmpp://", 1),
		strings.Replace(good, "?sj-verify", "?message", 1),
		strings.Replace(good, "?sj-verify;", "", 1),
		strings.Replace(good, "alice@example.org", "alice@example.org/res", 1),
		strings.Replace(good, "alice@example.org", "alice@Example.org", 1),
		strings.Replace(good, "alice@example.org", "%61lice@example.org", 1), // needless escape
		strings.Replace(good, "alice@example.org", "al%2", 1),
		strings.Replace(good, "alice@example.org", "al%zzce@example.org", 1),
		strings.Replace(good, "alice@example.org", "al%FFce@example.org", 1), // not UTF-8
		strings.Replace(good, ";k=", ";d=7;k=", 1),                           // the device of protocol version 0
		strings.Replace(good, ";k="+k, ";k="+k+";d=7", 1),
		strings.Replace(good, ";k=", ";K=", 1),
		strings.Replace(good, ";k=", ";;k=", 1),
		strings.Replace(good, ";k="+k, "", 1),
		good + "=",
		good + ";x=y",
		good + "#frag",
		strings.Replace(good, k, k[:42], 1),
		strings.Replace(good, k, k+"AA", 1),
		strings.Replace(good, k, strings.ReplaceAll(k, "_", "/"), 1),
	} {
		if s == good {
			t.Fatalf("test case did not change the URI")
		}
		if _, err := ParseVerifyURI(s); !errors.Is(err, ErrMalformedURI) {
			t.Errorf("%q: got %v, want ErrMalformedURI", s, err)
		}
	}
}

func TestRenderQR(t *testing.T) {
	var b bytes.Buffer
	uri := VerifyURI{JID: "alice@example.org", Key: testStatement().Key}.String()
	if err := RenderQR(uri, &b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) < 10 || !strings.ContainsRune(b.String(), '▀') {
		t.Fatalf("implausible QR rendering:\n%s", b.String())
	}
	w := len([]rune(lines[0]))
	for _, l := range lines {
		if len([]rune(l)) != w {
			t.Fatalf("ragged QR rendering:\n%s", b.String())
		}
	}
	// The quiet zone is light: the first line is all full blocks.
	if strings.Trim(lines[0], "█") != "" {
		t.Errorf("first line is not quiet zone: %q", lines[0])
	}
	for _, p := range []string{"", strings.Repeat("x", MaxQRPayload+1), strings.Repeat("x", 5000)} {
		var out bytes.Buffer
		if err := RenderQR(p, &out); err == nil || out.Len() != 0 {
			t.Errorf("payload of %d bytes: err %v, wrote %d bytes", len(p), err, out.Len())
		}
	}
}
