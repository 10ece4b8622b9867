package e2e

import (
	"encoding/xml"
	"fmt"
	"github.com/securejingle/securejingle/e2e/store"
	"slices"
	"testing"
)

const oneLine = "Are we still on for lunch at noon tomorrow?"

// chatStanza renders a chat <message/> the way a client sends it, with
// either a cleartext body or the compact element and a store hint.
func chatStanza(t testing.TB, payload string) string {
	t.Helper()
	return `<message from='alice@example.org/phone' to='bob@example.net' type='chat' id='b5c1f2a9'>` + payload + `</message>`
}

func marshalXML(t testing.TB, v any) string {
	t.Helper()
	b, err := xml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWireOverhead reports the bytes a steady-state one-line chat message
// costs over the same cleartext message (compact element and store hint
// against a plain body), and fails above the hard limit. Steady state is a
// conversation in progress: most messages carry a short ratchet header;
// the one message after each DH ratchet step carries the full header until
// the peer acknowledges it, and is reported separately.
func TestWireOverhead(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	for i := 0; i < 4; i++ { // past the handshake
		recv(t, a, b, send(t, a, b, "x"), "x")
		recv(t, b, a, send(t, b, a, "y"), "y")
	}
	clear := chatStanza(t, "<body>"+escape(t, oneLine)+"</body>")
	const hint = `<store xmlns='urn:xmpp:hints'/>`
	var short, full []int
	for i := 0; i < 96; i++ { // alternating, with bursts of two
		from, to := a, b
		if i%3 == 2 {
			from, to = b, a
		}
		el := send(t, from, to, oneLine)
		d := len(chatStanza(t, marshalXML(t, el)+hint)) - len(clear)
		_, es, err := parseEntries(el.Blob)
		if err != nil {
			t.Fatal(err)
		}
		if es[0].kind&kindMask == kindShort {
			short = append(short, d)
		} else {
			full = append(full, d)
		}
		recv(t, from, to, el, oneLine)
	}
	steady := slices.Max(short)
	t.Logf("one-line chat, %d bytes of text, cleartext stanza %d bytes", len(oneLine), len(clear))
	t.Logf("steady state (short header, %d of 96 messages): +%d bytes; after a ratchet step (full header, %d of 96): +%d bytes; target 120, limit 160",
		len(short), steady, len(full), slices.Max(full))
	fmt.Printf("wire overhead: steady state +%d bytes (%d/96 messages), after a DH ratchet step +%d bytes (%d/96), over a %d-byte cleartext chat stanza\n",
		steady, len(short), slices.Max(full), len(full), len(clear))
	if steady > 160 {
		t.Fatalf("steady-state overhead %d bytes exceeds the 160-byte limit", steady)
	}
	if len(short) < len(full) {
		t.Fatalf("most messages carry full headers (%d full, %d short)", len(full), len(short))
	}
}

func escape(t testing.TB, s string) string {
	var b []byte
	w := xmlEscaper{&b}
	if err := xml.EscapeText(w, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type xmlEscaper struct{ b *[]byte }

func (w xmlEscaper) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

func BenchmarkHandshake(b *testing.B) {
	for _, sid := range []SuiteID{SuiteXWingAES, SuiteX25519AES} {
		b.Run(sid.String(), func(b *testing.B) {
			clk := newClock()
			x := newTestEngine(b, "alice@example.org", clk, sid)
			y := newTestEngine(b, "bob@example.net", clk, sid)
			introduce(b, x, y)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// A fresh first message and its reply: both sides' full work.
				x.store.Update(func(tx store.Tx) error { return tx.Delete(bucketSessions, dev(y).key()) })
				y.store.Update(func(tx store.Tx) error { return tx.Delete(bucketSessions, dev(x).key()) })
				handshakeOnce(b, x, y)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/2, "µs/side")
		})
	}
}

func BenchmarkChatSealOpen(b *testing.B) {
	clk := newClock()
	x := newTestEngine(b, "alice@example.org", clk)
	y := newTestEngine(b, "bob@example.net", clk)
	introduce(b, x, y)
	recv(b, x, y, send(b, x, y, "x"), "x")
	recv(b, y, x, send(b, y, x, "y"), "y")
	recv(b, x, y, send(b, x, y, "x"), "x")
	cx, cy := chatCtx(x, y), []Device{dev(y)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		el, err := x.SealChat(cx, cy, oneLine, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := y.OpenChat(cx, el); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStanzaProtect(b *testing.B) {
	clk := newClock()
	x := newTestEngine(b, "alice@example.org", clk)
	y := newTestEngine(b, "bob@example.net", clk)
	introduce(b, x, y)
	recv(b, x, y, send(b, x, y, "x"), "x")
	recv(b, y, x, send(b, y, x, "y"), "y")
	c := Context{From: x.JID(), To: y.JID(), StanzaKind: "iq", StanzaType: "get", StanzaID: "iq1"}
	content := []byte(`<query xmlns='jabber:iq:version'/>`)
	for _, auth := range []bool{Encrypt, AuthOnly} {
		name := "encrypt"
		if auth {
			name = "auth-only"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p, err := x.Protect(c, []Device{dev(y)}, content, auth)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := y.Unprotect(c, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// handshakeOnce runs a first message from x to y and y's reply: both
// sides' whole handshake work.
func handshakeOnce(b *testing.B, x, y *testEngine) {
	el, err := x.SealChat(chatCtx(x, y), []Device{dev(y)}, "hi", false)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := y.OpenChat(chatCtx(x, y), el); err != nil {
		b.Fatal(err)
	}
	el, err = y.SealChat(chatCtx(y, x), []Device{dev(x)}, "hi", false)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := x.OpenChat(chatCtx(y, x), el); err != nil {
		b.Fatal(err)
	}
}
