package filexfer

// The XEP-0343 WebRTC data channel transport (this file and
// transport_dc_*.go): a pion PeerConnection per file-transfer session with
// a fresh DTLS certificate, bound to the fingerprint that arrived in the
// end-to-end protected Jingle stanza, carrying one reliable ordered data
// channel per file. Signaling is passed in and out as values: no XMPP here.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/jingle"
)

// Implementation constants of the data channel transport.
const (
	// DataChannelMaxMessageSize is the max-message-size we advertise
	// (RFC 8841 §6) and the largest message we read; a larger one is a
	// protocol error. Conversations advertises the same.
	DataChannelMaxMessageSize = 256 << 10
	// DefaultDataChannelConnectTimeout bounds ICE, DTLS and our binding
	// check, counted from the moment both descriptions are set, when
	// [DataChannelConfig.ConnectTimeout] is zero.
	DefaultDataChannelConnectTimeout = 30 * time.Second
	// DefaultDataChannelStallTimeout bounds how long a write (or a close
	// waiting for the peer's acknowledgements) may make no progress when
	// [DataChannelConfig.StallTimeout] is zero.
	DefaultDataChannelStallTimeout = 60 * time.Second
	// MaxDataChannelCandidates bounds the remote ICE candidates one
	// transport accepts over its lifetime (initial transport and trickle).
	MaxDataChannelCandidates = 256
	// maxPendingCandidates bounds the remote candidates held while the
	// remote description is not set yet.
	maxPendingCandidates = jingle.MaxCandidates
	// maxLocalCandidates bounds the local candidates reported.
	maxLocalCandidates = jingle.MaxCandidates
	// MaxDataChannelChannels bounds the data channels the peer opens over
	// the transport's lifetime (contents come and go with content-add and
	// content-remove; each has one channel).
	MaxDataChannelChannels = 1024
	// maxPendingChannels bounds the data channels the peer opened that no
	// [DataChannel.Accept] has claimed yet; one per content.
	maxPendingChannels = jingle.MaxContents

	// DataChannelMessageSize is the size of the messages we send when
	// the peer accepts that much (RFC 8841 §6 default otherwise).
	DataChannelMessageSize = 64 << 10
	// DataChannelQueueHigh and DataChannelQueueLow are the flow-control
	// bounds of one channel, pion's own recommendation: a message is
	// queued only while at most DataChannelQueueHigh bytes are queued in
	// SCTP and unacknowledged; above it a write waits until pion reports
	// the queue at or below DataChannelQueueLow. They bound the memory a
	// transfer holds per channel (the high mark plus one message).
	DataChannelQueueHigh = 1 << 20
	DataChannelQueueLow  = 512 << 10
)

// Specification constants.
const (
	// rfc8841DefaultMaxMessageSize is what a peer that sends no
	// max-message-size accepts (RFC 8841 §6).
	rfc8841DefaultMaxMessageSize = 64 << 10
)

// Errors of the data channel transport. A binding failure is reported as
// an error matching dtls.ErrBindingMismatch (and a *dtls.MismatchError
// with errors.As): end the session with reason security-error, never fall
// back.
var (
	// ErrDataChannelTimeout: ICE and DTLS did not complete within the
	// connect timeout. Fall back to the next transport.
	ErrDataChannelTimeout = errors.New("filexfer: the data channel did not connect in time")
	// ErrDataChannelFailed: ICE or DTLS failed, or the connection was lost.
	// Fall back to the next transport.
	ErrDataChannelFailed = errors.New("filexfer: the data channel connection failed")
	// ErrDataChannelClosed: the transport or the channel was closed here.
	ErrDataChannelClosed = errors.New("filexfer: the data channel transport is closed")
	// ErrDataChannelProtocol: the peer broke the rules of this transport
	// (an unreliable or unordered channel, a text message, a message over
	// our max-message-size, a description without DTLS fingerprint, ...).
	ErrDataChannelProtocol = errors.New("filexfer: the peer broke the data channel protocol")
	// ErrDataChannelStalled: the peer acknowledged nothing for the stall
	// timeout.
	ErrDataChannelStalled = errors.New("filexfer: the data channel stalled")
	// ErrDataChannelState: a method was called out of order (for example
	// Answer on the initiator, or Offer twice).
	ErrDataChannelState = errors.New("filexfer: data channel method called out of order")
)

