package jingle

import "encoding/xml"

// Jingle is the <jingle/> element of XEP-0166 §7. Its zero value is not a
// valid element; build one with the fields set, or parse one with [Parse].
type Jingle struct {
	XMLName   xml.Name  `xml:"urn:xmpp:jingle:1 jingle"`
	Action    Action    `xml:"action,attr"`
	SID       string    `xml:"sid,attr"`
	Initiator string    `xml:"initiator,attr,omitempty"`
	Responder string    `xml:"responder,attr,omitempty"`
	Groups    []Group   `xml:"urn:xmpp:jingle:apps:grouping:0 group"` // XEP-0338
	Contents  []Content `xml:"content"`
	Reason    *Reason   `xml:"reason"`
	// Info holds the payload of a session-info (ringing, hold, mute, ...;
	// XEP-0167 §7) and any other child this package has no type for, kept
	// verbatim so that re-serializing loses nothing.
	Info []Raw `xml:",any"`
}

// Content is a <content/> of XEP-0166 §7.3.
type Content struct {
	Creator     Creator      `xml:"creator,attr"`
	Name        string       `xml:"name,attr"`
	Disposition string       `xml:"disposition,attr,omitempty"`
	Senders     Senders      `xml:"senders,attr,omitempty"`
	Description *Description `xml:"urn:xmpp:jingle:apps:rtp:1 description"`
	Transport   *Transport   `xml:"urn:xmpp:jingle:transports:ice-udp:1 transport"`
	// Other holds application or transport elements of other namespaces
	// (file transfer, data channels, security), verbatim.
	Other []Raw `xml:",any"`
}

// Description is the XEP-0167 RTP <description/>.
type Description struct {
	Media            string               `xml:"media,attr"` // audio, video
	SSRC             string               `xml:"ssrc,attr,omitempty"`
	Maxptime         string               `xml:"maxptime,attr,omitempty"`
	PayloadTypes     []PayloadType        `xml:"payload-type"`
	Encryption       *Encryption          `xml:"encryption"` // XEP-0167 §7 SDES (never accepted by policy)
	Bandwidth        *Bandwidth           `xml:"bandwidth"`
	RTCPMux          *struct{}            `xml:"rtcp-mux"`
	ReducedSize      *struct{}            `xml:"rtcp-rsize"`
	Feedback         []RTCPFeedback       `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb"` // XEP-0293 description level (a=rtcp-fb:*)
	FeedbackTRRInt   []RTCPFeedbackTRRInt `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb-trr-int"`
	HeaderExts       []HeaderExt          `xml:"urn:xmpp:jingle:apps:rtp:rtp-hdrext:0 rtp-hdrext"` // XEP-0294
	ExtmapAllowMixed *struct{}            `xml:"urn:xmpp:jingle:apps:rtp:rtp-hdrext:0 extmap-allow-mixed"`
	Sources          []Source             `xml:"urn:xmpp:jingle:apps:rtp:ssma:0 source"`     // XEP-0339
	SSRCGroups       []SSRCGroup          `xml:"urn:xmpp:jingle:apps:rtp:ssma:0 ssrc-group"` // XEP-0339
	Other            []Raw                `xml:",any"`
}

// PayloadType is a XEP-0167 <payload-type/> (a=rtpmap, a=fmtp).
type PayloadType struct {
	ID             uint8                `xml:"id,attr"`
	Name           string               `xml:"name,attr,omitempty"`
	Clockrate      uint32               `xml:"clockrate,attr,omitempty"`
	Channels       uint8                `xml:"channels,attr,omitempty"`
	Maxptime       string               `xml:"maxptime,attr,omitempty"`
	Ptime          string               `xml:"ptime,attr,omitempty"`
	Parameters     []Parameter          `xml:"parameter"`
	Feedback       []RTCPFeedback       `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb"`
	FeedbackTRRInt []RTCPFeedbackTRRInt `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb-trr-int"`
}

// Parameter is a name/value pair (XEP-0167 payload parameters, XEP-0339
// source parameters). A nameless parameter carries a raw fmtp value.
type Parameter struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr,omitempty"`
}

// Encryption is the XEP-0167 SDES <encryption/> element. securejingle never
// uses SDES: keys in signaling are classified as insecure by policy.
type Encryption struct {
	Required string   `xml:"required,attr,omitempty"`
	Crypto   []Crypto `xml:"crypto"`
}

// Crypto is one SDES <crypto/> line.
type Crypto struct {
	CryptoSuite   string `xml:"crypto-suite,attr"`
	KeyParams     string `xml:"key-params,attr"`
	SessionParams string `xml:"session-params,attr,omitempty"`
	Tag           string `xml:"tag,attr"`
}

