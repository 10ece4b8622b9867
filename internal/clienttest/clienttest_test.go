package clienttest

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/localxmpp"
	"mellium.im/xmpp/jid"
)

func testCert(t *testing.T) *x509.Certificate {
	t.Helper()
	c, err := localxmpp.SelfSignedCert("example.test", "clienttest", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestEndpointCheck(t *testing.T) {
	cert := testCert(t)
	good := Endpoint{Addr: "127.0.0.1:5222", JID: jid.MustParse("alice@example.test"), Password: "pw", Cert: cert}
	if h, p, err := good.check(); err != nil || h != "127.0.0.1" || p != "5222" {
		t.Fatalf("check(%+v) = %q, %q, %v", good, h, p, err)
	}
	if _, _, err := (Endpoint{Addr: "[::1]:5222", JID: good.JID, Password: "pw", Cert: cert}).check(); err != nil {
		t.Fatalf("::1: %v", err)
	}
	for name, e := range map[string]Endpoint{
		"non-loopback": {Addr: "192.0.2.1:5222", JID: good.JID, Password: "pw", Cert: cert},
		"host name":    {Addr: "localhost:5222", JID: good.JID, Password: "pw", Cert: cert},
		"no port":      {Addr: "127.0.0.1", JID: good.JID, Password: "pw", Cert: cert},
		"full JID":     {Addr: good.Addr, JID: jid.MustParse("alice@example.test/r"), Password: "pw", Cert: cert},
		"no local":     {Addr: good.Addr, JID: jid.MustParse("example.test"), Password: "pw", Cert: cert},
		"no password":  {Addr: good.Addr, JID: good.JID, Cert: cert},
		"no cert":      {Addr: good.Addr, JID: good.JID, Password: "pw"},
	} {
		if _, _, err := e.check(); err == nil {
			t.Errorf("%s: check accepted %+v", name, e)
		}
	}
}

func TestProfPin(t *testing.T) {
	cert, other := testCert(t), testCert(t)
	prompt := func(c *x509.Certificate) string {
		return "13:30:49 - TLS certificate verification failed: self-signed certificate\n13:30:49 -   Fingerprint         : " +
			fingerprintSHA1(c) + "\n13:30:49 - Use '/tls allow' to accept this certificate.\n"
	}
	if p, err := profPin("13:30:57 - alice@example.test/profanity logged in successfully", cert); p || err != nil {
		t.Errorf("no prompt: %v, %v", p, err)
	}
	if p, err := profPin(prompt(cert), cert); !p || err != nil {
		t.Errorf("the endpoint's certificate: %v, %v", p, err)
	}
	if p, err := profPin(prompt(other), cert); !p || err == nil {
		t.Errorf("another certificate: %v, %v; want refused", p, err)
	}
	// A second prompt (a reconnection) is judged on its own.
	if _, err := profPin(prompt(cert)+prompt(other), cert); err == nil {
		t.Error("the last prompt showed another certificate, accepted")
	}
}

func TestEventsWait(t *testing.T) {
	l := newEvents[int]()
	l.add(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An event that came before the wait counts.
	if v, err := l.wait(ctx, func(v int) bool { return v == 1 }); v != 1 || err != nil {
		t.Fatalf("wait(1) = %v, %v", v, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.wait(ctx, func(v int) bool { return v == 3 })
		done <- err
	}()
	l.add(2)
	l.add(3)
	if err := <-done; err != nil {
		t.Fatalf("wait(3): %v", err)
	}
	l.close()
	if _, err := l.wait(ctx, func(v int) bool { return v == 4 }); !errors.Is(err, errGone) {
		t.Fatalf("wait after close = %v, want errGone", err)
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	l2 := newEvents[int]()
	if _, err := l2.wait(short, func(int) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a cancelled context = %v", err)
	}
}

func TestSendxmppLine(t *testing.T) {
	m := sendxmppLine.FindStringSubmatch("2026-12-03T13:27:48Z alice@example.test: hi: from alice")
	if m == nil || m[2] != "alice@example.test" || m[3] != "hi: from alice" {
		t.Fatalf("parsed %q", m)
	}
	if sendxmppLine.MatchString("<message from='a@b'><body>2026-12-03T13:27:48Z x: y</body></message>") {
		t.Fatal("a debug line parsed as a message")
	}
}

func TestTailBound(t *testing.T) {
	var w tail
	w.Write([]byte(strings.Repeat("a", maxKept)))
	w.Write([]byte("end"))
	if s := w.String(); len(s) != maxKept || !strings.HasSuffix(s, "end") {
		t.Fatalf("kept %d bytes, suffix %q", len(s), s[len(s)-3:])
	}
}

func TestProfMessageLine(t *testing.T) {
	screen := "13:31:04 - bob@example.test is online\n" +
		"13:31:04 - me: hello: bob   \n" +
		"13:31:05 - bob@example.test/go-sendxmpp.89ea2141: hello: alice   \n" +
		"13:31:06 - bobby@example.test/x: evil\n"
	is := func(want string) func(string) bool { return func(b string) bool { return b == want } }
	if l, ok := profMessageLine(screen, "bob@example.test", false, is("hello: alice")); !ok || l != "13:31:05 - bob@example.test/go-sendxmpp.89ea2141: hello: alice" {
		t.Fatalf("got %q, %v", l, ok)
	}
	// A message from the own account (a gateway's alert) shows as "me".
	if l, ok := profMessageLine(screen, "alice@example.test", true, is("hello: bob")); !ok || l != "13:31:04 - me: hello: bob" {
		t.Fatalf("own account: got %q, %v", l, ok)
	}
	for _, c := range []struct{ from, body string }{
		{"bob@example.test", "hello: bob"}, // our own line
		{"bob@example.test", "evil"},       // another JID with bob's as prefix
		{"bob@example.test", "hello"},      // part of a body
		{"alice@example.test", "hello: alice"},
	} {
		if l, ok := profMessageLine(screen, c.from, false, is(c.body)); ok {
			t.Errorf("%s %q matched %q", c.from, c.body, l)
		}
	}
}