// DataChannelConfig describes the data channel transport of one Jingle
// file-transfer session. [NewDataChannel] copies and validates it.
//
// The zero value is not valid: SID and Peer are required.
type DataChannelConfig struct {
	// SID, Peer and Device name the session, the peer's bare JID and its
	// certified device; they go into the binding and its errors.
	SID    string
	Peer   string
	Device uint32
	// Certificate is the DTLS certificate of this session; nil makes
	// NewDataChannel generate a fresh one (dtls.NewCertificate). Never
	// share one between sessions.
	Certificate *dtls.Certificate
	// ICEServers are the STUN and TURN servers to gather candidates from.
	ICEServers []webrtc.ICEServer
	// RelayOnly gathers and signals TURN relay candidates only, so that
	// the peer never learns our addresses.
	RelayOnly bool
	// LoopbackOnly gathers UDP IPv4 host candidates on loopback only;
	// tests that must not touch other interfaces.
	LoopbackOnly bool
	// ConnectTimeout bounds ICE, DTLS and the binding check, from the
	// moment both descriptions are set; zero means
	// [DefaultDataChannelConnectTimeout].
	ConnectTimeout time.Duration
	// StallTimeout bounds a write or close without progress; zero means
	// [DefaultDataChannelStallTimeout].
	StallTimeout time.Duration
	// OnCandidate receives each local ICE candidate as the XEP-0343
	// transport of a transport-info (the ICE-UDP transport with our
	// credentials and that one candidate). It is called from pion's
	// goroutines, one call at a time, and must not block; queue the
	// transport-info until the session-initiate or session-accept that
	// carries our description is acknowledged. Nil drops them (the peer
	// then relies on peer-reflexive candidates).
	OnCandidate func(*DataChannelTransport)

	// InsecureSkipPionFingerprintCheck turns off pion's own comparison of
	// the peer certificate with the fingerprint of the SDP, so that a test
	// can show that our binding check alone refuses a man in the middle.
	// Never set it outside tests.
	InsecureSkipPionFingerprintCheck bool
}

func (c *DataChannelConfig) validate() error {
	if c.SID == "" || len(c.SID) > MaxSIDLen {
		return fmt.Errorf("filexfer: data channel config: SID must be 1 to %d bytes", MaxSIDLen)
	}
	if c.Peer == "" {
		return errors.New("filexfer: data channel config: Peer is required")
	}
	if c.ConnectTimeout < 0 || c.StallTimeout < 0 {
		return errors.New("filexfer: data channel config: negative timeout")
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultDataChannelConnectTimeout
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultDataChannelStallTimeout
	}
	c.ICEServers = append([]webrtc.ICEServer(nil), c.ICEServers...)
	return nil
}

// dcStage is where the offer/answer exchange is.
type dcStage int

const (
	dcNew        dcStage = iota
	dcOffered            // initiator: our offer is set, waiting for the answer
	dcConnecting         // both descriptions set
)

// DataChannel is the XEP-0343 transport of one file-transfer session: a
// pion PeerConnection with a per-session certificate. The initiator calls
// [DataChannel.Offer] and, with the responder's transport from the
// protected session-accept, [DataChannel.SetAnswer]; the responder calls
// [DataChannel.Answer] with the initiator's transport from the protected
// session-initiate. Both pass the peer's trickled candidates to
// [DataChannel.AddRemoteCandidates]. Once DTLS is up the certificate the
// peer presented is checked against the fingerprint of the protected
// transport ([dtls.Binding.Check]); only then do [DataChannel.Open] (the
// byte sender of a file) and [DataChannel.Accept] (its receiver) return a
// channel. A failed check closes everything with an error matching
// dtls.ErrBindingMismatch.
//
// One DataChannel serves every file of a session: put the same transport
// in each content, and refuse a peer whose contents carry different
// fingerprints before handing one of them over.
//
// Make one with [NewDataChannel]; the zero value is not usable. Its
// methods are safe for concurrent use. Close it when the session ends.
type DataChannel struct {
	cfg  DataChannelConfig
	cert *dtls.Certificate
	pc   *webrtc.PeerConnection
	// sessionID is the o= session id of the SDP we write for the peer's
	// side; the SDP never leaves this process.
	sessionID uint64

	connected chan struct{} // closed once DTLS is up and the binding holds
	done      chan struct{} // closed on failure or Close
	closeOnce sync.Once
	closeErr  error

	mu          sync.Mutex
	stage       dcStage
	initiator   bool
	mid         string // the mid of the only m-line, ours and pion's
	localUfrag  string
	localPwd    string
	remoteUfrag string
	binding     dtls.Binding
	sendSize    int // the size of the messages we send
	pending     []webrtc.ICECandidateInit
	nRemote     int
	nLocal      int
	sent        map[string]bool // ids of the local candidates signaled
	err         error           // why done was closed
	timer       *time.Timer
	labels      map[string]bool            // labels opened or accepted here
	incoming    map[string]incomingChannel // opened by the peer, not claimed yet
	waiters     map[string]chan incomingChannel
	nChannels   int // channels the peer opened
	nOpening    int // of which opening, not yet in incoming
}

