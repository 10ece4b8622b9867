package jingle

import (
	"encoding/xml"
	"strconv"
	"strings"
)

var actions = []string{
	string(ActionContentAccept), string(ActionContentAdd), string(ActionContentModify),
	string(ActionContentReject), string(ActionContentRemove), string(ActionDescriptionInfo),
	string(ActionSecurityInfo), string(ActionSessionAccept), string(ActionSessionInfo),
	string(ActionSessionInitiate), string(ActionSessionTerminate), string(ActionTransportAccept),
	string(ActionTransportInfo), string(ActionTransportReject), string(ActionTransportReplace),
}

var (
	creators = []string{string(CreatorInitiator), string(CreatorResponder)}
	senders  = []string{string(SendersBoth), string(SendersInitiator), string(SendersResponder), string(SendersNone)}
	setups   = []string{string(SetupActpass), string(SetupActive), string(SetupPassive)}
	candTyps = []string{"host", "prflx", "srflx", "relay"}
)

// Parse decodes one <jingle xmlns='urn:xmpp:jingle:1'/> element (XEP-0166
// §7) with the XEP-0167, 0176, 0320, 0293, 0294, 0338 and 0339 elements
// inside it. Parsing is strict and bounded: b may hold at most
// [MaxElementSize] bytes and nothing but whitespace after the element;
// counts, lengths and numeric ranges are checked against the limits in
// constants.go; unknown attributes on known elements, unknown elements in
// the namespaces this package implements and unknown enumeration values
// are refused. Elements of other namespaces are kept verbatim as [Raw];
// inside them, and anywhere else the specifications do not put them,
// elements of the namespaces this package implements (Jingle, RTP, RTP
// info and errors, ICE-UDP, DTLS, RTCP feedback, header extensions,
// grouping, SSMA, JMI) are refused, with two exceptions: XEP-0167
// informational payloads of unknown names in a session-info and XEP-0167
// error conditions in a reason stay Raw, and the ICE-UDP transport inside
// a XEP-0343 webrtc-datachannel transport is parsed like a content's own
// (the data channel element itself stays Raw in Content.Other).
// Fingerprint hash names are read case-insensitively and kept in lower
// case. Every error is a *[ParseError] matching [ErrMalformed].
//
// Parse checks the shape of the element, not the rules of its action:
// call [Jingle.Validate] for those.
func Parse(b []byte) (*Jingle, error) {
	n, err := parseTree(b, "jingle")
	if err != nil {
		return nil, err
	}
	p := &parser{}
	j := p.jingle(n)
	if p.err != nil {
		return nil, p.err
	}
	if err := checkCanonicalSize("jingle", j.node()); err != nil {
		return nil, err
	}
	return j, nil
}

// checkCanonicalSize bounds the serialized form as well as the input:
// escaping and per-element namespace declarations can make the canonical
// form longer than what was read, and whatever Parse accepts must
// serialize to something Parse accepts again.
func checkCanonicalSize(root string, n *node) error {
	if l := len(serialize(n)); l > MaxElementSize {
		return &ParseError{Field: root, Reason: "serialized form larger than " + strconv.Itoa(MaxElementSize) + " bytes"}
	}
	return nil
}

// ParseDescription decodes one XEP-0167 <description
// xmlns='urn:xmpp:jingle:apps:rtp:1'/> element on its own, with the same
// strictness as [Parse].
func ParseDescription(b []byte) (*Description, error) {
	n, err := parseTree(b, "description")
	if err != nil {
		return nil, err
	}
	p := &parser{}
	if !isNS(n, NSRTP, "description") {
		p.fail("description", "root is "+fmtName(n.name)+", want {"+NSRTP+"}description")
		return nil, p.err
	}
	d := p.description(n, "description")
	if p.err != nil {
		return nil, p.err
	}
	if err := checkCanonicalSize("description", d.node()); err != nil {
		return nil, err
	}
	return d, nil
}

func fmtName(n xml.Name) string { return "{" + n.Space + "}" + n.Local }

