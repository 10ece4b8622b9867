// Package extdisco implements the client side of XEP-0215 External Service
// Discovery (namespace urn:xmpp:extdisco:2): building the <services/> and
// <credentials/> requests a client sends to its server, strictly parsing
// the answers, and turning the STUN and TURN services among them into the
// ICE server list pion/webrtc takes.
//
// This is how deployments hand out NAT traversal today: Prosody's
// mod_turn_external (and ejabberd's mod_stun_disco) list a STUN and a TURN
// server and give out short-lived TURN credentials under the "TURN REST
// API" scheme (draft-uberti-behave-turn-rest): username "expiry:user",
// password base64(HMAC-SHA1(secret, username)), checked by coturn's
// use-auth-secret mode.
//
// Everything the server controls is bounded at parse time (see the
// constants): the size of an element, the number of services, the length
// of every attribute. A parse failure is a [*ParseError] wrapping
// [ErrMalformed] or [ErrLimit].
//
// References:
//   - XEP-0215 v0.7 (urn:xmpp:extdisco:2), §2 attributes, §3.1 requesting
//     all services, §3.2 selected services and pushes, §3.3 credentials.
//   - XEP-0082 for the 'expires' dateTime.
//   - RFC 7064/7065 for the stun:/turn:/turns: URIs given to pion.
package extdisco

// Specification constants.
const (
	// NS is the XEP-0215 v0.7 namespace.
	NS = "urn:xmpp:extdisco:2"

	// Service types in the XMPP Registrar's registry that ICE uses.
	TypeSTUN  = "stun"
	TypeTURN  = "turn"
	TypeTURNS = "turns"

	// Transports a service may name.
	TransportUDP = "udp"
	TransportTCP = "tcp"

	// Default ports of RFC 8489 §9 and RFC 8656 §4, used when a service
	// has no 'port'.
	DefaultPort    = 3478
	DefaultTLSPort = 5349
)

// Implementation limits: a server that exceeds one gets a [*ParseError]
// wrapping [ErrLimit].
const (
	// MaxElementSize bounds a <services/> or <credentials/> element in bytes.
	MaxElementSize = 64 << 10
	// MaxServices bounds the <service/> children of one element.
	MaxServices = 32
	// MaxICEServers bounds what [ICEServers] returns.
	MaxICEServers = 16
	// MaxHostLen bounds 'host' (a DNS name is at most 253 octets).
	MaxHostLen = 253
	// MaxCredentialLen bounds 'username' and 'password' (RFC 8489 §14.3:
	// a username is less than 513 bytes).
	MaxCredentialLen = 512
	// MaxNameLen bounds 'name' (the human-readable label).
	MaxNameLen = 256
	// MaxTokenLen bounds 'type', 'transport' and 'action'.
	MaxTokenLen = 32
	// maxTimeLen bounds 'expires' before it is parsed.
	maxTimeLen = 64
	// maxDepth bounds element nesting (a <service/> may carry a data form).
	maxDepth = 16
)
