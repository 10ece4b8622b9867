package filexfer

import (
	"net/netip"
	"strings"

	"github.com/securejingle/securejingle/jingle"
)

// S5BTransport is the XEP-0260 <transport
// xmlns='urn:xmpp:jingle:transports:s5b:1' sid dstaddr mode/>. In a
// session-initiate, session-accept or transport-replace it lists
// candidates; in a transport-info it carries exactly one of
// candidate-used, candidate-error, activated or proxy-error (and no
// candidates). The zero value is not a valid element. It is a plain value:
// safe for concurrent reads, not for concurrent mutation.
type S5BTransport struct {
	SID string // sid: the stream id, hashed into DST.ADDR (required)
	// DstAddr is the optional dstaddr attribute: hex SHA-1 of sid and the
	// two full JIDs (XEP-0065), 40 lower-case hex digits.
	DstAddr string
	Mode    string // mode: "tcp" (the default when empty) or "udp"
	// Candidates are the <candidate/> children, cids unique, at most
	// MaxS5BCandidates.
	Candidates []S5BCandidate
	// CandidateUsed is the cid of a <candidate-used/>, "" when absent.
	CandidateUsed string
	// CandidateError is a <candidate-error/>: no candidate worked.
	CandidateError bool
	// Activated is the cid of an <activated/> (a proxy was activated), ""
	// when absent.
	Activated string
	// ProxyError is a <proxy-error/>: the proxy could not be reached.
	ProxyError bool
	// Other holds children of other namespaces, verbatim.
	Other []jingle.Raw
}

// S5BCandidate is a XEP-0260 <candidate/>. The zero value is not a valid
// element.
type S5BCandidate struct {
	CID  string // cid, unique in the transport (required)
	Host string // host: an IP literal or a DNS name (required)
	JID  string // jid of the streamhost (required)
	// Port is the TCP port, 1-65535; 0 means absent (XEP-0065's 1080
	// applies, see [S5BCandidate.PortOrDefault]).
	Port     uint16
	Priority uint32 // priority, 1 to 2^31-1 (required)
	// Type is direct (the default when empty), assisted, tunnel or proxy.
	Type string
}

// SOCKS5 candidate types (XEP-0260).
const (
	S5BDirect   = "direct"
	S5BAssisted = "assisted"
	S5BTunnel   = "tunnel"
	S5BProxy    = "proxy"
)

// PortOrDefault returns the candidate's port, or 1080 (the IANA SOCKS port, XEP-0065's default)
// when absent.
func (c S5BCandidate) PortOrDefault() uint16 {
	if c.Port == 0 {
		return 1080
	}
	return c.Port
}

// IBBTransport is the XEP-0261 <transport
// xmlns='urn:xmpp:jingle:transports:ibb:1' block-size sid stanza/>. The
// zero value is not a valid element. It is safe for concurrent reads, not
// for concurrent mutation.
type IBBTransport struct {
	SID string // sid of the XEP-0047 session (required)
	// BlockSize is the largest block in bytes before base64, 1 to
	// IBBMaxBlockSize (required). securejingle offers and accepts
	// IBBMinPreferredBlockSize or more.
	BlockSize uint16
	// Stanza is "iq" (the default when empty) or "message" (XEP-0047 §2).
	Stanza string
	// Other holds children of other namespaces, verbatim.
	Other []jingle.Raw
}

// DataChannelTransport is the XEP-0343 <transport
// xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' sctp-port
// max-message-size/> as Conversations deploys it: a wrapper around the
// XEP-0176 ICE-UDP transport with its XEP-0320 fingerprint. The zero value
// is an empty wrapper. It is safe for concurrent reads, not for concurrent
// mutation.
type DataChannelTransport struct {
	// SCTPPort is the sctp-port (RFC 8841 §5), 0 when absent.
	SCTPPort uint16
	// MaxMessageSize is the max-message-size (RFC 8841 §6; 0 means no
	// limit) when HasMaxMessageSize is set.
	MaxMessageSize    uint32
	HasMaxMessageSize bool
	// ICE is the wrapped ICE-UDP transport (candidates, credentials, DTLS
	// fingerprint), nil when the wrapper holds none.
	ICE *jingle.Transport
	// Other holds children of other namespaces, verbatim.
	Other []jingle.Raw
}