func (p *parser) jingle(n *node) *Jingle {
	const path = "jingle"
	if !isNS(n, NS, "jingle") {
		p.fail(path, "root is "+fmtName(n.name)+", want {"+NS+"}jingle")
		return nil
	}
	e := p.open(n, path)
	j := &Jingle{XMLName: name(NS, "jingle")}
	j.Action = Action(e.enum("action", true, actions...))
	j.SID = e.token("sid", true, MaxIDLen)
	j.Initiator = e.token("initiator", false, MaxAttrLen)
	j.Responder = e.token("responder", false, MaxAttrLen)
	e.done()
	e.noText()
	var nContents, nGroups, nRaw int
	var seenReason bool
	names := map[string]bool{}
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NS, "content"):
			if !e.count(k, &nContents, MaxContents) {
				return nil
			}
			c := p.content(k, kp)
			if p.err != nil {
				return nil
			}
			if names[c.Name] {
				p.fail(kp+"@name", "duplicate content name "+truncate(c.Name))
				return nil
			}
			names[c.Name] = true
			j.Contents = append(j.Contents, *c)
		case isNS(k, NS, "reason"):
			if !e.once(k, &seenReason) {
				return nil
			}
			j.Reason = p.reason(k, kp)
		case isNS(k, NSGrouping, "group"):
			if !e.count(k, &nGroups, MaxContents) {
				return nil
			}
			if g := p.group(k, kp); g != nil {
				j.Groups = append(j.Groups, *g)
			}
		case k.name.Space == NS:
			e.unknown(k)
		case k.name.Space == NSRTPInfo:
			// XEP-0167 §7 informational payloads live here, and only here.
			if _, err := rtpInfoOf(k, kp); err != nil {
				p.fail(err.Field, err.Reason)
			} else {
				e.rawOwn(k, &nRaw, &j.Info)
			}
		default:
			e.raw(k, &nRaw, &j.Info)
		}
		if p.err != nil {
			return nil
		}
	}
	return j
}

func (p *parser) content(n *node, path string) *Content {
	e := p.open(n, path)
	c := &Content{}
	c.Creator = Creator(e.enum("creator", true, creators...))
	c.Name = e.str("name", true, MaxIDLen)
	c.Disposition = e.token("disposition", false, MaxIDLen)
	c.Senders = Senders(e.enum("senders", false, senders...))
	e.done()
	e.noText()
	var seenDesc, seenTrans bool
	var nRaw int
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NSRTP, "description"):
			if e.once(k, &seenDesc) {
				c.Description = p.description(k, kp)
			}
		case isNS(k, NSICEUDP, "transport"):
			if e.once(k, &seenTrans) {
				c.Transport = p.transport(k, kp)
			}
		case isNS(k, NSDataChan, "transport"):
			// XEP-0343 as Conversations deploys it: the ICE-UDP transport,
			// with its XEP-0320 fingerprint, inside the data channel
			// transport. That one transport is parsed strictly; the element
			// itself is kept verbatim (see DataChannelTransport).
			if e.count(k, &nRaw, MaxExtensions) {
				p.dataChannelTransport(k, kp)
				if p.err == nil {
					c.Other = append(c.Other, rawOf(k))
				}
			}
		case k.name.Space == NS:
			e.unknown(k)
		default:
			e.raw(k, &nRaw, &c.Other)
		}
		if p.err != nil {
			return nil
		}
	}
	return c
}

func (p *parser) description(n *node, path string) *Description {
	e := p.open(n, path)
	d := &Description{}
	d.Media = e.token("media", false, MaxIDLen)
	d.SSRC = e.decimal("ssrc", 0, 1<<32-1)
	d.Maxptime = e.decimal("maxptime", 1, 1<<32-1)
	e.done()
	e.noText()
	var nPT, nFB, nTRR, nExt, nSrc, nGrp, nRaw int
	var seenEnc, seenBW, seenMux, seenRsize, seenMixed bool
	ids := map[uint8]bool{}
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NSRTP, "payload-type"):
			if !e.count(k, &nPT, MaxPayloadTypes) {
				return nil
			}
			pt := p.payloadType(k, kp)
			if p.err != nil {
				return nil
			}
			if ids[pt.ID] {
				p.fail(kp+"@id", "duplicate payload type id")
				return nil
			}
			ids[pt.ID] = true
			d.PayloadTypes = append(d.PayloadTypes, *pt)
		case isNS(k, NSRTP, "encryption"):
			if e.once(k, &seenEnc) {
				d.Encryption = p.encryption(k, kp)
			}
		case isNS(k, NSRTP, "bandwidth"):
			if e.once(k, &seenBW) {
				d.Bandwidth = p.bandwidth(k, kp)
			}
		case isNS(k, NSRTP, "rtcp-mux"):
			if e.once(k, &seenMux) {
				p.open(k, kp).leaf()
				d.RTCPMux = &struct{}{}
			}
		case isNS(k, NSRTP, "rtcp-rsize"):
			if e.once(k, &seenRsize) {
				p.open(k, kp).leaf()
				d.ReducedSize = &struct{}{}
			}
		case isNS(k, NSRTCPFB, "rtcp-fb"):
			if e.count(k, &nFB, MaxFeedback) {
				d.Feedback = append(d.Feedback, p.feedback(k, kp))
			}
		case isNS(k, NSRTCPFB, "rtcp-fb-trr-int"):
			if e.count(k, &nTRR, MaxFeedback) {
				d.FeedbackTRRInt = append(d.FeedbackTRRInt, p.trrInt(k, kp))
			}
		case isNS(k, NSHdrExt, "rtp-hdrext"):
			if e.count(k, &nExt, MaxHeaderExts) {
				d.HeaderExts = append(d.HeaderExts, p.headerExt(k, kp))
			}
		case isNS(k, NSHdrExt, "extmap-allow-mixed"):
			if e.once(k, &seenMixed) {
				p.open(k, kp).leaf()
				d.ExtmapAllowMixed = &struct{}{}
			}
		case isNS(k, NSSSMA, "source"):
			if e.count(k, &nSrc, MaxSources) {
				d.Sources = append(d.Sources, p.source(k, kp, true))
			}
		case isNS(k, NSSSMA, "ssrc-group"):
			if e.count(k, &nGrp, MaxSources) {
				d.SSRCGroups = append(d.SSRCGroups, p.ssrcGroup(k, kp))
			}
		case k.name.Space == NSRTP || k.name.Space == NSRTCPFB || k.name.Space == NSHdrExt || k.name.Space == NSSSMA:
			e.unknown(k)
		default:
			e.raw(k, &nRaw, &d.Other)
		}
		if p.err != nil {
			return nil
		}
	}
	return d
}

