package c2sfront

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

func TestWSFilter(t *testing.T) {
	const hdr = "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	for _, c := range []struct{ in, want string }{
		// Between top-level elements: dropped.
		{hdr + "\n<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n", hdr + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"},
		{hdr + " \r\n\t<auth mechanism='PLAIN'>AGFs aWNl</auth>\n <iq/>", hdr + "<auth mechanism='PLAIN'>AGFs aWNl</auth><iq/>"},
		// Inside an element, in attribute values and in the prolog: kept.
		{hdr + "<iq type='set' id='a b'>\n <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'> <resource> r  1 </resource></bind>\n</iq>\n",
			hdr + "<iq type='set' id='a b'>\n <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'> <resource> r  1 </resource></bind>\n</iq>"},
		{"<?xml version='1.0'?>\n" + hdr, "<?xml version='1.0'?>\n" + hdr},
		// A '>' or '/' in a quoted value does not end the tag or make it empty.
		{hdr + "<a x='>/' y=\"/>\">\n<b/>\n</a>\n", hdr + "<a x='>/' y=\"/>\">\n<b/>\n</a>"},
		// A restart (a new header inside the old stream) is depth 1 again.
		{hdr + "<success/>\n" + hdr + "\n<iq/>\n", hdr + "<success/>" + hdr + "<iq/>"},
		{hdr + "<s:stream xmlns:s='http://etherx.jabber.org/streams'>\n<x/>", hdr + "<s:stream xmlns:s='http://etherx.jabber.org/streams'><x/>"},
		// Non-space text at depth 1 passes for the decoder to reject.
		{hdr + " junk <x/>", hdr + "junk<x/>"},
	} {
		// In one read, and one byte per read.
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

func TestWSFilterReadOff(t *testing.T) {
	f := newWSFilter()
	r := strings.NewReader("<stream:stream>\n\n\n<a/>")
	p := make([]byte, 16)
	var got []byte
	for {
		n, err := f.read(r, p)
		if n == 0 && err == nil {
			t.Fatal("read returned 0, nil")
		}
		got = append(got, p[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "<stream:stream><a/>" {
		t.Fatalf("read %q", got)
	}
	f.on.Store(false)
	n, _ := f.read(strings.NewReader("\n \n"), p)
	if string(p[:n]) != "\n \n" {
		t.Fatalf("switched off, read %q", p[:n])
	}
}

// rawClient is a hand-written client that puts whitespace after every
// stream header and negotiation element, as go-sendxmpp (go-xmpp) does.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	buf  []byte
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads until the input so far contains want (and drops it).
func (c *rawClient) expect(want string) {
	c.t.Helper()
	b := make([]byte, 1)
	for !bytes.Contains(c.buf, []byte(want)) {
		if _, err := c.conn.Read(b); err != nil {
			c.t.Fatalf("waiting for %q, got %q: %v", want, c.buf, err)
		}
		c.buf = append(c.buf, b[0])
	}
	c.buf = nil
}

// TestWhitespaceBetweenNegotiationElements: a client that writes "\n"
// after each stream header and element (go-sendxmpp's go-xmpp does) logs
// in and binds. mellium alone answers its STARTTLS with </stream:stream>.
func TestWhitespaceBetweenNegotiationElements(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{t: t, conn: conn}
	hdr := "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\n"
	c.send(hdr)
	c.expect("</stream:features>")
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n")
	c.expect("<proceed")
	c.expect(">")
	tc := tls.Client(conn, s.ClientTLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.send(hdr)
	c.expect("</stream:features>")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + testPassword))
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain + "</auth>\n")
	c.expect("<success")
	c.send(hdr)
	c.expect("</stream:features>")
	c.send("<iq type='set' id='b1'>\n<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind>\n</iq>\n")
	c.expect("alice@example.org/ws</jid>")
	select {
	case got := <-r.got:
		if got.String() != "alice@example.org/ws" {
			t.Fatalf("bound %v", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("handler not called")
	}
}
