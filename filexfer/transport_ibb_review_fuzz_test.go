package filexfer

import (
	"testing"
)

// FuzzIBBPayload feeds the XEP-0047 filter's parser (which runs on the
// read loop for every IBB IQ, from anyone): it never panics, and what it
// accepts is one open, data or close with a bounded decoded length.
func FuzzIBBPayload(f *testing.F) {
	for _, s := range []string{
		`<open xmlns="http://jabber.org/protocol/ibb" block-size="4096" sid="s1" stanza="iq"/>`,
		`<data xmlns="http://jabber.org/protocol/ibb" seq="0" sid="s1">AAAA</data>`,
		`<data xmlns="http://jabber.org/protocol/ibb" seq="65535" sid="s1">AA==</data>`,
		`<close xmlns="http://jabber.org/protocol/ibb" sid="s1"/>`,
		`<data xmlns="http://jabber.org/protocol/ibb" seq="1" sid="s1">A A A A
		</data>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseIBBPayload(b)
		if err != nil {
			return
		}
		switch p.start.Name.Local {
		case "open", "data", "close":
		default:
			t.Fatalf("accepted %q", p.start.Name.Local)
		}
		if p.sid == "" {
			t.Fatal("accepted without sid")
		}
		if n := p.decodedLen(); n < -2 || n > maxIBBPayload {
			t.Fatalf("decoded length %d", n)
		}
	})
}
