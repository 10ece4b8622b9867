package filexfer

import (
	"context"
	"crypto/rand"
	"crypto/sha1" // XEP-0065 §5.3.2 defines DST.ADDR as hex SHA-1; not used for security
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// SOCKS5 bytestreams (XEP-0065 as used by XEP-0260), as net pieces that
// need no XMPP session: the DST.ADDR, a listener serving our direct
// candidates, a dialer for the peer's candidates and for proxies, and
// candidate construction. The Jingle negotiation around them (which
// candidate, activation) is [S5BNomination] and transport_s5b_proxy.go.

// SOCKS5 protocol constants (RFC 1928).
const (
	socksVersion       = 0x05
	socksMethodNoAuth  = 0x00
	socksMethodNone    = 0xff
	socksCmdConnect    = 0x01
	socksAtypIPv4      = 0x01
	socksAtypDomain    = 0x03
	socksAtypIPv6      = 0x04
	socksRepSucceeded  = 0x00
	socksRepFailure    = 0x01
	socksRepNotAllowed = 0x02
	socksRepRefused    = 0x05
	socksRepCmd        = 0x07
	socksRepAtyp       = 0x08
)

// DstAddrLen is the length of a DST.ADDR: 40 lower-case hex digits of a
// SHA-1 digest (XEP-0065 §5.3.2).
const DstAddrLen = 2 * sha1.Size

// Implementation limits of the SOCKS5 listener and dialer.
const (
	// DefaultS5BHandshakeTimeout bounds a SOCKS5 handshake, ours as a
	// client and a peer's as a server, from TCP connect to the reply; a
	// connection that has not finished by then is closed. XEP-0260 §4
	// asks clients to give up on a candidate after 5 seconds; the server
	// side waits twice that so a slow but honest peer is not cut off.
	DefaultS5BHandshakeTimeout = 10 * time.Second
	// DefaultS5BMaxPending bounds the connections an [S5BListener] holds
	// before they are handed to [S5BListener.Accept]: in handshake, or
	// finished and waiting for a matching Accept. Further connections are
	// closed at once.
	DefaultS5BMaxPending = 16
)

// DstAddr returns the SOCKS5 DST.ADDR of a XEP-0260 candidate: the hex
// SHA-1 of sid (the transport's sid attribute) + the full JID of the
// party that offered the candidate + the full JID of the other party
// (XEP-0065 §5.3.2 "SID + Requester JID + Target JID"; XEP-0260 §2.2).
// For the initiator's candidates that is DstAddr(sid, initiator,
// responder), for the responder's DstAddr(sid, responder, initiator).
// Both parties compute it themselves; a dstaddr attribute a peer sends
// is not needed and not trusted.
//
// SHA-1 is the protocol's, used as a rendezvous name only: nothing in
// securejingle's security rests on it (the stream AEAD authenticates the
// bytes).
func DstAddr(sid, owner, peer string) string {
	h := sha1.New()
	io.WriteString(h, sid)
	io.WriteString(h, owner)
	io.WriteString(h, peer)
	return hex.EncodeToString(h.Sum(nil))
}

// S5B candidate type preferences (XEP-0260 §2.2: priority =
// 2^16 * type preference + local preference).
const (
	S5BPreferenceDirect   = 126
	S5BPreferenceAssisted = 120
	S5BPreferenceTunnel   = 110
	S5BPreferenceProxy    = 10
)

// S5BPriority returns the XEP-0260 priority of a candidate of type typ
// ("" is direct) with the local preference local, and false for an
// unknown type.
func S5BPriority(typ string, local uint16) (uint32, bool) {
	var pref uint32
	switch typ {
	case "", S5BDirect:
		pref = S5BPreferenceDirect
	case S5BAssisted:
		pref = S5BPreferenceAssisted
	case S5BTunnel:
		pref = S5BPreferenceTunnel
	case S5BProxy:
		pref = S5BPreferenceProxy
	default:
		return 0, false
	}
	return pref<<16 | uint32(local), true
}

// s5bCIDLen is the length of the cids NewS5BCandidate draws: 16 base32
// characters, 80 random bits.
const s5bCIDLen = 16

// NewS5BCandidate returns a candidate of type typ (direct or proxy, or
// assisted/tunnel) at host:port for the streamhost jid (our full JID for
// a direct candidate, the proxy's JID for a proxy), with the XEP-0260
// priority for local preference local and a fresh cid from crypto/rand.
// It fails for a host that is not an IP literal or DNS name, port 0, an
// empty or over-long jid, or an unknown type.
func NewS5BCandidate(typ, jid, host string, port uint16, local uint16) (S5BCandidate, error) {
	prio, ok := S5BPriority(typ, local)
	if !ok {
		return S5BCandidate{}, fmt.Errorf("filexfer: unknown SOCKS5 candidate type %q", typ)
	}
	if why := checkHost(host); why != "" || len(host) > MaxHostLen {
		return S5BCandidate{}, fmt.Errorf("filexfer: SOCKS5 candidate host %q: not an IP address or DNS name", truncate(host))
	}
	if port == 0 {
		return S5BCandidate{}, errors.New("filexfer: SOCKS5 candidate without a port")
	}
	if jid == "" || len(jid) > MaxJIDLen || !isToken(jid) {
		return S5BCandidate{}, fmt.Errorf("filexfer: SOCKS5 candidate jid %q is empty, too long or has whitespace", truncate(jid))
	}
	if typ == "" {
		typ = S5BDirect
	}
	return S5BCandidate{CID: rand.Text()[:s5bCIDLen], Host: host, JID: jid, Port: port, Priority: prio, Type: typ}, nil
}

// Candidates returns one direct candidate per address the listener is
// bound to, for the streamhost jid (our full JID), in the listener's
// address order with falling local preference (the first address is
// preferred).
func (l *S5BListener) Candidates(jid string) ([]S5BCandidate, error) {
	var cs []S5BCandidate
	for i, a := range l.addrs {
		c, err := NewS5BCandidate(S5BDirect, jid, a.Addr().String(), a.Port(), uint16(65535-i))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// checkDstAddr checks that d has the form of a DST.ADDR.
func checkDstAddr(d string) error {
	if !isLowerHex(d, DstAddrLen) {
		return fmt.Errorf("filexfer: SOCKS5 DST.ADDR %q is not %d lower-case hex digits", truncate(d), DstAddrLen)
	}
	return nil
}

// S5BListener serves our direct SOCKS5 candidates: a SOCKS5 server that
// speaks only what XEP-0065 needs. A connection must greet with version 5
// offering "no authentication", then send CONNECT to a DOMAINNAME of
// exactly 40 lower-case hex digits and port 0, all within the handshake
// timeout; anything else is answered with a SOCKS5 failure (when the
// protocol has one) and closed. A finished handshake is answered with
// success only when [S5BListener.Accept] asks for its DST.ADDR; until
// then, and at most until the handshake timeout, it waits unanswered.
// At most MaxPending connections are held this way; more are closed at
// once, so a stranger who can reach the port can delay but not exhaust
// us (the negotiation then falls back to a proxy or IBB).
//
// A listener may serve any number of transfers at once, one Accept per
// expected connection. It is safe for concurrent use. The zero value is
// not usable; use [ListenS5B].
type S5BListener struct {
	lns        []net.Listener
	addrs      []netip.AddrPort
	timeout    time.Duration
	sem        chan struct{} // one token per pending connection
	done       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	mu         sync.Mutex
	waiters    []*s5bWaiter  // Accept calls waiting, oldest first
	parked     []*s5bPending // finished handshakes nobody asked for yet
	inHandshk  map[net.Conn]struct{}
	closed     bool
	refusedCnt int // connections refused (for tests)
}

// s5bPending is a connection whose CONNECT request was read and accepted
// in form, not yet answered.
type s5bPending struct {
	conn    net.Conn
	dstaddr string
	timer   *time.Timer // refuses a parked connection at its deadline
}

type s5bWaiter struct {
	dstaddr string
	ch      chan *s5bPending // buffered 1
}

// S5BListenerOption configures [ListenS5B].
type S5BListenerOption func(*S5BListener) error

// WithS5BHandshakeTimeout sets the handshake timeout (default
// [DefaultS5BHandshakeTimeout]); it must be positive.
func WithS5BHandshakeTimeout(d time.Duration) S5BListenerOption {
	return func(l *S5BListener) error {
		if d <= 0 {
			return errors.New("filexfer: SOCKS5 handshake timeout must be positive")
		}
		l.timeout = d
		return nil
	}
}

// WithS5BMaxPending sets how many connections the listener holds before
// Accept takes them (default [DefaultS5BMaxPending]); it must be at least 1.
func WithS5BMaxPending(n int) S5BListenerOption {
	return func(l *S5BListener) error {
		if n < 1 {
			return errors.New("filexfer: SOCKS5 pending connection limit must be at least 1")
		}
		l.sem = make(chan struct{}, n)
		return nil
	}
}

// ListenS5B binds a TCP listener on each of addrs ("127.0.0.1:0",
// "[::1]:0", "192.0.2.7:8010": an IP literal, no zone, port 0 for a free
// one) and serves SOCKS5 on them until Close. An unspecified address
// (0.0.0.0, ::) is refused: a candidate names the address it is reached
// at, so the caller lists its interfaces' addresses. On error nothing
// stays bound.
func ListenS5B(addrs []string, opts ...S5BListenerOption) (*S5BListener, error) {
	if len(addrs) == 0 {
		return nil, errors.New("filexfer: SOCKS5 listener needs at least one address")
	}
	l := &S5BListener{
		timeout:   DefaultS5BHandshakeTimeout,
		sem:       make(chan struct{}, DefaultS5BMaxPending),
		done:      make(chan struct{}),
		inHandshk: map[net.Conn]struct{}{},
	}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			l.closeListeners()
			return nil, fmt.Errorf("filexfer: SOCKS5 listen address %q: want IP:port: %w", a, err)
		}
		if ap.Addr().IsUnspecified() || ap.Addr().Zone() != "" {
			l.closeListeners()
			return nil, fmt.Errorf("filexfer: SOCKS5 listen address %q: give the interface address peers connect to, not an unspecified or zoned one", a)
		}
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			l.closeListeners()
			return nil, fmt.Errorf("filexfer: SOCKS5 listen on %s: %w", a, err)
		}
		l.lns = append(l.lns, ln)
		l.addrs = append(l.addrs, ln.Addr().(*net.TCPAddr).AddrPort())
	}
	for _, ln := range l.lns {
		l.wg.Add(1)
		go l.serve(ln)
	}
	return l, nil
}

