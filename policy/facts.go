package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidValue is wrapped by every error that reports a value outside an
// enumeration (kind, direction, trust, protection, signaling, action,
// severity) or of the wrong TOML type.
var ErrInvalidValue = errors.New("policy: invalid value")

// Kind is the kind of client-to-client channel. The zero value is
// unspecified: no rule that constrains kind matches it, so it reaches the
// catch-all rule.
type Kind uint8

// Channel kinds; their TOML names are given in the comments.
const (
	KindChat         Kind = iota + 1 // "chat": a chat message
	KindStanza                       // "stanza": another (protected) stanza
	KindMediaCall                    // "media-call": a Jingle RTP session (XEP-0167)
	KindFileTransfer                 // "file-transfer": a Jingle file transfer (XEP-0234)
	KindDataChannel                  // "data-channel": a WebRTC data channel
	KindBytestream                   // "bytestream": an in-band or SOCKS5 bytestream
)

// Direction says who opened the channel. The zero value is unspecified.
type Direction uint8

// Directions.
const (
	DirectionIncoming Direction = iota + 1 // "incoming": opened by the peer
	DirectionOutgoing                      // "outgoing": opened by the local user
)

// Trust is the trust level of the peer account's identity key (which
// certifies its devices). The zero value is unspecified, which is distinct
// from [TrustUnknown].
type Trust uint8

// Trust levels.
const (
	TrustVerified   Trust = iota + 1 // "verified": fingerprint verified out of band
	TrustTOFU                        // "tofu": first key seen, accepted on first use
	TrustUnknown                     // "unknown": no key known for the peer
	TrustKeyChanged                  // "key-changed": key differs from the trusted one
	TrustDistrusted                  // "distrusted": the user distrusted the peer's key
)

// Protection says how well the channel content is protected. The zero value
// is unspecified.
type Protection uint8

// Protection levels.
const (
	// ProtectionE2EBound: end-to-end protected and bound to the peer's
	// identity key (for media: the DTLS fingerprint arrived inside the e2e
	// envelope and matched).
	ProtectionE2EBound Protection = iota + 1 // "e2e-bound"
	// ProtectionE2EUnverified: end-to-end encrypted, identity not bound or
	// not verified.
	ProtectionE2EUnverified // "e2e-unverified"
	// ProtectionTransportOnly: only the transport is encrypted, e.g. DTLS
	// whose fingerprint arrived in cleartext through the server.
	ProtectionTransportOnly // "transport-only"
	// ProtectionCleartext: no client-to-client protection at all.
	ProtectionCleartext // "cleartext"
)

// Signaling says how the channel's signaling (e.g. the Jingle session) was
// carried. The zero value is unspecified.
type Signaling uint8

// Signaling protection levels.
const (
	SignalingProtected   Signaling = iota + 1 // "protected": inside the e2e envelope
	SignalingUnprotected                      // "unprotected": in cleartext through the server
	SignalingNone                             // "none": the channel has no separate signaling
)

var (
	kindNames       = []string{"", "chat", "stanza", "media-call", "file-transfer", "data-channel", "bytestream"}
	directionNames  = []string{"", "incoming", "outgoing"}
	trustNames      = []string{"", "verified", "tofu", "unknown", "key-changed", "distrusted"}
	protectionNames = []string{"", "e2e-bound", "e2e-unverified", "transport-only", "cleartext"}
	signalingNames  = []string{"", "protected", "unprotected", "none"}
)