// NewDataChannel creates the PeerConnection of a file-transfer session.
// It gathers nothing until [DataChannel.Offer] or [DataChannel.Answer].
func NewDataChannel(cfg DataChannelConfig) (*DataChannel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cert := cfg.Certificate
	if cert == nil {
		var err error
		if cert, err = dtls.NewCertificate(); err != nil {
			return nil, fmt.Errorf("filexfer: data channel certificate: %w", err)
		}
	}
	var sid [8]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return nil, err
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(cfg.SettingEngine()))
	pcfg := webrtc.Configuration{
		ICEServers:                  cfg.ICEServers,
		Certificates:                []webrtc.Certificate{cert.WebRTC()},
		BundlePolicy:                webrtc.BundlePolicyMaxBundle,
		AlwaysNegotiateDataChannels: true,
	}
	if cfg.RelayOnly {
		pcfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(pcfg)
	if err != nil {
		return nil, fmt.Errorf("filexfer: data channel peer connection: %w", err)
	}
	d := &DataChannel{
		cfg: cfg, cert: cert, pc: pc,
		sessionID: binary.BigEndian.Uint64(sid[:]) >> 1, // JSEP: below 2^63
		connected: make(chan struct{}), done: make(chan struct{}),
		labels: map[string]bool{}, sent: map[string]bool{}, incoming: map[string]incomingChannel{},
		waiters: map[string]chan incomingChannel{},
	}
	pc.OnICECandidate(d.localCandidate)
	pc.OnConnectionStateChange(d.stateChanged)
	pc.SCTP().Transport().OnStateChange(func(s webrtc.DTLSTransportState) {
		// pion calls this with the transport's lock held, which the
		// certificate getter takes too.
		switch s {
		case webrtc.DTLSTransportStateConnected:
			go d.checkBinding()
		case webrtc.DTLSTransportStateFailed:
			go d.connectionFailed(fmt.Errorf("%w: session %q: the DTLS handshake failed", ErrDataChannelFailed, d.cfg.SID))
		}
	})
	pc.OnDataChannel(d.remoteChannel)
	return d, nil
}

// SettingEngine returns the pion settings of a [DataChannel] made from
// cfg. internal/xferbench builds its raw pion baseline on them, so that
// the two differ only in what this package adds.
func (cfg *DataChannelConfig) SettingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.LoggerFactory = &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(DataChannelMaxMessageSize)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if cfg.InsecureSkipPionFingerprintCheck {
		se.DisableCertificateFingerprintVerification(true)
	}
	return se
}

// Fingerprint returns the fingerprint of our certificate, the one our
// transport carries.
func (d *DataChannel) Fingerprint() dtls.Fingerprint { return d.cert.Fingerprint() }

// Offer creates the initiator's description and returns it as the
// XEP-0343 transport of the session-initiate. Local candidates follow
// through [DataChannelConfig.OnCandidate].
func (d *DataChannel) Offer() (*DataChannelTransport, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	if d.stage != dcNew {
		return nil, fmt.Errorf("%w: Offer after Offer or Answer", ErrDataChannelState)
	}
	o, err := d.pc.CreateOffer(nil)
	if err == nil {
		err = d.pc.SetLocalDescription(o)
	}
	if err != nil {
		return nil, fmt.Errorf("filexfer: data channel offer: %w", err)
	}
	t, err := d.localTransport(jingle.CreatorInitiator)
	if err != nil {
		return nil, err
	}
	d.stage, d.initiator = dcOffered, true
	return t, nil
}

