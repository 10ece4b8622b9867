//go:build linux

package gateway

import (
	"net"
	"syscall"
)

// quickAckConn re-arms TCP_QUICKACK after every read, so that the kernel
// acknowledges what the server sent at once instead of holding the ACK
// for data of ours to ride on (delayed ACK, up to 40 ms on Linux). A
// server that keeps Nagle's algorithm on (Prosody's default) sends no
// further small segment while one is unacknowledged: without this, a
// message that arrives while the previous one is not yet acknowledged
// waits for our delayed ACK whenever we have nothing to send back
// (receipts off, or batched; docs/protocol.md §22.9). The option is not
// sticky in Linux, hence once per read.
type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

// withQuickAck wraps a TCP connection; anything else is returned as is.
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, raw: raw}
}

// Read implements [net.Conn].
func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		_ = c.raw.Control(func(fd uintptr) {
			// Best effort: a failure only leaves the kernel's default.
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return n, err
}
