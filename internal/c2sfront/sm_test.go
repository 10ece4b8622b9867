package c2sfront

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

const (
	smEnable = "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
	smR      = "<r xmlns='urn:xmpp:sm:3'/>"
)

func smA(h uint64) string { return fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h) }

// smHandler hands each session to the test, then reads it like reads.
type smHandler struct {
	sess chan *Session
	reads
}

func newSMHandler() *smHandler {
	return &smHandler{sess: make(chan *Session, 4), reads: reads{st: make(chan localxmpp.Stanza, 64), err: make(chan error, 4)}}
}

func (h *smHandler) handle(s *Session) {
	h.sess <- s
	h.reads.handle(s)
}

// el is one element the server sent on the bound stream.
type el struct {
	XMLName xml.Name
	Attr    []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e el) attr(name string) (string, bool) {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (e el) is(local string) bool { return e.XMLName.Space == nsSM && e.XMLName.Local == local }

// smClient is a raw client on the bound stream.
type smClient struct {
	*rawClient
	d *xml.Decoder
	// features is the stream features list after SASL.
	features string
}

// smLogin logs in on c (after preAuth) and, if resource is not empty,
// binds it.
func smLogin(t *testing.T, c *rawClient, resource string) *smClient {
	t.Helper()
	hdr := "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + testPassword))
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain + "</auth>")
	c.expect("<success")
	c.expect(">")
	c.send(hdr)
	c.expect("<stream:features>")
	sc := &smClient{rawClient: c}
	b := make([]byte, 1)
	for !strings.HasSuffix(string(c.buf), "</stream:features>") {
		if _, err := c.conn.Read(b); err != nil {
			t.Fatalf("features: %q: %v", c.buf, err)
		}
		c.buf = append(c.buf, b[0])
	}
	sc.features, c.buf = string(c.buf), nil
	if resource != "" {
		sc.bind(resource)
	}
	return sc
}

func (c *smClient) bind(resource string) {
	c.t.Helper()
	c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	c.expect("</iq>")
	c.d = xml.NewDecoder(c.conn)
}

// smBound is a raw client bound as alice/resource.
func smBound(t *testing.T, s *Server, addr, resource string) *smClient {
	t.Helper()
	return smLogin(t, preAuth(t, s, addr), resource)
}