// SetAnswer applies the responder's transport, taken from the protected
// session-accept: its fingerprint is the one the peer must present. The
// connect timeout starts.
func (d *DataChannel) SetAnswer(remote *DataChannelTransport) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	if d.stage != dcOffered {
		return fmt.Errorf("%w: SetAnswer without Offer", ErrDataChannelState)
	}
	sdp, err := d.remoteSDP(remote, jingle.CreatorResponder)
	if err != nil {
		return err
	}
	if err := d.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: the answer: %v", ErrDataChannelProtocol, err)
	}
	d.startConnecting()
	return nil
}

// Answer applies the initiator's transport, taken from the protected
// session-initiate (its fingerprint is the one the peer must present),
// and returns ours for the session-accept. The connect timeout starts.
func (d *DataChannel) Answer(remote *DataChannelTransport) (*DataChannelTransport, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	if d.stage != dcNew {
		return nil, fmt.Errorf("%w: Answer after Offer or Answer", ErrDataChannelState)
	}
	d.mid = "0"
	sdp, err := d.remoteSDP(remote, jingle.CreatorInitiator)
	if err != nil {
		return nil, err
	}
	if err := d.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return nil, fmt.Errorf("%w: the offer: %v", ErrDataChannelProtocol, err)
	}
	a, err := d.pc.CreateAnswer(nil)
	if err == nil {
		err = d.pc.SetLocalDescription(a)
	}
	if err != nil {
		return nil, fmt.Errorf("filexfer: data channel answer: %w", err)
	}
	t, err := d.localTransport(jingle.CreatorResponder)
	if err != nil {
		return nil, err
	}
	d.startConnecting()
	return t, nil
}

// localTransport translates pion's local description into our XEP-0343
// transport. Called with d.mu held.
func (d *DataChannel) localTransport(author jingle.Creator) (*DataChannelTransport, error) {
	contents, _, err := jingle.SDPToJingleAs(d.pc.LocalDescription().SDP, author)
	if err != nil {
		return nil, fmt.Errorf("filexfer: our data channel description: %w", err)
	}
	if len(contents) != 1 || len(contents[0].Other) != 1 {
		return nil, fmt.Errorf("filexfer: our data channel description has %d media sections, want one data channel", len(contents))
	}
	t, ok, err := ParseDataChannelTransport(contents[0].Other[0])
	if err != nil || !ok || t.ICE == nil {
		return nil, fmt.Errorf("filexfer: our data channel description is not a XEP-0343 transport: %v", err)
	}
	if d.mid == "" {
		d.mid = contents[0].Name
	}
	d.localUfrag, d.localPwd = t.ICE.Ufrag, t.ICE.Pwd
	if d.cfg.RelayOnly {
		t.ICE.Candidates = jingle.RelayOnlyCandidates(t.ICE.Candidates)
	}
	for _, c := range t.ICE.Candidates {
		if !d.sent[c.ID] && d.nLocal < maxLocalCandidates {
			d.sent[c.ID] = true
			d.nLocal++
		}
	}
	return t, nil
}

// remoteSDP checks the peer's transport, records its fingerprint as the
// binding and writes the SDP pion is given for it. Called with d.mu held.
func (d *DataChannel) remoteSDP(remote *DataChannelTransport, author jingle.Creator) (string, error) {
	if remote == nil || remote.ICE == nil {
		return "", fmt.Errorf("%w: the transport wraps no ICE-UDP transport", ErrDataChannelProtocol)
	}
	f := remote.ICE.Fingerprint
	if f == nil {
		return "", fmt.Errorf("%w: the transport has no DTLS fingerprint (XEP-0320)", ErrDataChannelProtocol)
	}
	fp, err := dtls.ParseFingerprint(f.Hash, f.Value)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDataChannelProtocol, err)
	}
	if len(remote.ICE.Candidates) > MaxDataChannelCandidates {
		return "", fmt.Errorf("%w: %d candidates, at most %d", ErrDataChannelProtocol, len(remote.ICE.Candidates), MaxDataChannelCandidates)
	}
	raw, err := remote.Raw()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDataChannelProtocol, err)
	}
	c := jingle.Content{Creator: jingle.CreatorInitiator, Name: d.mid, Other: []jingle.Raw{raw}}
	groups := []jingle.Group{{Semantics: "BUNDLE", Contents: []jingle.GroupContent{{Name: d.mid}}}}
	sdp, err := jingle.JingleToSDPAs([]jingle.Content{c}, groups, d.sessionID, author)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDataChannelProtocol, err)
	}
	d.binding = dtls.Binding{SID: d.cfg.SID, Peer: d.cfg.Peer, Device: d.cfg.Device, Expected: fp}
	d.remoteUfrag = remote.ICE.Ufrag
	d.nRemote = len(remote.ICE.Candidates)
	d.sendSize = DataChannelMessageSize
	if remote.HasMaxMessageSize {
		if m := remote.MaxMessageSize; m != 0 && int(m) < d.sendSize {
			d.sendSize = int(m)
		}
	} else {
		d.sendSize = min(d.sendSize, rfc8841DefaultMaxMessageSize)
	}
	return sdp, nil
}

