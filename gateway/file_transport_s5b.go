package gateway

// The XEP-0260 SOCKS5 bytestream transport of the file channel, in two
// flavours that sit apart in the order of preference: s5b-direct offers
// our own listener's candidates (the host's interface addresses, or
// loopback only), s5b-proxy offers XEP-0065 proxies (Config.Proxy65, or
// found on the account's server). Each side tries the other's
// candidates, reports candidate-used or candidate-error in a protected
// transport-info, and filexfer.S5BNomination picks the connection; a
// nominated proxy is activated by the party that offered it
// (<activated/> or <proxy-error/>). A negotiation that fails is a
// transport that did not come up: the receiver replaces it with the next
// of its order.

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// Bounds of the SOCKS5 transport (implementation constants).
const (
	maxS5BDirect  = 4               // our direct candidates (interface addresses)
	maxS5BProxies = 4               // proxy streamhosts we offer
	maxS5BTries   = 4               // peer candidates we connect to, per attempt
	s5bDialWait   = 5 * time.Second // one connection attempt with its handshake (XEP-0260 §4)
	// proxyDiscoTTL is how long the proxies found (or that none was
	// found) are kept; proxyDiscoTimeout bounds one discovery.
	proxyDiscoTTL     = 5 * time.Minute
	proxyDiscoTimeout = 15 * time.Second
	maxDiscoItems     = 32 // items of the server's disco#items looked at
	maxProxyQueries   = 8  // disco#info and streamhost queries of one discovery
)

// errS5BFailed: no candidate of either side worked, or the nominated
// proxy could not be activated.
var errS5BFailed = errors.New("gateway: no SOCKS5 candidate worked")

const nsDiscoItems = "http://jabber.org/protocol/disco#items"

// s5bTransport is the fileTransport of SOCKS5 bytestreams; proxy picks
// the candidates we offer. It keeps no state: the elements exchanged say
// everything connect needs.
type s5bTransport struct {
	x     *transfer
	proxy bool
}

func (s5bTransport) kind() filexfer.TransportKind { return filexfer.TransportS5B }

func (t s5bTransport) name() string {
	if t.proxy {
		return TransportS5BProxy
	}
	return TransportS5BDirect
}

func (t s5bTransport) offer(ctx context.Context, e *transportEnv) (jingle.Raw, error) {
	cs, err := t.candidates(ctx, e)
	if err != nil {
		return jingle.Raw{}, err
	}
	if len(cs) == 0 {
		return jingle.Raw{}, fmt.Errorf("%w: %s: no candidate to offer", errTransportUnavailable, t.name())
	}
	sid := newTransferID()
	tr := &filexfer.S5BTransport{SID: sid, DstAddr: filexfer.DstAddr(sid, e.local.String(), e.peer.String()), Candidates: cs}
	return tr.Raw()
}

func (t s5bTransport) accept(ctx context.Context, e *transportEnv, theirs jingle.Raw) (jingle.Raw, error) {
	p, err := parseS5B(theirs)
	if err != nil {
		return jingle.Raw{}, err
	}
	// Our own candidates help but are not needed: the peer's may work.
	cs, err := t.candidates(ctx, e)
	if err != nil {
		t.x.g.log.Info("no SOCKS5 candidates of ours", "transfer", e.sid, "transport", t.name(), "err", err)
	}
	tr := &filexfer.S5BTransport{SID: p.SID, DstAddr: filexfer.DstAddr(p.SID, e.local.String(), e.peer.String()), Candidates: cs}
	return tr.Raw()
}

// parseS5B reads a peer's or our SOCKS5 transport element.
func parseS5B(r jingle.Raw) (*filexfer.S5BTransport, error) {
	p, ok, err := filexfer.ParseS5BTransport(r)
	switch {
	case err != nil || !ok:
		return nil, fmt.Errorf("%w: not a SOCKS5 transport: %v", filexfer.ErrTransport, err)
	case p.Mode == "udp":
		return nil, fmt.Errorf("%w: SOCKS5 over UDP (mode='udp') is not used", filexfer.ErrTransport)
	}
	return p, nil
}

