package gateway

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/xmppx"
)

// frontPassword is the local password of the test fronts.
const frontPassword = "the local password"

// testFront is a gateway's composer served on a loopback c2sfront
// listener.
type testFront struct {
	srv  *c2sfront.Server
	addr string
	f    *Front
}

func startFront(t testing.TB, tg *testGateway) *testFront {
	t.Helper()
	cred, err := c2sfront.NewCredential(frontPassword, 4096)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := c2sfront.New(c2sfront.Config{Account: tg.cfg.JID.Bare(), Credential: cred, Logger: testLogger()}, tg.Front().Handle)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &testFront{srv: srv, addr: l.Addr().String(), f: tg.Front()}
}

// plainClient is a plain XMPP client (mellium) that records every stanza
// it receives: a user's unmodified client.
type plainClient struct {
	sess *xmpp.Session
	in   chan *Stanza
	done chan error
	seen []*Stanza // received, for waits that look back
}

// login logs in to the front as full and sends an available presence.
func (f *testFront) login(t testing.TB, full string) *plainClient {
	t.Helper()
	c, err := dialPlain(f.addr, full, frontPassword, f.srv.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.sess.Conn().Close() })
	c.send(t, `<presence/>`)
	// The front serves the client once its handler runs (just after the
	// bind result).
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Contains(f.f.Clients(), full) {
		if time.Now().After(deadline) {
			t.Fatalf("the front never served %s", full)
		}
		time.Sleep(time.Millisecond)
	}
	return c
}

func dialPlain(addr, full, password string, tlsCfg *tls.Config) (*plainClient, error) {
	return dialPlainReading(addr, full, password, tlsCfg, true)
}

