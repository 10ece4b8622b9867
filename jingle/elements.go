package jingle

import "encoding/xml"

// Jingle is the <jingle/> element of XEP-0166 §7. Its zero value is not a
// valid element; build one with the fields set, or parse one with [Parse].
// It implements xml.Marshaler and xml.Unmarshaler with the strictness of
// [Parse]. Like every element type of the package it is a plain value:
// safe for concurrent reads, not for concurrent mutation.
type Jingle struct {
	// XMLName is set to {urn:xmpp:jingle:1}jingle by Parse and ignored by
	// Marshal.
	XMLName   xml.Name
	Action    Action    // action, XEP-0166 §7.2
	SID       string    // sid
	Initiator string    // initiator (a full JID), optional
	Responder string    // responder (a full JID), optional
	Groups    []Group   // XEP-0338 <group/> children
	Contents  []Content // <content/> children, names unique
	Reason    *Reason   // <reason/>, XEP-0166 §7.4
	// Info holds the payload of a session-info (ringing, hold, mute, ...;
	// XEP-0167 §7, see [RTPInfo]) and any other child of another namespace,
	// kept verbatim so that re-serializing loses nothing.
	Info []Raw
}

// Content is a <content/> of XEP-0166 §7.3.
type Content struct {
	Creator     Creator // creator (required)
	Name        string  // name (required, unique in the session)
	Disposition string  // disposition, "" means "session"
	Senders     Senders // senders, "" means both
	// Description is the XEP-0167 RTP application, if the content is one.
	Description *Description
	// Transport is the XEP-0176 ICE-UDP transport, if the content has one.
	Transport *Transport
	// Other holds application, transport and security elements of other
	// namespaces (file transfer, data channels, raw-udp, ...), verbatim.
	Other []Raw
}

// Description is the XEP-0167 RTP <description/> with the XEP-0293, 0294
// and 0339 children it may carry.
type Description struct {
	Media            string               // media: audio, video (optional only in XEP-0353 messages)
	SSRC             string               // ssrc, decimal uint32, optional
	Maxptime         string               // maxptime, decimal, optional
	PayloadTypes     []PayloadType        // <payload-type/>, ids unique
	Encryption       *Encryption          // XEP-0167 §7 SDES (never accepted by policy)
	Bandwidth        *Bandwidth           // <bandwidth/>
	RTCPMux          *struct{}            // <rtcp-mux/>
	ReducedSize      *struct{}            // <rtcp-rsize/>
	Feedback         []RTCPFeedback       // XEP-0293 description level (a=rtcp-fb:*)
	FeedbackTRRInt   []RTCPFeedbackTRRInt // XEP-0293 description level
	HeaderExts       []HeaderExt          // XEP-0294 <rtp-hdrext/>
	ExtmapAllowMixed *struct{}            // XEP-0294 <extmap-allow-mixed/>
	Sources          []Source             // XEP-0339 <source/>
	SSRCGroups       []SSRCGroup          // XEP-0339 <ssrc-group/>
	Other            []Raw                // children of other namespaces, verbatim
}

// PayloadType is a XEP-0167 <payload-type/> (a=rtpmap, a=fmtp).
type PayloadType struct {
	ID             uint8                // id, 0-127 (required)
	Name           string               // name
	Clockrate      uint32               // clockrate, 0 = absent
	Channels       uint8                // channels, 0 = absent (means 1)
	Maxptime       string               // maxptime, decimal
	Ptime          string               // ptime, decimal
	Parameters     []Parameter          // <parameter/>
	Feedback       []RTCPFeedback       // XEP-0293 <rtcp-fb/>
	FeedbackTRRInt []RTCPFeedbackTRRInt // XEP-0293 <rtcp-fb-trr-int/>
}

// Parameter is a name/value pair (XEP-0167 payload parameters, XEP-0339
// source parameters, XEP-0294 extension parameters). A nameless parameter
// carries a raw fmtp value (XEP-0167 only).
type Parameter struct {
	Name  string
	Value string
}

// Encryption is the XEP-0167 SDES <encryption/> element. securejingle never
// uses SDES: keys in signaling are classified as insecure by policy.
type Encryption struct {
	Required string   // required: "0", "1", "true", "false" or ""
	Crypto   []Crypto // <crypto/>
}

// Crypto is one SDES <crypto/> line (RFC 4568).
type Crypto struct {
	CryptoSuite   string
	KeyParams     string
	SessionParams string
	Tag           string // decimal
}

// Bandwidth is the XEP-0167 <bandwidth/> (b=).
type Bandwidth struct {
	Type  string // type, e.g. AS
	Value string // the decimal text, whitespace trimmed
}

// RTCPFeedback is a XEP-0293 <rtcp-fb/> (a=rtcp-fb).
type RTCPFeedback struct {
	Type    string
	Subtype string
}

// RTCPFeedbackTRRInt is a XEP-0293 <rtcp-fb-trr-int/>.
type RTCPFeedbackTRRInt struct {
	Value uint32
}

// HeaderExt is a XEP-0294 <rtp-hdrext/> (a=extmap).
type HeaderExt struct {
	ID         uint16 // id, 1-65535
	URI        string
	Senders    Senders
	Parameters []Parameter // XEP-0294 extension parameters
}

