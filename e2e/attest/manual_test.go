package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
)

var sasFormat = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){4}$`)

func TestSAS(t *testing.T) {
	h1 := sha256.Sum256([]byte("transcript one"))
	h2 := sha256.Sum256([]byte("transcript two"))
	a, b := SAS(h1[:]), SAS(h1[:])
	if a != b {
		t.Errorf("not deterministic: %q vs %q", a, b)
	}
	if c := SAS(h2[:]); c == a {
		t.Errorf("different transcripts give the same SAS %q", a)
	}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		s := SAS(h[:])
		if !sasFormat.MatchString(s) {
			t.Fatalf("bad format %q", s)
		}
		seen[s] = true
	}
	if len(seen) != 200 {
		t.Errorf("collisions among 200 SAS values: %d distinct", len(seen))
	}
	defer func() {
		if recover() == nil {
			t.Error("short transcript hash did not panic")
		}
	}()
	SAS(make([]byte, 31))
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
	got, ok := sasFromOKM(okm)
	if !ok || got != "99999 00007 00000 23456 99999" {
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
		u := VerifyURI{JID: jid, Device: st.Device, Key: st.Key}
		s := u.String()
		if strings.ContainsAny(strings.TrimPrefix(s, "xmpp:"), " #") || strings.Count(s, "?") != 1 {
			t.Errorf("%q: unescaped characters in %q", jid, s)
		}
		got, err := ParseVerifyURI(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got.JID != jid || got.Device != u.Device || !got.Key.Equal(u.Key) {
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
	u := VerifyURI{JID: "alice@EXAMPLE.org", Device: st.Device, Key: st.Key}
	if !u.Matches(st) {
		t.Error("same identity does not match (domain case must not matter)")
	}
	for name, mod := range map[string]func(*VerifyURI){
		"jid":    func(u *VerifyURI) { u.JID = "bob@example.org" },
		"device": func(u *VerifyURI) { u.Device++ },
		"key":    func(u *VerifyURI) { u.Key = append([]byte(nil), u.Key...); u.Key[31] ^= 1 },
		"short":  func(u *VerifyURI) { u.Key = u.Key[:31] },
	} {
		m := u
		mod(&m)
		if m.Matches(st) {
			t.Errorf("%s: mismatching URI matches", name)
		}
	}
}

func TestParseVerifyURIRejects(t *testing.T) {
	good := VerifyURI{JID: "alice@example.org", Device: 7, Key: testStatement().Key}.String()
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
		strings.Replace(good, ";d=7", ";d=07", 1),
		strings.Replace(good, ";d=7", ";d=", 1),
		strings.Replace(good, ";d=7", ";d=4294967296", 1),
		strings.Replace(good, ";d=7;k=", ";k=", 1),
		strings.Replace(good, ";d=7;k="+k, ";k="+k+";d=7", 1),
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
	uri := VerifyURI{JID: "alice@example.org", Device: 7, Key: testStatement().Key}.String()
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
