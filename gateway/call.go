package gateway

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"
)

// CallMedia says what a call sends and where it records. The zero value
// negotiates nothing; set Audio and/or Video.
type CallMedia struct {
	Audio, Video bool          // transceivers to negotiate (receive even without a file)
	AudioFile    string        // Ogg Opus to play ("" = send nothing on audio)
	VideoFile    string        // IVF VP8 to play ("" = send nothing on video)
	RecordDir    string        // received tracks are recorded here ("" = not recorded)
	Duration     time.Duration // hang up this long after the first connect, ICE restarts included (0 = no limit)
}

// CallState is the state of a call as the local API reports it.
type CallState string

// Call states, in the order a call passes them.
const (
	CallProposed   CallState = "proposed"   // outgoing: propose sent, no device answered yet
	CallRinging    CallState = "ringing"    // incoming: ringing here; outgoing: a device rings
	CallConnecting CallState = "connecting" // answered: Jingle negotiation and ICE/DTLS under way
	CallConnected  CallState = "connected"  // media flows
	// CallReconnecting: a connected call lost its media path (ICE
	// disconnected, or an ICE restart looks for a new one); back to
	// connected when a path is found, ended with connectivity-error after
	// Config.CallOutageTimeout.
	CallReconnecting CallState = "reconnecting"
	CallEnded        CallState = "ended" // over; EndReason says why
)

// Call directions.
const (
	CallOutgoing = "outgoing"
	CallIncoming = "incoming"
)

// Binding results of a call (CallInfo.Binding).
const (
	BindingPending = "pending"
	BindingPassed  = "passed"
	BindingFailed  = "failed"
)

// CallInfo is a snapshot of one call. It is a value: changing it changes
// nothing in the gateway.
type CallInfo struct {
	ID         string    // the Jingle / JMI session id
	Direction  string    // CallOutgoing or CallIncoming
	Peer       string    // peer bare JID
	PeerFull   string    // the peer device's full JID once known
	PeerDevice uint32    // the peer's securejingle device id once known
	Media      []string  // "audio", "video"
	State      CallState // see the CallState constants
	// Trust is the trust level of the peer account ("verified", "tofu", ...),
	// Verified whether the user verified it.
	Trust    string
	Verified bool
	// Binding is BindingPending until the DTLS certificate of the peer was
	// checked against the fingerprint of its protected Jingle, then
	// BindingPassed or BindingFailed.
	Binding          string
	SRTPProfile      string // negotiated SRTP protection profile
	LocalFingerprint string // our DTLS certificate fingerprint (sha-256 AB:CD:..)
	PeerFingerprint  string // the fingerprint the peer signaled in protected Jingle
	RelayOnly        bool   // only TURN relay candidates are used
	// LocalLeg is "" for a call without a local peer, else the state of
	// its leg (LocalLegConnecting, LocalLegConnected, LocalLegEnded):
	// the call's media is relayed between the user's own WebRTC peer
	// (the web app's browser, [Gateway.PlaceLocalCall]) and the remote
	// leg. LocalSRTPProfile is the SRTP profile of the local leg,
	// LocalLegFingerprint the fingerprint of the certificate the gateway
	// presents on it (the page pins it).
	LocalLeg            string
	LocalSRTPProfile    string
	LocalLegFingerprint string
	// RelayedToPeer and RelayedToLocal count the RTP packets the relay
	// forwarded from the local peer to the remote leg and back.
	RelayedToPeer, RelayedToLocal uint64
	// Muted is what we hold back ([Gateway.MuteCall]), PeerMuted what
	// the peer said it holds back (XEP-0167 mute in its protected
	// session-info): "audio", "video".
	Muted, PeerMuted []string
	BytesSent        uint64
	BytesReceived    uint64
	PacketsSent      uint64
	PacketsReceived  uint64
	Recordings       []string // files the received tracks were recorded to
	Created          time.Time
	Connected        time.Time
	Ended            time.Time
	// EndReason is the XEP-0166 reason the call ended with ("success",
	// "decline", "security-error", "answered-elsewhere", "timeout", ...).
	EndReason string
	// Detail is human text naming the cause and the fix when a call failed.
	Detail string
}

// Call errors callers branch on.
var (
	// ErrUnknownCall is returned for a call id the gateway does not know
	// (or that already ended).
	ErrUnknownCall = errors.New("gateway: unknown call id: list calls to see the current ones")
	// ErrPeerNotCertified is returned when the peer account has no
	// certified securejingle device to call.
	ErrPeerNotCertified = errors.New("gateway: the contact has no certified securejingle device: they must run securejingle and certify a device (`securejingle devices add`) before you can call them")
	// ErrTooManyCalls is returned when the gateway already runs as many
	// calls as it allows.
	ErrTooManyCalls = errors.New("gateway: too many calls at once: hang up a call first")
	// ErrCallState is returned when an operation does not fit the call's
	// state (answering an outgoing call, answering twice).
	ErrCallState = errors.New("gateway: the call is not in a state that allows this")
	// ErrCallRefused is returned when policy refuses a call.
	ErrCallRefused = errors.New("gateway: the call policy refuses this call")
	// ErrNoMedia is returned when CallMedia asks for neither audio nor video.
	ErrNoMedia = errors.New("gateway: a call needs audio or video (set CallMedia.Audio or .Video)")
)

// CallRefusedError is returned by [Gateway.PlaceCall] when the channel
// policy refuses the call. It matches [ErrCallRefused].
type CallRefusedError struct {
	Rule    string // the policy rule that decided
	Message string // the rule's message, for the user
}

func (e *CallRefusedError) Error() string {
	s := ErrCallRefused.Error() + " (rule " + e.Rule + ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns [ErrCallRefused].
func (e *CallRefusedError) Unwrap() error { return ErrCallRefused }

// DefaultRingTimeout is the default of Config.RingTimeout.
const DefaultRingTimeout = 45 * time.Second

// PlaceCall calls the account to (a bare JID): it proposes the call to
// every certified device of the peer and returns the call in state
// proposed. The first device to answer gets the call. Progress is reported
// as EventCall events and through [Gateway.Call].
func (g *Gateway) PlaceCall(ctx context.Context, to jid.JID, m CallMedia) (CallInfo, error) {
	return g.placeCall(ctx, to, m, nil)
}

// AnswerCall answers the ringing incoming call id with media m.
func (g *Gateway) AnswerCall(ctx context.Context, id string, m CallMedia) error {
	return g.answerCall(ctx, id, m, nil)
}

// DeclineCall declines the ringing incoming call id.
func (g *Gateway) DeclineCall(ctx context.Context, id string) error {
	return g.declineCall(ctx, id)
}

// HangUp ends call id in whatever state it is: it retracts a proposal,
// declines a ringing call or terminates a session.
func (g *Gateway) HangUp(ctx context.Context, id string) error {
	return g.hangUp(ctx, id)
}

// Calls returns the current and recently ended calls, oldest first.
func (g *Gateway) Calls() []CallInfo { return g.callList() }

// Call returns call id.
func (g *Gateway) Call(id string) (CallInfo, bool) { return g.callInfo(id) }
