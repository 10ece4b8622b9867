package rtcpeer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/srtp"
)

// Peer is one call leg: a PeerConnection, the goroutines that play files
// into it and those that record what it receives. Make one with [New] and
// end it with [Peer.Close].
//
// The zero value is not usable. A Peer is safe for concurrent use; the
// signalling methods ([Peer.CreateOffer], [Peer.AcceptOffer],
// [Peer.SetAnswer], [Peer.Restart], [Peer.AddCandidate]) are serialised.
type Peer struct {
	cfg   Config
	log   *slog.Logger
	pc    *webrtc.PeerConnection
	count *rtpCounter
	audio *webrtc.TrackLocalStaticSample // nil without AudioFile
	video *webrtc.TrackLocalStaticSample // nil without VideoFile
	// sendAudio and sendVideo are the tracks sent: audio/video, or
	// Config.SendAudio/SendVideo; nil sends nothing on that kind.
	sendAudio, sendVideo webrtc.TrackLocal

	ctx    context.Context // ends when Close starts
	cancel context.CancelFunc
	// playCtx ends with ctx or at Quiesce: playback stops.
	playCtx    context.Context
	playCancel context.CancelFunc

	connected, done, playDone             chan struct{}
	connectedOnce, playDoneOnce, closeOne sync.Once
	closeErr                              error

	sigMu        sync.Mutex // serialises signalling; guards the fields below
	negotiated   bool       // transceivers set up (first offer or answer)
	pendingCands []webrtc.ICECandidateInit
	remoteCands  int

	candMu    sync.Mutex // held while a local candidate is delivered
	onCand    func(*webrtc.ICECandidateInit)
	candQueue []*webrtc.ICECandidateInit

	stateMu sync.Mutex // held while a state change is delivered
	state   webrtc.PeerConnectionState
	onState func(webrtc.PeerConnectionState)

	mu         sync.Mutex // guards the fields below
	closed     bool
	playing    bool
	admitted   bool           // Admit: received media is counted and recorded
	rejected   bool           // Reject: it is discarded, Close deletes the recordings
	quiet      bool           // Quiesce: nothing more is played, counted or recorded
	holdLimit  int            // packets a track holds before Admit (MaxHeldPackets; tests lower it)
	wg         sync.WaitGroup // every goroutine the Peer started
	recordings []string
	recCount   [2]int // recordings opened, audio and video
	recErr     error
	playErr    error

	audioSent, videoSent, audioPayloads, videoFrames atomic.Uint64
	senderSSRC                                       [2]atomic.Uint32 // SenderSSRC once found: audio, video
}

// New creates the PeerConnection of one call leg. It validates cfg (see
// [Config]), opening the media files to check them; no network activity
// starts before [Peer.CreateOffer] or [Peer.AcceptOffer].
func New(cfg Config) (*Peer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cert := cfg.Certificate
	if cert == (webrtc.Certificate{}) {
		c, err := dtls.NewCertificate()
		if err != nil {
			return nil, fmt.Errorf("rtcpeer: %w", err)
		}
		cert = c.WebRTC()
	}

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, fmt.Errorf("rtcpeer: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := registerInterceptors(me, ir, cfg.RelayReports); err != nil {
		return nil, fmt.Errorf("rtcpeer: interceptors: %w", err)
	}
	count := &rtpCounter{}
	ir.Add(count)

	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(settingEngine(&cfg)))
	pcfg := webrtc.Configuration{
		ICEServers:    cfg.ICEServers,
		Certificates:  []webrtc.Certificate{cert},
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	}
	if cfg.RelayOnly {
		pcfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(pcfg)
	if err != nil {
		return nil, fmt.Errorf("rtcpeer: peer connection: %w", err)
	}
	p := &Peer{
		cfg: cfg, log: cfg.Logger, pc: pc, count: count,
		connected: make(chan struct{}), done: make(chan struct{}), playDone: make(chan struct{}),
		state: webrtc.PeerConnectionStateNew, holdLimit: MaxHeldPackets,
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.playCtx, p.playCancel = context.WithCancel(p.ctx)
	if cfg.AudioFile != "" {
		p.audio, err = webrtc.NewTrackLocalStaticSample(opusCodec().RTPCodecCapability, "audio", cfg.Name)
	}
	if err == nil && cfg.VideoFile != "" {
		p.video, err = webrtc.NewTrackLocalStaticSample(vp8Codec().RTPCodecCapability, "video", cfg.Name)
	}
	if err != nil {
		pc.Close()
		p.cancel()
		return nil, fmt.Errorf("rtcpeer: track: %w", err)
	}
	p.sendAudio, p.sendVideo = sendTrack(p.audio, cfg.SendAudio), sendTrack(p.video, cfg.SendVideo)
	pc.OnICECandidate(p.localCandidate)
	pc.OnConnectionStateChange(func(webrtc.PeerConnectionState) { p.stateChanged() })
	pc.OnTrack(p.onTrack)
	// A call has no data channels; one the peer opens is closed.
	pc.OnDataChannel(func(d *webrtc.DataChannel) { d.Close() })
	return p, nil
}

// sendTrack is the track sent on one kind: the file's, else the
// caller's, else none (a nil interface, not a typed nil).
func sendTrack(file *webrtc.TrackLocalStaticSample, own *webrtc.TrackLocalStaticRTP) webrtc.TrackLocal {
	switch {
	case file != nil:
		return file
	case own != nil:
		return own
	}
	return nil
}

// OpusCodec and VP8Codec are the only codecs a Peer negotiates, as a
// relay's local tracks (webrtc.NewTrackLocalStaticRTP) take them.
func OpusCodec() webrtc.RTPCodecCapability { return opusCodec().RTPCodecCapability }

// VP8Codec: see [OpusCodec].
func VP8Codec() webrtc.RTPCodecCapability { return vp8Codec().RTPCodecCapability }

// WriteRTCP sends RTCP packets to the peer, such as a picture loss
// indication for a track it sends (a relay asks the source of a track for
// a key frame the sink of the track asked for).
func (p *Peer) WriteRTCP(pkts []rtcp.Packet) error {
	if err := p.usable(context.Background()); err != nil {
		return err
	}
	return p.pc.WriteRTCP(pkts)
}

func opusCodec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opusClockRate,
			Channels: opusChannels, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: opusPayloadType,
	}
}

