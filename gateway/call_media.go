package gateway

// The media leg of a call: one pion PeerConnection with a fresh DTLS
// certificate, securejingle's SRTP policy, file playback and recording.
// (Interim glue until internal/rtcpeer provides the leg.)

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/srtp"
)

// mediaPeer is the PeerConnection of one call and the goroutines that play
// files into it and record what it receives. Its methods are safe for
// concurrent use; close ends every goroutine it started.
type mediaPeer struct {
	pc   *webrtc.PeerConnection
	cert *dtls.Certificate
	log  *slog.Logger

	media CallMedia
	name  string // recording file name prefix: local and random, never the peer's sid
	wg    sync.WaitGroup

	holdLimit int // packets a track holds before the gate opens (maxHeldPackets)

	mu         sync.Mutex
	recordings []string
	playing    bool
	closed     bool
	admitted   bool               // our binding check passed: received media is recorded
	rejected   bool               // it failed: nothing is recorded, close deletes the files
	stopPlay   context.CancelFunc // ends playback; set when it starts

	audio, video *webrtc.TrackLocalStaticSample

	// What the recorders wrote: audio packets and video frames.
	recAudio, recVideo atomic.Int64
	count              *rtpCounter
}

// rtpCounter is an interceptor that counts the RTP packets and bytes
// (header and payload) a PeerConnection sends and receives.
type rtpCounter struct {
	interceptor.NoOp
	sentPkts, sentBytes, recvPkts, recvBytes atomic.Uint64
}

func (c *rtpCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

func (c *rtpCounter) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		n, err := w.Write(h, payload, a)
		if err == nil {
			c.sentPkts.Add(1)
			c.sentBytes.Add(uint64(h.MarshalSize() + len(payload)))
		}
		return n, err
	})
}

func (c *rtpCounter) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil {
			c.recvPkts.Add(1)
			c.recvBytes.Add(uint64(n))
		}
		return n, a, err
	})
}

// peerOptions are the network settings of a call's media leg.
type peerOptions struct {
	iceServers []webrtc.ICEServer
	relayOnly  bool
	loopback   bool // tests: gather loopback UDP4 host candidates only
	cert       *dtls.Certificate
	// tests: accept any certificate in pion's own check, so that only
	// securejingle's binding check stands between the call and a MITM.
	noPionFingerprintCheck bool
}

func (g *Gateway) newMediaPeer(m CallMedia, o peerOptions, onCand func(mid, line string), onState func(webrtc.PeerConnectionState)) (*mediaPeer, error) {
	cert := o.cert
	if cert == nil {
		var err error
		if cert, err = dtls.NewCertificate(); err != nil {
			return nil, fmt.Errorf("gateway: call certificate: %w", err)
		}
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	count := &rtpCounter{}
	ir.Add(count)
	se := webrtc.SettingEngine{LoggerFactory: pionLogs{g.log}}
	srtp.Configure(&se)
	if g.cfg.CallNet != nil {
		se.SetNet(g.cfg.CallNet)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if o.loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" || strings.HasPrefix(name, "lo") })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if o.noPionFingerprintCheck {
		se.DisableCertificateFingerprintVerification(true)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	cfg := webrtc.Configuration{
		ICEServers:   o.iceServers,
		Certificates: []webrtc.Certificate{cert.WebRTC()},
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	}
	if o.relayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	name := make([]byte, 8)
	rand.Read(name)
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: call peer connection: %w", err)
	}
	p := &mediaPeer{pc: pc, cert: cert, log: g.log, media: m, name: "call-" + hex.EncodeToString(name), count: count, holdLimit: maxHeldPackets}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		mid := ""
		if init.SDPMid != nil {
			mid = *init.SDPMid
		}
		onCand(mid, init.Candidate)
	})
	pc.OnConnectionStateChange(onState)
	pc.OnTrack(p.onTrack)
	if m.AudioFile != "" {
		if p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "securejingle"); err != nil {
			pc.Close()
			return nil, err
		}
	}
	if m.VideoFile != "" {
		if p.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "securejingle"); err != nil {
			pc.Close()
			return nil, err
		}
	}
	return p, nil
}