// ParseS5BTransport reads a XEP-0260 transport from r. It returns false
// when r is not one, and an error matching [ErrMalformedElement] when it
// is malformed or over the limits (more than MaxS5BCandidates candidates,
// duplicate cids, a host that is neither an IP literal nor a DNS name, a
// port or priority out of range, two transport-info payloads).
func ParseS5BTransport(r jingle.Raw) (*S5BTransport, bool, error) {
	if !is(r, NSS5B, "transport") {
		return nil, false, nil
	}
	const path = "transport"
	p := &reader{}
	e := p.open(r, path)
	t := &S5BTransport{}
	t.SID = e.token("sid", true, MaxSIDLen)
	if v := e.str("dstaddr", false, 40); v != "" {
		if !isLowerHex(v, 40) {
			p.fail(e.field("dstaddr"), "not 40 lower-case hex digits (hex SHA-1, XEP-0065)")
		}
		t.DstAddr = v
	}
	t.Mode = e.enum("mode", false, "tcp", "udp")
	e.done()
	e.noText()
	var nCand, nRaw, nInfo int
	cids := map[string]bool{}
	for _, k := range e.kids {
		kp := e.kidPath(k)
		switch {
		case is(k, NSS5B, "candidate"):
			if !e.count(k, &nCand, MaxS5BCandidates) {
				break
			}
			c := p.s5bCandidate(k, kp)
			if p.err == nil {
				if cids[c.CID] {
					p.fail(kp+"@cid", "duplicate cid "+truncate(c.CID))
					break
				}
				cids[c.CID] = true
				t.Candidates = append(t.Candidates, c)
			}
		case is(k, NSS5B, "candidate-used"), is(k, NSS5B, "activated"):
			nInfo++
			ce := p.open(k, kp)
			cid := ce.token("cid", true, MaxSIDLen)
			ce.leaf()
			if k.XMLName.Local == "activated" {
				t.Activated = cid
			} else {
				t.CandidateUsed = cid
			}
		case is(k, NSS5B, "candidate-error"), is(k, NSS5B, "proxy-error"):
			nInfo++
			p.open(k, kp).leaf()
			if k.XMLName.Local == "proxy-error" {
				t.ProxyError = true
			} else {
				t.CandidateError = true
			}
		case k.XMLName.Space == NSS5B:
			e.unknown(k)
		default:
			e.foreign(k, &nRaw, &t.Other)
		}
		if p.err == nil && nInfo > 1 {
			p.fail(kp, "more than one of candidate-used, candidate-error, activated and proxy-error")
		}
		if p.err == nil && nInfo > 0 && nCand > 0 {
			p.fail(kp, "candidates and a transport-info payload in one transport")
		}
		if p.err != nil {
			return nil, true, p.err
		}
	}
	if p.err != nil {
		return nil, true, p.err
	}
	return t, true, nil
}

func (p *reader) s5bCandidate(r jingle.Raw, path string) S5BCandidate {
	e := p.open(r, path)
	var c S5BCandidate
	c.CID = e.token("cid", true, MaxSIDLen)
	c.Host = e.str("host", true, MaxHostLen)
	if c.Host != "" {
		if why := checkHost(c.Host); why != "" {
			p.fail(e.field("host"), why)
		}
	}
	c.JID = e.token("jid", true, MaxJIDLen)
	port, _ := e.uint("port", false, 1, 65535)
	c.Port = uint16(port)
	prio, _ := e.uint("priority", true, 1, 1<<31-1)
	c.Priority = uint32(prio)
	c.Type = e.enum("type", false, S5BDirect, S5BAssisted, S5BTunnel, S5BProxy)
	e.leaf()
	return c
}

// checkHost accepts an IPv4 or IPv6 literal (no zone) or a DNS name
// (RFC 1123 §2.1 labels); it refuses a dotted-decimal form that is not a
// valid IPv4 address, which RFC 1123 §2.1 rules out as a host name.
func checkHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "an IPv6 literal with a zone"
		}
		return ""
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	allNumeric := true
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "not an IP address or DNS name"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return "not an IP address or DNS name"
			}
		}
	}
	last := labels[len(labels)-1]
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			allNumeric = false
		}
	}
	if allNumeric {
		return "not a valid IP address (a dotted number is not a host name, RFC 1123 §2.1)"
	}
	return ""
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Raw returns t as an element for jingle.Content.Other; it refuses, with
// an *[ElementError], a value that would not parse back to itself.
func (t *S5BTransport) Raw() (jingle.Raw, error) {
	var kids []jingle.Raw
	for _, c := range t.Candidates {
		as := []string{"cid", c.CID, "host", c.Host, "jid", c.JID}
		if c.Port != 0 {
			as = append(as, "port", u64(uint64(c.Port)))
		}
		as = append(as, "priority", u64(uint64(c.Priority)), "type", c.Type)
		k, err := build("candidate", name(NSS5B, "candidate"), attrs(as...), "")
		if err != nil {
			return jingle.Raw{}, err
		}
		kids = append(kids, k)
	}
	add := func(local, cid string) error {
		k, err := build(local, name(NSS5B, local), attrs("cid", cid), "")
		if err == nil {
			kids = append(kids, k)
		}
		return err
	}
	var err error
	if t.CandidateUsed != "" {
		err = add("candidate-used", t.CandidateUsed)
	}
	if err == nil && t.CandidateError {
		err = add("candidate-error", "")
	}
	if err == nil && t.Activated != "" {
		err = add("activated", t.Activated)
	}
	if err == nil && t.ProxyError {
		err = add("proxy-error", "")
	}
	if err != nil {
		return jingle.Raw{}, err
	}
	kids = append(kids, t.Other...)
	r, err := build("transport", name(NSS5B, "transport"), attrs("sid", t.SID, "dstaddr", t.DstAddr, "mode", t.Mode), "", kids...)
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("transport", t, r, ParseS5BTransport)
}

