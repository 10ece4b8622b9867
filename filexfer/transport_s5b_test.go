package filexfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// testDst is a DST.ADDR for tests: DstAddr of the XEP-0065 §5.3.2
// example's SID and JIDs.
var testDst = DstAddr("vxf9n471bn46", "requester@example.com/foo", "target@example.org/bar")

func TestDstAddr(t *testing.T) {
	// printf '%s' 'vxf9n471bn46requester@example.com/footarget@example.org/bar' | sha1sum
	const want = "98b8d688d0f5d895fd41c5e7309a2e9e33ba32ff"
	if testDst != want {
		t.Fatalf("DstAddr = %s, want %s", testDst, want)
	}
	// The order of the JIDs matters: the responder's candidates hash
	// responder first.
	if DstAddr("vxf9n471bn46", "target@example.org/bar", "requester@example.com/foo") == want {
		t.Fatal("DstAddr does not depend on the order of the JIDs")
	}
	if len(testDst) != DstAddrLen || checkDstAddr(testDst) != nil {
		t.Fatalf("DstAddr %q is not a DST.ADDR", testDst)
	}
}

func TestS5BPriority(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		loc  uint16
		want uint32
	}{
		{"", 0, 126 << 16},
		{S5BDirect, 65535, 126<<16 | 65535},
		{S5BAssisted, 1, 120<<16 | 1},
		{S5BTunnel, 0, 110 << 16},
		{S5BProxy, 7, 10<<16 | 7},
	} {
		got, ok := S5BPriority(tc.typ, tc.loc)
		if !ok || got != tc.want {
			t.Errorf("S5BPriority(%q, %d) = %d, %v; want %d", tc.typ, tc.loc, got, ok, tc.want)
		}
	}
	if _, ok := S5BPriority("relay", 0); ok {
		t.Error("S5BPriority accepted an unknown type")
	}
}

func TestNewS5BCandidate(t *testing.T) {
	c, err := NewS5BCandidate(S5BDirect, "a@example.test/r", "127.0.0.1", 9000, 65535)
	if err != nil {
		t.Fatal(err)
	}
	if c.Priority != 126<<16|65535 || c.Type != S5BDirect || c.Host != "127.0.0.1" || c.Port != 9000 || len(c.CID) != s5bCIDLen {
		t.Fatalf("candidate %+v", c)
	}
	c2, _ := NewS5BCandidate(S5BDirect, "a@example.test/r", "127.0.0.1", 9000, 65535)
	if c.CID == c2.CID {
		t.Fatal("two candidates got the same cid")
	}
	// What it builds, the element parser reads back.
	tr := &S5BTransport{SID: "s1", Candidates: []S5BCandidate{c, c2}}
	if _, err := tr.Raw(); err != nil {
		t.Fatalf("candidates do not serialize: %v", err)
	}
	for _, bad := range []struct {
		typ, jid, host string
		port           uint16
	}{
		{"relay", "a@b/c", "127.0.0.1", 1},
		{S5BDirect, "", "127.0.0.1", 1},
		{S5BDirect, "a b", "127.0.0.1", 1},
		{S5BDirect, strings.Repeat("a", MaxJIDLen+1), "127.0.0.1", 1},
		{S5BDirect, "a@b/c", "1.2.3", 1},
		{S5BDirect, "a@b/c", "fe80::1%eth0", 1},
		{S5BDirect, "a@b/c", "host_name", 1},
		{S5BDirect, "a@b/c", "127.0.0.1", 0},
	} {
		if _, err := NewS5BCandidate(bad.typ, bad.jid, bad.host, bad.port, 0); err == nil {
			t.Errorf("NewS5BCandidate(%q, %q, %q, %d) accepted", bad.typ, bad.jid, bad.host, bad.port)
		}
	}
}

