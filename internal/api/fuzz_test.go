package api

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzCheckPayload: no input panics, and an accepted payload is one
// element that encoding/xml reads back whole.
func FuzzCheckPayload(f *testing.F) {
	for _, s := range []string{
		`<ping xmlns="urn:xmpp:ping"/>`,
		`<query xmlns="http://jabber.org/protocol/disco#info"/>`,
		`<echo xmlns="urn:example:echo">ping<!-- c --><b>x</b></echo>`,
		` <a xmlns="urn:x"/>` + "\n",
		`<a xmlns="urn:x"/><b xmlns="urn:x"/>`,
		`<?xml version="1.0"?><a xmlns="urn:x"/>`,
		`<a xmlns="urn:x">`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if CheckPayload(p) != nil {
			return
		}
		var v struct {
			XMLName xml.Name
			Inner   []byte `xml:",innerxml"`
		}
		d := xml.NewDecoder(bytes.NewReader(p))
		if err := d.Decode(&v); err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", p, err)
		}
		if v.XMLName.Space == "" {
			t.Fatalf("accepted %q without a namespace", p)
		}
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("accepted %q with trailing junk: %v", p, err)
			}
			if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) != 0 {
				t.Fatalf("accepted %q with something after the element: %#v", p, tok)
			}
		}
	})
}

// FuzzEventStream: no stream panics the reader, and events written in the
// server's framing read back equal.
func FuzzEventStream(f *testing.F) {
	f.Add(sseReady+sseHeartbeat+`data: {"kind":"chat","time":"2026-01-01T00:00:00Z","from":"a@b","body":"hi"}`+"\n\n", "x\ny")
	f.Add(sseReady+"data: {}\ndata: {}\n\n", "")
	f.Add("data: {\"kind\":\"alert\"}\n\n", "\u2028")
	f.Add(sseReady+"event: x\n\n", "\x00")
	f.Fuzz(func(t *testing.T, stream, body string) {
		s := NewEventReader(io.NopCloser(strings.NewReader(stream)))
		if s.waitReady() == nil {
			for i := 0; i < 100; i++ {
				if _, err := s.Next(); err != nil {
					break
				}
			}
		}
		// Round trip through the server's framing.
		want := Event{Kind: "chat", Time: time.Unix(1, 0).UTC(), Body: body, Detail: stream}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		framed := sseReady + sseHeartbeat + "data: " + string(b) + "\n\n"
		s = NewEventReader(io.NopCloser(strings.NewReader(framed)))
		if err := s.waitReady(); err != nil {
			t.Fatal(err)
		}
		got, err := s.Next()
		if err != nil {
			t.Fatalf("framed event: %v", err)
		}
		// JSON replaces invalid UTF-8; compare with what it kept.
		var norm Event
		json.Unmarshal(b, &norm)
		if got != norm {
			t.Fatalf("got %+v, want %+v", got, norm)
		}
	})
}

// FuzzDecodeTrust: the strict decoder never panics, and what it accepts
// re-encodes to an equivalent request.
func FuzzDecodeTrust(f *testing.F) {
	f.Add([]byte(`{"jid":"bob@example.test","action":"verify","method":"sas","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"jid":"bob@example.test","action":"distrust"} `))
	f.Add([]byte(`{"jid":"bob@example.test","action":"accept","x":1}`))
	f.Add([]byte(`{"device":-1}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req TrustRequest
		if decodeStrict(bytes.NewReader(b), &req) != nil {
			return
		}
		checked, err := checkTrust(req)
		if err != nil {
			return
		}
		enc, err := json.Marshal(checked)
		if err != nil {
			t.Fatal(err)
		}
		var again TrustRequest
		if err := decodeStrict(bytes.NewReader(enc), &again); err != nil || again != checked {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", checked, enc, again, err)
		}
		if again2, err := checkTrust(again); err != nil || again2 != checked {
			t.Fatalf("check not idempotent: %+v vs %+v (%v)", again2, checked, err)
		}
	})
}

// FuzzCallPathAndID: no input panics; an accepted call id is bounded
// printable ASCII without '/', and an accepted path is absolute, bounded
// and free of control characters.
func FuzzCallPathAndID(f *testing.F) {
	for _, s := range []string{"c1", "in.ogg", "/tmp/rec", "../x", "a b", "\x1b[2J", strings.Repeat("x", MaxCallIDLen+1), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkCallID(s) == nil {
			if s == "" || len(s) > MaxCallIDLen || strings.ContainsAny(s, "/ \x7f") {
				t.Fatalf("accepted call id %q", s)
			}
		}
		p, err := checkLocalPath("audio_file", s)
		if err != nil {
			var me *MediaError
			if !errors.As(err, &me) || !errors.Is(err, ErrInvalid) || me.Field != "audio_file" {
				t.Fatalf("%q: error %v is not a MediaError for the field", s, err)
			}
			return
		}
		if s == "" {
			if p != "" {
				t.Fatalf("empty path became %q", p)
			}
			return
		}
		if len(s) > MaxPathLen || !filepath.IsAbs(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted path %q as %q", s, p)
		}
	})
}
