package jingle

import (
	"encoding/xml"
	"strconv"
)

var jmiKinds = []string{
	string(JMIPropose), string(JMIRinging), string(JMIProceed), string(JMIAccept),
	string(JMIReject), string(JMIRetract), string(JMIFinish),
}

// ParseJMI decodes one XEP-0353 Jingle Message Initiation element
// (<propose/>, <ringing/>, <proceed/>, <accept/>, <reject/>, <retract/>
// or <finish/> in urn:xmpp:jingle-message:0) with the strictness and
// bounds of [Parse]. The id attribute is required; a propose must carry
// at least one application <description/> (XEP-0353); <migrated/>
// is accepted in a finish only, <tie-break/> in a reject or retract.
// Children of other namespaces, such as Conversations' <device/>, are kept
// in Extra. Every error is a *[ParseError] matching [ErrMalformed].
func ParseJMI(b []byte) (*JMI, error) {
	n, err := parseTree(b, "jmi")
	if err != nil {
		return nil, err
	}
	p := &parser{}
	m := p.jmi(n)
	if p.err != nil {
		return nil, p.err
	}
	if err := checkCanonicalSize("jmi", m.node()); err != nil {
		return nil, err
	}
	return m, nil
}

func (p *parser) jmi(n *node) *JMI {
	if n.name.Space != NSJMI {
		p.fail("jmi", "root is "+fmtName(n.name)+", want an element of "+NSJMI)
		return nil
	}
	path := n.name.Local
	known := false
	for _, k := range jmiKinds {
		known = known || k == path
	}
	if !known {
		p.fail(path, "unknown Jingle Message Initiation element")
		return nil
	}
	m := &JMI{Kind: JMIKind(path)}
	e := p.open(n, path)
	m.ID = e.token("id", true, MaxIDLen)
	e.done()
	e.noText()
	var nDesc, nRaw int
	var seenReason, seenMigrated, seenTie bool
	for _, k := range n.kids {
		kp := e.kidPath(k)
		switch {
		case isNS(k, NSRTP, "description"):
			if !e.count(k, &nDesc, MaxContents) {
				return nil
			}
			if d := p.description(k, kp); d != nil {
				m.Descriptions = append(m.Descriptions, *d)
			}
		case isNS(k, NS, "reason"):
			if e.once(k, &seenReason) {
				m.Reason = p.reason(k, kp)
			}
		case isNS(k, NSJMI, "migrated") && m.Kind == JMIFinish:
			if e.once(k, &seenMigrated) {
				me := p.open(k, kp)
				m.MigratedTo = me.token("to", true, MaxIDLen)
				me.leaf()
			}
		case isNS(k, NSJMI, "tie-break") && (m.Kind == JMIReject || m.Kind == JMIRetract):
			if e.once(k, &seenTie) {
				p.open(k, kp).leaf()
				m.TieBreak = true
			}
		case k.name.Space == NSJMI || k.name.Space == NS:
			e.unknown(k)
		default:
			if k.name.Local == "description" {
				if !e.count(k, &nDesc, MaxContents) {
					return nil
				}
			}
			e.raw(k, &nRaw, &m.Extra)
		}
		if p.err != nil {
			return nil
		}
	}
	if m.Kind == JMIPropose && nDesc == 0 {
		p.fail(path, "propose without an application description")
		return nil
	}
	return m
}

// Marshal serializes m as its XEP-0353 element. Like [Jingle.Marshal] it
// parses its output again and refuses, with a *[MarshalError], what
// [ParseJMI] would refuse or read back as another value.
func (m *JMI) Marshal() ([]byte, error) {
	b, _, err := encodeAs(m, m.node(), ParseJMI)
	if err != nil {
		return nil, marshalError(err)
	}
	return b, nil
}

// MarshalXML implements xml.Marshaler; start is ignored.
func (m *JMI) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return encodeBytes(e, b)
}