// candidates are ours: our listener's (direct) or our proxies'.
func (t s5bTransport) candidates(ctx context.Context, e *transportEnv) ([]filexfer.S5BCandidate, error) {
	g := t.x.g
	if !t.proxy {
		l, err := g.s5bListener()
		if err != nil {
			return nil, err
		}
		return l.Candidates(e.local.String())
	}
	hosts, err := g.proxies(ctx)
	if err != nil {
		return nil, err
	}
	var cs []filexfer.S5BCandidate
	for i, h := range hosts {
		c, err := h.Candidate(uint16(65535 - i))
		if err != nil {
			continue
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// s5bLoopback reports whether the gateway is in loopback-only mode.
func (g *Gateway) s5bLoopback() bool { return g.cfg.CallLoopbackOnly || g.callHooks.loopback }

// s5bCandidateErr says why we must not connect to a peer's candidate:
// its address must reach a peer (candidateAddrErr, loopback only in
// loopback mode; no host names), unless it names one of our own proxies'
// streamhosts, where we would connect anyway.
func (g *Gateway) s5bCandidateErr(c filexfer.S5BCandidate) error {
	if c.Type == filexfer.S5BProxy {
		for _, h := range g.cachedProxies() {
			if h.Host == c.Host && (h.Port == c.PortOrDefault() || h.Port == 0 && c.PortOrDefault() == 1080) {
				return nil
			}
		}
	}
	return candidateAddrErr(c.Host, func(netip.Addr) bool { return g.s5bLoopback() })
}

// s5bDial is filexfer.DialS5B, or the tests' replacement.
func (g *Gateway) s5bDial(ctx context.Context, addr, dstaddr string) (net.Conn, error) {
	if h := g.fileHooks.s5bDial; h != nil {
		return h(ctx, addr, dstaddr)
	}
	return filexfer.DialS5B(ctx, addr, dstaddr)
}

// s5bNeg is one XEP-0260 negotiation: the state connect's loop and its
// dialer share.
type s5bNeg struct {
	mu sync.Mutex
	n  *filexfer.S5BNomination
}

func (s *s5bNeg) do(f func(n *filexfer.S5BNomination) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(s.n)
}

// s5bConn is a connection to a candidate.
type s5bConn struct {
	cid  string // "" for an inbound connection not yet matched
	conn net.Conn
}

func (t s5bTransport) connect(ctx context.Context, e *transportEnv, ours, theirs jingle.Raw) (io.ReadWriteCloser, error) {
	g := t.x.g
	o, err := parseS5B(ours)
	if err != nil {
		return nil, err
	}
	p, err := parseS5B(theirs)
	if err != nil {
		return nil, err
	}
	if p.SID != o.SID {
		return nil, fmt.Errorf("%w: the peer's SOCKS5 transport names another stream (sid)", filexfer.ErrTransport)
	}
	sid, local, peer := o.SID, e.local.String(), e.peer.String()
	neg := &s5bNeg{n: filexfer.NewS5BNomination(e.initiator, o.Candidates, p.Candidates)}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mine []filexfer.S5BCandidate // our direct candidates
	for _, c := range o.Candidates {
		if c.Type != filexfer.S5BProxy {
			mine = append(mine, c)
		}
	}
	inbound := make(chan net.Conn, len(mine))
	if len(mine) > 0 {
		l, err := g.s5bListener()
		if err == nil {
			wg.Add(1)
			go func() { // the peer's connections to our candidates
				defer wg.Done()
				for range len(mine) {
					c, err := l.Accept(ctx, filexfer.DstAddr(sid, local, peer))
					if err != nil {
						return
					}
					inbound <- c
				}
			}()
		}
	}
	var tries []filexfer.S5BCandidate
	for _, c := range p.Candidates {
		if err := g.s5bCandidateErr(c); err != nil {
			g.log.Info("SOCKS5 candidate refused", "transfer", e.sid, "cid", c.CID, "err", err)
			continue
		}
		tries = append(tries, c)
	}
	slices.SortStableFunc(tries, func(a, b filexfer.S5BCandidate) int { return cmp.Compare(b.Priority, a.Priority) })
	tries = tries[:min(len(tries), maxS5BTries)]
	dialed := make(chan s5bConn, 1)
	wg.Add(1)
	go func() { // ours to the peer's candidates, best first
		defer wg.Done()
		for _, c := range tries {
			worth := false
			neg.do(func(n *filexfer.S5BNomination) error { worth = n.WorthTrying(c); return nil })
			if !worth || ctx.Err() != nil {
				break
			}
			dctx, dcancel := context.WithTimeout(ctx, s5bDialWait)
			conn, err := g.s5bDial(dctx, net.JoinHostPort(c.Host, strconv.Itoa(int(c.PortOrDefault()))), filexfer.DstAddr(sid, peer, local))
			dcancel()
			if err == nil {
				dialed <- s5bConn{cid: c.CID, conn: conn}
				return
			}
			g.log.Info("SOCKS5 candidate failed", "transfer", e.sid, "cid", c.CID, "err", err)
		}
		dialed <- s5bConn{}
	}()

	var (
		out    s5bConn   // our connection to the peer's candidate
		ins    []s5bConn // the peer's connections to ours
		chosen net.Conn
		late   <-chan time.Time // the nominated inbound connection is overdue
	)
	defer func() {
		cancel()
		wg.Wait()
		close(inbound)
		for c := range inbound {
			ins = append(ins, s5bConn{conn: c})
		}
		select {
		case c := <-dialed:
			out = c
		default:
		}
		for _, c := range append(ins, out) {
			if c.conn != nil && c.conn != chosen {
				c.conn.Close()
			}
		}
	}()
	info := func(tr filexfer.S5BTransport) error {
		tr.SID = sid
		r, err := tr.Raw()
		if err != nil {
			return err
		}
		sctx, scancel := context.WithTimeout(ctx, fileSendTimeout)
		defer scancel()
		return e.sendInfo(sctx, r)
	}
	for {
		var state filexfer.S5BState
		var nom filexfer.S5BCandidate
		var nomOurs bool
		neg.do(func(n *filexfer.S5BNomination) error {
			state = n.State()
			nom, nomOurs, _ = n.Nominated()
			return nil
		})
		switch state {
		case filexfer.S5BFailed:
			return nil, fmt.Errorf("%w (we offered %d; of the peer's %d, %d were worth a connection)", errS5BFailed, len(o.Candidates), len(p.Candidates), len(tries))
		case filexfer.S5BReady:
			if !nomOurs {
				chosen = out.conn
				return chosen, nil
			}
			if nom.Type == filexfer.S5BProxy {
				return chosen, nil // activated below
			}
			if c := matchInbound(ins, nom); c != nil {
				chosen = c
				return chosen, nil
			}
			if late == nil {
				// The peer said it connected; its connection is on the
				// way, or it lied.
				t := time.NewTimer(filexfer.DefaultS5BHandshakeTimeout)
				defer t.Stop()
				late = t.C
			}
		case filexfer.S5BMustActivate:
			c, err := t.activate(ctx, nom, sid, local, e.peer)
			if err != nil {
				g.log.Info("SOCKS5 proxy not activated", "transfer", e.sid, "proxy", nom.JID, "err", err)
				info(filexfer.S5BTransport{ProxyError: true})
				neg.do(func(n *filexfer.S5BNomination) error { return n.ProxyError() })
				continue
			}
			chosen = c
			if err := info(filexfer.S5BTransport{Activated: nom.CID}); err != nil {
				c.Close()
				return nil, err
			}
			if err := neg.do(func(n *filexfer.S5BNomination) error { return n.LocalActivated() }); err != nil {
				c.Close()
				return nil, err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-late:
			return nil, fmt.Errorf("%w: the peer reported a connection to our candidate %s that did not arrive", filexfer.ErrTransport, nom.CID)
		case c := <-dialed:
			out = c
			dialed = nil
			var rep filexfer.S5BTransport
			if c.conn != nil {
				rep.CandidateUsed = c.cid
				err = neg.do(func(n *filexfer.S5BNomination) error { return n.LocalUsed(c.cid) })
			} else {
				rep.CandidateError = true
				err = neg.do(func(n *filexfer.S5BNomination) error { return n.LocalError() })
			}
			if err == nil {
				err = info(rep)
			}
			if err != nil {
				return nil, err
			}
		case c := <-inbound:
			ins = append(ins, s5bConn{conn: c})
		case r := <-e.s5bInfo:
			m, err := parseS5B(r)
			if err != nil || m.SID != sid {
				continue // of another attempt, or not ours to read
			}
			switch {
			case m.CandidateUsed != "":
				err = neg.do(func(n *filexfer.S5BNomination) error { return n.RemoteUsed(m.CandidateUsed) })
			case m.CandidateError:
				err = neg.do(func(n *filexfer.S5BNomination) error { return n.RemoteError() })
			case m.Activated != "":
				err = neg.do(func(n *filexfer.S5BNomination) error { return n.RemoteActivated(m.Activated) })
			case m.ProxyError:
				err = neg.do(func(n *filexfer.S5BNomination) error { return n.ProxyError() })
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %w", filexfer.ErrTransport, err)
			}
		}
	}
}

// matchInbound returns the peer's connection that came through our
// candidate c (by the local address it reached), or nil.
func matchInbound(ins []s5bConn, c filexfer.S5BCandidate) net.Conn {
	want, err := netip.ParseAddr(c.Host)
	if err != nil {
		return nil
	}
	for _, in := range ins {
		if a, ok := in.conn.LocalAddr().(*net.TCPAddr); ok {
			ap := a.AddrPort()
			if ap.Addr().Unmap() == want.Unmap() && ap.Port() == c.PortOrDefault() {
				return in.conn
			}
		}
	}
	return nil
}

// activate connects to our nominated proxy candidate c, as the peer did,
// and asks the proxy to join the two connections (XEP-0065 §6.3.5).
func (t s5bTransport) activate(ctx context.Context, c filexfer.S5BCandidate, sid, local string, peer jid.JID) (net.Conn, error) {
	g := t.x.g
	proxy, err := jid.Parse(c.JID)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, s5bDialWait)
	conn, err := g.s5bDial(dctx, net.JoinHostPort(c.Host, strconv.Itoa(int(c.PortOrDefault()))), filexfer.DstAddr(sid, local, peer.String()))
	cancel()
	if err != nil {
		return nil, err
	}
	q, err := filexfer.ActivateQuery(sid, peer.String())
	if err == nil {
		ictx, icancel := context.WithTimeout(ctx, fileSendTimeout)
		_, err = g.sendIQ(ictx, build("iq", map[string]string{"type": "set", "id": randomID(), "to": proxy.String()}, q))
		icancel()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("gateway: activation at %s: %w", proxy, err)
	}
	return conn, nil
}

// s5bState is the SOCKS5 side of a gateway: one listener for every
// transfer (connections are told apart by their DST.ADDR), created on
// first use and closed when Run returns, and the proxies found.
type s5bState struct {
	mu sync.Mutex
	l  *filexfer.S5BListener

	proxyMu    sync.Mutex // one discovery at a time
	hosts      []filexfer.Streamhost
	hostsErr   error
	hostsUntil time.Time
}

// s5bListener returns the gateway's listener, starting it.
func (g *Gateway) s5bListener() (*filexfer.S5BListener, error) {
	g.s5b.mu.Lock()
	defer g.s5b.mu.Unlock()
	if g.s5b.l != nil {
		return g.s5b.l, nil
	}
	addrs := g.s5bListenAddrs()
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: s5b-direct: this host has no address a peer can reach (only loopback or link-local)", errTransportUnavailable)
	}
	l, err := filexfer.ListenS5B(addrs)
	if err != nil {
		return nil, err
	}
	g.s5b.l = l
	return l, nil
}

// s5bListenAddrs are the addresses our listener binds: loopback in
// loopback mode, else the host's interface addresses that reach a peer
// (IPv4 first), at most maxS5BDirect.
func (g *Gateway) s5bListenAddrs() []string {
	if h := g.fileHooks.s5bListen; h != nil {
		return h
	}
	if g.s5bLoopback() {
		return []string{"127.0.0.1:0"}
	}
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var v4, v6 []string
	for _, ia := range ifs {
		n, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if candidateAddrErr(a.String(), func(netip.Addr) bool { return false }) != nil {
			continue
		}
		if a.Is4() {
			v4 = append(v4, netip.AddrPortFrom(a, 0).String())
		} else {
			v6 = append(v6, netip.AddrPortFrom(a, 0).String())
		}
	}
	all := append(v4, v6...)
	return all[:min(len(all), maxS5BDirect)]
}

// closeS5B closes the listener (Run's end).
func (g *Gateway) closeS5B() {
	g.s5b.mu.Lock()
	l := g.s5b.l
	g.s5b.l = nil
	g.s5b.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

// cachedProxies returns the proxies found, without a discovery.
func (g *Gateway) cachedProxies() []filexfer.Streamhost {
	g.s5b.mu.Lock()
	defer g.s5b.mu.Unlock()
	return slices.Clone(g.s5b.hosts)
}

// proxies returns the XEP-0065 streamhosts we offer: those of
// Config.Proxy65, else the proxies of the account's server (disco#items,
// then disco#info for the bytestreams feature, then the streamhost query),
// at most maxS5BProxies, cached for proxyDiscoTTL (a failure too).
func (g *Gateway) proxies(ctx context.Context) ([]filexfer.Streamhost, error) {
	g.s5b.proxyMu.Lock()
	defer g.s5b.proxyMu.Unlock()
	g.s5b.mu.Lock()
	if g.now().Before(g.s5b.hostsUntil) {
		hs, err := slices.Clone(g.s5b.hosts), g.s5b.hostsErr
		g.s5b.mu.Unlock()
		return hs, err
	}
	g.s5b.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, proxyDiscoTimeout)
	defer cancel()
	hs, err := g.discoverProxies(dctx)
	if err == nil && len(hs) == 0 {
		err = fmt.Errorf("%w: s5b-proxy: no SOCKS5 proxy (XEP-0065) found on %s: configure one (files.proxy65) or enable mod_proxy65 on the server", errTransportUnavailable, g.cfg.JID.Domain())
	}
	if ctx.Err() != nil {
		return nil, ctx.Err() // not cached: the caller gave up
	}
	g.s5b.mu.Lock()
	g.s5b.hosts, g.s5b.hostsErr, g.s5b.hostsUntil = hs, err, g.now().Add(proxyDiscoTTL)
	g.s5b.mu.Unlock()
	return slices.Clone(hs), err
}

func (g *Gateway) discoverProxies(ctx context.Context) ([]filexfer.Streamhost, error) {
	var hs []filexfer.Streamhost
	var jids []jid.JID
	for _, p := range g.cfg.Proxy65 {
		if host, port, err := net.SplitHostPort(p); err == nil {
			// host:port: the proxy's JID is its host name (a component
			// such as proxy.example.org).
			n, err := strconv.ParseUint(port, 10, 16)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("gateway: proxy65 %q: the port is not 1-65535", policy.BoundDetail(p))
			}
			hs = append(hs, filexfer.Streamhost{JID: host, Host: host, Port: uint16(n)})
			continue
		}
		j, err := jid.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("gateway: proxy65 %q is neither a JID nor host:port", policy.BoundDetail(p))
		}
		jids = append(jids, j)
	}
	if len(g.cfg.Proxy65) == 0 {
		found, err := g.discoItems(ctx, g.cfg.JID.Domain())
		if err != nil {
			return nil, err
		}
		jids = found
	}
	queries := 0
	for _, j := range jids {
		if len(hs) >= maxS5BProxies || queries >= maxProxyQueries {
			break
		}
		if len(g.cfg.Proxy65) == 0 {
			queries++
			if !g.hasFeature(ctx, j, filexfer.NSBytestreams) {
				continue
			}
		}
		queries++
		resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": j.String()}, filexfer.StreamhostQuery()))
		if err != nil {
			g.log.Info("SOCKS5 proxy query", "proxy", j.String(), "err", err)
			continue
		}
		c := resp.Child(filexfer.NSBytestreams, "query")
		if c == nil || !resp.From.Equal(j) {
			continue
		}
		got, err := filexfer.ParseStreamhosts(c.Raw)
		if err != nil {
			g.log.Info("SOCKS5 proxy answer", "proxy", j.String(), "err", err)
			continue
		}
		for _, h := range got {
			if h.JID == j.String() && len(hs) < maxS5BProxies {
				hs = append(hs, h)
			}
		}
	}
	return hs, nil
}