// dialPlainReading is dialPlain; a client that is not reading never
// reads a stanza (a stuck client).
func dialPlainReading(addr, full, password string, tlsCfg *tls.Config, reading bool) (*plainClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := xmppx.Login(ctx, addr, jid.MustParse(full), password, tlsCfg, true)
	if err != nil {
		return nil, err
	}
	c := &plainClient{sess: sess, in: make(chan *Stanza, 1024), done: make(chan error, 1)}
	if !reading {
		return c, nil
	}
	go func() {
		r := sess.TokenReader()
		defer r.Close()
		for {
			tok, err := r.Token()
			if err != nil {
				c.done <- err
				close(c.in)
				return
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			st, err := readStanza(r, &start)
			if err != nil {
				c.done <- err
				close(c.in)
				return
			}
			select {
			case c.in <- st:
			default:
			}
		}
	}()
	return c, nil
}

func (c *plainClient) send(t testing.TB, raw string) {
	t.Helper()
	if err := c.sess.Send(context.Background(), xml.NewDecoder(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
}

// wait returns the first stanza ok accepts; it fails after a hang guard.
func (c *plainClient) wait(t testing.TB, what string, ok func(*Stanza) bool) *Stanza {
	t.Helper()
	for i, st := range c.seen {
		if ok(st) {
			c.seen = append(c.seen[:i:i], c.seen[i+1:]...)
			return st
		}
	}
	guard := time.After(15 * time.Second)
	for {
		select {
		case st, open := <-c.in:
			if !open {
				t.Fatalf("stream ended waiting for %s: %v", what, <-c.done)
			}
			if ok(st) {
				return st
			}
			c.seen = append(c.seen, st)
		case <-guard:
			t.Fatalf("no stanza: %s", what)
		}
	}
}

// waitEnd waits for the stream to end and returns how.
func (c *plainClient) waitEnd(t testing.TB) error {
	t.Helper()
	guard := time.After(15 * time.Second)
	for {
		select {
		case _, open := <-c.in:
			if !open {
				return <-c.done
			}
		case <-guard:
			t.Fatal("stream did not end")
		}
	}
}

func body(st *Stanza) string { s, _ := st.Text(nsClient, "body"); return s }

func chatWith(text string) func(*Stanza) bool {
	return func(st *Stanza) bool { return st.Kind == "message" && strings.Contains(body(st), text) }
}

// wireLog records what the embedded server routes.
type wireLog struct {
	ch chan localxmpp.Stanza
}

func recordWire(srv *localxmpp.Server) *wireLog {
	w := &wireLog{ch: make(chan localxmpp.Stanza, 4096)}
	srv.SetHook(func(_ localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		select {
		case w.ch <- st:
		default:
		}
		return []localxmpp.Stanza{st}
	})
	return w
}

// all returns what was recorded so far.
func (w *wireLog) all() []localxmpp.Stanza {
	var out []localxmpp.Stanza
	for {
		select {
		case st := <-w.ch:
			out = append(out, st)
		default:
			return out
		}
	}
}

// TestFrontChatEncrypted: two plain clients, each behind its account's
// gateway, chat; each sees the other's body plain, from the sender's full
// JID with the hint element, and the server never sees a body.
func TestFrontChatEncrypted(t *testing.T) {
	srv, a, b := pair(t)
	wire := recordWire(srv)
	fa, fb := startFront(t, a), startFront(t, b)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	a2 := fa.login(t, "alice@"+testDomain+"/second")
	a2.send(t, `<iq type="set" id="c1"><enable xmlns="urn:xmpp:carbons:2"/></iq>`)
	a2.wait(t, "carbons enabled", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "c1" })
	bc := fb.login(t, "bob@"+testDomain+"/client")

	ac.send(t, `<message type="chat" to="bob@`+testDomain+`" id="m1"><body>secret one</body></message>`)
	got := bc.wait(t, "alice's message", chatWith("secret one"))
	if got.From.String() != "alice@"+testDomain+"/laptop" || got.Type != "chat" {
		t.Errorf("delivered from %s type %q, want alice's gateway's full JID, chat", got.From, got.Type)
	}
	h := got.Child(nsFront, "protected")
	if h == nil || !strings.Contains(string(h.Raw), `trust="tofu"`) {
		t.Errorf("no hint with the trust state: %+v", got.Children)
	}
	// The other local client of alice gets a plain sent carbon.
	carbon := a2.wait(t, "a sent carbon", func(st *Stanza) bool { return st.Child(nsCarbons, "sent") != nil })
	inner, err := forwarded(carbon.Child(nsCarbons, "sent").Raw)
	if err != nil || body(inner) != "secret one" || inner.To.Bare().String() != "bob@"+testDomain {
		t.Errorf("sent carbon %v: %+v", err, inner)
	}
	bc.send(t, `<message type="chat" to="alice@`+testDomain+`" id="m2"><body>secret two</body></message>`)
	ac.wait(t, "bob's reply", chatWith("secret two"))
	a2.wait(t, "bob's reply at the second client", chatWith("secret two"))

	sawProtected := false
	for _, st := range wire.all() {
		if strings.Contains(string(st.Raw), "secret one") || strings.Contains(string(st.Raw), "secret two") {
			t.Errorf("the server saw a body in clear: %s", st.Raw)
		}
		if st.Name == "message" && strings.Contains(string(st.Raw), e2e.NS) {
			sawProtected = true
		}
	}
	if !sawProtected {
		t.Error("no protected message on the wire")
	}
	// The clients never got our envelopes (copies by bare-JID routing
	// and carbons reach their upstream sessions).
	for _, c := range []*plainClient{ac, a2, bc} {
		for len(c.in) > 0 {
			st := <-c.in
			if st.Kind == "message" && (st.Child(e2e.NS, "c") != nil || strings.Contains(stanzaText(st), `xmlns="`+e2e.NS+`"`)) {
				t.Errorf("a client got our envelope: %+v", st)
			}
		}
	}
}

func stanzaText(st *Stanza) string {
	var b strings.Builder
	for _, c := range st.Children {
		b.Write(c.Raw)
	}
	return b.String()
}

// TestFrontPresenceCarriesEngineElement: the client's available presence
// reaches the contact's gateway with our signed presence element, so the
// contact sees the client's resource as supporting securejingle.
func TestFrontPresenceCarriesEngineElement(t *testing.T) {
	_, a, b := pair(t)
	fa := startFront(t, a)
	fa.login(t, "alice@"+testDomain+"/client")
	deadline := time.Now().Add(15 * time.Second)
	for b.Contacts("alice@" + testDomain)["client"] != a.eng.Device() {
		if time.Now().After(deadline) {
			t.Fatalf("bob's gateway does not see alice/client with device %d: %v", a.eng.Device(), b.Contacts("alice@"+testDomain))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFrontPresenceCaps: the client's presence goes up through the caps
// rewriter: without caps of its own it carries the gateway's <c/>, and a
// disco#info query for that node to the client's JID is answered by the
// gateway with our features (the client never sees it).
func TestFrontPresenceCaps(t *testing.T) {
	srv, a, _ := pair(t)
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	var pres localxmpp.Stanza
	deadline := time.After(15 * time.Second)
	for pres.Name == "" {
		select {
		case st := <-wire.ch:
			if st.Name == "presence" && st.From.String() == "alice@"+testDomain+"/client" {
				pres = st
			}
		case <-deadline:
			t.Fatal("no presence of the client on the wire")
		}
	}
	p, err := parseStanzaIn(pres.Raw, nsClient)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Child(nsCaps, "c")
	if c == nil || !strings.Contains(string(c.Raw), capsNode) || p.Child(e2e.NS, "e2e") == nil {
		t.Fatalf("client presence upstream: %s", pres.Raw)
	}
	ver := a.capsVer()
	q, _ := localxmpp.ParseStanza([]byte(`<iq type="get" id="d1" from="bob@` + testDomain + `/phone" to="alice@` + testDomain + `/client"><query xmlns="` + nsDiscoInfo + `" node="` + capsNode + `#` + ver + `"/></iq>`))
	if err := srv.Inject(q); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case st := <-wire.ch:
			if st.Name == "iq" && st.ID == "d1" && st.Type == "result" {
				if !strings.Contains(string(st.Raw), e2e.NS) {
					t.Errorf("answer without our feature: %s", st.Raw)
				}
				marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="alice@` + testDomain + `/client"><body>marker</body></message>`))
				if err := srv.Inject(marker); err != nil {
					t.Fatal(err)
				}
				ac.wait(t, "the marker", chatWith("marker"))
				for _, s := range ac.seen {
					if s.ID == "d1" {
						t.Errorf("the client saw the query: %+v", s)
					}
				}
				return
			}
		case <-deadline:
			t.Fatal("the caps query was not answered")
		}
	}
}

// carolOn logs carol (a plain account without securejingle) in directly.
func carolOn(t *testing.T, srv *localxmpp.Server) *plainClient {
	t.Helper()
	if err := srv.AddUser("carol", "carol-password"); err != nil {
		t.Fatal(err)
	}
	c, err := dialPlain(srv.Addr().String(), "carol@"+testDomain+"/plain", "carol-password", srv.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.sess.Conn().Close() })
	c.send(t, `<presence/>`)
	return c
}

// pairWith is pair with alice's gateway set up by setup.
func pairWith(t *testing.T, setup func(*Gateway)) (*localxmpp.Server, *testGateway, *testGateway) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)); err != nil {
		t.Fatal(err)
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{setup: setup})
	b := startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{})
	a.waitDevices(t, "bob@"+testDomain, 1)
	b.waitDevices(t, "alice@"+testDomain, 1)
	return srv, a, b
}

// isAlertFrom reports whether st is an alert the front injected that
// mentions text.
func isAlertFrom(text string) func(*Stanza) bool {
	return func(st *Stanza) bool {
		return st.Kind == "message" && st.From.Equal(jid.MustParse("alice@"+testDomain+"/"+FrontAlertResource)) &&
			st.Child(nsAlert, "alert") != nil && strings.Contains(body(st), text)
	}
}

// TestFrontCleartextPolicyFlags: chat to a contact without securejingle
// goes through policy; the default flags it: sent in clear, and a
// warning is injected into the client from the alert JID.
func TestFrontCleartextPolicyFlags(t *testing.T) {
	srv, a, _ := pair(t)
	carol := carolOn(t, srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	// With carbons on, the server's sent carbon of the gateway's alert
	// to the own JID reaches the client's upstream too: it must be
	// dropped, the alert shown once.
	ac.send(t, `<iq type="set" id="c1"><enable xmlns="urn:xmpp:carbons:2"/></iq>`)
	ac.wait(t, "carbons enabled", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "c1" })
	ac.send(t, `<message type="chat" to="carol@`+testDomain+`" id="p1"><body>plain hello</body></message>`)
	carol.wait(t, "the cleartext message", chatWith("plain hello"))
	ac.wait(t, "the injected warning", isAlertFrom("carol@"+testDomain))
	time.Sleep(200 * time.Millisecond) // let a copy arrive, if one comes (not a speed check)
	marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="alice@` + testDomain + `/client"><body>marker</body></message>`))
	if err := srv.Inject(marker); err != nil {
		t.Fatal(err)
	}
	ac.wait(t, "the marker", chatWith("marker"))
	for _, st := range ac.seen {
		if strings.Contains(body(st), "carol@"+testDomain) || st.Child(nsCarbons, "sent") != nil && strings.Contains(stanzaText(st), nsAlert) {
			t.Errorf("the alert reached the client twice: %+v", st)
		}
	}
}

// TestFrontCleartextPolicyRefuses: with a rule refusing outgoing
// cleartext chat the client's message is bounced with a policy-violation
// error carrying the explanation, the alert is injected, and nothing is
// sent.
func TestFrontCleartextPolicyRefuses(t *testing.T) {
	pol := compilePolicy(t, `
[[rule]]
name = "refuse-cleartext-out"
kind = "chat"
direction = "outgoing"
protection = "cleartext"
stanza_type = "chat"
action = "refuse"
message = "Plain chat is not allowed here."
`)
	srv, a, _ := pairWith(t, func(g *Gateway) { g.policy = pol })
	carol := carolOn(t, srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<message type="chat" to="carol@`+testDomain+`" id="p2"><body>refused hello</body></message>`)
	bounce := ac.wait(t, "the bounce", func(st *Stanza) bool { return st.Kind == "message" && st.Type == "error" && st.ID == "p2" })
	e := bounce.Child(nsClient, "error")
	if e == nil || !strings.Contains(string(e.Raw), "policy-violation") || !strings.Contains(string(e.Raw), "Plain chat is not allowed here.") {
		t.Errorf("bounce %+v", bounce.Children)
	}
	if bounce.From.String() != "carol@"+testDomain {
		t.Errorf("bounce from %s, want the addressee", bounce.From)
	}
	ac.wait(t, "the explanation", isAlertFrom("Plain chat is not allowed here."))
	// Nothing reached carol: the next message she sees is a later one
	// the rule allows (type normal).
	ac.send(t, `<message type="normal" to="carol@`+testDomain+`" id="p3"><body>marker</body></message>`)
	got := carol.wait(t, "any message", func(st *Stanza) bool { return st.Kind == "message" && body(st) != "" })
	if body(got) != "marker" {
		t.Errorf("carol got %q first, want the marker (the refused message was sent)", body(got))
	}
}

// TestFrontForeignEncryptionPassesThrough: an OMEMO message of the client
// reaches the contact with its encrypted element byte for byte and a
// fixed fallback body (nothing else of it), and policy classifies it
// (the default flags e2e-unverified: an alert in the client).
func TestFrontForeignEncryptionPassesThrough(t *testing.T) {
	srv, a, _ := pair(t)
	carol := carolOn(t, srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	const omemo = `<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="7"><key rid="9">a2V5</key><iv>aXY=</iv></header><payload>Y2lwaGVy</payload></encrypted>`
	ac.send(t, `<message type="chat" to="carol@`+testDomain+`" id="o1">`+omemo+`<body>I sent you an OMEMO encrypted message</body><html xmlns="http://jabber.org/protocol/xhtml-im"><body xmlns="http://www.w3.org/1999/xhtml">side-text</body></html></message>`)
	got := carol.wait(t, "the OMEMO message", func(st *Stanza) bool { return st.Child("eu.siacs.conversations.axolotl", "encrypted") != nil })
	// The client's body and other content stay here: a fixed fallback.
	if b, _ := got.Text(nsClient, "body"); b != foreignFallback || got.Child("http://jabber.org/protocol/xhtml-im", "html") != nil {
		t.Errorf("body %q, children %+v", b, got.Children)
	}
	if !strings.Contains(string(got.Child("eu.siacs.conversations.axolotl", "encrypted").Raw), "Y2lwaGVy") {
		t.Errorf("payload changed: %s", got.Child("eu.siacs.conversations.axolotl", "encrypted").Raw)
	}
	ac.wait(t, "the classification alert", isAlertFrom("carol@"+testDomain))
}

// TestFrontBadInputEndsOnlyThatClient: malformed XML, an over-size
// stanza and a stanza claiming another account each end that client's
// stream with its stream error and its upstream session; the other
// client of the account still chats.
func TestFrontBadInputEndsOnlyThatClient(t *testing.T) {
	_, a, b := pair(t)
	fa, fb := startFront(t, a), startFront(t, b)
	good := fa.login(t, "alice@"+testDomain+"/good")
	bc := fb.login(t, "bob@"+testDomain+"/client")
	for i, tc := range []struct {
		name, raw, cond string
	}{
		{"forged from", `<message from="bob@` + testDomain + `/x" to="bob@` + testDomain + `" type="chat"><body>forged</body></message>`, "invalid-from"},
		{"malformed", `<message to="bob@` + testDomain + `"><body>x</bod></message>`, "not-well-formed"},
		{"huge", `<message to="bob@` + testDomain + `" type="chat"><body>` + strings.Repeat("x", c2sfront.MaxStanzaSize+1) + `</body></message>`, "policy-violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := "alice@" + testDomain + "/bad" + string(rune('0'+i))
			bad := fa.login(t, full)
			if _, err := bad.sess.Conn().Write([]byte(tc.raw)); err != nil {
				t.Fatal(err)
			}
			if err := bad.waitEnd(t); err == nil || !strings.Contains(err.Error(), tc.cond) {
				t.Errorf("stream ended with %v, want %s", err, tc.cond)
			}
			// Its upstream session is gone; the good one stays.
			deadline := time.Now().Add(15 * time.Second)
			for slices.Contains(a.Front().Clients(), full) || !slices.Contains(a.Front().Clients(), "alice@"+testDomain+"/good") {
				if time.Now().After(deadline) {
					t.Fatalf("front clients: %v", a.Front().Clients())
				}
				time.Sleep(10 * time.Millisecond)
			}
			body := "still here after " + tc.name
			good.send(t, `<message type="chat" to="bob@`+testDomain+`"><body>`+body+`</body></message>`)
			bc.wait(t, "the good client's message", chatWith(body))
		})
	}
}

// TestFrontUpstreamLoginFailure: when the server refuses the account's
// password the client is told why and how to fix it, in a message and in
// the stream error's text.
func TestFrontUpstreamLoginFailure(t *testing.T) {
	_, a, _ := pair(t)
	a.cfg.Password = "wrong"
	fa := startFront(t, a)
	c, err := dialPlain(fa.addr, "alice@"+testDomain+"/client", frontPassword, fa.srv.ClientTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.sess.Conn().Close()
	c.wait(t, "the explanation", func(st *Stanza) bool { return strings.Contains(body(st), "refused the account's password") })
	err = c.waitEnd(t)
	if !strings.Contains(err.Error(), "remote-connection-failed") {
		t.Errorf("stream ended with %v", err)
	}
}

// TestFrontRefusesGatewayResource: a client may not bind the gateway's
// own resource or the alert resource.
func TestFrontRefusesGatewayResource(t *testing.T) {
	_, a, _ := pair(t)
	fa := startFront(t, a)
	for _, res := range []string{"laptop", FrontAlertResource} {
		c, err := dialPlain(fa.addr, "alice@"+testDomain+"/"+res, frontPassword, fa.srv.ClientTLSConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.waitEnd(t); err == nil || !strings.Contains(err.Error(), "conflict") {
			t.Errorf("%s: stream ended with %v, want conflict", res, err)
		}
		c.sess.Conn().Close()
	}
}

// TestFrontDropsForgedAlerts: a message from the alert JID arriving from
// the server never reaches the client (only the gateway speaks as it).
func TestFrontDropsForgedAlerts(t *testing.T) {
	srv, a, _ := pair(t)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.wait(t, "own presence", func(st *Stanza) bool { return st.Kind == "presence" })
	forged, err := localxmpp.ParseStanza([]byte(`<message type="chat" from="alice@` + testDomain + `/` + FrontAlertResource + `" to="alice@` + testDomain + `/client"><body>forged alert</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Inject(forged); err != nil {
		t.Fatal(err)
	}
	marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="alice@` + testDomain + `/client"><body>marker</body></message>`))
	if err := srv.Inject(marker); err != nil {
		t.Fatal(err)
	}
	ac.wait(t, "the marker", chatWith("marker"))
	for _, st := range ac.seen {
		if strings.Contains(body(st), "forged alert") {
			t.Errorf("the client got the forged alert: %+v", st)
		}
	}
}

// TestFrontStuckClientIsDisconnected: a client that stops reading while
// the server floods it is disconnected (backpressure upstream, a write
// deadline, a bounded queue for what the gateway delivers), and
// meanwhile the gateway keeps delivering decrypted chat to the account's
// other client. (A blocking queue for gateway deliveries would pass too,
// late: the write deadline ends the stuck client after 10 s. The test
// that found the server's rerouted flood disconnecting the good client
// is this one.)
func TestFrontStuckClientIsDisconnected(t *testing.T) {
	srv, a, b := pair(t)
	fa, fb := startFront(t, a), startFront(t, b)
	good := fa.login(t, "alice@"+testDomain+"/good")
	bc := fb.login(t, "bob@"+testDomain+"/client")
	stuckJID := "alice@" + testDomain + "/stuck"
	stuck, err := dialPlainReading(fa.addr, stuckJID, frontPassword, fa.srv.ClientTLSConfig(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.sess.Conn().Close()
	// A small receive window, so that the front's writes block soon.
	if tc, ok := stuck.sess.Conn().(*tls.Conn); ok {
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			tcp.SetReadBuffer(4096)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Contains(a.Front().Clients(), stuckJID) {
		if time.Now().After(deadline) {
			t.Fatal("the front never served the stuck client")
		}
		time.Sleep(time.Millisecond)
	}
	// Type error: once the server dropped the stuck session, these are
	// discarded, not rerouted to the account's other resources.
	flood, err := localxmpp.ParseStanza([]byte(`<message type="error" from="` + testDomain + `" to="` + stuckJID + `"><body>` + strings.Repeat("f", 4<<10) + `</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; slices.Contains(a.Front().Clients(), stuckJID); i++ {
		if i > 1_000_000 {
			t.Fatal("the stuck client was never disconnected")
		}
		if i%64 == 0 {
			// Decrypted chat goes to every client of alice, the stuck
			// one too: the good one still gets it.
			body := fmt.Sprintf("while stuck %d", i)
			bc.send(t, `<message type="chat" to="alice@`+testDomain+`"><body>`+body+`</body></message>`)
			good.wait(t, "chat while the other client is stuck", chatWith(body))
		}
		if i < 20000 {
			if err := srv.Inject(flood); err != nil {
				t.Fatal(err)
			}
		}
	}
	bc.send(t, `<message type="chat" to="alice@`+testDomain+`"><body>after the stuck one</body></message>`)
	good.wait(t, "chat after", chatWith("after the stuck one"))
}

// TestFrontNoCleartextToSupportingContact: a contact whose presence
// advertises securejingle but whose bundle could not be fetched (the
// server withholds it) gets no cleartext from a local client, whatever
// the rules: the message is bounced (front-no-usable-device) and never
// reaches the server in clear.
func TestFrontNoCleartextToSupportingContact(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)); err != nil {
		t.Fatal(err)
	}
	wire := make(chan localxmpp.Stanza, 4096)
	srv.SetHook(func(_ localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		select {
		case wire <- st:
		default:
		}
		if st.To.Bare().String() == "alice@"+testDomain && strings.Contains(string(st.Raw), "<bundle") {
			return nil // alice never gets bob's bundle
		}
		return []localxmpp.Stanza{st}
	})
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{})
	startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{})
	deadline := time.Now().Add(15 * time.Second)
	for a.Contacts("bob@" + testDomain)["phone"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("alice never saw bob's securejingle presence")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ds, _ := a.eng.Devices("bob@" + testDomain); len(ds) != 0 {
		t.Fatalf("alice has bob's devices %v: the hook did not withhold them", ds)
	}
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<message type="chat" to="bob@`+testDomain+`" id="n1"><body>must not go in clear</body></message>`)
	bounce := ac.wait(t, "the bounce", func(st *Stanza) bool { return st.Type == "error" && st.ID == "n1" })
	// The hook withholds the PEP answer too: the lookup times out, and
	// the message bounces as not checked.
	if e := bounce.Child(nsClient, "error"); e == nil || !strings.Contains(string(e.Raw), "could not check") || !strings.Contains(string(e.Raw), "Nothing was sent in clear") {
		t.Errorf("bounce %+v", bounce.Children)
	}
	for len(wire) > 0 {
		if st := <-wire; strings.Contains(string(st.Raw), "must not go in clear") {
			t.Errorf("the server saw it: %s", st.Raw)
		}
	}
}