// UnmarshalXML implements xml.Unmarshaler with the strictness and bounds
// of [ParseJMI].
func (m *JMI) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	b, err := captureElement(d, start)
	if err != nil {
		return err
	}
	v, err := ParseJMI(b)
	if err != nil {
		return err
	}
	*m = *v
	return nil
}

func (m *JMI) node() *node {
	n := el(NSJMI, string(m.Kind)).setAlways("id", m.ID)
	for i := range m.Descriptions {
		n.addKid(m.Descriptions[i].node())
	}
	if m.Reason != nil {
		n.addKid(m.Reason.node())
	}
	if m.MigratedTo != "" {
		n.addKid(el(NSJMI, "migrated").setAlways("to", m.MigratedTo))
	}
	if m.TieBreak {
		n.addKid(el(NSJMI, "tie-break"))
	}
	addRaw(n, m.Extra)
	return n
}

// DeviceID returns the OMEMO device id that Conversations puts in a
// proceed (<device xmlns='http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification' id='…'/>):
// the device it will encrypt the DTLS fingerprint to. It reports false
// when there is no such element or its id is not a decimal uint32.
func (m *JMI) DeviceID() (uint32, bool) {
	for _, r := range m.Extra {
		if r.XMLName.Space != NSOMEMOVerification || r.XMLName.Local != "device" {
			continue
		}
		for _, a := range r.Attrs {
			if a.Name.Space == "" && a.Name.Local == "id" {
				v, ok := parseDecimal(a.Value)
				if !ok || v > 1<<32-1 {
					return 0, false
				}
				return uint32(v), true
			}
		}
	}
	return 0, false
}

// DeviceElement returns Conversations' <device id/> element for a proceed
// (see [JMI.DeviceID]), for interoperability tests and gateways.
func DeviceElement(id uint32) Raw {
	return Raw{
		XMLName: xml.Name{Space: NSOMEMOVerification, Local: "device"},
		Attrs:   []xml.Attr{{Name: xml.Name{Local: "id"}, Value: strconv.FormatUint(uint64(id), 10)}},
	}
}

// Media returns the media attributes of the RTP descriptions of a propose,
// in order (e.g. ["audio", "video"]).
func (m *JMI) Media() []string {
	var out []string
	for _, d := range m.Descriptions {
		if d.Media != "" {
			out = append(out, d.Media)
		}
	}
	return out
}

// HasForeignFingerprint reports whether t carries a <fingerprint/> in a
// namespace other than XEP-0320's, such as Conversations' OMEMO-encrypted
// fingerprint in [NSOMEMOVerification]: the DTLS fingerprint that counts
// is then not in the element where this package (and the envelope) puts
// it, and policy has to classify the offer.
func (t *Transport) HasForeignFingerprint() bool {
	_, ok := t.ForeignFingerprint()
	return ok
}

// ForeignFingerprint returns the first <fingerprint/> of t in a namespace
// other than XEP-0320's (see [Transport.HasForeignFingerprint]), a child
// of t or nested deeper inside one of its children of other namespaces.
// [Jingle.Fingerprints] reports every fingerprint of an element.
func (t *Transport) ForeignFingerprint() (Raw, bool) {
	if t == nil {
		return Raw{}, false
	}
	for _, r := range t.Other {
		if r.XMLName.Local == "fingerprint" && r.XMLName.Space != NSDTLS {
			return r, true
		}
	}
	for _, r := range t.Other {
		n, err := nodeOfRaw(r)
		if err != nil {
			continue
		}
		if f, ok := foreignFingerprintIn(n); ok {
			return f, true
		}
	}
	return Raw{}, false
}

func foreignFingerprintIn(n *node) (Raw, bool) {
	for _, k := range n.kids {
		if k.name.Local == "fingerprint" && k.name.Space != NSDTLS {
			return rawOf(k), true
		}
		if f, ok := foreignFingerprintIn(k); ok {
			return f, true
		}
	}
	return Raw{}, false
}
