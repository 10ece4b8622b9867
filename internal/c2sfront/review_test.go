package c2sfront

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mellium.im/xmpp/jid"
	"sync"

	"context"
	"encoding/xml"
	"mellium.im/xmpp/stream"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// TestCloseEndsBoundSessions: Server.Close returns while a bound client is
// still connected and idle; the handler's Next sees the close (review
// rvc2s: Close closed only the listeners and waited for the handlers,
// which wait for the client, so it hung as long as a client stayed).
func TestCloseEndsBoundSessions(t *testing.T) {
	r := &reads{st: make(chan localxmpp.Stanza, 4), err: make(chan error, 1)}
	s, addr := newTestServer(t, r.handle)
	if _, err := dial(t, s, addr, "alice", testPassword, "idle"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a bound client was connected")
	}
	select {
	case <-r.err:
	default:
		t.Fatal("the handler's Next did not end")
	}
}

// TestStuckClientReleasesSlot: a bound client that stops reading while a
// write to it is under way does not keep its connection slot once the
// handler returns (review rvc2s: the closing </stream:stream> waited for
// the stuck write with no deadline, so the slot, the goroutine and Close
// were held for as long as the client stayed).
func TestStuckClientReleasesSlot(t *testing.T) {
	cred, _ := NewCredential(testPassword, minIterations)
	big := localxmpp.Stanza{}
	first := make(chan struct{})
	h := func(sess *Session) {
		select {
		case <-first:
			return // the second login
		default:
			close(first)
		}
		st, err := localxmpp.StanzaFromTokens(nil, xml.NewDecoder(strings.NewReader(
			"<message xmlns='jabber:client' to='alice@example.org'><body>"+strings.Repeat("x", 200<<10)+"</body></message>")))
		if err != nil {
			t.Error(err)
			return
		}
		big = st
		go func() {
			for sess.Send(context.Background(), big) == nil {
			}
		}()
		time.Sleep(500 * time.Millisecond) // the client reads nothing: the writer blocks
	}
	s, err := New(Config{Account: testAccount, Credential: cred, MaxConns: 1, Logger: quiet}, h)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	if _, err := dial(t, s, l.Addr().String(), "alice", testPassword, "stuck"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := dial(t, s, l.Addr().String(), "alice", testPassword, "next")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stuck client's slot was never released: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDuplicateAttributes: a stanza with a repeated attribute is not
// well-formed XML (Unique Att Spec, and the namespaces rule for two
// prefixes of one namespace); encoding/xml does not notice, and Next
// checked the first 'from' while a reader taking the last one (as the
// gateway's own stanza parser does) saw another account (review rvc2s).
func TestDuplicateAttributes(t *testing.T) {
	for name, in := range map[string]string{
		"from twice":                    "<message from='BOUND' from='mallory@example.org/x' to='bob@example.org'><body>x</body></message>",
		"to twice":                      "<message to='bob@example.org' to='carol@example.org'><body>x</body></message>",
		"in a child":                    "<message to='bob@example.org'><body xml:lang='en' xml:lang='de'>x</body></message>",
		"two prefixes of one namespace": "<message to='bob@example.org' xmlns:a='urn:x' xmlns:b='urn:x'><x xmlns='urn:y' a:v='1' b:v='2'/></message>",
	} {
		t.Run(name, func(t *testing.T) {
			r := &reads{st: make(chan localxmpp.Stanza, 4), err: make(chan error, 1)}
			s, addr := newTestServer(t, r.handle)
			xs, err := dial(t, s, addr, "alice", testPassword, "res")
			if err != nil {
				t.Fatal(err)
			}
			go io.WriteString(xs.Conn(), strings.ReplaceAll(in, "BOUND", xs.LocalAddr().String()))
			select {
			case st := <-r.st:
				t.Fatalf("delivered: %s", st)
			case err = <-r.err:
			}
			var se stream.Error
			if !errors.As(err, &se) || se.Err != stream.NotWellFormed.Err {
				t.Fatalf("got %v, want stream error not-well-formed", err)
			}
		})
	}
}

// preAuth brings a raw client to the point where it may send <auth/>.
func preAuth(t *testing.T, s *Server, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return preAuthConn(t, s, conn)
}

// preAuthConn is preAuth on a connection the test dialled.
func preAuthConn(t *testing.T, s *Server, conn net.Conn) *rawClient {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{t: t, conn: conn}
	hdr := "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	c.send(hdr)
	c.expect("</stream:features>")
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.expect("<proceed")
	c.expect(">")
	tc := tls.Client(conn, s.ClientTLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.send(hdr)
	c.expect("</stream:features>")
	return c
}

// readAll reads what the server sends until it closes or 2 s pass.
func (c *rawClient) readAll() string {
	c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c.conn)
	return string(c.buf) + string(b)
}

// TestLockoutCountsConcurrentAttempts: connections opened before the
// lockout cannot all guess: at most maxAuthFailures passwords are checked
// per lockout period however many connections are waiting to send <auth/>
// (review rvc2s: the lockout was checked only at accept, so MaxConns
// connections opened first got MaxConns guesses a minute, not 5).
func TestLockoutCountsConcurrentAttempts(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	const n = 10
	var cs []*rawClient
	for i := 0; i < n; i++ {
		cs = append(cs, preAuth(t, s, addr))
	}
	wrong := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wrong"))
	out := make(chan string, n)
	for _, c := range cs {
		go func() {
			io.WriteString(c.conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+wrong+"</auth>")
			out <- c.readAll()
		}()
	}
	checked := 0
	for i := 0; i < n; i++ {
		got := <-out
		if strings.Contains(got, "<success") {
			t.Fatalf("wrong password accepted: %s", got)
		}
		if strings.Contains(got, "not-authorized") {
			checked++
		}
	}
	if checked > maxAuthFailures {
		t.Fatalf("%d passwords checked on connections opened before the lockout, want at most %d", checked, maxAuthFailures)
	}
}

// flakyListener fails its first Accept with a non-closed error (as
// accept(2) does with EMFILE), then hands out one connection.
type flakyListener struct {
	oneListener
	failed bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, errors.New("accept: too many open files")
	}
	return l.oneListener.Accept()
}

// TestServeSurvivesAcceptError: an accept error other than the listener's
// close does not end Serve (review rvc2s: one EMFILE, which other load on
// the process can cause, stopped the local listener for good).
func TestServeSurvivesAcceptError(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	cred, _ := NewCredential(testPassword, minIterations)
	s, err := New(Config{Account: testAccount, Credential: cred, Logger: quiet}, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client, server := net.Pipe()
	defer client.Close()
	l := &flakyListener{oneListener: oneListener{c: make(chan net.Conn, 1), done: make(chan struct{})}}
	l.c <- remoteConn{Conn: server, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5222}}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(client, "<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
	var b [64]byte
	if n, err := client.Read(b[:]); n == 0 {
		select {
		case err := <-served:
			t.Fatalf("Serve returned %v after one accept error", err)
		default:
		}
		t.Fatalf("no stream header after an accept error: %v", err)
	}
}

// TestWSFilterCommentsAndCDATA: a '>' and an end tag inside a comment or
// a CDATA section do not make the whitespace filter lose count (review
// rvc2s: it ended a "<!" construct at the first '>', then took the end
// tag for real, dropped whitespace inside elements and kept it between
// them).
func TestWSFilterCommentsAndCDATA(t *testing.T) {
	const hdr = "<stream:stream>"
	for _, c := range []struct{ in, want string }{
		{hdr + "<iq><bind><resource><![CDATA[ > </resource></bind></iq> ]]> a b </resource></bind></iq>\n<x/>",
			hdr + "<iq><bind><resource><![CDATA[ > </resource></bind></iq> ]]> a b </resource></bind></iq><x/>"},
		{hdr + "<iq><bind><resource><!-- > </resource></bind></iq> --> a b </resource></bind></iq>\n<x/>",
			hdr + "<iq><bind><resource><!-- > </resource></bind></iq> --> a b </resource></bind></iq><x/>"},
		// "]]" and "--" runs, and a '>' not after two of them.
		{hdr + "<a><![CDATA[]>]]]>\n</a>\n<!-- - -> --->\n<b/>", hdr + "<a><![CDATA[]>]]]>\n</a><!-- - -> ---><b/>"},
		// A declaration ends at its own '>', not at one in a quote or a
		// nested '<...>'.
		{hdr + "<!DOCTYPE x [<!ENTITY e '>'>]>\n<a>\n</a>\n", hdr + "<!DOCTYPE x [<!ENTITY e '>'>]><a>\n</a>"},
	} {
		f := newWSFilter()
		b := []byte(c.in)
		if got := string(b[:f.filter(b)]); got != c.want {
			t.Errorf("filter(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
		f = newWSFilter()
		var out []byte
		for i := 0; i < len(c.in); i++ {
			one := []byte{c.in[i]}
			out = append(out, one[:f.filter(one)]...)
		}
		if string(out) != c.want {
			t.Errorf("byte by byte filter(%q)\n = %q\nwant %q", c.in, out, c.want)
		}
	}
}

// TestSendBoundedByContext: Session.Send to a client that stopped reading
// returns once its ctx ends (review rvc2s: mellium's ctx handling sets a
// past write deadline and resets it at once, and the woken write went
// back to waiting, so Send blocked for as long as the client stayed).
func TestSendBoundedByContext(t *testing.T) {
	res := make(chan error, 1)
	h := func(sess *Session) {
		st, err := localxmpp.StanzaFromTokens(nil, xml.NewDecoder(strings.NewReader(
			"<message xmlns='jabber:client' to='alice@example.org'><body>"+strings.Repeat("x", 200<<10)+"</body></message>")))
		if err != nil {
			res <- err
			return
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			done := make(chan error, 1)
			go func() { done <- sess.Send(ctx, st) }()
			select {
			case err := <-done:
				cancel()
				if err != nil {
					res <- err
					return
				}
			case <-time.After(10 * time.Second):
				cancel()
				res <- errors.New("Send blocked past its ctx")
				sess.conn.Close()
				<-done
				return
			}
		}
	}
	s, addr := newTestServer(t, h)
	if _, err := dial(t, s, addr, "alice", testPassword, "stuck"); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send to a client that reads nothing: %v, want the ctx's deadline", err)
	}
}

// TestAbusiveStanzas: deep nesting, many attributes on one element, one
// huge attribute value and a flood of text between stanzas end the stream
// with policy-violation and deliver nothing (checked in review rvc2s;
// sound before it).
func TestAbusiveStanzas(t *testing.T) {
	var attrs strings.Builder
	for i := 0; i < 40000; i++ {
		fmt.Fprintf(&attrs, " a%d='x'", i)
	}
	for name, in := range map[string]string{
		"deep":        "<message to='bob@example.org'>" + strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70) + "</message>",
		"very deep":   "<message to='bob@example.org'>" + strings.Repeat("<a>", 200000),
		"many attrs":  "<message to='bob@example.org'" + attrs.String() + "/>",
		"huge attr":   "<message to='bob@example.org' id='" + strings.Repeat("x", MaxStanzaSize+readSlack) + "'/>",
		"text flood":  strings.Repeat("x", MaxStanzaSize+readSlack+1),
		"namespaces":  "<message to='bob@example.org'" + strings.ReplaceAll(attrs.String(), " a", " xmlns:a") + "/>",
		"unclosed pi": "<message to='bob@example.org'><?x " + strings.Repeat("y", MaxStanzaSize+readSlack),
	} {
		t.Run(name, func(t *testing.T) {
			r := &reads{st: make(chan localxmpp.Stanza, 4), err: make(chan error, 1)}
			s, addr := newTestServer(t, r.handle)
			xs, err := dial(t, s, addr, "alice", testPassword, "res")
			if err != nil {
				t.Fatal(err)
			}
			go io.WriteString(xs.Conn(), in)
			select {
			case st := <-r.st:
				t.Fatalf("delivered: %.200s", st)
			case err = <-r.err:
			}
			var se stream.Error
			if !errors.As(err, &se) || se.Err != stream.PolicyViolation.Err {
				t.Fatalf("got %v, want stream error policy-violation", err)
			}
		})
	}
}

// TestMalformedSASL: malformed or unauthorised SASL exchanges, including
// the right password with another authzid, fail with <failure/> and never
// succeed (checked in review rvc2s; sound before it).
func TestMalformedSASL(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	auth := func(mech, payload string) string {
		return "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" + payload + "</auth>"
	}
	resp := func(payload string) string {
		return "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + payload + "</response>"
	}
	scramFirst := auth(mechSCRAM, b64("n,,n=alice,r=abcdefghijklmnop"))
	for name, in := range map[string]string{
		"plain other authzid":      auth(mechPlain, b64("bob@example.org\x00alice\x00"+testPassword)),
		"plain full jid authzid":   auth(mechPlain, b64("alice@example.org/x\x00alice\x00"+testPassword)),
		"plain other user":         auth(mechPlain, b64("\x00bob\x00"+testPassword)),
		"plain four fields":        auth(mechPlain, b64("\x00alice\x00"+testPassword+"\x00")),
		"plain empty":              auth(mechPlain, "="),
		"plain not base64":         auth(mechPlain, "!!!"),
		"unknown mechanism":        auth("SCRAM-SHA-1", b64("n,,n=alice,r=abcdefghijklmnop")),
		"no mechanism":             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64("\x00alice\x00"+testPassword) + "</auth>",
		"abort":                    "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
		"scram other authzid":      auth(mechSCRAM, b64("n,a=bob,n=alice,r=abcdefghijklmnop")),
		"scram channel binding":    auth(mechSCRAM, b64("p=tls-exporter,,n=alice,r=abcdefghijklmnop")),
		"scram abort":              scramFirst + "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
		"scram garbage final":      scramFirst + resp(b64("c=biws,r=abcdefghijklmnop,p="+b64(strings.Repeat("x", 32)))),
		"scram second auth":        scramFirst + scramFirst,
		"scram empty response":     scramFirst + resp(""),
		"scram response not b64":   scramFirst + resp("%%%"),
		"scram oversize response":  scramFirst + resp(strings.Repeat("A", 8192)),
		"nested auth":              "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'><auth>" + b64("\x00alice\x00"+testPassword) + "</auth></auth>",
		"other namespace response": scramFirst + "<response xmlns='urn:x'>AAAA</response>",
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{got: make(chan jid.JID, 1)}
			s, addr := newTestServer(t, r.handle)
			c := preAuth(t, s, addr)
			c.send(in)
			got := c.readAll()
			if strings.Contains(got, "<success") || !strings.Contains(got, "<failure") {
				t.Fatalf("answer %q", got)
			}
		})
	}
	// The control: the same client with the right password and authzid.
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	c := preAuth(t, s, addr)
	c.send(auth(mechPlain, b64("alice@example.org\x00alice\x00"+testPassword)))
	c.expect("<success")
}