// ParseIBBTransport reads a XEP-0261 transport from r. It returns false
// when r is not one, and an error matching [ErrMalformedElement] when it
// is malformed (a block-size of 0 or over 65535, a missing sid).
func ParseIBBTransport(r jingle.Raw) (*IBBTransport, bool, error) {
	if !is(r, NSIBB, "transport") {
		return nil, false, nil
	}
	const path = "transport"
	p := &reader{}
	e := p.open(r, path)
	t := &IBBTransport{}
	bs, _ := e.uint("block-size", true, 1, IBBMaxBlockSize)
	t.BlockSize = uint16(bs)
	t.SID = e.token("sid", true, MaxSIDLen)
	t.Stanza = e.enum("stanza", false, "iq", "message")
	e.done()
	e.noText()
	var n int
	for _, k := range e.kids {
		if k.XMLName.Space == NSIBB {
			e.unknown(k)
			break
		}
		e.foreign(k, &n, &t.Other)
		if p.err != nil {
			break
		}
	}
	if p.err != nil {
		return nil, true, p.err
	}
	return t, true, nil
}

// Raw returns t as an element for jingle.Content.Other; it refuses, with
// an *[ElementError], a value that would not parse back to itself.
func (t *IBBTransport) Raw() (jingle.Raw, error) {
	var bs string
	if t.BlockSize != 0 {
		bs = u64(uint64(t.BlockSize))
	}
	r, err := build("transport", name(NSIBB, "transport"), attrs("block-size", bs, "sid", t.SID, "stanza", t.Stanza), "", t.Other...)
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("transport", t, r, ParseIBBTransport)
}

// ParseDataChannelTransport reads a XEP-0343 data channel transport from
// r, with the ICE-UDP transport inside parsed as strictly as
// jingle.Parse parses a content's own. It returns false when r is not
// one.
func ParseDataChannelTransport(r jingle.Raw) (*DataChannelTransport, bool, error) {
	if !is(r, NSDataChannel, "transport") {
		return nil, false, nil
	}
	const path = "transport"
	p := &reader{}
	e := p.open(r, path)
	t := &DataChannelTransport{}
	port, _ := e.uint("sctp-port", false, 1, 65535)
	t.SCTPPort = uint16(port)
	mms, ok := e.uint("max-message-size", false, 0, 1<<32-1)
	t.MaxMessageSize, t.HasMaxMessageSize = uint32(mms), ok
	e.done()
	e.noText()
	var n int
	seenICE := false
	for _, k := range e.kids {
		kp := e.kidPath(k)
		switch {
		case is(k, jingle.NSICEUDP, "transport"):
			if !e.once(k, &seenICE) {
				break
			}
			ice, err := jingle.TransportFromRaw(k)
			if err != nil {
				p.failErr(kp, err)
				break
			}
			t.ICE = ice
		case k.XMLName.Space == NSDataChannel:
			e.unknown(k)
		case k.XMLName.Space == jingle.NSICEUDP || k.XMLName.Space == jingle.NSDTLS:
			p.fail(kp, "element "+fmtName(k.XMLName)+" outside the ICE-UDP transport")
		default:
			e.foreign(k, &n, &t.Other)
		}
		if p.err != nil {
			break
		}
	}
	if p.err != nil {
		return nil, true, p.err
	}
	return t, true, nil
}

// Raw returns t as an element for jingle.Content.Other; it refuses, with
// an *[ElementError], a value that would not parse back to itself.
func (t *DataChannelTransport) Raw() (jingle.Raw, error) {
	var kids []jingle.Raw
	if t.ICE != nil {
		kids = append(kids, t.ICE.Raw())
	}
	kids = append(kids, t.Other...)
	var port, mms string
	if t.SCTPPort != 0 {
		port = u64(uint64(t.SCTPPort))
	}
	if t.HasMaxMessageSize {
		mms = u64(uint64(t.MaxMessageSize))
	}
	r, err := build("transport", name(NSDataChannel, "transport"), attrs("sctp-port", port, "max-message-size", mms), "", kids...)
	if err != nil {
		return jingle.Raw{}, err
	}
	return checked("transport", t, r, ParseDataChannelTransport)
}