// startConnecting flushes the candidates that came early and starts the
// connect timeout. Called with d.mu held.
func (d *DataChannel) startConnecting() {
	d.stage = dcConnecting
	for _, c := range d.pending {
		if err := d.pc.AddICECandidate(c); err != nil {
			d.failLocked(fmt.Errorf("%w: candidate: %v", ErrDataChannelProtocol, err))
			return
		}
	}
	d.pending = nil
	d.timer = time.AfterFunc(d.cfg.ConnectTimeout, func() {
		select {
		case <-d.connected:
		default:
			d.fail(fmt.Errorf("%w: session %q: no connection within %v: there may be no network path between the devices (configure a TURN server, or let the transfer fall back to SOCKS5 or IBB)",
				ErrDataChannelTimeout, d.cfg.SID, d.cfg.ConnectTimeout))
		}
	})
}

// AddRemoteCandidates adds the peer's candidates from a transport-info
// (the XEP-0343 transport wrapping the ICE-UDP transport). Candidates
// that come before the peer's description are held (at most
// jingle.MaxCandidates); over the lifetime of the transport at most
// [MaxDataChannelCandidates] are taken, the rest give an error matching
// [ErrDataChannelProtocol]. An ICE restart (other credentials) is not
// supported and refused the same way.
func (d *DataChannel) AddRemoteCandidates(t *DataChannelTransport) error {
	if t == nil || t.ICE == nil {
		return fmt.Errorf("%w: transport-info without ICE-UDP transport", ErrDataChannelProtocol)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	if d.remoteUfrag != "" && t.ICE.Ufrag != "" && t.ICE.Ufrag != d.remoteUfrag {
		return fmt.Errorf("%w: candidates for ICE ufrag %q, the session uses %q (ICE restarts are not supported on file transfers)", ErrDataChannelProtocol, t.ICE.Ufrag, d.remoteUfrag)
	}
	if d.nRemote+len(t.ICE.Candidates) > MaxDataChannelCandidates {
		return fmt.Errorf("%w: more than %d remote candidates", ErrDataChannelProtocol, MaxDataChannelCandidates)
	}
	for _, c := range t.ICE.Candidates {
		if err := jingle.CheckCandidate(c); err != nil {
			return fmt.Errorf("%w: %w", ErrDataChannelProtocol, err)
		}
	}
	for _, c := range t.ICE.Candidates {
		mid := d.mid
		init := webrtc.ICECandidateInit{Candidate: jingle.CandidateToSDP(c), SDPMid: &mid}
		if d.stage != dcConnecting {
			if len(d.pending) >= maxPendingCandidates {
				return fmt.Errorf("%w: more than %d candidates before the description", ErrDataChannelProtocol, maxPendingCandidates)
			}
			d.nRemote++
			d.pending = append(d.pending, init)
			continue
		}
		d.nRemote++
		if err := d.pc.AddICECandidate(init); err != nil {
			return fmt.Errorf("%w: candidate: %v", ErrDataChannelProtocol, err)
		}
	}
	return nil
}

// localCandidate reports one local candidate (pion's goroutine).
func (d *DataChannel) localCandidate(c *webrtc.ICECandidate) {
	if c == nil || d.cfg.OnCandidate == nil {
		return
	}
	init := c.ToJSON()
	// Offer and Answer hold d.mu until the mid and credentials are known.
	d.mu.Lock()
	mid := d.mid
	d.mu.Unlock()
	jc, err := jingle.CandidateFromSDP(mid, init.Candidate)
	if err != nil {
		return // a TCP candidate: ICE-UDP has none
	}
	if d.cfg.RelayOnly {
		var ok bool
		if jc, ok = jingle.RelayOnlyCandidate(jc); !ok {
			return
		}
	}
	d.mu.Lock()
	if d.err != nil || d.nLocal >= maxLocalCandidates || d.sent[jc.ID] {
		d.mu.Unlock()
		return
	}
	d.nLocal++
	d.sent[jc.ID] = true
	t := &DataChannelTransport{ICE: &jingle.Transport{Ufrag: d.localUfrag, Pwd: d.localPwd, Candidates: []jingle.Candidate{jc}}}
	d.mu.Unlock()
	d.cfg.OnCandidate(t)
}

// checkBinding runs our binding check once DTLS is connected.
func (d *DataChannel) checkBinding() {
	d.mu.Lock()
	b := d.binding
	d.mu.Unlock()
	if err := b.CheckPeerConnection(d.pc); err != nil {
		d.fail(fmt.Errorf("filexfer: data channel of session %q: %w", d.cfg.SID, err))
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return
	}
	select {
	case <-d.connected:
	default:
		close(d.connected)
		if d.timer != nil {
			d.timer.Stop()
		}
	}
}

// connectionFailed ends the transport after a DTLS or connection failure
// with generic, unless the peer presented a certificate that fails the
// binding: pion's own fingerprint check may have refused it first, and a
// mismatch is reported as such whichever check came first.
func (d *DataChannel) connectionFailed(generic error) {
	d.mu.Lock()
	b := d.binding
	d.mu.Unlock()
	if err := b.CheckPeerConnection(d.pc); errors.Is(err, dtls.ErrBindingMismatch) {
		d.fail(fmt.Errorf("filexfer: data channel of session %q: %w", d.cfg.SID, err))
		return
	}
	d.fail(generic)
}

// stateChanged runs in a goroutine of its own (pion's choice).
func (d *DataChannel) stateChanged(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateFailed:
		d.connectionFailed(fmt.Errorf("%w: session %q: ICE or DTLS failed: there may be no network path between the devices (configure a TURN server, or let the transfer fall back to SOCKS5 or IBB)", ErrDataChannelFailed, d.cfg.SID))
	case webrtc.PeerConnectionStateClosed:
		d.connectionFailed(fmt.Errorf("%w: session %q: the connection was closed", ErrDataChannelFailed, d.cfg.SID))
	}
}

