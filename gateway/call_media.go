package gateway

// The media leg of a call: an internal/rtcpeer Peer (one pion
// PeerConnection with a fresh DTLS certificate, securejingle's SRTP
// policy, file playback and bounded recording), adapted to what the call's
// goroutine asks of it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/rtcpeer"
)

// mediaPeer is the media leg of one call. Nothing it receives is recorded
// before admit (our binding check passed); after reject nothing is kept.
// Its methods are safe for concurrent use; close ends every goroutine it
// started.
type mediaPeer struct {
	peer  *rtcpeer.Peer
	pc    *webrtc.PeerConnection // peer's, for the checks that take one
	cert  *dtls.Certificate
	wg    sync.WaitGroup // the goroutine that reports the end of playback
	quiet atomic.Bool    // quiesce: playback was stopped, not played out
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
	// relay, if set, makes the leg the remote end of a local peer's
	// relay (call_local.go) instead of playing and recording files.
	relay *localLeg
}

// newMediaPeer creates the leg: m says what it plays and records, o how
// it connects; onCand gets every local candidate (mid, candidate line),
// onState every connection state.
func (g *Gateway) newMediaPeer(m CallMedia, o peerOptions, onCand func(mid, line string), onState func(webrtc.PeerConnectionState)) (*mediaPeer, error) {
	cert := o.cert
	if cert == nil {
		var err error
		if cert, err = dtls.NewCertificate(); err != nil {
			return nil, fmt.Errorf("gateway: call certificate: %w", err)
		}
	}
	// Recording names come from here, never from the peer (its sid).
	name := make([]byte, 8)
	rand.Read(name)
	cfg := rtcpeer.Config{
		Name:        "call-" + hex.EncodeToString(name),
		Certificate: cert.WebRTC(),
		ICEServers:  o.iceServers, RelayOnly: o.relayOnly,
		Net: g.cfg.CallNet, LoopbackOnly: o.loopback,
		// mDNS as pion has it by default, but not on a virtual or
		// loopback-only network.
		MDNS:  g.cfg.CallNet == nil && !o.loopback,
		Audio: m.Audio || m.AudioFile != "", Video: m.Video || m.VideoFile != "",
		AudioFile: m.AudioFile, VideoFile: m.VideoFile,
		RecordDir:                        m.RecordDir,
		InsecureSkipPionFingerprintCheck: o.noPionFingerprintCheck,
		Logger:                           g.log,
	}
	if o.relay != nil {
		o.relay.remoteConfig(&cfg)
	}
	peer, err := rtcpeer.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: call media: %w", err)
	}
	peer.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			return
		}
		mid := ""
		if c.SDPMid != nil {
			mid = *c.SDPMid
		}
		onCand(mid, c.Candidate)
	})
	peer.OnStateChange(onState)
	if o.relay != nil {
		o.relay.setRemote(peer)
	}
	return &mediaPeer{peer: peer, pc: peer.PeerConnection(), cert: cert}, nil
}

// offer creates and applies the local offer.
func (p *mediaPeer) offer() (string, error) { return p.peer.CreateOffer(context.Background()) }

// answer applies the remote offer and returns the local answer.
func (p *mediaPeer) answer(offer string) (string, error) {
	return p.peer.AcceptOffer(context.Background(), offer)
}

// setAnswer applies the remote answer.
func (p *mediaPeer) setAnswer(sdp string) error { return p.peer.SetAnswer(sdp) }

// addCandidate adds a remote candidate line for mid.
func (p *mediaPeer) addCandidate(mid, line string) error {
	return p.peer.AddCandidate(webrtc.ICECandidateInit{Candidate: line, SDPMid: &mid})
}

// remoteSet reports whether the remote description is applied.
func (p *mediaPeer) remoteSet() bool { return p.pc.RemoteDescription() != nil }

// localCredentials returns the local ICE ufrag and pwd.
func (p *mediaPeer) localCredentials() (ufrag, pwd string) { return p.peer.LocalCredentials() }

// admit: our binding check passed; what the tracks received (held so far)
// and receive from now on is recorded.
func (p *mediaPeer) admit() { p.peer.Admit() }

// reject: our binding check failed; nothing received is kept, and close
// deletes the recordings.
func (p *mediaPeer) reject() { p.peer.Reject() }

// startPlayback plays the configured files once each, paced in real time;
// onDone runs when every file has been played, unless ctx ended first.
func (p *mediaPeer) startPlayback(ctx context.Context, onDone func()) {
	p.peer.StartPlayback()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-p.peer.PlaybackDone():
		case <-p.peer.Done():
			return
		}
		select {
		case <-p.peer.Done(): // ended by close, not played out
		default:
			if ctx.Err() == nil && onDone != nil && !p.quiet.Load() {
				onDone()
			}
		}
	}()
}

// peerStats are the counters of a call's media.
type peerStats struct {
	bytesSent, bytesReceived, packetsSent, packetsReceived uint64
	audio, video                                           uint64 // Opus payloads and VP8 frames admitted (recorded)
}

func (p *mediaPeer) stats() peerStats {
	s := p.peer.Stats()
	return peerStats{bytesSent: s.BytesSent, bytesReceived: s.BytesReceived,
		packetsSent: s.PacketsSent, packetsReceived: s.PacketsReceived,
		audio: s.AudioPayloads, video: s.VideoFrames}
}

// files returns the recordings opened so far (none of a rejected leg once
// closed).
func (p *mediaPeer) files() []string { return p.peer.Recordings() }

// quiesce stops playback, recording and the counters, DTLS staying up:
// the call ends, its terminate is still to be signalled.
func (p *mediaPeer) quiesce() {
	p.quiet.Store(true)
	p.peer.Quiesce()
}

// close ends the connection and waits for every playback and recording
// goroutine; recordings are complete when it returns, those of a rejected
// leg deleted.
func (p *mediaPeer) close() {
	p.peer.Close()
	p.wg.Wait()
}
