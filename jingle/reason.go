package jingle

import (
	"encoding/xml"
	"strconv"
	"strings"
)

var conditions = map[ReasonCondition]bool{
	ReasonAlternativeSession: true, ReasonBusy: true, ReasonCancel: true,
	ReasonConnectivityError: true, ReasonDecline: true, ReasonExpired: true,
	ReasonFailedApplication: true, ReasonFailedTransport: true, ReasonGeneralError: true,
	ReasonGone: true, ReasonIncompatibleParameters: true, ReasonMediaError: true,
	ReasonSecurityError: true, ReasonSuccess: true, ReasonTimeout: true,
	ReasonUnsupportedApplications: true, ReasonUnsupportedTransports: true,
}

// Known reports whether c is one of the conditions of XEP-0166 §7.4.
func (c ReasonCondition) Known() bool { return conditions[c] }

// ParseReason decodes one <reason xmlns='urn:xmpp:jingle:1'/> (XEP-0166
// §7.4) on its own, with the strictness of [Parse]: exactly one known
// condition element, an alternative-session condition with its <sid/>,
// at most one <text/>, and children of other namespaces kept as Extra.
func ParseReason(b []byte) (*Reason, error) {
	n, err := parseTree(b, "reason")
	if err != nil {
		return nil, err
	}
	p := &parser{}
	if !isNS(n, NS, "reason") {
		p.fail("reason", "root is "+fmtName(n.name)+", want {"+NS+"}reason")
		return nil, p.err
	}
	r := p.reason(n, "reason")
	if p.err != nil {
		return nil, p.err
	}
	if err := checkCanonicalSize("reason", r.node()); err != nil {
		return nil, err
	}
	return r, nil
}

func (p *parser) reason(n *node, path string) *Reason {
	e := p.open(n, path)
	e.done()
	e.noText()
	r := &Reason{}
	var seenText bool
	var nRaw int
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NS, "text"):
			if !e.once(k, &seenText) {
				return nil
			}
			te := p.open(k, kp)
			if v, ok := te.getNS(nsXML, "lang"); ok {
				if v == "" || len(v) > MaxIDLen || !isToken(v) {
					p.fail(te.field("xml:lang"), "not a language tag")
				}
				r.Lang = v
			}
			te.done()
			if len(k.kids) > 0 {
				p.fail(te.kidPath(k.kids[0]), "unexpected child element")
			}
			r.Text = k.text()
			if len(r.Text) > MaxAttrLen {
				p.fail(kp, "longer than "+strconv.Itoa(MaxAttrLen)+" bytes")
			}
		case k.name.Space == NS:
			c := ReasonCondition(k.name.Local)
			if !c.Known() {
				e.unknown(k)
				return nil
			}
			if r.Condition != "" {
				p.fail(kp, "second condition")
				return nil
			}
			r.Condition = c
			ce := p.open(k, kp)
			ce.done()
			if c != ReasonAlternativeSession {
				ce.empty()
				break
			}
			ce.noText()
			if len(k.kids) != 1 || !isNS(k.kids[0], NS, "sid") {
				p.fail(kp, "alternative-session needs exactly one <sid/>")
				return nil
			}
			s := k.kids[0]
			se := p.open(s, kp+"/sid")
			se.done()
			if len(s.kids) > 0 {
				p.fail(se.kidPath(s.kids[0]), "unexpected child element")
			}
			sid := strings.TrimSpace(s.text())
			if sid == "" || len(sid) > MaxIDLen || !isToken(sid) {
				p.fail(kp+"/sid", "not a session id")
			}
			r.AlternativeSID = sid
		case k.name.Space == NSRTPErrors:
			// XEP-0167 conditions (<invalid-crypto/>, <crypto-required/>)
			// are application-specific reason payloads.
			e.rawOwn(k, &nRaw, &r.Extra)
		default:
			e.raw(k, &nRaw, &r.Extra)
		}
		if p.err != nil {
			return nil
		}
	}
	if r.Condition == "" {
		p.fail(path, "no condition")
		return nil
	}
	return r
}

func (r *Reason) node() *node {
	n := el(NS, "reason")
	c := el(NS, string(r.Condition))
	if r.Condition == ReasonAlternativeSession {
		s := el(NS, "sid")
		s.addText(r.AlternativeSID)
		c.addKid(s)
	}
	n.addKid(c)
	if r.Text != "" || r.Lang != "" {
		t := el(NS, "text")
		if r.Lang != "" {
			t.attrs = append(t.attrs, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: r.Lang})
		}
		t.addText(r.Text)
		n.addKid(t)
	}
	addRaw(n, r.Extra)
	return n
}

// Marshal serializes r as <reason xmlns='urn:xmpp:jingle:1'/>. It fails,
// with a *[MarshalError] holding the *[ParseError], when r would not parse
// back to the same value, e.g. for an unknown condition.
func (r *Reason) Marshal() ([]byte, error) {
	b, _, err := encodeAs(r, r.node(), ParseReason)
	if err != nil {
		return nil, marshalError(err)
	}
	return b, nil
}

// MarshalXML implements xml.Marshaler; start is ignored.
func (r *Reason) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	return encodeBytes(e, b)
}

// UnmarshalXML implements xml.Unmarshaler with the strictness of
// [ParseReason].
func (r *Reason) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	b, err := captureElement(d, start)
	if err != nil {
		return err
	}
	v, err := ParseReason(b)
	if err != nil {
		return err
	}
	*r = *v
	return nil
}