func listen(t *testing.T, opts ...S5BListenerOption) *S5BListener {
	t.Helper()
	l, err := ListenS5B([]string{"127.0.0.1:0"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pair returns the two ends of one SOCKS5 bytestream through l.
func pair(t testing.TB, l *S5BListener, dst string) (server, client net.Conn) {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept(context.Background(), dst)
		ch <- res{c, err}
	}()
	client, err := DialS5B(context.Background(), l.Addrs()[0].String(), dst)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.c, client
}

func TestS5BRoundTrip(t *testing.T) {
	addrs := []string{"127.0.0.1:0"}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		addrs = append(addrs, "[::1]:0")
	}
	l, err := ListenS5B(addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cands, err := l.Candidates("a@example.test/r")
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != len(addrs) || cands[0].Priority <= cands[len(cands)-1].Priority && len(cands) > 1 {
		t.Fatalf("candidates %+v", cands)
	}
	for i, c := range cands {
		a := l.Addrs()[i]
		if c.Host != a.Addr().String() || c.Port != a.Port() {
			t.Fatalf("candidate %d %+v does not name %s", i, c, a)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			sc, err := l.Accept(context.Background(), testDst)
			if err != nil {
				t.Error(err)
			}
			accepted <- sc
		}()
		cc, err := DialS5B(context.Background(), a.String(), testDst)
		if err != nil {
			t.Fatal(err)
		}
		sc := <-accepted
		if sc == nil {
			t.FailNow()
		}
		if sc.LocalAddr().String() != a.String() {
			t.Fatalf("accepted on %s, want %s", sc.LocalAddr(), a)
		}
		msg := []byte("hello over " + a.String())
		go cc.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(sc, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %q, %v", got, err)
		}
		sc.Write([]byte("back"))
		got = make([]byte, 4)
		if _, err := io.ReadFull(cc, got); err != nil || string(got) != "back" {
			t.Fatalf("read back %q, %v", got, err)
		}
		cc.Close()
		if n, err := sc.Read(got); n != 0 || err != io.EOF {
			t.Fatalf("after close: %d, %v; want EOF", n, err)
		}
		sc.Close()
	}
}

// TestS5BEarlyConnection: a connection that finishes its handshake before
// Accept is called waits for it, and data the client sent right after
// the request is not lost.
func TestS5BEarlyConnection(t *testing.T) {
	l := listen(t)
	c, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := append([]byte{5, 1, 0, 5, 1, 0, 3, 40}, testDst...)
	req = append(req, 0, 0)
	req = append(req, "early data"...)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil || m != [2]byte{5, 0} {
		t.Fatalf("method reply % x, %v", m, err)
	}
	sc, err := l.Accept(context.Background(), testDst)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	rep := make([]byte, 47)
	if _, err := io.ReadFull(c, rep); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{5, 0, 0, 3, 40}, testDst...)
	want = append(want, 0, 0)
	if !bytes.Equal(rep, want) {
		t.Fatalf("reply % x, want % x", rep, want)
	}
	got := make([]byte, len("early data"))
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "early data" {
		t.Fatalf("stream starts with %q, %v", got, err)
	}
}

// refusedWith dials l, sends raw, and returns what the server answered
// before it closed the connection. A server that does not close within
// a generous bound fails the test (a hang is the bug).
func refusedWith(t *testing.T, l *S5BListener, raw []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("server did not close the connection: %v", err)
	}
	return got
}

