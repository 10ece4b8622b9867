package c2sfront

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

const testPassword = "local secret"

var quiet = slog.New(slog.DiscardHandler)

var testAccount = jid.MustParse("alice@example.org")

// newTestServer starts a Server on a loopback port; wrap, if given, wraps
// its listener.
func newTestServer(t *testing.T, h Handler, wrap ...func(net.Listener) net.Listener) (*Server, string) {
	t.Helper()
	cred, err := NewCredential(testPassword, minIterations)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Account: testAccount, Credential: cred, Logger: quiet}, h)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	for _, w := range wrap {
		l = w(l)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return s, addr
}

func dial(t *testing.T, s *Server, addr, user, password, resource string) (*xmpp.Session, error) {
	return dialMech(t, s, addr, user, password, resource, sasl.Plain)
}

func dialNet(t *testing.T, s *Server, network, addr, user, password string) (*xmpp.Session, error) {
	return dialFull(t, s, network, addr, user, password, "", sasl.Plain)
}

func dialMech(t *testing.T, s *Server, addr, user, password, resource string, mech sasl.Mechanism) (*xmpp.Session, error) {
	return dialFull(t, s, "tcp", addr, user, password, resource, mech)
}

func dialFull(t *testing.T, s *Server, network, addr, user, password, resource string, mech sasl.Mechanism) (*xmpp.Session, error) {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	j, err := jid.New(user, testAccount.Domainpart(), resource)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	xs, err := xmpp.NewClientSession(context.Background(), j, conn,
		xmpp.StartTLS(s.ClientTLSConfig()),
		xmpp.SASL("", password, mech),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	t.Cleanup(func() { xs.Close(); conn.Close() })
	return xs, nil
}

// recorder is a Handler that reports the bound JID and returns.
type recorder struct {
	got chan jid.JID
}

func (r *recorder) handle(s *Session) { r.got <- s.JID() }

func TestCredentialVerify(t *testing.T) {
	c, err := NewCredential(testPassword, minIterations)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Verify([]byte(testPassword)) {
		t.Fatal("right password refused")
	}
	for _, p := range []string{"", "local secreT", testPassword + "x"} {
		if c.Verify([]byte(p)) {
			t.Fatalf("wrong password %q accepted", p)
		}
	}
	if _, err := NewCredential(testPassword, 100); err == nil {
		t.Fatal("100 iterations accepted")
	}
	bad := c
	bad.Salt = bad.Salt[:4]
	if bad.Verify([]byte(testPassword)) {
		t.Fatal("short salt accepted")
	}
}

func TestLoginAndBind(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	if len(s.Fingerprint()) != 32*3-1 {
		t.Fatalf("fingerprint %q", s.Fingerprint())
	}
	xs, err := dial(t, s, addr, "alice", testPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	got := <-r.got
	if !got.Equal(xs.LocalAddr()) || got.Bare().String() != "alice@example.org" || got.Resourcepart() == "" {
		t.Fatalf("bound %v, client sees %v", got, xs.LocalAddr())
	}
}

func TestLoginRefused(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	if _, err := dial(t, s, addr, "alice", "wrong", ""); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := dial(t, s, addr, "bob", testPassword, ""); err == nil {
		t.Fatal("other account accepted")
	}
}

func TestAuthLockout(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	for i := 0; i < maxAuthFailures; i++ {
		if _, err := dial(t, s, addr, "alice", "wrong", ""); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	if _, err := dial(t, s, addr, "alice", testPassword, ""); err == nil {
		t.Fatal("login accepted while locked out")
	}
}

func TestConnLimit(t *testing.T) {
	release := make(chan struct{})
	cred, _ := NewCredential(testPassword, minIterations)
	s, err := New(Config{Account: testAccount, Credential: cred, MaxConns: 1, Logger: quiet}, func(*Session) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	defer close(release)
	if _, err := dial(t, s, l.Addr().String(), "alice", testPassword, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, s, l.Addr().String(), "alice", testPassword, "b"); err == nil {
		t.Fatal("second connection accepted over MaxConns=1")
	}
}

func TestIsLoopback(t *testing.T) {
	cases := []struct {
		a    net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 3, 2, 1)}, true},
		{&net.TCPAddr{IP: net.IPv6loopback}, true},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, true},
		{&net.TCPAddr{IP: net.IPv4(192, 168, 1, 2)}, false},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1")}, false},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, false},
	}
	for _, c := range cases {
		if got := IsLoopback(c.a); got != c.want {
			t.Errorf("IsLoopback(%v) = %v", c.a, got)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cred, _ := NewCredential(testPassword, minIterations)
	h := func(*Session) {}
	for _, a := range []string{"example.org", "alice@example.org/res"} {
		if _, err := New(Config{Account: jid.MustParse(a), Credential: cred}, h); err == nil {
			t.Errorf("account %q accepted", a)
		}
	}
	if _, err := New(Config{Account: testAccount}, h); err == nil {
		t.Error("empty credential accepted")
	}
}

func TestSCRAMLogin(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	s, addr := newTestServer(t, r.handle)
	if _, err := dialMech(t, s, addr, "alice", "wrong", "", sasl.ScramSha256); err == nil {
		t.Fatal("wrong password accepted")
	}
	xs, err := dialMech(t, s, addr, "alice", testPassword, "phone", sasl.ScramSha256)
	if err != nil {
		t.Fatal(err)
	}
	if got := <-r.got; !got.Equal(xs.LocalAddr()) || got.Bare().String() != "alice@example.org" {
		t.Fatalf("bound %v, client sees %v", got, xs.LocalAddr())
	}
}