// addOfferTransceivers sets up the offerer's m-lines: sendrecv with a
// file, receive-only without.
func (p *mediaPeer) addOfferTransceivers() error {
	for _, k := range []struct {
		want  bool
		kind  webrtc.RTPCodecType
		track *webrtc.TrackLocalStaticSample
	}{{p.media.Audio, webrtc.RTPCodecTypeAudio, p.audio}, {p.media.Video, webrtc.RTPCodecTypeVideo, p.video}} {
		switch {
		case k.track != nil:
			if _, err := p.pc.AddTransceiverFromTrack(k.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
				return err
			}
		case k.want:
			if _, err := p.pc.AddTransceiverFromKind(k.kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return err
			}
		}
	}
	return nil
}

// offer creates and applies the local offer.
func (p *mediaPeer) offer() (string, error) {
	if err := p.addOfferTransceivers(); err != nil {
		return "", err
	}
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	if err := p.pc.SetLocalDescription(o); err != nil {
		return "", err
	}
	return p.pc.LocalDescription().SDP, nil
}

// answer applies the remote offer and returns the local answer.
func (p *mediaPeer) answer(offer string) (string, error) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	for _, t := range []*webrtc.TrackLocalStaticSample{p.audio, p.video} {
		if t == nil {
			continue
		}
		// AddTrack takes the transceiver the offer created for its kind.
		if _, err := p.pc.AddTrack(t); err != nil {
			return "", err
		}
	}
	a, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	if err := p.pc.SetLocalDescription(a); err != nil {
		return "", err
	}
	return p.pc.LocalDescription().SDP, nil
}

// setAnswer applies the remote answer.
func (p *mediaPeer) setAnswer(sdp string) error {
	return p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

// addCandidate adds a remote candidate line for mid.
func (p *mediaPeer) addCandidate(mid, line string) error {
	return p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: line, SDPMid: &mid})
}

// remoteSet reports whether the remote description is applied.
func (p *mediaPeer) remoteSet() bool { return p.pc.RemoteDescription() != nil }

// localCredentials returns the local ICE ufrag and pwd.
func (p *mediaPeer) localCredentials() (ufrag, pwd string) {
	if d := p.pc.LocalDescription(); d != nil {
		for _, l := range strings.Split(d.SDP, "\n") {
			l = strings.TrimSpace(l)
			if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok && ufrag == "" {
				ufrag = v
			}
			if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok && pwd == "" {
				pwd = v
			}
		}
	}
	return ufrag, pwd
}

// gate is what a received track does with its packets: hold them until
// our binding check passed, then record them; discard them once it failed
// or the leg is closing.
type gate int

const (
	gateHold gate = iota
	gateOpen
	gateShut
)

// maxHeldPackets bounds the packets a track holds while the binding check
// is pending (about 2.5 s of Opus, or a second of VP8 video); later ones
// are discarded. The check runs as soon as DTLS is up, so a peer that
// keeps it pending longer gets only the start of its media recorded.
const maxHeldPackets = 128

// gate returns the state of the leg's media gate.
func (p *mediaPeer) gate() gate {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.rejected:
		return gateShut
	case p.admitted:
		return gateOpen
	}
	return gateHold
}

// admit opens the media gate: our binding check passed, so what the
// tracks received (held so far) and receive from now on is recorded.
func (p *mediaPeer) admit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.rejected {
		p.admitted = true
	}
}

// reject shuts the media gate for good: our binding check failed. Held
// packets are discarded and close deletes every recording file.
func (p *mediaPeer) reject() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rejected, p.admitted = true, false
}

