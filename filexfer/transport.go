package filexfer

import (
	"errors"
	"io"
)

// The transports (transport*.go) carry the encrypted stream of stream.go
// between the two devices. Each yields a [Pipe]: the sender writes the
// stream header and chunks and closes after the final chunk, the receiver
// reads until EOF. None of them adds confidentiality or integrity of its
// own that securejingle relies on: the chunk AEAD does, on every
// transport, so that the file key stays bound to the end-to-end session
// whatever carries the bytes (docs/protocol.md, file transfer transports).

// A Pipe is the byte pipe a transport yields for one transfer attempt. A
// *net.TCPConn from the SOCKS5 transport, the in-band bytestream of
// [OpenIBB] and the data channel all are Pipes. Read and Write may be
// called from different goroutines; Close unblocks both.
type Pipe interface {
	io.ReadWriteCloser
}

// transportOrder is securejingle's order of preference of the transport
// kinds (the transport list, docs/protocol.md): a
// transport-replace only ever moves down this list, and never to a
// transport without our stream encryption.
var transportOrder = []TransportKind{TransportDataChannel, TransportS5B, TransportIBB}

// NextTransport returns the transport to offer in a transport-replace
// after current failed: the first of allowed (a configured subset, any
// order) that comes after current in securejingle's order of preference
// (data channel, SOCKS5, IBB). It returns false when there is none, and
// the session then ends with a connectivity error instead of moving to
// anything else. An empty current means no transport was tried yet.
func NextTransport(current TransportKind, allowed []TransportKind) (TransportKind, bool) {
	start := 0
	if current != "" {
		start = -1
		for i, n := range transportOrder {
			if n == current {
				start = i + 1
			}
		}
		if start < 0 {
			return "", false
		}
	}
	for _, n := range transportOrder[start:] {
		for _, a := range allowed {
			if a == n {
				return n, true
			}
		}
	}
	return "", false
}

// ErrTransport is matched (with errors.Is) by the errors of the SOCKS5
// and IBB transports for a peer, proxy or stream that broke the protocol
// (a malformed or refused SOCKS5 exchange, a wrong DST.ADDR, a block over
// the negotiated size). The transfer attempt fails; the caller falls back
// to the next candidate or transport.
var ErrTransport = errors.New("filexfer: transport failed")

// TransportError says what went wrong with a transport exchange. It
// matches [ErrTransport] with errors.Is and the cause, if any, with
// errors.As. It is an immutable value once returned.
type TransportError struct {
	Op     string // "socks5 greeting", "socks5 request", "socks5 reply", "ibb", ...
	Reason string // short human-readable cause
	Err    error  // underlying error (network, context), or nil
}

// Error returns "filexfer: <op>: <reason>[: <cause>]".
func (e *TransportError) Error() string {
	s := "filexfer: " + e.Op + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns [ErrTransport] and the cause, if any.
func (e *TransportError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrTransport, e.Err}
	}
	return []error{ErrTransport}
}

func transportErr(op, reason string, err error) error {
	return &TransportError{Op: op, Reason: reason, Err: err}
}
