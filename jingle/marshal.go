package jingle

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// el returns an empty element node.
func el(space, local string) *node {
	return &node{name: xml.Name{Space: space, Local: local}}
}

// set adds an unqualified attribute when value is not empty.
func (n *node) set(local, value string) *node {
	if value != "" {
		n.attrs = append(n.attrs, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
	return n
}

// setAlways adds an unqualified attribute even when value is empty.
func (n *node) setAlways(local, value string) *node {
	n.attrs = append(n.attrs, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	return n
}

func (n *node) setUint(local string, v uint64) *node {
	return n.setAlways(local, strconv.FormatUint(v, 10))
}

// setUintNZ adds a numeric attribute unless it is zero (absent).
func (n *node) setUintNZ(local string, v uint64) *node {
	if v == 0 {
		return n
	}
	return n.setUint(local, v)
}

func addRaw(n *node, rs []Raw) {
	for _, r := range rs {
		k := &node{name: r.XMLName, inner: r.Inner}
		k.attrs = append(k.attrs, r.Attrs...)
		n.addKid(k)
	}
}

func serialize(n *node) []byte {
	var w writer
	w.element(n, "")
	return w.b.Bytes()
}

// marshalError reports that a value does not serialize to an element the
// parser accepts; the *ParseError stays reachable with errors.As.
func marshalError(err error) error {
	return &MarshalError{Err: err}
}

// ErrWeakFingerprint is matched (with errors.Is) by the error of
// [Jingle.Marshal] for an element carrying a XEP-0320 fingerprint with a
// hash function that securejingle never sends (sha-1, sha-224): [Parse]
// reads such fingerprints so that a peer's offer can be classified, but
// only sha-256, sha-384 and sha-512 may bind a session (the dtls package
// decides), and our own offers carry sha-256.
var ErrWeakFingerprint = errors.New("jingle: fingerprint hash function not sent")

// MarshalError is returned by the Marshal methods when a value does not
// serialize to an element that parses back to the same value: a missing
// required attribute, an unknown enumeration value, a count over the
// limits, a name that is not an XML name, inner XML of a [Raw] that is
// not a balanced fragment, a Raw in a namespace or at a place that this
// package parses itself, a field the element cannot carry. Err is then
// the *[ParseError] naming the problem (errors.As finds it through a
// MarshalError); for a fingerprint that is not sent it matches
// [ErrWeakFingerprint].
type MarshalError struct {
	Err error
}

// Error returns "jingle: cannot marshal: " and the cause.
func (e *MarshalError) Error() string { return "jingle: cannot marshal: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *MarshalError) Unwrap() error { return e.Err }

// Marshal serializes j as <jingle xmlns='urn:xmpp:jingle:1'/> in the
// canonical form of this package (default namespaces, single quotes, no
// whitespace between elements, lower-case fingerprint hash names, the
// inner XML of every [Raw] in canonical form). The output is parsed again
// before it is returned and must give back j (up to what the
// serialization does not distinguish: nil and empty slices, XMLName, the
// case of a hash name, surrounding whitespace that Parse trims): Marshal
// never emits what [Parse] would refuse or read as something else. It
// refuses XEP-0320 fingerprints with hash functions other than sha-256,
// sha-384 and sha-512 (see [ErrWeakFingerprint]), and does not apply the
// action rules of [Jingle.Validate]. Every error is a *[MarshalError].
func (j *Jingle) Marshal() ([]byte, error) {
	b, back, err := encodeAs(j, j.node(), Parse)
	if err != nil {
		return nil, marshalError(err)
	}
	refs, err := back.Fingerprints()
	if err != nil {
		return nil, marshalError(err)
	}
	for _, r := range refs {
		if r.Fingerprint != nil && !sendableHashes[r.Fingerprint.Hash] {
			return nil, marshalError(fmt.Errorf("%w: %s fingerprint at %s (only sha-256, sha-384 and sha-512 are sent)", ErrWeakFingerprint, r.Fingerprint.Hash, r.Path))
		}
	}
	return b, nil
}

// MarshalXML implements xml.Marshaler so that a *Jingle can be a field of
// an IQ payload; start is ignored.
func (j *Jingle) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	b, err := j.Marshal()
	if err != nil {
		return err
	}
	return encodeBytes(e, b)
}

// UnmarshalXML implements xml.Unmarshaler with the strictness and bounds
// of [Parse]. A namespace name without a colon (an undeclared prefix is
// indistinguishable from one in encoding/xml) is accepted only when it is
// declared inside the element.
func (j *Jingle) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	b, err := captureElement(d, start)
	if err != nil {
		return err
	}
	v, err := Parse(b)
	if err != nil {
		return err
	}
	*j = *v
	return nil
}

func (j *Jingle) node() *node {
	n := el(NS, "jingle")
	n.set("action", string(j.Action)).set("sid", j.SID)
	n.set("initiator", j.Initiator).set("responder", j.Responder)
	for i := range j.Groups {
		n.addKid(j.Groups[i].node())
	}
	for i := range j.Contents {
		n.addKid(j.Contents[i].node())
	}
	if j.Reason != nil {
		n.addKid(j.Reason.node())
	}
	addRaw(n, j.Info)
	return n
}

func (g *Group) node() *node {
	n := el(NSGrouping, "group").setAlways("semantics", g.Semantics)
	for _, c := range g.Contents {
		n.addKid(el(NSGrouping, "content").setAlways("name", c.Name))
	}
	return n
}

func (c *Content) node() *node {
	n := el(NS, "content")
	n.set("creator", string(c.Creator)).setAlways("name", c.Name)
	n.set("disposition", c.Disposition).set("senders", string(c.Senders))
	if c.Description != nil {
		n.addKid(c.Description.node())
	}
	if c.Transport != nil {
		n.addKid(c.Transport.node())
	}
	addRaw(n, c.Other)
	return n
}

// Marshal serializes d as a stand-alone XEP-0167 <description/>; like
// [Jingle.Marshal] it refuses what [ParseDescription] would refuse or
// read back as another value, with a *[MarshalError].
func (d *Description) Marshal() ([]byte, error) {
	b, _, err := encodeAs(d, d.node(), ParseDescription)
	if err != nil {
		return nil, marshalError(err)
	}
	return b, nil
}

func (d *Description) node() *node {
	n := el(NSRTP, "description")
	n.set("media", d.Media).set("ssrc", d.SSRC).set("maxptime", d.Maxptime)
	for i := range d.PayloadTypes {
		n.addKid(d.PayloadTypes[i].node())
	}
	if e := d.Encryption; e != nil {
		en := el(NSRTP, "encryption").set("required", e.Required)
		for _, c := range e.Crypto {
			en.addKid(el(NSRTP, "crypto").setAlways("crypto-suite", c.CryptoSuite).
				setAlways("key-params", c.KeyParams).set("session-params", c.SessionParams).
				setAlways("tag", c.Tag))
		}
		n.addKid(en)
	}
	if b := d.Bandwidth; b != nil {
		bn := el(NSRTP, "bandwidth").setAlways("type", b.Type)
		bn.addText(b.Value)
		n.addKid(bn)
	}
	if d.RTCPMux != nil {
		n.addKid(el(NSRTP, "rtcp-mux"))
	}
	if d.ReducedSize != nil {
		n.addKid(el(NSRTP, "rtcp-rsize"))
	}
	addFeedback(n, d.Feedback, d.FeedbackTRRInt)
	for _, h := range d.HeaderExts {
		hn := el(NSHdrExt, "rtp-hdrext").setUint("id", uint64(h.ID)).setAlways("uri", h.URI).
			set("senders", string(h.Senders))
		addParams(hn, NSHdrExt, h.Parameters)
		n.addKid(hn)
	}
	if d.ExtmapAllowMixed != nil {
		n.addKid(el(NSHdrExt, "extmap-allow-mixed"))
	}
	for i := range d.Sources {
		s := &d.Sources[i]
		sn := el(NSSSMA, "source").setUint("ssrc", uint64(s.SSRC))
		addParams(sn, NSSSMA, s.Parameters)
		addRaw(sn, s.Other)
		n.addKid(sn)
	}
	for _, g := range d.SSRCGroups {
		gn := el(NSSSMA, "ssrc-group").setAlways("semantics", g.Semantics)
		for _, s := range g.Sources {
			gn.addKid(el(NSSSMA, "source").setUint("ssrc", uint64(s.SSRC)))
		}
		n.addKid(gn)
	}
	addRaw(n, d.Other)
	return n
}

func addFeedback(n *node, fb []RTCPFeedback, trr []RTCPFeedbackTRRInt) {
	for _, f := range fb {
		n.addKid(el(NSRTCPFB, "rtcp-fb").setAlways("type", f.Type).set("subtype", f.Subtype))
	}
	for _, t := range trr {
		n.addKid(el(NSRTCPFB, "rtcp-fb-trr-int").setUint("value", uint64(t.Value)))
	}
}

func addParams(n *node, space string, ps []Parameter) {
	for _, p := range ps {
		n.addKid(el(space, "parameter").set("name", p.Name).set("value", p.Value))
	}
}

func (pt *PayloadType) node() *node {
	n := el(NSRTP, "payload-type").setUint("id", uint64(pt.ID)).set("name", pt.Name)
	n.setUintNZ("clockrate", uint64(pt.Clockrate)).setUintNZ("channels", uint64(pt.Channels))
	n.set("maxptime", pt.Maxptime).set("ptime", pt.Ptime)
	addParams(n, NSRTP, pt.Parameters)
	addFeedback(n, pt.Feedback, pt.FeedbackTRRInt)
	return n
}

func (t *Transport) node() *node {
	n := el(NSICEUDP, "transport").set("ufrag", t.Ufrag).set("pwd", t.Pwd)
	if f := t.Fingerprint; f != nil {
		fn := el(NSDTLS, "fingerprint").setAlways("hash", strings.ToLower(f.Hash)).set("setup", string(f.Setup)).
			set("required", f.Required)
		fn.addText(f.Value)
		n.addKid(fn)
	}
	for i := range t.Candidates {
		n.addKid(t.Candidates[i].node())
	}
	if rc := t.RemoteCandidate; rc != nil {
		n.addKid(el(NSICEUDP, "remote-candidate").setUint("component", uint64(rc.Component)).
			setAlways("ip", rc.IP).setUint("port", uint64(rc.Port)))
	}
	addRaw(n, t.Other)
	return n
}

func (c *Candidate) node() *node {
	n := el(NSICEUDP, "candidate")
	n.setUint("component", uint64(c.Component)).setAlways("foundation", c.Foundation)
	n.setUint("generation", uint64(c.Generation)).set("id", c.ID).setAlways("ip", c.IP)
	n.setUint("network", uint64(c.Network)).setUint("port", uint64(c.Port))
	n.setUint("priority", uint64(c.Priority)).setAlways("protocol", c.Protocol)
	if c.RelAddr != "" || c.RelPort != 0 {
		n.set("rel-addr", c.RelAddr).setUint("rel-port", uint64(c.RelPort))
	}
	n.setAlways("type", c.Type)
	return n
}

// encodeBytes replays canonical bytes b as tokens into e. Namespace
// declarations are dropped: the encoder declares namespaces itself from
// the names.
func encodeBytes(e *xml.Encoder, b []byte) error {
	d := xml.NewDecoder(bytesReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if s, ok := tok.(xml.StartElement); ok {
			attrs := s.Attr[:0:0]
			for _, a := range s.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, a)
			}
			s.Attr = attrs
			tok = s
		}
		if err := e.EncodeToken(tok); err != nil {
			return err
		}
	}
}