func enumString(names []string, v uint8, typ string) string {
	if v == 0 {
		return "unspecified"
	}
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

func parseEnum(names []string, s, what string) (uint8, error) {
	for i := 1; i < len(names); i++ {
		if s == names[i] {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown %s %q (want one of %s)", ErrInvalidValue, what, s, strings.Join(names[1:], ", "))
}

func marshalEnum(names []string, v uint8, typ string) ([]byte, error) {
	if v == 0 {
		return []byte{}, nil
	}
	if int(v) < len(names) {
		return []byte(names[v]), nil
	}
	return nil, fmt.Errorf("%w: %s(%d) out of range", ErrInvalidValue, typ, v)
}

func unmarshalEnum(names []string, b []byte, what string) (uint8, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return parseEnum(names, string(b), what)
}

// String returns the TOML name of k, "unspecified" for the zero value.
func (k Kind) String() string { return enumString(kindNames, uint8(k), "Kind") }

// ParseKind parses a TOML kind name such as "media-call".
func ParseKind(s string) (Kind, error) {
	v, err := parseEnum(kindNames, s, "kind")
	return Kind(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (k Kind) MarshalText() ([]byte, error) { return marshalEnum(kindNames, uint8(k), "Kind") }

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(kindNames, b, "kind")
	if err == nil {
		*k = Kind(v)
	}
	return err
}

// String returns the TOML name of d, "unspecified" for the zero value.
func (d Direction) String() string { return enumString(directionNames, uint8(d), "Direction") }

// ParseDirection parses "incoming" or "outgoing".
func ParseDirection(s string) (Direction, error) {
	v, err := parseEnum(directionNames, s, "direction")
	return Direction(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (d Direction) MarshalText() ([]byte, error) {
	return marshalEnum(directionNames, uint8(d), "Direction")
}

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (d *Direction) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(directionNames, b, "direction")
	if err == nil {
		*d = Direction(v)
	}
	return err
}

// String returns the TOML name of t, "unspecified" for the zero value.
func (t Trust) String() string { return enumString(trustNames, uint8(t), "Trust") }

// ParseTrust parses a TOML trust name such as "key-changed".
func ParseTrust(s string) (Trust, error) {
	v, err := parseEnum(trustNames, s, "trust")
	return Trust(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (t Trust) MarshalText() ([]byte, error) { return marshalEnum(trustNames, uint8(t), "Trust") }

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (t *Trust) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(trustNames, b, "trust")
	if err == nil {
		*t = Trust(v)
	}
	return err
}

// String returns the TOML name of p, "unspecified" for the zero value.
func (p Protection) String() string { return enumString(protectionNames, uint8(p), "Protection") }

// ParseProtection parses a TOML protection name such as "transport-only".
func ParseProtection(s string) (Protection, error) {
	v, err := parseEnum(protectionNames, s, "protection")
	return Protection(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (p Protection) MarshalText() ([]byte, error) {
	return marshalEnum(protectionNames, uint8(p), "Protection")
}

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (p *Protection) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(protectionNames, b, "protection")
	if err == nil {
		*p = Protection(v)
	}
	return err
}

// String returns the TOML name of s, "unspecified" for the zero value.
func (s Signaling) String() string { return enumString(signalingNames, uint8(s), "Signaling") }

// ParseSignaling parses "protected", "unprotected" or "none".
func ParseSignaling(s string) (Signaling, error) {
	v, err := parseEnum(signalingNames, s, "signaling")
	return Signaling(v), err
}

// MarshalText implements [encoding.TextMarshaler]; the zero value is "".
func (s Signaling) MarshalText() ([]byte, error) {
	return marshalEnum(signalingNames, uint8(s), "Signaling")
}

// UnmarshalText implements [encoding.TextUnmarshaler]; "" is the zero value.
func (s *Signaling) UnmarshalText(b []byte) error {
	v, err := unmarshalEnum(signalingNames, b, "signaling")
	if err == nil {
		*s = Signaling(v)
	}
	return err
}

// Facts describe one client-to-client channel as the gateway classified it.
// The zero value describes an unclassified channel, which the default policy
// flags. Facts is a plain value; copies are independent.
type Facts struct {
	Kind       Kind       `json:"kind,omitempty"`
	Direction  Direction  `json:"direction,omitempty"`
	PeerJID    string     `json:"peer_jid,omitempty"` // bare or full JID of the peer
	PeerDevice uint32     `json:"peer_device,omitempty"`
	Trust      Trust      `json:"trust,omitempty"`
	Protection Protection `json:"protection,omitempty"`
	// SecuredSession reports that an end-to-end session with the peer exists.
	SecuredSession bool `json:"secured_session"`
	// OnRoster reports that the peer is in the user's roster.
	OnRoster bool `json:"on_roster"`
	// PeerSupportsE2E reports that the peer advertised end-to-end support.
	PeerSupportsE2E bool      `json:"peer_supports_e2e"`
	Signaling       Signaling `json:"signaling,omitempty"`
	// StanzaType is an optional detail, e.g. "chat", "groupchat", "set".
	StanzaType string `json:"stanza_type,omitempty"`
}

// Bit layout of a Facts fingerprint: each enumerated dimension (including its
// unspecified value) and each boolean owns a run of bits, and a fact sets
// exactly one bit per run. A rule keeps a mask of the bits it accepts, so a
// fact matches the enumerated part of a rule iff bits&^mask == 0.
const (
	offKind       = 0
	offDirection  = offKind + 7
	offTrust      = offDirection + 3
	offProtection = offTrust + 6
	offSignaling  = offProtection + 5
	offSecured    = offSignaling + 4
	offRoster     = offSecured + 2
	offE2E        = offRoster + 2
	factBitsUsed  = offE2E + 2
)

// The fingerprint must fit in a uint64.
var _ [64 - factBitsUsed]struct{}

func enumBit(off uint, v uint8, n int) uint64 {
	if int(v) >= n {
		v = 0 // out of range counts as unspecified
	}
	return 1 << (off + uint(v))
}

func boolBit(off uint, b bool) uint64 {
	if b {
		return 1 << (off + 1)
	}
	return 1 << off
}

func (f *Facts) bits() uint64 {
	return enumBit(offKind, uint8(f.Kind), len(kindNames)) |
		enumBit(offDirection, uint8(f.Direction), len(directionNames)) |
		enumBit(offTrust, uint8(f.Trust), len(trustNames)) |
		enumBit(offProtection, uint8(f.Protection), len(protectionNames)) |
		enumBit(offSignaling, uint8(f.Signaling), len(signalingNames)) |
		boolBit(offSecured, f.SecuredSession) |
		boolBit(offRoster, f.OnRoster) |
		boolBit(offE2E, f.PeerSupportsE2E)
}
