package c2sfront

import (
	"io"
	"net"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"
)

// remoteConn is one end of a pipe that claims a chosen remote address.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// oneListener hands out one connection, then reports closed.
type oneListener struct {
	c    chan net.Conn
	done chan struct{}
}

func (l *oneListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *oneListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}
func (l *oneListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestNonLoopbackRefusedAtAccept(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	cred, _ := NewCredential(testPassword, minIterations)
	s, err := New(Config{Account: testAccount, Credential: cred, Logger: quiet}, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client, server := net.Pipe()
	l := &oneListener{c: make(chan net.Conn, 1), done: make(chan struct{})}
	l.c <- remoteConn{Conn: server, remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5222}}
	go s.Serve(l)
	// A refused peer gets no stream header: the first read sees the close.
	go io.WriteString(client, "<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
	var b [1]byte
	if n, err := client.Read(b[:]); n != 0 || err == nil {
		t.Fatalf("non-loopback peer got %d bytes, err %v", n, err)
	}
}

func TestUnixSocketLogin(t *testing.T) {
	r := &recorder{got: make(chan jid.JID, 1)}
	cred, _ := NewCredential(testPassword, minIterations)
	s, err := New(Config{Account: testAccount, Credential: cred, Logger: quiet}, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path := filepath.Join(t.TempDir(), "front.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	if _, err := dialNet(t, s, "unix", path, "alice", testPassword); err != nil {
		t.Fatal(err)
	}
	if got := <-r.got; got.Bare().String() != "alice@example.org" {
		t.Fatalf("bound %v", got)
	}
}
