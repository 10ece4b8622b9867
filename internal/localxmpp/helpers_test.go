package localxmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

const testDomain = "example.test"

// failAfter bounds waits so that a broken server fails a test instead of
// hanging it; it is never used to assert timing.
const failAfter = 20 * time.Second

func newTestServer(t *testing.T, users ...string) *Server {
	t.Helper()
	var opts []Option
	if testing.Verbose() {
		opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	srv, err := New(testDomain, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func bare(local string) jid.JID { return jid.MustParse(local + "@" + testDomain) }

// client is a real mellium client session plus a channel of every stanza
// its Serve loop hands to the handler.
type client struct {
	t       *testing.T
	s       *xmpp.Session
	conn    net.Conn
	in      chan Stanza
	done    chan error
	replyIQ atomic.Bool
	hold    sync.Mutex      // held by a test to stall the Serve loop
	ctx     context.Context // canceled when the client closes
	cancel  context.CancelFunc
}

func dialClient(t *testing.T, srv *Server, local, resource, password string) (*client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	j, err := jid.New(local, testDomain, resource)
	if err != nil {
		t.Fatal(err)
	}
	// Contexts handed to mellium must not be canceled while the session is
	// in use (see session.go); negotiation is bounded by a conn deadline.
	conn.SetDeadline(time.Now().Add(failAfter))
	s, err := xmpp.NewClientSession(context.Background(), j, conn,
		xmpp.StartTLS(srv.ClientTLSConfig()),
		xmpp.SASL("", password, sasl.Plain),
		bindResource(resource),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{t: t, s: s, conn: conn, in: make(chan Stanza, 4096), done: make(chan error, 1), ctx: ctx, cancel: cancel}
	go func() {
		c.done <- s.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(c.close)
	return c, nil
}

func connect(t *testing.T, srv *Server, local, resource string) *client {
	t.Helper()
	c, err := dialClient(t, srv, local, resource, local+"-pw")
	if err != nil {
		t.Fatalf("connecting %s/%s: %v", local, resource, err)
	}
	return c
}

func (c *client) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st, err := StanzaFromTokens(start, r)
	if err != nil {
		c.t.Logf("client handler: %v", err)
		return err
	}
	if c.replyIQ.Load() && st.Name == "iq" && (st.Type == "get" || st.Type == "set") {
		res := el(nsClient, "iq", "type", "result", "id", st.ID, "to", st.From.String())
		if _, err := xmlstream.Copy(r, mustStanza(res).TokenReader()); err != nil {
			return err
		}
	}
	c.hold.Lock()
	c.hold.Unlock()
	c.in <- st
	return nil
}

func (c *client) close() {
	c.cancel()
	c.s.Close()
	c.conn.Close()
	<-c.done
	c.done <- nil // let a second close return
}

func (c *client) jid() jid.JID { return c.s.LocalAddr() }

func (c *client) send(raw string) {
	c.t.Helper()
	st, err := ParseStanza([]byte(raw))
	if err != nil {
		c.t.Fatalf("bad test stanza %q: %v", raw, err)
	}
	if err := c.s.Send(c.ctx, st.TokenReader()); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// available sends initial presence and waits for its echo, so that the
// server has processed it when available returns.
func (c *client) available(extra string) {
	c.t.Helper()
	c.send("<presence>" + extra + "</presence>")
	c.expect(func(st Stanza) bool { return st.Name == "presence" && st.From.Equal(c.jid()) })
}

// iq sends an IQ request and returns the response.
func (c *client) iq(raw string) Stanza {
	c.t.Helper()
	st, err := ParseStanza([]byte(raw))
	if err != nil {
		c.t.Fatalf("bad test stanza %q: %v", raw, err)
	}
	resp, err := c.s.SendIQ(c.ctx, st.TokenReader())
	if err != nil {
		c.t.Fatalf("SendIQ: %v", err)
	}
	defer resp.Close()
	r, err := StanzaFromTokens(nil, resp)
	if err != nil {
		c.t.Fatalf("reading IQ response: %v", err)
	}
	return r
}

// expect returns the first received stanza matching pred, discarding
// others.
func (c *client) expect(pred func(Stanza) bool) Stanza {
	c.t.Helper()
	timer := time.NewTimer(failAfter)
	defer timer.Stop()
	for {
		select {
		case st := <-c.in:
			if pred(st) {
				return st
			}
		case <-timer.C:
			c.t.Fatalf("%s: expected stanza never arrived", c.jid())
			return Stanza{}
		}
	}
}

// next returns the next received stanza that is not from the client itself.
func (c *client) next() Stanza {
	c.t.Helper()
	return c.expect(func(st Stanza) bool { return !st.From.Equal(c.jid()) })
}

func isMsg(body string) func(Stanza) bool {
	return func(st Stanza) bool {
		return st.Name == "message" && bytes.Contains(st.Raw, []byte("<body>"+body+"</body>"))
	}
}

// stanzaErr extracts the stanza error of an error stanza.
func stanzaErr(t *testing.T, st Stanza) error {
	t.Helper()
	var v struct {
		Err stanza.Error `xml:"error"`
	}
	if err := xml.Unmarshal(st.Raw, &v); err != nil {
		t.Fatalf("unmarshal %s: %v", st, err)
	}
	if st.Type != "error" {
		t.Fatalf("not an error: %s", st)
	}
	return v.Err
}

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// bindResource is a client-side resource binding feature that really sends
// the requested resource: mellium v0.22's BindResource writes the (empty)
// JID field into <resource/>, so a mellium client always gets a
// server-assigned resource.
func bindResource(res string) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return true, nil
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			id := randomID()
			req := el(nsClient, "iq", "type", "set", "id", id).add(
				el(nsBind, "bind").add(el(nsBind, "resource").add(xml.CharData(res))))
			w := s.TokenWriter()
			if _, err := xmlstream.Copy(w, mustStanza(req).TokenReader()); err != nil {
				w.Close()
				return 0, nil, err
			}
			if err := w.Close(); err != nil {
				return 0, nil, err
			}
			r := s.TokenReader()
			defer r.Close()
			resp, err := StanzaFromTokens(nil, r)
			if err != nil {
				return 0, nil, err
			}
			var v struct {
				JID string       `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
				Err stanza.Error `xml:"error"`
			}
			if err := xml.Unmarshal(resp.Raw, &v); err != nil {
				return 0, nil, err
			}
			if resp.Type != "result" || resp.ID != id {
				return 0, nil, v.Err
			}
			j, err := jid.Parse(v.JID)
			if err != nil {
				return 0, nil, err
			}
			s.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}