// Source is a XEP-0339 <source/> (a=ssrc).
type Source struct {
	SSRC       uint32
	Parameters []Parameter // name:value pairs (cname, msid, ...)
	Other      []Raw       // children of other namespaces (e.g. Jitsi's ssrc-info)
}

// SSRCGroup is a XEP-0339 <ssrc-group/> (a=ssrc-group); its sources carry
// only an SSRC.
type SSRCGroup struct {
	Semantics string
	Sources   []Source
}

// Group is a XEP-0338 <group/> (a=group, e.g. BUNDLE).
type Group struct {
	Semantics string
	Contents  []GroupContent
}

// GroupContent names one content of a [Group].
type GroupContent struct {
	Name string
}

// Transport is the XEP-0176 ICE-UDP <transport/>.
type Transport struct {
	Ufrag           string           // ufrag, 4-256 ice-chars
	Pwd             string           // pwd, 22-256 ice-chars
	Fingerprint     *Fingerprint     // XEP-0320 <fingerprint/>
	Candidates      []Candidate      // <candidate/>
	RemoteCandidate *RemoteCandidate // <remote-candidate/>
	// Other holds children of other namespaces verbatim, among them
	// Conversations' OMEMO-encrypted fingerprint (see
	// [Transport.HasForeignFingerprint]).
	Other []Raw
}

// Fingerprint is the XEP-0320 <fingerprint/> (a=fingerprint, a=setup).
type Fingerprint struct {
	// Hash is sha-1, sha-224, sha-256, sha-384 or sha-512, lower case
	// after Parse (RFC 8122 §5 names are case-insensitive). sha-1 and
	// sha-224 are read so that policy can classify an offer, but Marshal
	// refuses them ([ErrWeakFingerprint]); the dtls package decides what
	// may bind a session.
	Hash  string
	Setup Setup // setup, optional
	// Required is the required attribute of early XEP-0320 drafts that
	// some clients still send; "" when absent.
	Required string
	// Value is colon-separated hex as in SDP, whitespace trimmed, of the
	// digest size of Hash.
	Value string
}

// Candidate is a XEP-0176 <candidate/> (a=candidate).
type Candidate struct {
	Component  uint8  // 1-255
	Foundation string // 1-32 ice-chars
	Generation uint32
	ID         string
	IP         string // IP literal or host name (mDNS)
	Network    uint32
	Port       uint16
	Priority   uint32 // 1 to 2^31-1
	Protocol   string // udp (lower case)
	RelAddr    string
	RelPort    uint16 // written whenever RelAddr is set
	Type       string // host, prflx, srflx, relay
}

// RemoteCandidate is the XEP-0176 <remote-candidate/>.
type RemoteCandidate struct {
	Component uint8
	IP        string
	Port      uint16
}

// Reason is the XEP-0166 §7.4 <reason/>: one condition, optional text and
// optional application-specific children (e.g. XEP-0167's
// <invalid-crypto/>). It implements xml.Marshaler and xml.Unmarshaler.
type Reason struct {
	Condition ReasonCondition
	// AlternativeSID is the sid of an alternative-session condition.
	AlternativeSID string
	Text           string // <text/>, at most MaxAttrLen bytes
	Lang           string // xml:lang of <text/>
	Extra          []Raw  // children of other namespaces, verbatim
}

// Raw is an element kept verbatim: its name, attributes (namespace
// declarations removed, names resolved) and inner XML. Inner is in the
// canonical form this package writes: namespaces declared explicitly,
// with the element's own namespace as the default, so it does not depend
// on the context it came from. The zero value is not an element (it has
// no name).
//
// For a Raw built by hand, Marshal requires XML names without a colon
// for XMLName.Local and every attribute's local name, no namespace
// declarations among Attrs (xmlns, xmlns:*: the namespace is part of the
// name), and an Inner that is a balanced fragment in which undeclared
// names are in XMLName.Space; it writes Inner in canonical form. A Raw
// must not be in a namespace this package parses itself, where Parse
// would read it as a typed field or refuse it.
type Raw struct {
	XMLName xml.Name
	Attrs   []xml.Attr
	Inner   []byte
}

// JMI is a XEP-0353 Jingle Message Initiation element: exactly one of
// propose, ringing, proceed, accept, reject, retract or finish. It
// implements xml.Marshaler and xml.Unmarshaler.
type JMI struct {
	Kind JMIKind
	ID   string // the Jingle sid the message is about
	// Descriptions of a propose (media only, no transport): RTP
	// descriptions with their media attribute.
	Descriptions []Description
	// Extra holds children of other namespaces verbatim, such as
	// Conversations' <device xmlns='http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification' id=.../>
	// in a proceed (see [JMI.DeviceID]) or descriptions of other
	// applications.
	Extra []Raw
	// Reason of a reject, retract or finish.
	Reason *Reason
	// MigratedTo is the sid of a finish with <migrated to=.../>.
	MigratedTo string
	// TieBreak is the <tie-break/> of a reject or retract that resolves
	// two crossing proposals (XEP-0353, tie breaking).
	TieBreak bool
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
