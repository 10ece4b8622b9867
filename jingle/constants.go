package jingle

// Namespaces (specification constants).
const (
	NS          = "urn:xmpp:jingle:1"                               // XEP-0166
	NSErrors    = "urn:xmpp:jingle:errors:1"                        // XEP-0166 §10
	NSRTP       = "urn:xmpp:jingle:apps:rtp:1"                      // XEP-0167
	NSRTPInfo   = "urn:xmpp:jingle:apps:rtp:info:1"                 // XEP-0167 §7
	NSRTPAudio  = "urn:xmpp:jingle:apps:rtp:audio"                  // XEP-0167 disco feature
	NSRTPVideo  = "urn:xmpp:jingle:apps:rtp:video"                  // XEP-0167 disco feature
	NSICEUDP    = "urn:xmpp:jingle:transports:ice-udp:1"            // XEP-0176
	NSDTLS      = "urn:xmpp:jingle:apps:dtls:0"                     // XEP-0320
	NSRTCPFB    = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0"              // XEP-0293
	NSHdrExt    = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"           // XEP-0294
	NSGrouping  = "urn:xmpp:jingle:apps:grouping:0"                 // XEP-0338
	NSSSMA      = "urn:xmpp:jingle:apps:rtp:ssma:0"                 // XEP-0339
	NSJMI       = "urn:xmpp:jingle-message:0"                       // XEP-0353
	NSDataChan  = "urn:xmpp:jingle:transports:webrtc-datachannel:1" // XEP-0343
	NSRTPErrors = "urn:xmpp:jingle:apps:rtp:errors:1"               // XEP-0167 §7 (reason payloads)
	NSStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"             // RFC 6120 §8.3
	// NSOMEMOVerification is the namespace of Conversations' OMEMO-verified
	// DTLS-SRTP draft (spelled "dlts" by its author): a <device id/> in a
	// JMI proceed and an OMEMO-encrypted <fingerprint/> in the transport.
	NSOMEMOVerification = "http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification"
)

// Action is the action attribute of a <jingle/> element (XEP-0166 §7.2).
type Action string

// Actions of XEP-0166 §7.2.
const (
	ActionContentAccept    Action = "content-accept"
	ActionContentAdd       Action = "content-add"
	ActionContentModify    Action = "content-modify"
	ActionContentReject    Action = "content-reject"
	ActionContentRemove    Action = "content-remove"
	ActionDescriptionInfo  Action = "description-info"
	ActionSecurityInfo     Action = "security-info"
	ActionSessionAccept    Action = "session-accept"
	ActionSessionInfo      Action = "session-info"
	ActionSessionInitiate  Action = "session-initiate"
	ActionSessionTerminate Action = "session-terminate"
	ActionTransportAccept  Action = "transport-accept"
	ActionTransportInfo    Action = "transport-info"
	ActionTransportReject  Action = "transport-reject"
	ActionTransportReplace Action = "transport-replace"
)

// ReasonCondition is the condition element of a <reason/> (XEP-0166 §7.4).
type ReasonCondition string

// Reason conditions of XEP-0166 §7.4.
const (
	ReasonAlternativeSession      ReasonCondition = "alternative-session"
	ReasonBusy                    ReasonCondition = "busy"
	ReasonCancel                  ReasonCondition = "cancel"
	ReasonConnectivityError       ReasonCondition = "connectivity-error"
	ReasonDecline                 ReasonCondition = "decline"
	ReasonExpired                 ReasonCondition = "expired"
	ReasonFailedApplication       ReasonCondition = "failed-application"
	ReasonFailedTransport         ReasonCondition = "failed-transport"
	ReasonGeneralError            ReasonCondition = "general-error"
	ReasonGone                    ReasonCondition = "gone"
	ReasonIncompatibleParameters  ReasonCondition = "incompatible-parameters"
	ReasonMediaError              ReasonCondition = "media-error"
	ReasonSecurityError           ReasonCondition = "security-error"
	ReasonSuccess                 ReasonCondition = "success"
	ReasonTimeout                 ReasonCondition = "timeout"
	ReasonUnsupportedApplications ReasonCondition = "unsupported-applications"
	ReasonUnsupportedTransports   ReasonCondition = "unsupported-transports"
)

// Creator is the creator attribute of a content (XEP-0166 §7.3).
type Creator string

// Creators.
const (
	CreatorInitiator Creator = "initiator"
	CreatorResponder Creator = "responder"
)

// Senders is the senders attribute of a content (XEP-0166 §7.3).
type Senders string

// Senders values; the empty value means "both".
const (
	SendersBoth      Senders = "both"
	SendersInitiator Senders = "initiator"
	SendersResponder Senders = "responder"
	SendersNone      Senders = "none"
)

// Setup is the DTLS setup role of XEP-0320 (RFC 4145 a=setup).
type Setup string

// Setup roles.
const (
	SetupActpass Setup = "actpass"
	SetupActive  Setup = "active"
	SetupPassive Setup = "passive"
)

// ErrorCondition is a Jingle-specific error condition (XEP-0166 §10),
// carried next to a stanza error.
type ErrorCondition string

// Jingle error conditions.
const (
	ErrOutOfOrder       ErrorCondition = "out-of-order"
	ErrTieBreak         ErrorCondition = "tie-break"
	ErrUnknownSession   ErrorCondition = "unknown-session"
	ErrUnsupportedInfo  ErrorCondition = "unsupported-info"
	ErrSecurityRequired ErrorCondition = "security-required"
)

// Implementation limits (implementation constants): every count and length
// that a peer controls is bounded at parse time.
const (
	MaxElementSize  = 64 << 10 // bytes of one <jingle/> or JMI element
	MaxContents     = 16
	MaxPayloadTypes = 64
	MaxCandidates   = 64 // per transport element
	MaxParameters   = 64 // per payload type or source
	MaxFeedback     = 32
	MaxHeaderExts   = 32
	MaxSources      = 64
	MaxAttrLen      = 1024 // any attribute value
	// MaxAttrs bounds the attributes of one element, namespace
	// declarations included, as read and in the canonical form the
	// package writes (where every namespace of an attribute is declared
	// on its element). The largest element the package defines, the
	// XEP-0176 <candidate/>, has 12.
	MaxAttrs      = 32
	MaxIDLen      = 256 // sid, content names, ids
	MaxDepth      = 32  // element nesting inside one element
	MaxExtensions = 32  // elements of other namespaces kept verbatim, per parent
	MaxCrypto     = 16  // SDES <crypto/> lines per <encryption/>
)