func vp8Codec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: vp8ClockRate,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
				{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: vp8PayloadType,
	}
}

// registerInterceptors registers pion's default interceptors, without
// its sender and receiver report generators when relayReports (see
// [Config.RelayReports]): webrtc.RegisterDefaultInterceptors less
// ConfigureRTCPReports.
func registerInterceptors(me *webrtc.MediaEngine, ir *interceptor.Registry, relayReports bool) error {
	if !relayReports {
		return webrtc.RegisterDefaultInterceptors(me, ir)
	}
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return err
	}
	if err := webrtc.ConfigureStatsInterceptor(ir); err != nil {
		return err
	}
	return webrtc.ConfigureTWCCSender(me, ir)
}

// SenderSSRC returns the SSRC of what the Peer sends on its transceiver
// of kind, and false when it sends nothing of that kind (yet: the
// transceivers are set up by the first offer or answer). A relay calls it
// for every RTCP packet: once found, the SSRC (fixed for the sender's
// life, and a Peer never replaces its senders) is kept, and costs no
// allocation.
func (p *Peer) SenderSSRC(kind webrtc.RTPCodecType) (uint32, bool) {
	k := 0
	if kind == webrtc.RTPCodecTypeVideo {
		k = 1
	}
	if s := p.senderSSRC[k].Load(); s != 0 {
		return s, true
	}
	for _, t := range p.pc.GetTransceivers() {
		s := t.Sender()
		if t.Kind() != kind || s == nil || s.Track() == nil {
			continue
		}
		if enc := s.GetParameters().Encodings; len(enc) > 0 && enc[0].SSRC != 0 {
			p.senderSSRC[k].Store(uint32(enc[0].SSRC))
			return uint32(enc[0].SSRC), true
		}
	}
	return 0, false
}

// registerCodecs registers the only codecs a Peer can play and record.
func registerCodecs(me *webrtc.MediaEngine) error {
	if err := me.RegisterCodec(opusCodec(), webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	return me.RegisterCodec(vp8Codec(), webrtc.RTPCodecTypeVideo)
}

func settingEngine(cfg *Config) webrtc.SettingEngine {
	se := webrtc.SettingEngine{LoggerFactory: pionLogs{cfg.Logger}}
	srtp.Configure(&se) // profiles and replay windows
	se.SetSRTPProtectionProfiles(cfg.SRTPProfiles...)
	if !cfg.MDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if cfg.IncludeLoopback || cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
	}
	if cfg.LoopbackOnly {
		se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if d, f, k, ok := cfg.iceTimeouts(); ok {
		se.SetICETimeouts(d, f, k)
	}
	if cfg.InsecureSkipPionFingerprintCheck {
		se.DisableCertificateFingerprintVerification(true)
	}
	return se
}

// OnStateChange sets the function called with every new state of the
// connection (pion's PeerConnectionState: new, connecting, connected,
// disconnected, failed, closed). Calls are made one at a time, in order;
// a state that was left before it could be reported may be skipped, but
// the last call is always the current state. f must not block long nor
// call OnStateChange.
//
// Failed is not final: [Peer.Restart] may bring the connection back.
func (p *Peer) OnStateChange(f func(webrtc.PeerConnectionState)) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.onState = f
}