// onTrack reads a received track to its end. Nothing it receives is
// recorded (or counted as recorded) before [mediaPeer.admit]: SRTP is up
// as soon as pion's DTLS handshake is, which is before our own binding
// check; until then at most holdLimit packets are held in memory.
func (p *mediaPeer) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		rec := &trackRecorder{p: p, kind: tr.Kind(), mime: tr.Codec().MimeType}
		defer rec.close()
		var held []*rtpPacket
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				if p.gate() == gateOpen {
					rec.write(held...) // admitted after the last packet
				}
				return
			}
			switch p.gate() {
			case gateHold:
				if len(held) < p.holdLimit {
					held = append(held, pkt)
				}
			case gateOpen:
				rec.write(held...)
				held = nil
				rec.write(pkt)
			case gateShut:
				held = nil
			}
		}
	}()
}

// trackRecorder records the admitted packets of one received track; the
// file is opened with the first of them. It runs on the track's goroutine
// only.
type trackRecorder struct {
	p      *mediaPeer
	kind   webrtc.RTPCodecType
	mime   string
	opened bool // a file was tried (it stays nil when that failed)
	w      interface {
		WriteRTP(*rtpPacket) error
		Close() error
	}
}

func (r *trackRecorder) write(pkts ...*rtpPacket) {
	if len(pkts) == 0 {
		return
	}
	if !r.opened {
		r.opened = true
		r.w = r.p.openRecording(r.kind, r.mime)
	}
	for _, pkt := range pkts {
		if r.w == nil {
			return
		}
		if r.w.WriteRTP(pkt) != nil {
			r.close()
			return
		}
		if r.kind == webrtc.RTPCodecTypeAudio {
			r.p.recAudio.Add(1)
		} else if pkt.Marker {
			r.p.recVideo.Add(1)
		}
	}
}

func (r *trackRecorder) close() {
	if r.w != nil {
		r.w.Close()
		r.w = nil
	}
}

// openRecording opens the recording file of a received track, or returns
// nil without RecordDir, after the leg was rejected or closed, or when the
// file cannot be opened.
func (p *mediaPeer) openRecording(kind webrtc.RTPCodecType, mime string) interface {
	WriteRTP(*rtpPacket) error
	Close() error
} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.media.RecordDir == "" || !p.admitted || p.closed {
		return nil
	}
	ext := ".ogg"
	if kind == webrtc.RTPCodecTypeVideo {
		ext = ".ivf"
	}
	path := filepath.Join(p.media.RecordDir, fmt.Sprintf("%s-%s-%d%s", p.name, kind, len(p.recordings), ext))
	w, err := newRecorder(path, mime)
	if err != nil {
		p.log.Warn("call recording not opened: check the recording directory", "file", path, "err", err)
		return nil
	}
	p.recordings = append(p.recordings, path)
	return w
}

// startPlayback plays the configured files once each, paced in real
// time; onDone runs when every file has been played.
func (p *mediaPeer) startPlayback(ctx context.Context, onDone func()) {
	p.mu.Lock()
	if p.playing || p.closed {
		p.mu.Unlock()
		return
	}
	p.playing = true
	// Playback ends with the call's context or when the leg closes,
	// whichever comes first: a hang-up must not wait for the file's end.
	ctx, p.stopPlay = context.WithCancel(ctx)
	var players sync.WaitGroup
	if p.audio != nil {
		players.Add(1)
		p.wg.Add(1)
		go func() { defer p.wg.Done(); defer players.Done(); playOgg(ctx, p.media.AudioFile, p.audio) }()
	}
	if p.video != nil {
		players.Add(1)
		p.wg.Add(1)
		go func() { defer p.wg.Done(); defer players.Done(); playIVF(ctx, p.media.VideoFile, p.video) }()
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		players.Wait()
		if ctx.Err() == nil && onDone != nil {
			onDone()
		}
	}()
}

func playOgg(ctx context.Context, path string, t *webrtc.TrackLocalStaticSample) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		return
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last uint64
	for {
		page, h, err := r.ParseNextPage()
		if err != nil {
			return
		}
		if len(page) >= 8 && string(page[:8]) == "OpusTags" {
			continue
		}
		dur := 20 * time.Millisecond
		if h != nil && h.GranulePosition > last && last != 0 {
			dur = time.Duration(h.GranulePosition-last) * time.Second / 48000
		}
		if h != nil {
			last = h.GranulePosition
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.WriteSample(media.Sample{Data: page, Duration: dur}) != nil {
			return
		}
	}
}