func (p *parser) payloadType(n *node, path string) *PayloadType {
	e := p.open(n, path)
	pt := &PayloadType{}
	pt.ID = uint8(e.uint("id", true, 0, 127))
	pt.Name = e.token("name", false, MaxIDLen)
	pt.Clockrate = uint32(e.uint("clockrate", false, 1, 1<<32-1))
	pt.Channels = uint8(e.uint("channels", false, 1, 255))
	pt.Maxptime = e.decimal("maxptime", 1, 1<<32-1)
	pt.Ptime = e.decimal("ptime", 1, 1<<32-1)
	e.done()
	e.noText()
	var nParam, nFB, nTRR int
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NSRTP, "parameter"):
			if e.count(k, &nParam, MaxParameters) {
				pt.Parameters = append(pt.Parameters, p.parameter(k, kp, false))
			}
		case isNS(k, NSRTCPFB, "rtcp-fb"):
			if e.count(k, &nFB, MaxFeedback) {
				pt.Feedback = append(pt.Feedback, p.feedback(k, kp))
			}
		case isNS(k, NSRTCPFB, "rtcp-fb-trr-int"):
			if e.count(k, &nTRR, MaxFeedback) {
				pt.FeedbackTRRInt = append(pt.FeedbackTRRInt, p.trrInt(k, kp))
			}
		default:
			e.unknown(k)
		}
		if p.err != nil {
			return nil
		}
	}
	return pt
}

// parameter reads a <parameter name value/>; nameRequired is set for
// XEP-0339 and XEP-0294 parameters, XEP-0167 allows a nameless one that
// carries a raw fmtp value.
func (p *parser) parameter(n *node, path string, nameRequired bool) Parameter {
	e := p.open(n, path)
	var prm Parameter
	prm.Name = e.str("name", nameRequired, MaxAttrLen)
	if v, ok := e.get("value"); ok {
		prm.Value = v
	}
	if prm.Name == "" && prm.Value == "" {
		p.fail(path, "parameter without name and value")
	}
	e.leaf()
	return prm
}

func (p *parser) encryption(n *node, path string) *Encryption {
	e := p.open(n, path)
	enc := &Encryption{}
	enc.Required = e.enum("required", false, "0", "1", "true", "false")
	e.done()
	e.noText()
	var nCrypto int
	for _, k := range n.kids {
		kp := e.kidPath(k)
		if !isNS(k, NSRTP, "crypto") {
			e.unknown(k)
			return nil
		}
		if !e.count(k, &nCrypto, MaxCrypto) {
			return nil
		}
		ce := p.open(k, kp)
		var c Crypto
		c.CryptoSuite = ce.token("crypto-suite", true, MaxIDLen)
		c.KeyParams = ce.str("key-params", true, MaxAttrLen)
		c.SessionParams = ce.str("session-params", false, MaxAttrLen)
		c.Tag = ce.decimal("tag", 0, 999999999)
		if c.Tag == "" {
			p.fail(kp+"@tag", "required attribute missing")
		}
		ce.leaf()
		enc.Crypto = append(enc.Crypto, c)
	}
	return enc
}