// State returns the current connection state.
func (p *Peer) State() webrtc.PeerConnectionState { return p.pc.ConnectionState() }

// stateChanged runs for every state change pion reports. pion calls its
// handler on a new goroutine per change, so the order of those calls is
// not the order of the changes; reading the current state under stateMu
// restores it.
func (p *Peer) stateChanged() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	s := p.pc.ConnectionState()
	if s == p.state {
		return
	}
	p.state = s
	p.log.Debug("rtcpeer: connection state", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.connectedOnce.Do(func() { close(p.connected) })
	case webrtc.PeerConnectionStateClosed:
		// pion closed the connection itself (the peer sent a DTLS
		// close_notify): end playback and finish the recordings.
		go p.Close()
	}
	if p.onState != nil {
		p.onState(s)
	}
}

// Connected returns a channel closed when the connection first reaches
// the connected state (ICE connected and DTLS completed).
func (p *Peer) Connected() <-chan struct{} { return p.connected }

// Done returns a channel closed once the Peer is closed, by [Peer.Close]
// or because the peer closed DTLS; the recordings are complete then.
func (p *Peer) Done() <-chan struct{} { return p.done }

// DTLSTransport returns the DTLS transport that media and SCTP share.
func (p *Peer) DTLSTransport() *webrtc.DTLSTransport {
	if s := p.pc.SCTP(); s != nil {
		return s.Transport()
	}
	return nil
}

// PeerConnection returns the underlying PeerConnection, for checks that
// take one (dtls.Binding.CheckPeerConnection, srtp.NegotiatedProfile).
// Do not set its handlers or change its configuration.
func (p *Peer) PeerConnection() *webrtc.PeerConnection { return p.pc }

// RemoteCertificate returns the DER encoding of the certificate the peer
// presented in the DTLS handshake, or an error matching [ErrNotConnected]
// before that handshake has completed. Bind it to the expected fingerprint
// with dtls.Binding.Check.
func (p *Peer) RemoteCertificate() ([]byte, error) {
	t := p.DTLSTransport()
	if t == nil || t.State() != webrtc.DTLSTransportStateConnected {
		return nil, ErrNotConnected
	}
	der := t.GetRemoteCertificate()
	if len(der) == 0 {
		return nil, ErrNotConnected
	}
	return append([]byte(nil), der...), nil
}

// SRTPProfile returns the SRTP protection profile DTLS negotiated, and
// false before DTLS has completed. It reads pion's statistics: call it
// once per call, not per packet.
func (p *Peer) SRTPProfile() (piondtls.SRTPProtectionProfile, bool) {
	return srtp.NegotiatedProfile(p.pc)
}

// Stats returns the peer's counters.
func (p *Peer) Stats() Stats {
	s := Stats{
		PacketsSent: p.count.sentPkts.Load(), PacketsReceived: p.count.recvPkts.Load(),
		BytesSent: p.count.sentBytes.Load(), BytesReceived: p.count.recvBytes.Load(),
		AudioSamplesSent: p.audioSent.Load(), VideoFramesSent: p.videoSent.Load(),
		AudioPayloads: p.audioPayloads.Load(), VideoFrames: p.videoFrames.Load(),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.Recordings = append([]string(nil), p.recordings...)
	s.RecordingError, s.PlaybackError = p.recErr, p.playErr
	return s
}

// Recordings returns the recording files opened so far; they are complete
// once [Peer.Close] has returned.
func (p *Peer) Recordings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.recordings...)
}

// goroutine starts f as one of the Peer's goroutines, unless the Peer is
// closing; it reports whether it did.
func (p *Peer) goroutine(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// Quiesce stops the media of the call leg without closing it: playback
// stops, received media is no longer recorded (the files written so far
// are kept, and complete once [Peer.Close] has returned) and the counters
// of [Peer.Stats] stop. DTLS, ICE and SRTP stay up, so that the end of
// the call can be signalled before [Peer.Close] tells the peer with a
// DTLS close_notify. It is safe to call more than once, and before or
// after Close.
func (p *Peer) Quiesce() {
	p.mu.Lock()
	p.quiet = true
	p.mu.Unlock()
	p.count.stopped.Store(true)
	p.playCancel()
}

// Close ends the call leg: playback stops, the PeerConnection closes (a
// DTLS close_notify tells the peer), and Close waits for every goroutine
// of the Peer, so that the recordings are complete when it returns. It is
// safe to call more than once; later calls wait for the first and return
// its result.
func (p *Peer) Close() error {
	p.closeOne.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		err := p.pc.GracefulClose()
		p.wg.Wait()
		p.deleteRejected()
		p.playDoneOnce.Do(func() { close(p.playDone) })
		if err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			p.closeErr = fmt.Errorf("rtcpeer: close: %w", err)
		}
		close(p.done)
	})
	<-p.done
	return p.closeErr
}
