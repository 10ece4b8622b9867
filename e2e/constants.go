package e2e

import "time"

// Specification constants. Changing any of these is a wire change and needs
// a new protocol version; docs/protocol.md lists them all.
const (
	// NS is the XML namespace of every securejingle element. It carries the
	// protocol version; it is a project namespace, not an XSF one.
	NS = "urn:x-securejingle:1"

	// ProtocolVersion is mixed into every transcript and key derivation.
	ProtocolVersion = "securejingle/v1"
)

// Domain-separation labels for key derivation, transcripts and associated
// data. Each is used in exactly one place.
const (
	labelPrologue   = ProtocolVersion + "/handshake"   // transcript prologue
	labelHPKEInfo   = ProtocolVersion + "/hpke-info"   // HPKE info prefix
	labelK1         = ProtocolVersion + "/k1"          // HPKE export to the prekey
	labelK2         = ProtocolVersion + "/k2"          // HPKE export to the initiator ephemeral
	labelChain0     = ProtocolVersion + "/chain0"      // initiator's pre-reply chain
	labelRoot       = ProtocolVersion + "/root"        // root key after the reply
	labelRootSeed   = ProtocolVersion + "/root-seed"   // k1's share of the root key
	labelRatchet    = ProtocolVersion + "/ratchet"     // KDF_RK
	labelSigInit    = ProtocolVersion + "/sig/init"    // initiator's signature over one first message
	labelSigResp    = ProtocolVersion + "/sig/resp"    // responder's transcript signature
	labelADChat     = ProtocolVersion + "/ad/chat"     // compact chat entries
	labelADStanza   = ProtocolVersion + "/ad/stanza"   // encrypted stanza envelopes
	labelADAuthOnly = ProtocolVersion + "/ad/auth"     // authenticate-only envelopes
	labelBundle     = ProtocolVersion + "/bundle"      // canonical bundle bytes
	labelPrekey     = ProtocolVersion + "/prekey"      // canonical prekey bytes
	labelPresence   = ProtocolVersion + "/presence"    // canonical presence bytes
	labelBundleHash = ProtocolVersion + "/bundle-id"   // bundle hash
	labelInitID     = ProtocolVersion + "/init-id"     // replay-cache id of a first message
	labelDeviceCert = ProtocolVersion + "/device-cert" // canonical device certificate bytes
	labelDeviceList = ProtocolVersion + "/device-list" // canonical device list bytes
)

// Chain-key KDF constants from the Signal double ratchet specification
// (section 5.2, KDF_CK): HMAC-SHA256 with constant inputs.
var (
	ckMessageInput = []byte{0x01}
	ckChainInput   = []byte{0x02}
)

// Implementation constants: limits that bound memory and work. They are not
// part of the wire format.
const (
	// MaxSkip bounds how many message keys one incoming message may make us
	// derive and keep (Signal spec MAX_SKIP).
	MaxSkip = 1000
	// maxStoredSkipped bounds the skipped keys kept per session; the oldest
	// are dropped first.
	maxStoredSkipped = 2000
	// rotateAfter is how many messages a sending chain carries before the
	// sender starts a new DH ratchet step when allowed to (see ratchet.go).
	rotateAfter = 8
	// maxEntries bounds recipient entries in one message.
	maxEntries = 64
	// maxPayload bounds a decrypted payload.
	maxPayload = 1 << 20
	// maxPrekeys bounds prekeys in one bundle, maxSuites suites in a list,
	// maxAttestations attestations in a bundle.
	maxPrekeys         = 8
	maxSuites          = 32
	maxAttestations    = 16
	maxAttestationSize = 16 << 10
	// MaxDevices bounds the devices on one account's device list.
	MaxDevices = 32
	// maxDeviceListSize bounds an encoded device list.
	maxDeviceListSize = len(labelDeviceList) + 2 + 3071 + 32 + 8 + 8 + 1 + MaxDevices*36 + 64
	// maxListVersion bounds a device list's version, maxListJump how far
	// a new list may be above the stored one: versions climb one per
	// change, so a stray signature at a huge version cannot make a device
	// irrevocable.
	maxListVersion = 1 << 40
	maxListJump    = 1 << 16
	// maxClockSkew is how far in the future a certificate's issue time may
	// lie before it is refused.
	maxClockSkew = 24 * time.Hour
)