func (p *parser) bandwidth(n *node, path string) *Bandwidth {
	e := p.open(n, path)
	bw := &Bandwidth{}
	bw.Type = e.token("type", true, MaxIDLen)
	e.done()
	if len(n.kids) > 0 {
		p.fail(e.kidPath(n.kids[0]), "unexpected child element")
	}
	bw.Value = strings.TrimSpace(n.text())
	if _, ok := parseDecimal(bw.Value); !ok {
		p.fail(path, "bandwidth is not a decimal number")
	}
	return bw
}

func (p *parser) feedback(n *node, path string) RTCPFeedback {
	e := p.open(n, path)
	var fb RTCPFeedback
	fb.Type = e.token("type", true, MaxIDLen)
	fb.Subtype = e.token("subtype", false, MaxIDLen)
	e.leaf()
	return fb
}

func (p *parser) trrInt(n *node, path string) RTCPFeedbackTRRInt {
	e := p.open(n, path)
	v := RTCPFeedbackTRRInt{Value: uint32(e.uint("value", true, 0, 1<<32-1))}
	e.leaf()
	return v
}

func (p *parser) headerExt(n *node, path string) HeaderExt {
	e := p.open(n, path)
	var h HeaderExt
	h.ID = uint16(e.uint("id", true, 1, 65535))
	h.URI = e.token("uri", true, MaxAttrLen)
	h.Senders = Senders(e.enum("senders", false, senders...))
	e.done()
	e.noText()
	var nParam int
	for _, k := range n.kids {
		if !isNS(k, NSHdrExt, "parameter") {
			e.unknown(k)
			break
		}
		if e.count(k, &nParam, MaxParameters) {
			h.Parameters = append(h.Parameters, p.parameter(k, e.kidPath(k), true))
		}
	}
	return h
}

// source reads a XEP-0339 <source/>; full is false inside an
// <ssrc-group/>, where a source is only an ssrc reference.
func (p *parser) source(n *node, path string, full bool) Source {
	e := p.open(n, path)
	var s Source
	s.SSRC = uint32(e.uint("ssrc", true, 0, 1<<32-1))
	e.done()
	e.noText()
	if !full {
		e.empty()
		return s
	}
	var nParam, nRaw int
	for _, k := range n.kids {
		switch {
		case isNS(k, NSSSMA, "parameter"):
			if e.count(k, &nParam, MaxParameters) {
				s.Parameters = append(s.Parameters, p.parameter(k, e.kidPath(k), true))
			}
		case k.name.Space == NSSSMA:
			e.unknown(k)
		default:
			e.raw(k, &nRaw, &s.Other)
		}
		if p.err != nil {
			break
		}
	}
	return s
}

func (p *parser) ssrcGroup(n *node, path string) SSRCGroup {
	e := p.open(n, path)
	var g SSRCGroup
	g.Semantics = e.token("semantics", true, MaxIDLen)
	e.done()
	e.noText()
	var nSrc int
	for _, k := range n.kids {
		if !isNS(k, NSSSMA, "source") {
			e.unknown(k)
			break
		}
		if e.count(k, &nSrc, MaxSources) {
			g.Sources = append(g.Sources, p.source(k, e.kidPath(k), false))
		}
	}
	if nSrc == 0 {
		p.fail(path, "ssrc-group without sources")
	}
	return g
}

func (p *parser) group(n *node, path string) *Group {
	e := p.open(n, path)
	g := &Group{}
	g.Semantics = e.token("semantics", true, MaxIDLen)
	e.done()
	e.noText()
	var nc int
	for _, k := range n.kids {
		if !isNS(k, NSGrouping, "content") {
			e.unknown(k)
			return nil
		}
		if !e.count(k, &nc, MaxContents) {
			return nil
		}
		ce := p.open(k, e.kidPath(k))
		gc := GroupContent{Name: ce.str("name", true, MaxIDLen)}
		ce.leaf()
		g.Contents = append(g.Contents, gc)
	}
	return g
}