func isReset(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestS5BListenerRefuses(t *testing.T) {
	l := listen(t)
	okGreet := []byte{5, 1, 0}
	connect := func(cmd, atyp byte, addr []byte, port uint16) []byte {
		b := append([]byte(nil), okGreet...)
		b = append(b, 5, cmd, 0, atyp)
		if atyp == 3 {
			b = append(b, byte(len(addr)))
		}
		b = append(b, addr...)
		return append(b, byte(port>>8), byte(port))
	}
	fail := func(rep byte) []byte { return []byte{5, 0, 5, rep, 0, 1, 0, 0, 0, 0, 0, 0} }
	for _, tc := range []struct {
		name string
		raw  []byte
		want []byte
	}{
		{"socks4", []byte{4, 1, 0, 0, 127, 0, 0, 1, 0}, nil},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), nil},
		{"no methods", []byte{5, 0}, []byte{5, 0xff}},
		{"only user/pass", []byte{5, 1, 2}, []byte{5, 0xff}},
		{"only gssapi and user/pass", []byte{5, 2, 1, 2}, []byte{5, 0xff}},
		{"bind", connect(2, 3, []byte(testDst), 0), fail(7)},
		{"udp associate", connect(3, 3, []byte(testDst), 0), fail(7)},
		{"ipv4", connect(1, 1, []byte{127, 0, 0, 1}, 0), fail(8)},
		{"ipv6", connect(1, 4, make([]byte, 16), 0), fail(8)},
		{"short dstaddr", connect(1, 3, []byte(testDst[:39]), 0), fail(2)},
		{"long dstaddr", connect(1, 3, []byte(testDst+"0"), 0), fail(2)},
		{"upper-case dstaddr", connect(1, 3, []byte(strings.ToUpper(testDst)), 0), fail(2)},
		{"non-hex dstaddr", connect(1, 3, []byte("g"+testDst[1:]), 0), fail(2)},
		{"port 1080", connect(1, 3, []byte(testDst), 1080), fail(2)},
		{"version 4 request", append(append([]byte(nil), okGreet...), 4, 1, 0, 3, 40), fail(1)},
		{"reserved byte", append(append([]byte(nil), okGreet...), 5, 1, 1, 3, 40), fail(1)},
		{"truncated greeting", []byte{5, 3, 0}, nil},
		{"truncated request", append(append([]byte(nil), okGreet...), 5, 1, 0, 3, 40, 'a'), []byte{5, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.name, "truncated") {
				// A truncated handshake ends only at the deadline.
				l := listen(t, WithS5BHandshakeTimeout(100*time.Millisecond))
				got := refusedWith(t, l, tc.raw)
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("answered % x, want % x", got, tc.want)
				}
				return
			}
			got := refusedWith(t, l, tc.raw)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("answered % x, want % x", got, tc.want)
			}
		})
	}
}

// TestS5BWrongDstAddr: a well-formed request for a DST.ADDR nobody
// accepts is refused at the deadline, and does not satisfy an Accept for
// another one.
func TestS5BWrongDstAddr(t *testing.T) {
	l := listen(t, WithS5BHandshakeTimeout(200*time.Millisecond))
	other := DstAddr("sid", "a@example.test/1", "b@example.test/2")
	ctx, cancel := context.WithCancel(context.Background())
	acc := make(chan error, 1)
	go func() {
		c, err := l.Accept(ctx, testDst)
		if c != nil {
			c.Close()
		}
		acc <- err
	}()
	_, err := DialS5B(context.Background(), l.Addrs()[0].String(), other)
	if !errors.Is(err, ErrTransport) {
		t.Fatalf("DialS5B with a wrong DST.ADDR: %v, want ErrTransport", err)
	}
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(te.Reason, "refused") {
		t.Fatalf("error %v does not say the streamhost refused", err)
	}
	cancel()
	if err := <-acc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept: %v, want context.Canceled", err)
	}
	if _, err := l.Accept(context.Background(), "not-hex"); err == nil {
		t.Fatal("Accept took a malformed DST.ADDR")
	}
}