func (l *S5BListener) closeListeners() {
	for _, ln := range l.lns {
		ln.Close()
	}
}

// Addrs returns the bound addresses, in the order given to ListenS5B,
// with the ports chosen for port 0.
func (l *S5BListener) Addrs() []netip.AddrPort { return append([]netip.AddrPort(nil), l.addrs...) }

// Close stops listening, closes every pending connection and makes
// waiting Accept calls return net.ErrClosed. Connections already returned
// by Accept are the caller's and stay open. Close waits for the
// listener's goroutines to end.
func (l *S5BListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeListeners()
		l.mu.Lock()
		l.closed = true
		parked := l.parked
		l.parked = nil
		for c := range l.inHandshk {
			c.Close()
		}
		l.mu.Unlock()
		for _, p := range parked {
			p.timer.Stop()
			<-l.sem
			p.conn.Close()
		}
	})
	l.wg.Wait()
	return nil
}

func (l *S5BListener) serve(ln net.Listener) {
	defer l.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (EMFILE, ECONNABORTED): back
			// off a little rather than spin.
			select {
			case <-l.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.mu.Lock()
			l.refusedCnt++
			l.mu.Unlock()
			c.Close() // over the pending bound
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			<-l.sem
			return
		}
		l.inHandshk[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake runs the server side of the SOCKS5 handshake up to (not
// including) the reply to CONNECT, then hands the connection to a waiting
// Accept or parks it.
func (l *S5BListener) handshake(c net.Conn) {
	defer l.wg.Done()
	deadline := time.Now().Add(l.timeout)
	c.SetDeadline(deadline)
	dst, err := serverHandshake(c)
	l.mu.Lock()
	delete(l.inHandshk, c)
	if err != nil || l.closed {
		l.refusedCnt++
		l.mu.Unlock()
		<-l.sem // free the slot before the peer sees the close
		c.Close()
		return
	}
	p := &s5bPending{conn: c, dstaddr: dst}
	for i, w := range l.waiters {
		if subtle.ConstantTimeCompare([]byte(w.dstaddr), []byte(dst)) == 1 {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			w.ch <- p
			l.mu.Unlock()
			return
		}
	}
	p.timer = time.AfterFunc(time.Until(deadline), func() { l.expire(p) })
	l.parked = append(l.parked, p)
	l.mu.Unlock()
}

// expire refuses a parked connection that no Accept asked for in time.
func (l *S5BListener) expire(p *s5bPending) {
	l.mu.Lock()
	found := false
	for i, q := range l.parked {
		if q == p {
			l.parked = append(l.parked[:i], l.parked[i+1:]...)
			found = true
			break
		}
	}
	if found {
		l.refusedCnt++
	}
	l.mu.Unlock()
	if !found {
		return // taken by Accept or Close
	}
	p.conn.SetWriteDeadline(time.Now().Add(time.Second))
	writeSocksReply(p.conn, socksRepRefused)
	<-l.sem
	p.conn.Close()
}

// Accept returns the next connection whose CONNECT named dstaddr, after
// answering it with success; the caller owns it from then on (no
// deadline set). A connection that arrived before the call is taken
// first, oldest first. ctx bounds the wait: when it ends, Accept returns
// its error. It returns net.ErrClosed once the listener is closed, and an
// error for a dstaddr that is not 40 lower-case hex digits.
//
// XEP-0260 peers may try several of our candidates; each connection is
// returned by its own Accept, and its LocalAddr tells which candidate it
// came through (the one named by the peer's candidate-used is kept, the
// others closed).
func (l *S5BListener) Accept(ctx context.Context, dstaddr string) (net.Conn, error) {
	if err := checkDstAddr(dstaddr); err != nil {
		return nil, err
	}
	for {
		p, err := l.next(ctx, dstaddr)
		if err != nil {
			return nil, err
		}
		if err := writeSocksReplyDomain(p.conn, socksRepSucceeded, p.dstaddr); err != nil {
			<-l.sem
			p.conn.Close()
			continue // the peer went away; wait for another
		}
		p.conn.SetDeadline(time.Time{})
		<-l.sem
		return p.conn, nil
	}
}

// next takes a parked connection for dstaddr or waits for one.
func (l *S5BListener) next(ctx context.Context, dstaddr string) (*s5bPending, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	for i, p := range l.parked {
		if subtle.ConstantTimeCompare([]byte(p.dstaddr), []byte(dstaddr)) == 1 {
			l.parked = append(l.parked[:i], l.parked[i+1:]...)
			l.mu.Unlock()
			p.timer.Stop() // expire finds it gone if it fires anyway
			return p, nil
		}
	}
	w := &s5bWaiter{dstaddr: dstaddr, ch: make(chan *s5bPending, 1)}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	select {
	case p := <-w.ch:
		return p, nil
	case <-ctx.Done():
	case <-l.done:
	}
	l.mu.Lock()
	for i, q := range l.waiters {
		if q == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			l.mu.Unlock()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, net.ErrClosed
		}
	}
	l.mu.Unlock()
	// A connection was handed over as we gave up: refuse it.
	p := <-w.ch
	writeSocksReply(p.conn, socksRepRefused)
	<-l.sem
	p.conn.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, net.ErrClosed
}

// refused reports how many connections the listener refused or dropped
// (over the bound, bad handshake, unclaimed at the deadline).
func (l *S5BListener) refused() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refusedCnt
}

// serverHandshake reads the greeting and the CONNECT request, answering
// the greeting, and returns the DST.ADDR. Reads are exact, so bytes a
// client sends early stay unread for the stream. Errors match
// ErrTransport; the connection is then answered with a failure where
// SOCKS5 has one, and must be closed by the caller.
func serverHandshake(c net.Conn) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", transportErr("socks5 greeting", "incomplete", err)
	}
	if hdr[0] != socksVersion {
		return "", transportErr("socks5 greeting", "version "+strconv.Itoa(int(hdr[0]))+", want 5", nil)
	}
	if hdr[1] == 0 {
		c.Write([]byte{socksVersion, socksMethodNone})
		return "", transportErr("socks5 greeting", "no authentication method offered", nil)
	}
	var methods [255]byte
	if _, err := io.ReadFull(c, methods[:hdr[1]]); err != nil {
		return "", transportErr("socks5 greeting", "incomplete", err)
	}
	noAuth := false
	for _, m := range methods[:hdr[1]] {
		if m == socksMethodNoAuth {
			noAuth = true
		}
	}
	if !noAuth {
		c.Write([]byte{socksVersion, socksMethodNone})
		return "", transportErr("socks5 greeting", `"no authentication" not offered`, nil)
	}
	if _, err := c.Write([]byte{socksVersion, socksMethodNoAuth}); err != nil {
		return "", transportErr("socks5 greeting", "writing the method", err)
	}
	// VER CMD RSV ATYP LEN
	var req [5]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return "", transportErr("socks5 request", "incomplete", err)
	}
	switch {
	case req[0] != socksVersion:
		writeSocksReply(c, socksRepFailure)
		return "", transportErr("socks5 request", "version "+strconv.Itoa(int(req[0]))+", want 5", nil)
	case req[1] != socksCmdConnect:
		writeSocksReply(c, socksRepCmd)
		return "", transportErr("socks5 request", "command "+strconv.Itoa(int(req[1]))+", want CONNECT", nil)
	case req[2] != 0:
		writeSocksReply(c, socksRepFailure)
		return "", transportErr("socks5 request", "reserved byte not zero", nil)
	case req[3] != socksAtypDomain:
		writeSocksReply(c, socksRepAtyp)
		return "", transportErr("socks5 request", "address type "+strconv.Itoa(int(req[3]))+", want DOMAINNAME", nil)
	case req[4] != DstAddrLen:
		writeSocksReply(c, socksRepNotAllowed)
		return "", transportErr("socks5 request", "DST.ADDR of "+strconv.Itoa(int(req[4]))+" bytes, want 40", nil)
	}
	var rest [DstAddrLen + 2]byte
	if _, err := io.ReadFull(c, rest[:]); err != nil {
		return "", transportErr("socks5 request", "incomplete", err)
	}
	dst := string(rest[:DstAddrLen])
	if !isLowerHex(dst, DstAddrLen) {
		writeSocksReply(c, socksRepNotAllowed)
		return "", transportErr("socks5 request", "DST.ADDR is not lower-case hex", nil)
	}
	if rest[DstAddrLen] != 0 || rest[DstAddrLen+1] != 0 {
		writeSocksReply(c, socksRepNotAllowed)
		return "", transportErr("socks5 request", "DST.PORT not 0", nil)
	}
	return dst, nil
}

