package gateway

// Transports of the file channel. Each yields a byte pipe for one content
// (the sender closes it after the final chunk, the receiver sees EOF);
// securejingle's stream encryption runs on every one of them, so a
// transport only ever carries ciphertext bound to the session's key.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// transportEnv is what a transport knows of the content it carries.
type transportEnv struct {
	g         *Gateway
	sid       string // the Jingle session id
	content   string // the content name
	initiator bool   // we initiated the session
	sender    bool   // we send the bytes
	local     jid.JID
	peer      jid.JID // the bound device's full JID
	// info receives the transport-info payloads of the peer for this
	// content (the transport element); sendInfo sends ours.
	// s5bInfo receives those of the SOCKS5 namespace.
	info     <-chan jingle.Raw
	s5bInfo  <-chan jingle.Raw
	sendInfo func(ctx context.Context, tr jingle.Raw) error
}

// transportInfoBuffer is the transport-info payloads buffered per content
// and kind; more are dropped.
const transportInfoBuffer = 8

// A fileTransport sets up byte pipes of one kind.
type fileTransport interface {
	// kind is the filexfer kind of its transport element.
	kind() filexfer.TransportKind
	// offer returns the transport element of a session-initiate or a
	// transport-replace we send.
	offer(ctx context.Context, e *transportEnv) (jingle.Raw, error)
	// accept checks the peer's element (of its session-initiate or
	// transport-replace) and returns ours for the session-accept or
	// transport-accept.
	accept(ctx context.Context, e *transportEnv, theirs jingle.Raw) (jingle.Raw, error)
	// connect opens the pipe once both elements are exchanged.
	connect(ctx context.Context, e *transportEnv, ours, theirs jingle.Raw) (io.ReadWriteCloser, error)
}

// errTransportUnavailable: this build or configuration cannot use the
// transport.
var errTransportUnavailable = errors.New("gateway: transport not available")

// defaultFileTransports is the order of preference.
var defaultFileTransports = []string{TransportDataChannel, TransportS5BDirect, TransportS5BProxy, TransportIBB}

// validTransports checks transport names (known, no repeats).
func validTransports(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if !slices.Contains(defaultFileTransports, n) {
			return fmt.Errorf("%w: unknown transport %q (use %v)", ErrTransferState, n, defaultFileTransports)
		}
		if seen[n] {
			return fmt.Errorf("%w: transport %q listed twice", ErrTransferState, n)
		}
		seen[n] = true
	}
	return nil
}

// transportOrder is the preference order: o when given, else the
// configuration's, else the default; only transports this gateway can
// use.
func (g *Gateway) transportOrder(o []string) []string {
	if len(o) == 0 {
		o = g.cfg.FileTransports
	}
	if len(o) == 0 {
		o = defaultFileTransports
	}
	var out []string
	for _, n := range o {
		if g.fileTransport(n) {
			out = append(out, n)
		}
	}
	return out
}

// fileTransport reports whether this gateway can use the transport named
// n (through a transfer's driver).
func (g *Gateway) fileTransport(n string) bool {
	if h := g.fileHooks.transport; h != nil {
		return h(n) != nil
	}
	switch n {
	case TransportDataChannel, TransportIBB, TransportS5BProxy:
		return true
	case TransportS5BDirect:
		return !g.cfg.RelayOnly // it would show this host's addresses
	}
	return false
}

// driver returns the transport named n for this transfer, or nil when
// the gateway cannot use it.
func (x *transfer) driver(n string) fileTransport {
	if h := x.g.fileHooks.transport; h != nil {
		return h(n)
	}
	switch n {
	case TransportDataChannel:
		return dcTransport{x}
	case TransportIBB:
		return ibbTransport{x}
	case TransportS5BDirect, TransportS5BProxy:
		if x.g.fileTransport(n) {
			return s5bTransport{x: x, proxy: n == TransportS5BProxy}
		}
	}
	return nil
}

// abortPipe ends a pipe at once, unblocking reads and writes (a data
// channel's Close would wait for acknowledgements).
func abortPipe(p io.Closer) {
	if a, ok := p.(interface{ Abort() }); ok {
		a.Abort()
		return
	}
	p.Close()
}

// transportName names the transport of an element the peer sent, for the
// kinds this gateway can use.
func transportName(fc *filexfer.FileContent) string {
	switch fc.Transport {
	case filexfer.TransportIBB:
		return TransportIBB
	case filexfer.TransportDataChannel:
		return TransportDataChannel
	case filexfer.TransportS5B:
		if fc.S5B != nil {
			for _, c := range fc.S5B.Candidates {
				if c.Type != filexfer.S5BProxy {
					return TransportS5BDirect
				}
			}
			if len(fc.S5B.Candidates) > 0 {
				return TransportS5BProxy
			}
		}
		return TransportS5BDirect
	}
	return ""
}

// transportRaw returns the transport element of a content.
func transportRaw(c *jingle.Content) (jingle.Raw, bool) {
	for _, r := range c.Other {
		if r.XMLName.Local == "transport" {
			return r, true
		}
	}
	return jingle.Raw{}, false
}
