package jingle

import (
	"encoding/xml"
	"errors"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestRTPInfo(t *testing.T) {
	infos := []RTPInfo{
		{Kind: InfoActive}, {Kind: InfoHold}, {Kind: InfoUnhold}, {Kind: InfoRinging},
		{Kind: InfoMute, Creator: CreatorResponder, Name: "voice"},
		{Kind: InfoUnmute, Creator: CreatorResponder, Name: "voice"},
		{Kind: InfoMute},
	}
	j := NewSessionInfo("s1", infos...)
	j.Info = append(j.Info, Raw{XMLName: name("urn:example:custom", "bell")})
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got, unknown, err := back.RTPInfos()
	if err != nil || !unknown || !reflect.DeepEqual(got, infos) {
		t.Fatalf("RTPInfos = %+v, %v, %v", got, unknown, err)
	}
	// An unknown payload in the info namespace stays Raw (the session
	// answers unsupported-info); a malformed known one is refused.
	if _, ok, err := ParseRTPInfo(Raw{XMLName: name(NSRTPInfo, "dance")}); ok || err != nil {
		t.Fatalf("unknown info: %v %v", ok, err)
	}
	bad := Raw{XMLName: name(NSRTPInfo, "mute"), Attrs: []xml.Attr{{Name: xml.Name{Local: "creator"}, Value: "x"}}}
	if _, ok, err := ParseRTPInfo(bad); !ok || !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed mute: %v %v", ok, err)
	}
	if _, ok, err := ParseRTPInfo(Raw{XMLName: name(NSRTPInfo, "hold"), Inner: []byte("<x/>")}); !ok || err == nil {
		t.Fatalf("hold with content: %v %v", ok, err)
	}
	ping := NewSessionInfo("s1")
	if got, unknown, err := ping.RTPInfos(); len(got) != 0 || unknown || err != nil {
		t.Fatalf("ping: %v %v %v", got, unknown, err)
	}
}

func TestErrorPayload(t *testing.T) {
	for _, c := range []ErrorCondition{ErrOutOfOrder, ErrTieBreak, ErrUnknownSession, ErrUnsupportedInfo, ErrSecurityRequired} {
		b := ErrorPayload(c.StanzaCondition(), c)
		se, err := ParseStanzaError(b)
		if err != nil {
			t.Fatal(err)
		}
		if se.Jingle != c || se.Condition != c.StanzaCondition() || se.Type == "" {
			t.Fatalf("%s: %+v", c, se)
		}
		// Inside an IQ, in jabber:client, as a receiver sees it.
		iq := `<iq xmlns='jabber:client' type='error' id='1'>` + string(b) + `</iq>`
		if got, ok := ParseErrorCondition([]byte(iq)); !ok || got != c {
			t.Fatalf("%s in an iq: %q %v", c, got, ok)
		}
	}
	if string(ErrorPayload("bad-request", "")) != `<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>` {
		t.Fatal(string(ErrorPayload("bad-request", "")))
	}
	if _, ok := ParseErrorCondition(ErrorPayload("bad-request", "")); ok {
		t.Fatal("no jingle condition expected")
	}
	for _, bad := range []string{
		`<error type='cancel'/>`,
		`<error type='later'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`,
		`<iq type='error'/>`,
		`<message/>`,
		`<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`,
	} {
		if _, err := ParseStanzaError([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
		if _, ok := ParseErrorCondition([]byte(bad)); ok {
			t.Errorf("%s: condition found", bad)
		}
	}
	for _, f := range []func(){
		func() { ErrorPayload("nope", ErrTieBreak) },
		func() { ErrorPayload("conflict", "nope") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic for a programming error")
				}
			}()
			f()
		}()
	}
}