// usable returns the terminal error, if any. Called with d.mu held.
func (d *DataChannel) usable() error {
	return d.err
}

// fail ends the transport with err (the first error wins) and closes the
// PeerConnection in the background; Close waits for that.
func (d *DataChannel) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failLocked(err)
}

func (d *DataChannel) failLocked(err error) {
	if d.err != nil {
		return
	}
	d.err = err
	close(d.done)
	if d.timer != nil {
		d.timer.Stop()
	}
	for l, in := range d.incoming {
		in.raw.Close()
		delete(d.incoming, l)
	}
	// pion must not be closed from its own callbacks.
	go d.shutdown()
}

func (d *DataChannel) shutdown() {
	d.closeOnce.Do(func() { d.closeErr = d.pc.GracefulClose() })
}

// Err returns why the transport ended, or nil while it is usable.
func (d *DataChannel) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Close ends the transport: every channel and the PeerConnection are
// closed, waiting for pion's goroutines. Pending and later calls fail with
// the error that ended it ([ErrDataChannelClosed] when it was Close).
func (d *DataChannel) Close() error {
	d.fail(fmt.Errorf("%w: session %q", ErrDataChannelClosed, d.cfg.SID))
	d.shutdown()
	return d.closeErr
}

// Connected waits until DTLS is up and the peer's certificate matched the
// protected fingerprint. It returns the error that ended the transport
// (an error matching dtls.ErrBindingMismatch, [ErrDataChannelTimeout],
// [ErrDataChannelFailed], ...), or ctx's error when ctx ends first, which
// leaves the transport as it is.
func (d *DataChannel) Connected(ctx context.Context) error {
	select {
	case <-d.connected:
		// A failure after connecting (the connection lost) wins.
		select {
		case <-d.done:
			return d.Err()
		default:
			return nil
		}
	case <-d.done:
		return d.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