// writeSocksReply writes a failure reply with an all-zero IPv4 BND.ADDR.
func writeSocksReply(c net.Conn, rep byte) error {
	_, err := c.Write([]byte{socksVersion, rep, 0, socksAtypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}

// writeSocksReplyDomain writes a reply naming the DST.ADDR and port 0, as
// XEP-0065 §6.3.3 has the streamhost answer.
func writeSocksReplyDomain(c net.Conn, rep byte, dst string) error {
	b := make([]byte, 0, 7+len(dst))
	b = append(b, socksVersion, rep, 0, socksAtypDomain, byte(len(dst)))
	b = append(b, dst...)
	b = append(b, 0, 0)
	_, err := c.Write(b)
	return err
}

// DialS5B connects to the SOCKS5 streamhost at addr ("host:port": a
// peer's direct candidate or a XEP-0065 proxy) and asks for dstaddr
// (see [DstAddr]), with no authentication, as XEP-0065 §6.3 has the
// target do. The handshake must finish within ctx and
// [DefaultS5BHandshakeTimeout]; the reply must be success naming the same
// DST.ADDR and port 0. On success the connection has no deadline and ctx
// no longer affects it; through a proxy, bytes flow only once the
// offering party has activated the stream. Errors match [ErrTransport]
// for a streamhost that breaks or refuses the handshake; network and
// context errors are wrapped.
func DialS5B(ctx context.Context, addr, dstaddr string) (net.Conn, error) {
	if err := checkDstAddr(dstaddr); err != nil {
		return nil, err
	}
	var d net.Dialer
	hctx, cancel := context.WithTimeout(ctx, DefaultS5BHandshakeTimeout)
	defer cancel()
	c, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("filexfer: SOCKS5 connect to %s: %w", addr, err)
	}
	if dl, ok := hctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(hctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err = clientHandshake(c, dstaddr)
	if !stop() && err == nil {
		err = hctx.Err()
	}
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("filexfer: SOCKS5 handshake with %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("filexfer: SOCKS5 handshake with %s: %w", addr, err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// clientHandshake runs the client side: greeting, CONNECT to dstaddr:0,
// strict reply check. Reads are exact, so stream bytes are never eaten.
func clientHandshake(c net.Conn, dstaddr string) error {
	if _, err := c.Write([]byte{socksVersion, 1, socksMethodNoAuth}); err != nil {
		return transportErr("socks5 greeting", "writing", err)
	}
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil {
		return transportErr("socks5 greeting", "reading the method", err)
	}
	if m[0] != socksVersion || m[1] != socksMethodNoAuth {
		return transportErr("socks5 greeting", fmt.Sprintf("streamhost answered % x, want 05 00 (no authentication)", m[:]), nil)
	}
	req := make([]byte, 0, 7+DstAddrLen)
	req = append(req, socksVersion, socksCmdConnect, 0, socksAtypDomain, DstAddrLen)
	req = append(req, dstaddr...)
	req = append(req, 0, 0)
	if _, err := c.Write(req); err != nil {
		return transportErr("socks5 request", "writing", err)
	}
	var rep [5]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return transportErr("socks5 reply", "reading", err)
	}
	switch {
	case rep[0] != socksVersion:
		return transportErr("socks5 reply", "version "+strconv.Itoa(int(rep[0]))+", want 5", nil)
	case rep[1] != socksRepSucceeded:
		return transportErr("socks5 reply", "streamhost refused the connection (reply code "+strconv.Itoa(int(rep[1]))+")", nil)
	case rep[2] != 0:
		return transportErr("socks5 reply", "reserved byte not zero", nil)
	case rep[3] != socksAtypDomain || rep[4] != DstAddrLen:
		return transportErr("socks5 reply", "does not name the requested DST.ADDR", nil)
	}
	var rest [DstAddrLen + 2]byte
	if _, err := io.ReadFull(c, rest[:]); err != nil {
		return transportErr("socks5 reply", "reading", err)
	}
	if subtle.ConstantTimeCompare(rest[:DstAddrLen], []byte(dstaddr)) != 1 {
		return transportErr("socks5 reply", "names another DST.ADDR", nil)
	}
	if rest[DstAddrLen] != 0 || rest[DstAddrLen+1] != 0 {
		return transportErr("socks5 reply", "BND.PORT not 0", nil)
	}
	return nil
}
