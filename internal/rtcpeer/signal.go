package rtcpeer

// Offer/answer (RFC 8829) and trickle ICE (RFC 8838).

import (
	"context"
	"fmt"
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// CreateOffer creates an offer, applies it as the local description and
// returns it. The first offer adds the transceivers the Config asks for:
// send and receive for a kind with a file, receive only without. Gathering
// starts now; candidates arrive through [Peer.OnCandidate].
//
// ctx is checked before anything is done; the call itself does not block
// on the network.
func (p *Peer) CreateOffer(ctx context.Context) (string, error) {
	return p.offer(ctx, false)
}

// Restart creates an ICE restart offer (fresh ICE credentials, new
// gathering; RFC 8445 §9) for a connection that went disconnected or
// failed, applies it and returns it. Send it to the peer and pass its
// answer to [Peer.SetAnswer]; DTLS and SRTP keep their keys.
func (p *Peer) Restart(ctx context.Context) (string, error) {
	return p.offer(ctx, true)
}

func (p *Peer) offer(ctx context.Context, restart bool) (string, error) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.usable(ctx); err != nil {
		return "", err
	}
	if restart && p.pc.RemoteDescription() == nil {
		return "", fmt.Errorf("rtcpeer: ICE restart before the first answer")
	}
	if !p.negotiated {
		if err := p.addOfferTransceivers(); err != nil {
			return "", fmt.Errorf("rtcpeer: transceivers: %w", err)
		}
		p.negotiated = true
	}
	o, err := p.pc.CreateOffer(&webrtc.OfferOptions{
		OfferAnswerOptions: webrtc.OfferAnswerOptions{ICETricklingSupported: true},
		ICERestart:         restart,
	})
	if err != nil {
		return "", fmt.Errorf("rtcpeer: create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(o); err != nil {
		return "", fmt.Errorf("rtcpeer: set local offer: %w", err)
	}
	return p.localSDP(), nil
}

// addOfferTransceivers sets up the offerer's m-lines.
func (p *Peer) addOfferTransceivers() error {
	for _, k := range []struct {
		want  bool
		kind  webrtc.RTPCodecType
		track webrtc.TrackLocal
	}{{p.cfg.Audio, webrtc.RTPCodecTypeAudio, p.sendAudio}, {p.cfg.Video, webrtc.RTPCodecTypeVideo, p.sendVideo}} {
		switch {
		case k.track != nil:
			t, err := p.pc.AddTransceiverFromTrack(k.track,
				webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
			if err != nil {
				return err
			}
			p.readRTCP(t.Sender(), k.kind)
		case k.want:
			if _, err := p.pc.AddTransceiverFromKind(k.kind,
				webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return err
			}
		}
	}
	return nil
}

// AcceptOffer applies a remote offer, the first one or a later one (an ICE
// restart or other renegotiation), and returns the answer it applied as
// the local description. On the first offer the tracks are attached to the
// transceivers it created; a kind the Config does not want is rejected.
// Remote candidates queued by [Peer.AddCandidate] are applied.
//
// ctx is checked before anything is done.
func (p *Peer) AcceptOffer(ctx context.Context, offer string) (string, error) {
	if err := checkSDP(offer); err != nil {
		return "", err
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.usable(ctx); err != nil {
		return "", err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("rtcpeer: set remote offer: %w", err)
	}
	if !p.negotiated {
		for _, t := range []webrtc.TrackLocal{p.sendAudio, p.sendVideo} {
			if t == nil {
				continue
			}
			// AddTrack takes the transceiver the offer created for its kind.
			s, err := p.pc.AddTrack(t)
			if err != nil {
				return "", fmt.Errorf("rtcpeer: add track: %w", err)
			}
			p.readRTCP(s, t.Kind())
		}
		p.negotiated = true
	}
	for _, t := range p.pc.GetTransceivers() {
		want := t.Kind() == webrtc.RTPCodecTypeAudio && p.cfg.Audio || t.Kind() == webrtc.RTPCodecTypeVideo && p.cfg.Video
		if !want && t.Direction() != webrtc.RTPTransceiverDirectionInactive {
			if err := t.Stop(); err != nil {
				return "", fmt.Errorf("rtcpeer: reject %s: %w", t.Kind(), err)
			}
		}
	}
	a, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("rtcpeer: create answer: %w", err)
	}
	if err := p.pc.SetLocalDescription(a); err != nil {
		return "", fmt.Errorf("rtcpeer: set local answer: %w", err)
	}
	p.applyPending()
	return p.localSDP(), nil
}

// SetAnswer applies the remote answer to the last offer ([Peer.CreateOffer]
// or [Peer.Restart]) and the remote candidates queued meanwhile.
func (p *Peer) SetAnswer(answer string) error {
	if err := checkSDP(answer); err != nil {
		return err
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.usable(context.Background()); err != nil {
		return err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("rtcpeer: set remote answer: %w", err)
	}
	p.applyPending()
	return nil
}

// LocalDescription returns the current local description ("" before the
// first offer or answer), with the candidates gathered so far; in relay-only
// mode without its non-relay candidates.
func (p *Peer) LocalDescription() string {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return p.localSDP()
}

// LocalCredentials returns the ICE username fragment and password of the
// current local description ("" before there is one).
func (p *Peer) LocalCredentials() (ufrag, pwd string) {
	for _, l := range strings.Split(p.LocalDescription(), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}

// localSDP returns the local description, filtered. sigMu is held.
func (p *Peer) localSDP() string {
	d := p.pc.LocalDescription()
	if d == nil {
		return ""
	}
	if !p.cfg.RelayOnly {
		return d.SDP
	}
	return relayCandidatesOnly(d.SDP)
}

// relayCandidatesOnly drops every a=candidate line that is not of type
// relay.
func relayCandidatesOnly(sdp string) string {
	var b strings.Builder
	b.Grow(len(sdp))
	for rest := sdp; rest != ""; {
		line, tail, found := strings.Cut(rest, "\n")
		rest = tail
		if found {
			line += "\n"
		}
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a="); ok && strings.HasPrefix(c, "candidate:") &&
			candidateType(c) != "relay" {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// candidateType returns the "typ" of a candidate attribute value
// ("candidate:... typ host ..."), or "".
func candidateType(c string) string {
	f := strings.Fields(c)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "typ" {
			return f[i+1]
		}
	}
	return ""
}

// checkSDP bounds a remote description before pion parses it.
func checkSDP(sdp string) error {
	if len(sdp) > MaxSDPBytes {
		return fmt.Errorf("%w: description of %d bytes, the limit is %d", ErrLimit, len(sdp), MaxSDPBytes)
	}
	if n := strings.Count("\n"+sdp, "\nm="); n > MaxMediaSections {
		return fmt.Errorf("%w: description with %d media sections, the limit is %d", ErrLimit, n, MaxMediaSections)
	}
	return nil
}

// OnCandidate sets the function that receives the local ICE candidates to
// trickle to the peer; nil marks the end of a gathering (there is one per
// offer or answer that starts one, ICE restarts included). Candidates
// gathered before OnCandidate is set are held and delivered by this call.
// In relay-only mode only relay candidates are delivered. Calls are made
// one at a time, in order; f must not call OnCandidate.
func (p *Peer) OnCandidate(f func(c *webrtc.ICECandidateInit)) {
	p.candMu.Lock()
	defer p.candMu.Unlock()
	p.onCand = f
	if f == nil {
		return
	}
	q := p.candQueue
	p.candQueue = nil
	for _, c := range q {
		f(c)
	}
}

// localCandidate is pion's OnICECandidate handler; pion calls it from one
// goroutine, in gathering order.
func (p *Peer) localCandidate(c *webrtc.ICECandidate) {
	var init *webrtc.ICECandidateInit
	if c != nil {
		if p.cfg.RelayOnly && c.Typ != webrtc.ICECandidateTypeRelay {
			p.log.Warn("rtcpeer: relay-only: dropped a non-relay local candidate", "type", c.Typ.String())
			return
		}
		j := c.ToJSON()
		init = &j
	}
	p.candMu.Lock()
	defer p.candMu.Unlock()
	if p.onCand != nil {
		p.onCand(init)
		return
	}
	if len(p.candQueue) >= maxLocalCandidateQueue {
		p.log.Warn("rtcpeer: local candidate dropped: no OnCandidate handler and the queue is full")
		return
	}
	p.candQueue = append(p.candQueue, init)
}

// AddCandidate adds a remote ICE candidate; an empty Candidate marks the
// end of the peer's candidates. A candidate that arrives before the remote
// description is queued (at most [MaxPendingCandidates]) and applied with
// it. It returns an error matching [ErrLimit] for a candidate longer than
// [MaxCandidateBytes] or beyond [MaxRemoteCandidates].
func (p *Peer) AddCandidate(c webrtc.ICECandidateInit) error {
	if len(c.Candidate) > MaxCandidateBytes {
		return fmt.Errorf("%w: candidate of %d bytes, the limit is %d", ErrLimit, len(c.Candidate), MaxCandidateBytes)
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.usable(context.Background()); err != nil {
		return err
	}
	if p.remoteCands >= MaxRemoteCandidates {
		return fmt.Errorf("%w: more than %d remote candidates", ErrLimit, MaxRemoteCandidates)
	}
	if p.pc.RemoteDescription() == nil {
		if len(p.pendingCands) >= MaxPendingCandidates {
			return fmt.Errorf("%w: more than %d candidates before the description", ErrLimit, MaxPendingCandidates)
		}
		p.remoteCands++
		p.pendingCands = append(p.pendingCands, c)
		return nil
	}
	p.remoteCands++
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("rtcpeer: add candidate: %w", err)
	}
	return nil
}

// applyPending adds the queued remote candidates. sigMu is held.
func (p *Peer) applyPending() {
	for _, c := range p.pendingCands {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Info("rtcpeer: queued remote candidate refused", "err", err)
		}
	}
	p.pendingCands = nil
}

// usable returns ctx's error, or ErrClosed once Close has started.
func (p *Peer) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return nil
}

// readRTCP reads the RTCP of a sender, which the interceptors need to see
// (NACKs, receiver reports) until the sender stops, and hands it to
// Config.OnRTCP when set.
func (p *Peer) readRTCP(s *webrtc.RTPSender, kind webrtc.RTPCodecType) {
	p.goroutine(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := s.Read(buf)
			if err != nil {
				return
			}
			if p.cfg.OnRTCP == nil {
				continue
			}
			// A compound packet pion could not parse is skipped, not
			// fatal: the interceptors still need the ones after it.
			if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
				p.cfg.OnRTCP(kind, pkts)
			}
		}
	})
}

// readSourceRTCP reads the RTCP of a receiver's track (the peer's sender
// reports about the track ssrc; rid names the track of a simulcast
// receiver, "" for the only one), which the interceptors need to see
// until the receiver stops, and hands it to Config.OnSourceRTCP while the
// track is admitted and the Peer not quiesced. A simulcast receiver has
// a track per rid, each with its own RTCP: Read would read the first
// one's, from every track's goroutine, with an error logged each time.
func (p *Peer) readSourceRTCP(r *webrtc.RTPReceiver, kind webrtc.RTPCodecType, ssrc uint32, rid string) {
	if r == nil {
		return
	}
	read := r.Read
	if rid != "" {
		read = func(b []byte) (int, interceptor.Attributes, error) { return r.ReadSimulcast(b, rid) }
	}
	p.goroutine(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := read(buf)
			if err != nil {
				return
			}
			if p.cfg.OnSourceRTCP == nil || p.gate() != gateOpen {
				continue
			}
			if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
				p.cfg.OnSourceRTCP(kind, ssrc, pkts)
			}
		}
	})
}
