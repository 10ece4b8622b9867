package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// freezeProxy forwards TCP connections to a server and can stop reading
// from its clients, as a server that stopped reading would: the client's
// writes then fill the TCP buffers and block.
type freezeProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	frozen chan struct{} // non-nil and open while frozen
	conns  int
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{l: l, target: target}
	t.Cleanup(func() { l.Close(); p.thaw() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(t, c)
		}
	}()
	return p
}

func (p *freezeProxy) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	p.mu.Lock()
	p.conns++
	p.mu.Unlock()
	go func() { io.Copy(c, u); c.Close() }()
	buf := make([]byte, 4096)
	for {
		p.mu.Lock()
		f := p.frozen
		p.mu.Unlock()
		if f != nil {
			<-f
		}
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := u.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

func (p *freezeProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

func (p *freezeProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

// TestSendToFrozenServerIsBounded: a server that stops reading used to
// hold every sender behind the session's write lock until TCP gave up
// (minutes); now a write that takes longer than WriteTimeout closes the
// connection, every send returns, and the gateway logs in again.
func TestSendToFrozenServerIsBounded(t *testing.T) {
	srv := startServer(t)
	if err := srv.AddUser("alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	p := startFreezeProxy(t, srv.Addr().String())
	a := startGatewayAt(t, server{p.l.Addr().String(), srv.ClientTLSConfig()}, "alice@"+testDomain+"/laptop", "alice-password",
		gwOptions{plainAuth: true, setup: func(g *Gateway) { g.cfg.WriteTimeout = 300 * time.Millisecond }})
	p.freeze()
	big := "<message to='nobody@" + testDomain + "' type='chat'><body>" + strings.Repeat("x", 64<<10) + "</body></message>"
	const senders = 4
	errs := make(chan error, senders)
	for i := 0; i < senders; i++ {
		go func() {
			for n := 0; n < 1000; n++ { // 64 MB at most: more than any loopback buffer
				if err := a.send(context.Background(), []byte(big)); err != nil {
					errs <- err
					return
				}
			}
			errs <- errors.New("1000 sends went through a server that reads nothing")
		}()
	}
	for i := 0; i < senders; i++ {
		select {
		case err := <-errs:
			if strings.Contains(err.Error(), "went through") {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("%d of %d sends still blocked on a frozen server", senders-i, senders)
		}
	}
	p.thaw()
	for i := 0; p.connections() < 2; i++ {
		if i > 1500 {
			t.Fatal("the gateway did not connect again after the frozen connection was closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-a.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not log in again")
	}
}