// TestS5BSlowLoris: a client that connects and sends nothing, or drips
// its greeting, is closed at the handshake deadline, and the slot it
// held is free again.
func TestS5BSlowLoris(t *testing.T) {
	l := listen(t, WithS5BHandshakeTimeout(150*time.Millisecond), WithS5BMaxPending(1))
	for _, drip := range [][]byte{nil, {5}, {5, 1}} {
		c, err := net.Dial("tcp", l.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(drip)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err != nil && !isReset(err) {
			t.Fatalf("slow client (sent % x) not closed: %v", drip, err)
		}
		c.Close()
	}
	// The only slot is free: a proper client gets through.
	sc, cc := pair(t, l, testDst)
	sc.Close()
	cc.Close()
}

// TestS5BTooManyConnections: beyond MaxPending held connections, new
// ones are closed at once; the held ones are unaffected.
func TestS5BTooManyConnections(t *testing.T) {
	l := listen(t, WithS5BMaxPending(2))
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", l.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{5, 1, 0})
		var m [2]byte
		if _, err := io.ReadFull(c, m[:]); err != nil { // in handshake: holds a slot
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !isReset(err)) {
		t.Fatalf("third connection: % x, %v; want closed", b, err)
	}
	c.Close()
	if l.refused() < 1 {
		t.Fatal("refusal not counted")
	}
	// The first held connection completes and is accepted.
	req := append([]byte{5, 1, 0, 3, 40}, testDst...)
	held[0].Write(append(req, 0, 0))
	sc, err := l.Accept(context.Background(), testDst)
	if err != nil {
		t.Fatal(err)
	}
	sc.Close()
}

func TestS5BCloseUnblocks(t *testing.T) {
	l, err := ListenS5B([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := l.Accept(context.Background(), testDst); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	}()
	time.Sleep(10 * time.Millisecond) // let Accept wait (not needed for correctness)
	l.Close()
	wg.Wait()
	held.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(held); err != nil && !isReset(err) {
		t.Fatalf("held connection not closed by Close: %v", err)
	}
	if _, err := l.Accept(context.Background(), testDst); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener: %v", err)
	}
}

func TestListenS5BRefuses(t *testing.T) {
	for _, a := range []string{"0.0.0.0:0", "[::]:0", "localhost:0", "127.0.0.1", "[fe80::1%lo]:0"} {
		if l, err := ListenS5B([]string{a}); err == nil {
			l.Close()
			t.Errorf("ListenS5B(%q) accepted", a)
		}
	}
	if _, err := ListenS5B(nil); err == nil {
		t.Error("ListenS5B(nil) accepted")
	}
	if _, err := ListenS5B([]string{"127.0.0.1:0"}, WithS5BMaxPending(0)); err == nil {
		t.Error("MaxPending 0 accepted")
	}
	if _, err := ListenS5B([]string{"127.0.0.1:0"}, WithS5BHandshakeTimeout(0)); err == nil {
		t.Error("timeout 0 accepted")
	}
}

// fakeStreamhost runs one SOCKS5 server exchange that answers with reply
// after reading the client's request.
func fakeStreamhost(t *testing.T, method []byte, reply []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		g := make([]byte, 3)
		io.ReadFull(c, g)
		c.Write(method)
		r := make([]byte, 47)
		io.ReadFull(c, r)
		c.Write(reply) // then close: a truncated reply ends in EOF
	}()
	return ln.Addr().String()
}

func TestDialS5BStrictReply(t *testing.T) {
	ok := append([]byte{5, 0, 0, 3, 40}, testDst...)
	ok = append(ok, 0, 0)
	other := DstAddr("x", "y", "z")
	for _, tc := range []struct {
		name          string
		method, reply []byte
	}{
		{"auth required", []byte{5, 2}, nil},
		{"no acceptable", []byte{5, 0xff}, nil},
		{"version 4 method", []byte{4, 0}, nil},
		{"refused", []byte{5, 0}, []byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"ipv4 bound address", []byte{5, 0}, []byte{5, 0, 0, 1, 127, 0, 0, 1, 4, 56}},
		{"other dstaddr", []byte{5, 0}, append(append([]byte{5, 0, 0, 3, 40}, other...), 0, 0)},
		{"port not 0", []byte{5, 0}, append(append([]byte{5, 0, 0, 3, 40}, testDst...), 0, 1)},
		{"reserved", []byte{5, 0}, append([]byte{5, 0, 1}, ok[3:]...)},
		{"truncated", []byte{5, 0}, ok[:20]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeStreamhost(t, tc.method, tc.reply)
			c, err := DialS5B(context.Background(), addr, testDst)
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrTransport) {
				t.Fatalf("%v does not match ErrTransport", err)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		c, err := DialS5B(context.Background(), fakeStreamhost(t, []byte{5, 0}, ok), testDst)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

// TestDialS5BContext: a streamhost that never answers is left when ctx
// ends, with ctx's error.
func TestDialS5BContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // silent
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := DialS5B(ctx, ln.Addr().String(), testDst); !errors.Is(err, context.Canceled) {
		t.Fatalf("DialS5B: %v, want context.Canceled", err)
	}
	if _, err := DialS5B(context.Background(), ln.Addr().String(), "short"); err == nil {
		t.Fatal("DialS5B took a malformed DST.ADDR")
	}
}

// TestS5BConn runs the x/net/nettest net.Conn conformance suite on a
// SOCKS5 bytestream.
func TestS5BConn(t *testing.T) {
	l := listen(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		s, c := pair(t, l, testDst)
		return s, c, func() { s.Close(); c.Close() }, nil
	})
}
