//go:build linux

package gateway

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// quickAckMode reads TCP_QUICKACK: 1 while the kernel acknowledges at
// once, 0 in its delayed-ACK ("pingpong") mode.
func quickAckMode(t *testing.T, c net.Conn) int {
	t.Helper()
	var tc *net.TCPConn
	switch c := c.(type) {
	case *quickAckConn:
		tc = c.TCPConn
	case *net.TCPConn:
		tc = c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v
}

// TestQuickAckAfterRead: a request/answer exchange puts a plain loopback
// TCP connection in delayed-ACK mode (logged, as the control); through
// withQuickAck every read leaves it acknowledging at once.
func TestQuickAckAfterRead(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer s.Close()
			buf := make([]byte, 4)
			for range 8 {
				if _, err := s.Write([]byte("ping")); err != nil {
					done <- err
					return
				}
				if _, err := io.ReadFull(s, buf); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		var c net.Conn
		c, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if wrap {
			c = withQuickAck(c)
			if _, ok := c.(*quickAckConn); !ok {
				t.Fatalf("withQuickAck returned %T", c)
			}
		}
		buf := make([]byte, 4)
		mode := 0
		for range 8 {
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			mode = quickAckMode(t, c)
			if _, err := c.Write([]byte("pong")); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		t.Logf("wrapped %v: TCP_QUICKACK %d after the last read", wrap, mode)
		if wrap && mode != 1 {
			t.Fatal("delayed-ACK mode after a read through withQuickAck")
		}
		// Unwrapped (the control) it is 0 on the kernels seen here; not
		// asserted, that is the kernel's choice.
	}
}