func playIVF(ctx context.Context, path string, t *webrtc.TrackLocalStaticSample) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	r, h, err := ivfreader.NewWith(f)
	if err != nil {
		return
	}
	interval := 33 * time.Millisecond
	if h.TimebaseDenominator > 0 && h.TimebaseNumerator > 0 {
		interval = time.Duration(h.TimebaseNumerator) * time.Second / time.Duration(h.TimebaseDenominator)
		if interval < 5*time.Millisecond || interval > time.Second {
			interval = 33 * time.Millisecond
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		frame, _, err := r.ParseNextFrame()
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.WriteSample(media.Sample{Data: frame, Duration: interval}) != nil {
			return
		}
	}
}

// rtpPacket is pion's RTP packet (named here to keep the recorder
// interface short).
type rtpPacket = rtp.Packet

// newRecorder creates the recording file of a received track, readable
// by its owner only; it never opens an existing file (O_EXCL), so no
// recording overwrites another file or follows a planted link.
func newRecorder(path, mime string) (interface {
	WriteRTP(*rtpPacket) error
	Close() error
}, error) {
	mime = strings.ToLower(mime)
	if mime != strings.ToLower(webrtc.MimeTypeOpus) && mime != strings.ToLower(webrtc.MimeTypeVP8) {
		return nil, errors.New("gateway: no recorder for " + mime)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if mime == strings.ToLower(webrtc.MimeTypeVP8) {
		w, err := ivfwriter.NewWith(f, ivfwriter.WithCodec(webrtc.MimeTypeVP8))
		if err != nil {
			f.Close()
			return nil, err
		}
		return w, nil // its Close closes f
	}
	w, err := oggwriter.NewWriter(f, oggwriter.WithSeekableOutput(f), oggwriter.WithSampleRate(48000), oggwriter.WithChannelCount(2))
	var t *oggwriter.Track
	if err == nil {
		t, err = w.NewTrack(0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return oggRecorder{w, t}, nil
}

// oggRecorder writes one Opus track to an Ogg file; Close closes the file.
type oggRecorder struct {
	w *oggwriter.Writer
	t *oggwriter.Track
}

func (r oggRecorder) WriteRTP(p *rtpPacket) error {
	p.SSRC = 0 // the Ogg track is registered under SSRC 0
	return r.t.WriteRTP(p)
}

func (r oggRecorder) Close() error { return r.w.Close() }

// pionLogs sends pion's logs to the gateway's logger at debug level
// (warnings at info): pion reports expected conditions, such as statistics
// of a closed agent, as errors.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(m string)        { l.log.Debug(m) }
func (l pionLogger) Debugf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...))
}
func (l pionLogger) Info(m string)             { l.log.Debug(m) }
func (l pionLogger) Infof(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Warn(m string)             { l.log.Info(m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.log.Info(fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(m string)            { l.log.Info(m) }
func (l pionLogger) Errorf(f string, a ...any) { l.log.Info(fmt.Sprintf(f, a...)) }

// peerStats are the counters of a call's media.
type peerStats struct {
	bytesSent, bytesReceived, packetsSent, packetsReceived uint64
}

func (p *mediaPeer) stats() peerStats {
	return peerStats{bytesSent: p.count.sentBytes.Load(), bytesReceived: p.count.recvBytes.Load(),
		packetsSent: p.count.sentPkts.Load(), packetsReceived: p.count.recvPkts.Load()}
}

// files returns the recordings opened so far (none of a rejected leg).
func (p *mediaPeer) files() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.recordings...)
}

// close ends the connection and waits for every playback and recording
// goroutine; recordings are complete when it returns. The recordings of a
// rejected leg are deleted.
func (p *mediaPeer) close() {
	p.mu.Lock()
	p.closed = true
	stop := p.stopPlay
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
	p.pc.Close()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rejected {
		for _, f := range p.recordings {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				p.log.Warn("call recording of a failed binding not deleted: delete it by hand", "file", f, "err", err)
			}
		}
		p.recordings = nil
	}
}