func (p *parser) transport(n *node, path string) *Transport {
	e := p.open(n, path)
	t := &Transport{}
	if v := e.str("ufrag", false, 256); v != "" {
		if len(v) < 4 || !isICEChar(v) {
			p.fail(e.field("ufrag"), "not 4 to 256 ice-chars (RFC 8839 §5.4)")
		}
		t.Ufrag = v
	}
	if v := e.str("pwd", false, 256); v != "" {
		if len(v) < 22 || !isICEChar(v) {
			p.fail(e.field("pwd"), "not 22 to 256 ice-chars (RFC 8839 §5.4)")
		}
		t.Pwd = v
	}
	e.done()
	e.noText()
	var nCand, nRaw int
	var seenFP, seenRC bool
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NSDTLS, "fingerprint"):
			if e.once(k, &seenFP) {
				t.Fingerprint = p.fingerprint(k, kp)
			}
		case isNS(k, NSICEUDP, "candidate"):
			if e.count(k, &nCand, MaxCandidates) {
				t.Candidates = append(t.Candidates, p.candidate(k, kp))
			}
		case isNS(k, NSICEUDP, "remote-candidate"):
			if e.once(k, &seenRC) {
				t.RemoteCandidate = p.remoteCandidate(k, kp)
			}
		case k.name.Space == NSICEUDP || k.name.Space == NSDTLS:
			e.unknown(k)
		default:
			e.raw(k, &nRaw, &t.Other)
		}
		if p.err != nil {
			return nil
		}
	}
	return t
}

// dataChannelTransport checks a XEP-0343 <transport
// xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'/> of a content:
// at most one ICE-UDP <transport/> child, parsed like the content's own,
// and nothing else of this package's namespaces.
func (p *parser) dataChannelTransport(n *node, path string) {
	seenICE := false
	for _, k := range n.kids {
		kp := path + "/" + k.name.Local
		switch {
		case isNS(k, NSICEUDP, "transport"):
			if seenICE {
				p.fail(kp, "duplicate element")
				return
			}
			seenICE = true
			p.transport(k, kp)
		case ownNamespaces[k.name.Space]:
			p.misplaced(k, kp)
		default:
			p.foreign(k, kp)
		}
		if p.err != nil {
			return
		}
	}
}

func (p *parser) fingerprint(n *node, path string) *Fingerprint {
	e := p.open(n, path)
	f := &Fingerprint{}
	// Hash function names are case-insensitive (RFC 8122 §5); the value
	// carries the lower-case name.
	f.Hash = strings.ToLower(e.str("hash", true, MaxIDLen))
	f.Setup = Setup(e.enum("setup", false, setups...))
	f.Required = e.enum("required", false, "true", "false", "0", "1")
	e.done()
	if len(n.kids) > 0 {
		p.fail(e.kidPath(n.kids[0]), "unexpected child element")
		return nil
	}
	f.Value = strings.TrimSpace(n.text())
	if p.err != nil {
		return nil
	}
	if err := checkFingerprint(f.Hash, f.Value); err != nil {
		p.fail(path, err.Error())
	}
	return f
}

func (p *parser) candidate(n *node, path string) Candidate {
	e := p.open(n, path)
	var c Candidate
	c.Component = uint8(e.uint("component", true, 1, 255))
	c.Foundation = e.str("foundation", true, 32)
	if c.Foundation != "" && !isICEChar(c.Foundation) {
		p.fail(e.field("foundation"), "not 1 to 32 ice-chars (RFC 8839 §5.1)")
	}
	c.Generation = uint32(e.uint("generation", false, 0, 1<<32-1))
	c.ID = e.token("id", false, MaxIDLen)
	c.IP = e.str("ip", true, 253)
	if c.IP != "" && !isAddress(c.IP) {
		p.fail(e.field("ip"), "not an IP address or host name")
	}
	c.Network = uint32(e.uint("network", false, 0, 1<<32-1))
	c.Port = uint16(e.uint("port", true, 0, 65535))
	c.Priority = uint32(e.uint("priority", true, 1, 1<<31-1))
	c.Protocol = e.enum("protocol", true, "udp")
	c.RelAddr = e.str("rel-addr", false, 253)
	if c.RelAddr != "" && !isAddress(c.RelAddr) {
		p.fail(e.field("rel-addr"), "not an IP address or host name")
	}
	c.RelPort = uint16(e.uint("rel-port", false, 0, 65535))
	c.Type = e.enum("type", true, candTyps...)
	e.leaf()
	return c
}

func (p *parser) remoteCandidate(n *node, path string) *RemoteCandidate {
	e := p.open(n, path)
	rc := &RemoteCandidate{}
	rc.Component = uint8(e.uint("component", true, 1, 255))
	rc.IP = e.str("ip", true, 253)
	if rc.IP != "" && !isAddress(rc.IP) {
		p.fail(e.field("ip"), "not an IP address or host name")
	}
	rc.Port = uint16(e.uint("port", true, 0, 65535))
	e.leaf()
	return rc
}

// isAddress accepts the characters of an IPv4 or IPv6 literal or of a
// host name (mDNS candidates carry "<uuid>.local", RFC 8839 §5.1).
func isAddress(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return s != ""
}