// captureElement reads the element that start opened from d, bounded by
// MaxElementSize, MaxDepth and MaxAttrs, and returns it in canonical form.
//
// encoding/xml's Token resolves prefixes itself and, for an undeclared
// prefix, silently uses the prefix as the namespace (where Parse refuses
// the input). Namespace names in XMPP are URIs and contain a colon, with
// one deployed exception (Conversations' eu.siacs.conversations.axolotl),
// so a resolved namespace without a colon is accepted only when a
// declaration of that very name is in scope inside the captured element;
// anything else is refused as an undeclared prefix. (A colon-less
// namespace declared outside the element, on the stanza, is refused too.)
func captureElement(d *xml.Decoder, start xml.StartElement) ([]byte, error) {
	budget := MaxElementSize
	spend := func(n int) error {
		budget -= n
		if budget < 0 {
			return &ParseError{Field: start.Name.Local, Reason: "element larger than " + strconv.Itoa(MaxElementSize) + " bytes"}
		}
		return nil
	}
	// declared holds, per open element, the namespace names declared on
	// it (default or prefixed).
	var declared [][]string
	inScope := func(ns string) bool {
		for i := len(declared) - 1; i >= 0; i-- {
			for _, u := range declared[i] {
				if u == ns {
					return true
				}
			}
		}
		return false
	}
	checkNS := func(ns, what string) error {
		if ns == "" || ns == nsXML || strings.Contains(ns, ":") || inScope(ns) {
			return nil
		}
		return &ParseError{Field: "xml", Reason: "undeclared namespace prefix " + truncate(ns) + " on " + truncate(what)}
	}
	mk := func(s xml.StartElement) (*node, error) {
		if len(s.Attr) > MaxAttrs {
			return nil, &ParseError{Field: start.Name.Local, Reason: "element " + truncate(s.Name.Local) + " has more than " + strconv.Itoa(MaxAttrs) + " attributes"}
		}
		var decl []string
		for _, a := range s.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				decl = append(decl, a.Value)
			}
		}
		declared = append(declared, decl)
		if err := checkNS(s.Name.Space, s.Name.Local); err != nil {
			return nil, err
		}
		n := &node{name: s.Name}
		cost := 2*len(s.Name.Local) + len(s.Name.Space) + 5
		for _, a := range s.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				continue
			}
			if err := checkNS(a.Name.Space, a.Name.Local); err != nil {
				return nil, err
			}
			cost += len(a.Name.Local) + len(a.Name.Space) + len(a.Value) + 4
			n.attrs = append(n.attrs, xml.Attr{Name: a.Name, Value: a.Value})
		}
		return n, spend(cost)
	}
	root, err := mk(start)
	if err != nil {
		return nil, err
	}
	stack := []*node{root}
	for len(stack) > 0 {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, &ParseError{Field: "xml", Reason: err.Error()}
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= MaxDepth {
				return nil, &ParseError{Field: start.Name.Local, Reason: "elements nested deeper than " + strconv.Itoa(MaxDepth)}
			}
			k, err := mk(t)
			if err != nil {
				return nil, err
			}
			top.addKid(k)
			stack = append(stack, k)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			declared = declared[:len(declared)-1]
		case xml.CharData:
			if err := spend(len(t)); err != nil {
				return nil, err
			}
			top.addText(string(t))
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, &ParseError{Field: "xml", Reason: "comments, processing instructions and directives are not allowed in XMPP"}
		}
	}
	return serialize(root), nil
}