// discoItems returns the item JIDs of a disco#items query to to (no
// node), at most maxDiscoItems.
func (g *Gateway) discoItems(ctx context.Context, to jid.JID) ([]jid.JID, error) {
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": to.String()}, element(nsDiscoItems, "query", "")))
	if err != nil {
		return nil, fmt.Errorf("gateway: disco#items of %s: %w", to, err)
	}
	c := resp.Child(nsDiscoItems, "query")
	if c == nil {
		return nil, nil
	}
	var q struct {
		Items []struct {
			JID  string `xml:"jid,attr"`
			Node string `xml:"node,attr"`
		} `xml:"http://jabber.org/protocol/disco#items item"`
	}
	if err := xml.Unmarshal(c.Raw, &q); err != nil {
		return nil, fmt.Errorf("gateway: disco#items of %s: %w", to, err)
	}
	var out []jid.JID
	for _, it := range q.Items {
		if len(out) == maxDiscoItems {
			break
		}
		j, err := jid.Parse(it.JID)
		if err != nil || it.Node != "" || j.Localpart() != "" || j.Resourcepart() != "" {
			continue // proxies are components: a bare domain
		}
		out = append(out, j)
	}
	return out, nil
}

// hasFeature reports whether to's disco#info lists feature.
func (g *Gateway) hasFeature(ctx context.Context, to jid.JID, feature string) bool {
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": to.String()}, element(nsDiscoInfo, "query", "")))
	if err != nil || !resp.From.Equal(to) {
		return false
	}
	c := resp.Child(nsDiscoInfo, "query")
	if c == nil {
		return false
	}
	var q struct {
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"http://jabber.org/protocol/disco#info feature"`
	}
	if xml.Unmarshal(c.Raw, &q) != nil {
		return false
	}
	for _, f := range q.Features {
		if f.Var == feature {
			return true
		}
	}
	return false
}