// TestOrderEnforced: the right password before STARTTLS, a bind before
// SASL, and a second STARTTLS are all refused (checked in review rvc2s;
// sound before it).
func TestOrderEnforced(t *testing.T) {
	hdr := "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	plain := "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00"+testPassword)) + "</auth>"
	bind := "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"
	r := &recorder{got: make(chan jid.JID, 4)}
	s, addr := newTestServer(t, r.handle)

	// Before TLS.
	for _, in := range []string{plain, bind} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &rawClient{t: t, conn: conn}
		c.send(hdr)
		c.expect("</stream:features>")
		c.send(in)
		if got := c.readAll(); strings.Contains(got, "<success") || strings.Contains(got, "<jid") {
			t.Fatalf("before TLS %q answered %q", in, got)
		}
		conn.Close()
	}
	// After TLS, before SASL; and STARTTLS again.
	for _, in := range []string{bind, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"} {
		c := preAuth(t, s, addr)
		c.send(in)
		if got := c.readAll(); strings.Contains(got, "<jid") || strings.Contains(got, "<proceed") {
			t.Fatalf("after TLS %q answered %q", in, got)
		}
	}
	select {
	case j := <-r.got:
		t.Fatalf("bound %v", j)
	default:
	}
}

// countHandler counts log records at Warn and above.
type countHandler struct {
	mu sync.Mutex
	n  int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestRefusalsLogRateLimited: connections refused at accept (during a
// lockout) do not each cost a warning (review rvc2s: a local user could
// fill the log as fast as it could connect).
func TestRefusalsLogRateLimited(t *testing.T) {
	h := &countHandler{}
	cred, _ := NewCredential(testPassword, minIterations)
	s, err := New(Config{Account: testAccount, Credential: cred, Logger: slog.New(h)}, func(*Session) {})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	s.mu.Lock()
	s.failures, s.lockedAt = maxAuthFailures, time.Now()
	s.mu.Unlock()
	const n = 50
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		c.Read(b[:]) // closed at accept
		c.Close()
	}
	h.mu.Lock()
	got := h.n
	h.mu.Unlock()
	if got > 2 {
		t.Fatalf("%d warnings for %d refused connections", got, n)
	}
}