func TestReasonXML(t *testing.T) {
	src := `<reason xmlns='urn:xmpp:jingle:1'><alternative-session><sid> b84tkkwlmb48kgfb </sid></alternative-session>` +
		`<text xml:lang='en'>moved</text><invalid-crypto xmlns='urn:xmpp:jingle:apps:rtp:errors:1'/></reason>`
	r, err := ParseReason([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Reason{Condition: ReasonAlternativeSession, AlternativeSID: "b84tkkwlmb48kgfb", Text: "moved", Lang: "en",
		Extra: []Raw{{XMLName: name(NSRTPErrors, "invalid-crypto")}}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("%+v", r)
	}
	roundTrip(t, []byte(src), ParseReason, func(r *Reason) ([]byte, error) { return r.Marshal() })

	// xml.Marshaler / Unmarshaler inside an ordinary struct.
	type wrapper struct {
		XMLName xml.Name `xml:"urn:example wrap"`
		Reason  *Reason  `xml:"urn:xmpp:jingle:1 reason"`
	}
	b, err := xml.Marshal(wrapper{Reason: want})
	if err != nil {
		t.Fatal(err)
	}
	var w wrapper
	if err := xml.Unmarshal(b, &w); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(w.Reason, want) {
		t.Fatalf("through encoding/xml: %+v\n%s", w.Reason, b)
	}
	var r2 Reason
	if err := xml.Unmarshal([]byte(`<reason xmlns='urn:xmpp:jingle:1'><busy/><busy/></reason>`), &r2); !errors.Is(err, ErrMalformed) {
		t.Fatalf("strictness lost through encoding/xml: %v", err)
	}
	if _, err := (&Reason{Condition: "nope"}).Marshal(); err == nil {
		t.Fatal("unknown condition marshaled")
	}
}

// TestEncodingXML embeds Jingle and JMI in IQ and message structs, as the
// gateway does, and reads them back.
func TestEncodingXML(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "conversations", "session-initiate-omemo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	type iq struct {
		XMLName xml.Name `xml:"jabber:client iq"`
		Type    string   `xml:"type,attr"`
		Jingle  *Jingle  `xml:"urn:xmpp:jingle:1 jingle"`
	}
	var in iq
	if err := xml.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	direct, err := Parse(conversationsPayload(t, "session-initiate-omemo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Jingle, direct) {
		t.Fatal("UnmarshalXML and Parse disagree")
	}
	out, err := xml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var again iq
	if err := xml.Unmarshal(out, &again); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Jingle, direct) {
		t.Fatalf("MarshalXML lost information:\n%s", out)
	}

	type message struct {
		XMLName xml.Name `xml:"jabber:client message"`
		JMI     *JMI     `xml:"urn:xmpp:jingle-message:0 proceed"`
	}
	mb, err := os.ReadFile(filepath.Join("testdata", "conversations", "proceed-device.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var msg message
	if err := xml.Unmarshal(mb, &msg); err != nil {
		t.Fatal(err)
	}
	if id, ok := msg.JMI.DeviceID(); !ok || id != 1785367318 {
		t.Fatalf("device %d %v", id, ok)
	}
	if _, err := xml.Marshal(msg); err != nil {
		t.Fatal(err)
	}

	// The size bound holds through UnmarshalXML too.
	big := `<iq xmlns='jabber:client' type='set'><jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'><x xmlns='urn:x'>` +
		strings.Repeat("a", MaxElementSize) + `</x></jingle></iq>`
	var bigIQ iq
	if err := xml.Unmarshal([]byte(big), &bigIQ); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversize through UnmarshalXML: %v", err)
	}
}

func TestValidateFingerprint(t *testing.T) {
	for hash, size := range map[string]int{"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64} {
		if n, ok := HashSize(hash); !ok || n != size {
			t.Fatalf("HashSize(%s) = %d %v", hash, n, ok)
		}
		v := strings.TrimSuffix(strings.Repeat("ab:", size), ":")
		if err := ValidateFingerprint(hash, "\n  "+v+"\t"); err != nil {
			t.Fatalf("%s: %v", hash, err)
		}
		if err := ValidateFingerprint(hash, v+":ab"); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: one byte too many accepted", hash)
		}
		if err := ValidateFingerprint(hash, v[3:]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: one byte too few accepted", hash)
		}
	}
	for _, bad := range [][2]string{{"md5", "ab"}, {"sha-256", ""}, {"", fp256}, {"sha-256", fp256 + ":"}, {"sha-256", "x" + fp256[1:]}} {
		if err := ValidateFingerprint(bad[0], bad[1]); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestNoCryptoOrNetwork keeps the package pure signaling (pion/sdp, a
// pure parser, is allowed).
func TestNoCryptoOrNetwork(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := goparser.ParseFile(fset, f, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			forbidden := p == "net" || strings.HasPrefix(p, "net/") || strings.HasPrefix(p, "crypto") ||
				strings.HasPrefix(p, "golang.org/x/crypto") || strings.HasPrefix(p, "golang.org/x/net") ||
				p == "os/exec" || p == "syscall"
			for _, pion := range []string{"webrtc", "dtls", "srtp", "ice", "transport", "turn", "stun"} {
				forbidden = forbidden || strings.HasPrefix(p, "github.com/pion/"+pion+"/")
			}
			if forbidden {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no files checked")
	}
}