// next returns the next element the server sends.
func (c *smClient) next() el {
	c.t.Helper()
	for {
		tok, err := c.d.Token()
		if err != nil {
			c.t.Fatalf("reading: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			var e el
			if err := c.d.DecodeElement(&e, &start); err != nil {
				c.t.Fatalf("reading: %v", err)
			}
			return e
		}
	}
}

// ack sends <r/> and returns the h of the answer, skipping the front's
// own <r/> (which may come at any time) and failing on anything else.
func (c *smClient) ack() uint64 {
	c.t.Helper()
	c.send(smR)
	for {
		e := c.next()
		switch {
		case e.is("r"):
		case e.is("a"):
			v, _ := e.attr("h")
			var h uint64
			if _, err := fmt.Sscan(v, &h); err != nil {
				c.t.Fatalf("a h=%q", v)
			}
			return h
		default:
			c.t.Fatalf("waiting for <a/>, got %+v", e)
		}
	}
}

// expectStreamError reads until the stream error and returns it.
func (c *smClient) expectStreamError() el {
	c.t.Helper()
	for {
		e := c.next()
		if e.XMLName.Local == "error" {
			return e
		}
	}
}

func (c *smClient) enable() {
	c.t.Helper()
	c.send(smEnable)
	e := c.next()
	if !e.is("enabled") {
		c.t.Fatalf("enable: got %+v", e)
	}
	if _, ok := e.attr("resume"); ok {
		t := c.t
		t.Fatalf("enabled offers resumption: %+v", e)
	}
	if _, ok := e.attr("id"); ok {
		c.t.Fatalf("enabled has an id: %+v", e)
	}
}

// sendRaw writes raw, a stanza, to the client through the session.
func sendRaw(t *testing.T, s *Session, raw string) {
	t.Helper()
	// Not a cancelled ctx: mellium's Send leaves a goroutine that may see
	// the ctx end after Send returned and set a past write deadline for a
	// moment, failing the next write ("i/o timeout").
	if err := s.XMPP().Send(context.Background(), xml.NewDecoder(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, h *smHandler, want stream.Error) {
	t.Helper()
	select {
	case st := <-h.st:
		t.Fatalf("delivered: %s", st)
	case err := <-h.err:
		var se stream.Error
		if !errors.As(err, &se) || se.Err != want.Err {
			t.Fatalf("Next: %v, want stream error %s", err, want.Err)
		}
	}
}

// TestSMEnable: the features after SASL offer urn:xmpp:sm:3; <enable/>
// (asking for resumption) gets <enabled/> without resume or id, and <r/>
// an <a h='0'/>; none of it reaches the handler.
func TestSMEnable(t *testing.T) {
	h := newSMHandler()
	s, addr := newTestServer(t, h.handle)
	c := smBound(t, s, addr, "r")
	if !strings.Contains(c.features, `<sm xmlns="urn:xmpp:sm:3">`) {
		t.Fatalf("features %q", c.features)
	}
	sess := <-h.sess
	if _, on := sess.Unacked(); on {
		t.Fatal("enabled before <enable/>")
	}
	c.enable()
	if got := c.ack(); got != 0 {
		t.Fatalf("h=%d, want 0", got)
	}
	if n, on := sess.Unacked(); !on || n != 0 {
		t.Fatalf("Unacked %d %v", n, on)
	}
	select {
	case st := <-h.st:
		t.Fatalf("an SM element reached the handler: %s", st)
	default:
	}
}

// TestSMCountsBothWays: the front's h counts the client's stanzas (of
// every kind, whitespace and SM elements not counted), and the stanzas
// written to the client count once each, whichever way the handler wrote
// them, however nested; the front asks with <r/> itself, and the
// client's <a/> brings Unacked down.
func TestSMCountsBothWays(t *testing.T) {
	h := newSMHandler()
	s, addr := newTestServer(t, h.handle)
	c := smBound(t, s, addr, "r")
	sess := <-h.sess
	// Before <enable/>: not counted.
	c.send("<presence/>")
	<-h.st
	c.enable()
	c.send("<message to='bob@example.org'><body>1</body></message>\n <presence/> <iq type='get' id='q'><query xmlns='jabber:iq:version'/></iq>")
	for range 3 {
		<-h.st
	}
	if got := c.ack(); got != 3 {
		t.Fatalf("h=%d after 3 stanzas, want 3", got)
	}

	// Written to the client: through XMPP().Send, Session.Send, and a
	// TokenWriter; a stanza with stanza-named children and markup-like
	// text counts once.
	sendRaw(t, sess, "<message from='bob@example.org' to='alice@example.org/r'><body>a &lt;message&gt; b</body><iq xmlns='urn:x'/><presence xmlns='urn:x'><iq xmlns='urn:x'/></presence></message>")
	st, err := localxmpp.StanzaFromTokens(nil, xml.NewDecoder(strings.NewReader("<presence xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org/r' a='&apos;&gt;&lt;iq/&gt;'/>")))
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Send(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	w := sess.XMPP().TokenWriter()
	iq := xml.StartElement{Name: xml.Name{Space: "jabber:client", Local: "iq"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "result"}, {Name: xml.Name{Local: "id"}, Value: "x"}}}
	if err := encodeTokens(w, []xml.Token{iq, iq.End()}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	w.Close()
	// The three stanzas and the front's <r/>.
	var r bool
	for n := 0; n < 3 || !r; {
		e := c.next()
		switch {
		case e.is("r"):
			r = true
		case e.XMLName.Space == "jabber:client":
			n++
		default:
			t.Fatalf("got %+v", e)
		}
	}
	if n, _ := sess.Unacked(); n != 3 {
		t.Fatalf("Unacked %d, want 3", n)
	}
	c.send(smA(2))
	if got := c.ack(); got != 3 {
		t.Fatalf("h=%d, want 3", got)
	}
	if n, _ := sess.Unacked(); n != 1 {
		t.Fatalf("Unacked after <a h='2'/>: %d, want 1", n)
	}
	c.send(smA(3))
	c.ack()
	if n, _ := sess.Unacked(); n != 0 {
		t.Fatalf("Unacked after <a h='3'/>: %d, want 0", n)
	}
	// Acknowledging again what was acknowledged is allowed.
	c.send(smA(3))
	c.ack()
}

// TestSMWraparound: both counts go on modulo 2^32 (XEP-0198 §4), and
// too-high is judged modulo 2^32.
func TestSMWraparound(t *testing.T) {
	h := newSMHandler()
	s, addr := newTestServer(t, h.handle)
	c := smBound(t, s, addr, "r")
	sess := <-h.sess
	c.enable()
	c.ack()
	sess.sm.handled.Store(math.MaxUint32)
	c.send("<presence/>")
	<-h.st
	if got := c.ack(); got != 0 {
		t.Fatalf("h=%d after 2^32-1 and one more, want 0", got)
	}
	sess.sm.mu.Lock()
	sess.sm.sent, sess.sm.unacked = math.MaxUint32-1, 0
	sess.sm.mu.Unlock()
	for range 3 {
		sendRaw(t, sess, "<message to='alice@example.org/r'/>")
	}
	for n := 0; n < 3; {
		if e := c.next(); e.XMLName.Local == "message" {
			n++
		}
	}
	c.send(smA(0)) // 2^32-1 and 0: two of the three
	c.ack()
	if n, _ := sess.Unacked(); n != 1 {
		t.Fatalf("Unacked %d, want 1", n)
	}
	c.send(smA(1))
	c.ack()
	if n, _ := sess.Unacked(); n != 0 {
		t.Fatalf("Unacked %d, want 0", n)
	}
	c.send(smA(2))
	e := c.expectStreamError()
	if !strings.Contains(e.Inner, "<undefined-condition") || !strings.Contains(e.Inner, `<handled-count-too-high xmlns='urn:xmpp:sm:3' h='2' send-count='1'/>`) {
		t.Fatalf("stream error %s", e.Inner)
	}
	wantErr(t, h, stream.UndefinedCondition)
}

// TestSMBadAck: an <a/> acknowledging more than was sent (or going back)
// ends the stream with undefined-condition and handled-count-too-high
// (XEP-0198 §4); a malformed h ends it with bad-format; <r/> and <a/>
// before <enable/> with unsupported-stanza-type.
func TestSMBadAck(t *testing.T) {
	cases := []struct {
		name    string
		enable  bool
		in      string
		want    stream.Error
		inError string
	}{
		{"too high", true, smA(3), stream.UndefinedCondition, `<handled-count-too-high xmlns='urn:xmpp:sm:3' h='3' send-count='2'/>`},
		{"backwards", true, smA(math.MaxUint32), stream.UndefinedCondition, `h='4294967295' send-count='2'`},
		{"negative", true, "<a xmlns='urn:xmpp:sm:3' h='-1'/>", stream.BadFormat, "<bad-format"},
		{"plus", true, "<a xmlns='urn:xmpp:sm:3' h='+1'/>", stream.BadFormat, "<bad-format"},
		{"over 32 bits", true, "<a xmlns='urn:xmpp:sm:3' h='4294967296'/>", stream.BadFormat, "<bad-format"},
		{"empty", true, "<a xmlns='urn:xmpp:sm:3' h=''/>", stream.BadFormat, "<bad-format"},
		{"missing", true, "<a xmlns='urn:xmpp:sm:3'/>", stream.BadFormat, "<bad-format"},
		{"twice", true, "<a xmlns='urn:xmpp:sm:3' h='1' h='1'/>", stream.NotWellFormed, "<not-well-formed"},
		{"content", true, "<r xmlns='urn:xmpp:sm:3'><x/></r>", stream.BadFormat, "<bad-format"},
		{"r before enable", false, smR, stream.UnsupportedStanzaType, "<unsupported-stanza-type"},
		{"a before enable", false, smA(0), stream.UnsupportedStanzaType, "<unsupported-stanza-type"},
		{"other element", true, "<enabled xmlns='urn:xmpp:sm:3'/>", stream.UnsupportedStanzaType, "<unsupported-stanza-type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newSMHandler()
			s, addr := newTestServer(t, h.handle)
			c := smBound(t, s, addr, "r")
			sess := <-h.sess
			if tc.enable {
				c.enable()
				sendRaw(t, sess, "<message to='alice@example.org/r'/>")
				sendRaw(t, sess, "<presence to='alice@example.org/r'/>")
				c.next()
				c.next()
			}
			c.send(tc.in)
			if e := c.expectStreamError(); !strings.Contains(e.Inner, tc.inError) {
				t.Fatalf("stream error %s, want %s", e.Inner, tc.inError)
			}
			wantErr(t, h, tc.want)
		})
	}
}

// TestSMEnableTwice: a second <enable/> (or a <resume/> after bind) gets
// <failed/> with unexpected-request; the stream and its counts go on.
func TestSMEnableTwice(t *testing.T) {
	h := newSMHandler()
	s, addr := newTestServer(t, h.handle)
	c := smBound(t, s, addr, "r")
	<-h.sess
	c.enable()
	c.send("<presence/>")
	<-h.st
	for _, in := range []string{smEnable, "<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>"} {
		c.send(in)
		e := c.next()
		if !e.is("failed") || !strings.Contains(e.Inner, `<unexpected-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">`) {
			t.Fatalf("%s: got %+v", in, e)
		}
	}
	c.send("<presence/>")
	<-h.st
	if got := c.ack(); got != 2 {
		t.Fatalf("h=%d, want 2", got)
	}
}

// TestSMBeforeBind: <enable/> before bind gets <failed/> with
// unexpected-request (XEP-0198 §3) and <resume/> one with item-not-found;
// the client then binds and enables. <r/> or <a/> before bind ends the
// stream with unsupported-stanza-type, unanswered and unbound, and so
// does (closed, without a stream error) a second <enable/> before bind.
func TestSMBeforeBind(t *testing.T) {
	for _, tc := range []struct{ in, cond string }{
		{smEnable, "unexpected-request"},
		{"<resume xmlns='urn:xmpp:sm:3' previd='some-id' h='3'/>", "item-not-found"},
	} {
		h := newSMHandler()
		s, addr := newTestServer(t, h.handle)
		c := smLogin(t, preAuth(t, s, addr), "")
		c.send(tc.in)
		c.expect("<failed")
		c.expect(tc.cond)
		c.expect("</failed>")
		c.bind("r")
		<-h.sess
		c.enable()
		c.send("<presence/>")
		<-h.st
		if got := c.ack(); got != 1 {
			t.Fatalf("h=%d, want 1", got)
		}
	}
	// A second element before bind: mellium negotiates a namespace once
	// per stream and closes it.
	{
		h := newSMHandler()
		s, addr := newTestServer(t, h.handle)
		c := smLogin(t, preAuth(t, s, addr), "")
		c.send(smEnable)
		c.expect("</failed>")
		c.send(smEnable)
		c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
		if got := c.readAll(); strings.Contains(got, "<failed") || strings.Contains(got, "<jid") || !strings.Contains(got, "</stream:stream>") {
			t.Fatalf("a second <enable/> before bind: answered %q", got)
		}
	}
	for _, in := range []string{smR, smA(0)} {
		h := newSMHandler()
		s, addr := newTestServer(t, h.handle)
		c := smLogin(t, preAuth(t, s, addr), "")
		c.send(in)
		c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
		if got := c.readAll(); strings.Contains(got, "<a ") || strings.Contains(got, "<jid") || !strings.Contains(got, "<unsupported-stanza-type") {
			t.Fatalf("%s before bind: answered %q", in, got)
		}
		select {
		case <-h.sess:
			t.Fatalf("%s before bind: bound", in)
		default:
		}
	}
}

// gatedListener hands the test a gate for each connection it accepts:
// while a gate is shut, the server's writes on that connection wait, as
// they do on a client that reads nothing.
type gatedListener struct {
	net.Listener
	gates chan *gate
}

type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
	gone chan struct{} // closed with the connection
	once sync.Once
}

func (g *gate) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) reopen() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	g := &gate{open: make(chan struct{}), gone: make(chan struct{})}
	close(g.open)
	l.gates <- g
	return gatedConn{c, g}, nil
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Write(p []byte) (int, error) {
	c.g.mu.Lock()
	open := c.g.open
	c.g.mu.Unlock()
	select {
	case <-open:
	case <-c.g.gone:
	}
	return c.Conn.Write(p)
}

func (c gatedConn) Close() error {
	c.g.once.Do(func() { close(c.g.gone) })
	return c.Conn.Close()
}

// TestSMRequestFlood: a client that writes a flood of <r/> and reads
// nothing is read to the end all the same (the answers are written by
// another goroutine, which waits for the client, never the reader: the
// stanza after the flood reaches the handler), its unwritten answers are
// merged into one (no state grows with the requests), and another client
// is served meanwhile. Once the client reads again, its stream goes on.
func TestSMRequestFlood(t *testing.T) {
	const n = 10000
	h := newSMHandler()
	gates := make(chan *gate, 4)
	s, addr := newTestServer(t, h.handle, func(l net.Listener) net.Listener { return gatedListener{l, gates} })
	a := smBound(t, s, addr, "flood")
	gateA := <-gates
	<-h.sess
	a.enable()
	gateA.shut() // the client reads nothing from now on
	go io.WriteString(a.conn, strings.Repeat(smR, n)+"<presence/>")
	select {
	case <-h.st:
	case err := <-h.err:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("the stanza after a flood of <r/> did not reach the handler while the client read nothing")
	}
	// Another client is served.
	b := smBound(t, s, addr, "other")
	<-gates
	<-h.sess
	b.enable()
	b.send("<presence/>")
	<-h.st
	if got := b.ack(); got != 1 {
		t.Fatalf("other client: h=%d, want 1", got)
	}
	// The flooding client reads again: the answer under way, one for all
	// the requests after it, and one for the request sent now, with the
	// presence counted (the last two may be one).
	gateA.reopen()
	a.send(smR)
	answers := 0
	for {
		e := a.next()
		if !e.is("a") {
			t.Fatalf("got %+v", e)
		}
		answers++
		if v, _ := e.attr("h"); v == "1" {
			break
		}
	}
	t.Logf("%d requests, %d answers", n, answers)
	if answers > 3 {
		t.Fatalf("%d answers to %d requests written while the client read nothing: not merged", answers, n)
	}
}

// counterInput holds three stanzas among other top-level elements, with
// markup-like attribute values, text, CDATA and comments, and stanza
// names nested inside them.
const counterInput = `<message a='x>y' b="<iq>"><body>&lt;iq&gt; <![CDATA[</message><iq>]]></body><iq xmlns='u'/><presence xmlns='u'><message/></presence></message>` +
	`<!-- <message/> --><presence/><x:iq xmlns:x='jabber:client' type='get' ></x:iq >` +
	`<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'></a><messages/><stream:error><message/></stream:error></stream:stream>`

// TestStanzaCounter: the written side counts each stanza directly inside
// the stream once, however the bytes are split into writes.
func TestStanzaCounter(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 7, 64, len(counterInput)} {
		sm := &smState{kick: make(chan struct{}, 1), counting: true}
		c := newStanzaCounter(sm)
		for p := counterInput; p != ""; {
			k := min(chunk, len(p))
			if _, err := c.write(io.Discard, []byte(p[:k])); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if sm.sent != 3 || sm.unacked != 3 {
			t.Fatalf("writes of %d bytes: counted %d (unacked %d), want 3", chunk, sm.sent, sm.unacked)
		}
	}
}

// BenchmarkStanzaCounter: the cost of counting on the written side, a
// 4 KiB message at a time.
func BenchmarkStanzaCounter(b *testing.B) {
	msg := []byte("<message xmlns='jabber:client' to='alice@example.org/r' from='bob@example.org/x' type='chat' id='abc'><body>" +
		strings.Repeat("hello world &amp; more ", 180) + "</body></message>")
	for _, counted := range []bool{false, true} {
		b.Run(fmt.Sprintf("counted=%v", counted), func(b *testing.B) {
			sm := &smState{kick: make(chan struct{}, 1), counting: true}
			c := newStanzaCounter(sm)
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if counted {
					c.write(io.Discard, msg)
				} else {
					io.Discard.Write(msg)
				}
			}
		})
	}
}