// Bandwidth is the XEP-0167 <bandwidth/> (b=).
type Bandwidth struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// RTCPFeedback is a XEP-0293 <rtcp-fb/> (a=rtcp-fb).
type RTCPFeedback struct {
	Type    string `xml:"type,attr"`
	Subtype string `xml:"subtype,attr,omitempty"`
}

// RTCPFeedbackTRRInt is a XEP-0293 <rtcp-fb-trr-int/>.
type RTCPFeedbackTRRInt struct {
	Value uint32 `xml:"value,attr"`
}

// HeaderExt is a XEP-0294 <rtp-hdrext/> (a=extmap).
type HeaderExt struct {
	ID      uint16  `xml:"id,attr"`
	URI     string  `xml:"uri,attr"`
	Senders Senders `xml:"senders,attr,omitempty"`
}

// Source is a XEP-0339 <source/> (a=ssrc).
type Source struct {
	SSRC       uint32      `xml:"ssrc,attr"`
	Parameters []Parameter `xml:"parameter"`
}

// SSRCGroup is a XEP-0339 <ssrc-group/> (a=ssrc-group).
type SSRCGroup struct {
	Semantics string   `xml:"semantics,attr"`
	Sources   []Source `xml:"source"`
}

// Group is a XEP-0338 <group/> (a=group, e.g. BUNDLE).
type Group struct {
	Semantics string         `xml:"semantics,attr"`
	Contents  []GroupContent `xml:"content"`
}

// GroupContent names one content of a [Group].
type GroupContent struct {
	Name string `xml:"name,attr"`
}

// Transport is the XEP-0176 ICE-UDP <transport/>.
type Transport struct {
	Ufrag           string           `xml:"ufrag,attr,omitempty"`
	Pwd             string           `xml:"pwd,attr,omitempty"`
	Fingerprint     *Fingerprint     `xml:"urn:xmpp:jingle:apps:dtls:0 fingerprint"` // XEP-0320
	Candidates      []Candidate      `xml:"candidate"`
	RemoteCandidate *RemoteCandidate `xml:"remote-candidate"`
	Other           []Raw            `xml:",any"`
}

// Fingerprint is the XEP-0320 <fingerprint/> (a=fingerprint, a=setup).
type Fingerprint struct {
	Hash  string `xml:"hash,attr"`
	Setup Setup  `xml:"setup,attr,omitempty"`
	Value string `xml:",chardata"` // colon-separated hex, as in SDP
}

// Candidate is a XEP-0176 <candidate/> (a=candidate).
type Candidate struct {
	Component  uint8  `xml:"component,attr"`
	Foundation string `xml:"foundation,attr"`
	Generation uint32 `xml:"generation,attr"`
	ID         string `xml:"id,attr"`
	IP         string `xml:"ip,attr"`
	Network    uint32 `xml:"network,attr"`
	Port       uint16 `xml:"port,attr"`
	Priority   uint32 `xml:"priority,attr"`
	Protocol   string `xml:"protocol,attr"` // udp (lower case)
	RelAddr    string `xml:"rel-addr,attr,omitempty"`
	RelPort    uint16 `xml:"rel-port,attr,omitempty"`
	Type       string `xml:"type,attr"` // host, prflx, srflx, relay
}

// RemoteCandidate is the XEP-0176 <remote-candidate/>.
type RemoteCandidate struct {
	Component uint8  `xml:"component,attr"`
	IP        string `xml:"ip,attr"`
	Port      uint16 `xml:"port,attr"`
}

// Reason is the XEP-0166 <reason/>: one condition, optional text and an
// optional application-specific child (e.g. <out-of-order/>).
type Reason struct {
	Condition ReasonCondition
	// AlternativeSID is the sid of an alternative-session condition.
	AlternativeSID string
	Text           string
	Extra          []Raw
}

// Raw is an element kept verbatim (name and its serialized bytes).
type Raw struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

// JMI is a XEP-0353 Jingle Message Initiation element: exactly one of
// propose, ringing, proceed, accept, reject, retract or finish.
type JMI struct {
	Kind JMIKind
	ID   string // the Jingle sid the message is about
	// Descriptions of a propose (media only, no transport), verbatim
	// RTP descriptions with their media attribute.
	Descriptions []Description
	// Device is Conversations' <device xmlns='http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification' id=.../>
	// or any other device hint kept verbatim.
	Extra []Raw
	// Reason of a reject, retract or finish.
	Reason *Reason
	// MigratedTo is the sid of a finish with <migrated to=.../>.
	MigratedTo string
}

// JMIKind names the XEP-0353 element.
type JMIKind string

// JMI element names.
const (
	JMIPropose JMIKind = "propose"
	JMIRinging JMIKind = "ringing"
	JMIProceed JMIKind = "proceed"
	JMIAccept  JMIKind = "accept"
	JMIReject  JMIKind = "reject"
	JMIRetract JMIKind = "retract"
	JMIFinish  JMIKind = "finish"
)
