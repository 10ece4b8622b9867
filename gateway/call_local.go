package gateway

// The local leg of a call: the user's own WebRTC peer (the web app's
// browser) on loopback. The gateway answers the browser's offer with a
// media peer of its own (internal/rtcpeer: the web session's DTLS
// certificate, loopback host candidates only, securejingle's SRTP policy)
// and relays media leg to leg with srtp.Forwarder: the browser's tracks
// go to the remote leg's senders once our binding check of the remote leg
// passed, the remote leg's tracks (admitted by that same check) go to the
// browser. Key frame requests (PLI, FIR) cross the relay the other way,
// and RTCP sender and receiver reports cross it end to end
// (call_reports.go).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/srtp"
)

// LocalOffer is the local leg of a call as the user's own WebRTC peer
// (the web app's browser) offers it: [Gateway.PlaceLocalCall] and
// [Gateway.AnswerLocalCall] answer it, and the call's media is relayed
// between it and the remote leg.
type LocalOffer struct {
	// SDP is the peer's offer (RFC 8829) with every candidate it will
	// use (no trickle): audio (Opus) and/or video (VP8), a DTLS
	// fingerprint, host candidates on loopback addresses only.
	SDP string
	// Certificate is the DTLS certificate the gateway presents on the
	// local leg: the web session's, whose fingerprint the page pins and
	// compares with the answer. Nil makes a fresh one for this call.
	Certificate *dtls.Certificate
	// Lifetime, when not nil, bounds the local leg and so the call: once
	// it is done (the web session that placed or answered the call
	// ended: logout, expiry, retirement by a newer login) the local leg
	// ends and the call is hung up, whatever the local peer does. The
	// page that held the session is not trusted to hang up itself.
	Lifetime context.Context
	// ConnectWait is how long the local peer has to connect its media
	// after the answer (0: 30 s). A gateway-mode client answered before
	// the callee accepts waits for the callee first.
	ConnectWait time.Duration
	// Client says the local peer is a gateway-mode XMPP client (plain
	// Jingle, front_call.go), not the web app's browser: the texts of
	// the leg's end say so.
	Client bool
}

// msgClientGone is the end reason of a call whose gateway-mode client
// went away.
const msgClientGone = "your XMPP client disconnected from securejingle: the call was hung up"

// msgLifetimeEnded is the end reason of a call whose [LocalOffer.Lifetime]
// ended.
const msgLifetimeEnded = "the web app session that held this call ended (logged out, expired, or retired by a newer login): the call was hung up"

// Local leg states (CallInfo.LocalLeg).
const (
	LocalLegConnecting = "connecting" // answered; ICE/DTLS with the local peer under way
	LocalLegConnected  = "connected"  // DTLS-SRTP with the local peer is up
	LocalLegEnded      = "ended"      // closed, by the call's end or by the local peer
)

// ErrLocalOffer is matched by a [*LocalOfferError].
var ErrLocalOffer = errors.New("gateway: the local call offer is refused")

// LocalOfferError says why a [LocalOffer] was refused. It matches
// [ErrLocalOffer]; a plain value.
type LocalOfferError struct {
	Reason string // what is wrong and how to fix it, for the user
}

func (e *LocalOfferError) Error() string { return ErrLocalOffer.Error() + ": " + e.Reason }

// Unwrap returns [ErrLocalOffer].
func (e *LocalOfferError) Unwrap() error { return ErrLocalOffer }

func offerRefused(format string, a ...any) error {
	return &LocalOfferError{Reason: fmt.Sprintf(format, a...)}
}

// Bounds and waits of the local leg (implementation constants).
const (
	// maxLocalCandidates bounds the candidates of a local offer: a
	// browser has a few loopback host candidates per media section.
	maxLocalCandidates = 32
	// localGatherWait bounds the gathering of our loopback candidates
	// for the answer (it takes milliseconds).
	localGatherWait = 5 * time.Second
	// defaultLocalConnectWait is how long the local peer has to connect
	// after the answer before the call ends.
	defaultLocalConnectWait = 30 * time.Second
	// keyframeEvery bounds the key frame requests relayed in one
	// direction: a peer that floods PLIs does not make the relay flood
	// the other leg.
	keyframeEvery = 250 * time.Millisecond
)

// PlaceLocalCall is [Gateway.PlaceCall] for a call whose media is the
// local peer of o: the returned answer goes back to that peer, and the
// call's media is relayed between it and the callee's device. The media
// negotiated are those o offers. The call ends when the local leg does
// (the page closed) or does not connect in time.
func (g *Gateway) PlaceLocalCall(ctx context.Context, to jid.JID, o LocalOffer) (_ CallInfo, answer string, _ error) {
	info, _, answer, err := g.placeLocalCall(ctx, to, o)
	return info, answer, err
}

// placeLocalCall is PlaceLocalCall returning the local leg too (the call
// owns it).
func (g *Gateway) placeLocalCall(ctx context.Context, to jid.JID, o LocalOffer) (CallInfo, *localLeg, string, error) {
	l, answer, err := g.newLocalLeg(ctx, o)
	if err != nil {
		return CallInfo{}, nil, "", err
	}
	info, err := g.placeCall(ctx, to, l.media(), l)
	if err != nil {
		l.close()
		return CallInfo{}, nil, "", err
	}
	return info, l, answer, nil
}

// AnswerLocalCall is [Gateway.AnswerCall] for the local peer of o: it
// answers the ringing call id with the media o offers and returns the
// answer for that peer.
func (g *Gateway) AnswerLocalCall(ctx context.Context, id string, o LocalOffer) (answer string, _ error) {
	if err := g.ringingIncoming(id); err != nil {
		return "", err
	}
	l, answer, err := g.newLocalLeg(ctx, o)
	if err != nil {
		return "", err
	}
	if err := g.answerWithLeg(ctx, id, l); err != nil {
		return "", err
	}
	return answer, nil
}

// ringingIncoming reports whether call id is an incoming call that rings
// and is not being answered.
func (g *Gateway) ringingIncoming(id string) error {
	c := g.calls.get(id)
	if c == nil || c.isEnded() {
		return ErrUnknownCall
	}
	c.mu.Lock()
	ok := !c.outgoing && !c.answering && c.info.State == CallRinging
	c.mu.Unlock()
	if !ok {
		return ErrCallState
	}
	return nil
}

// answerWithLeg answers the ringing call id with the local leg l, which
// the call owns once this returns nil; on an error l is closed.
func (g *Gateway) answerWithLeg(ctx context.Context, id string, l *localLeg) error {
	if err := g.answerCall(ctx, id, l.media(), l); err != nil {
		l.close()
		return err
	}
	l.mu.Lock()
	attached := l.call != nil
	l.mu.Unlock()
	if !attached {
		// The call ended as it took the answer: nothing owns the leg.
		l.close()
		return ErrUnknownCall
	}
	return nil
}

// localKinds says what a checked local offer sends and receives.
type localKinds struct{ audio, video bool }

// checkLocalOffer checks the local peer's offer before pion sees it:
// bounded, audio and/or video only (one live section each, with Opus and
// VP8), one DTLS fingerprint of an accepted hash for every section (the
// certificate the local peer must present), and only UDP host candidates
// on loopback addresses (no mDNS names, nothing that makes this host
// probe another).
//
// A section is live unless its port is 0 without a=bundle-only (RFC 8843
// §6: a bundle-only section has port 0 and is negotiated in the BUNDLE
// group). The fingerprints and candidates of every section are checked,
// live or not: pion takes the transport of the bundle's first section,
// whatever its port.
func checkLocalOffer(offer string) (localKinds, error) {
	k, _, err := checkLocalSDP(offer, false)
	return k, err
}

// checkLocalSDP is checkLocalOffer for an offer or answer; client allows
// candidates on this host's own interface addresses too (a gateway-mode
// client, thisHost). It also returns the number of candidates.
func checkLocalSDP(offer string, client bool) (k localKinds, cands int, _ error) {
	if len(offer) > rtcpeer.MaxSDPBytes {
		return k, cands, offerRefused("the offer has %d bytes, the limit is %d", len(offer), rtcpeer.MaxSDPBytes)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return k, cands, offerRefused("the offer is not a session description: %v", err)
	}
	if n := len(d.MediaDescriptions); n == 0 || n > rtcpeer.MaxMediaSections {
		return k, cands, offerRefused("the offer has %d media sections: a call has an audio and a video one", n)
	}
	sessFP, _ := d.Attribute("fingerprint")
	var fp dtls.Fingerprint
	for _, m := range d.MediaDescriptions {
		f, ok := m.Attribute("fingerprint")
		if !ok {
			f = sessFP
		} else if sessFP != "" && f != sessFP {
			return k, cands, offerRefused("the offer names two DTLS fingerprints: one certificate must carry the call")
		}
		_, bundleOnly := m.Attribute("bundle-only")
		live := m.MediaName.Port.Value != 0 || bundleOnly
		if live || f != "" {
			got, err := parseFingerprintAttr(f)
			if err != nil {
				return k, cands, err
			}
			if !fp.IsZero() && !fp.Equal(got) {
				return k, cands, offerRefused("the offer names two DTLS fingerprints: one certificate must carry the call")
			}
			fp = got
		}
		for _, a := range m.Attributes {
			if a.Key != "candidate" {
				continue
			}
			if cands++; cands > maxLocalCandidates {
				return k, cands, offerRefused("the offer has more than %d candidates", maxLocalCandidates)
			}
			if err := checkLocalCandidate(a.Value, client); err != nil {
				return k, cands, err
			}
		}
		if !live {
			continue // a rejected section
		}
		kind := m.MediaName.Media
		var codec string
		switch kind {
		case "audio":
			if k.audio {
				return k, cands, offerRefused("the offer has two audio sections: offer one microphone track")
			}
			k.audio, codec = true, "opus"
		case "video":
			if k.video {
				return k, cands, offerRefused("the offer has two video sections: offer one camera track")
			}
			k.video, codec = true, "vp8"
		default:
			return k, cands, offerRefused("the offer has a %q section: a call relays audio and video only", boundText(kind))
		}
		if !hasCodec(m, codec) {
			return k, cands, offerRefused("the %s section offers no %s: the relay needs Opus audio and VP8 video", kind, codec)
		}
		for _, a := range m.Attributes {
			if a.Key == "rid" || a.Key == "simulcast" {
				// Each rid would be a track of its own to read and
				// relay, as many as the offer names; the remote leg
				// refuses simulcast too.
				return k, cands, offerRefused("the %s section offers simulcast (a=%s): send one stream per kind", kind, a.Key)
			}
		}
	}
	if !k.audio && !k.video {
		return k, cands, offerRefused("the offer has neither audio nor video")
	}
	return k, cands, nil
}

// hasCodec reports whether media section m offers the codec name (an
// a=rtpmap encoding name, case-insensitive).
func hasCodec(m *sdp.MediaDescription, name string) bool {
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		_, enc, _ := strings.Cut(a.Value, " ")
		enc, _, _ = strings.Cut(enc, "/")
		if strings.EqualFold(enc, name) {
			return true
		}
	}
	return false
}

// parseFingerprintAttr parses an a=fingerprint value ("sha-256 AB:CD:..").
func parseFingerprintAttr(v string) (dtls.Fingerprint, error) {
	if v == "" {
		return dtls.Fingerprint{}, offerRefused("the offer has no DTLS fingerprint: the local peer's certificate would not be pinned")
	}
	hash, value, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return dtls.Fingerprint{}, offerRefused("the offer's DTLS fingerprint %q is malformed", boundText(v))
	}
	f, err := dtls.ParseFingerprint(hash, strings.TrimSpace(value))
	if err != nil {
		return dtls.Fingerprint{}, offerRefused("the offer's DTLS fingerprint is refused: %v", err)
	}
	return f, nil
}

// checkLocalCandidate accepts a UDP host candidate on a loopback IP
// address only, or (client) on an address of this host (thisHost).
func checkLocalCandidate(v string, client bool) error {
	c, err := ice.UnmarshalCandidate(v)
	if err != nil {
		return offerRefused("the offer has a malformed candidate: %v", err)
	}
	a, err := netip.ParseAddr(c.Address())
	if client && err == nil && thisHost(a) {
		err = nil
	} else if err != nil || !a.Unmap().IsLoopback() {
		return offerRefused("the offer has a candidate at %q: the local leg takes loopback addresses only (open the web app at the link `securejingle ui` prints, and do not use mDNS host names)", boundText(c.Address()))
	}
	if c.Type() != ice.CandidateTypeHost || c.NetworkType() != ice.NetworkTypeUDP4 && c.NetworkType() != ice.NetworkTypeUDP6 {
		return offerRefused("the offer has a %s %s candidate: the local leg takes UDP host candidates only", c.NetworkType(), c.Type())
	}
	return nil
}

// thisHost reports whether a is an address of this host: loopback, or
// one of its interfaces' (a gateway-mode client on this machine gathers
// its LAN addresses and, like libnice, often no loopback one; ICE from
// our loopback candidates to them stays on this host).
func thisHost(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// boundText shortens a text from the local peer for a message.
func boundText(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// Kinds of the relay's tracks (indices of its arrays).
const (
	kindAudio = iota
	kindVideo
)

func kindIndex(k webrtc.RTPCodecType) int {
	if k == webrtc.RTPCodecTypeVideo {
		return kindVideo
	}
	return kindAudio
}

// localLeg is the local peer's leg of one call and the relay between it
// and the remote leg. It is made before the call (the answer must go back
// to the local peer first) and attached to it; after attach the call owns
// it and closes it. Its methods are safe for concurrent use.
type localLeg struct {
	g     *Gateway
	peer  *rtcpeer.Peer
	cert  *dtls.Certificate
	kinds localKinds
	// toLocal are sent to the local peer and fed from the remote leg;
	// toRemote are the remote leg's senders, fed from the local peer.
	toLocal, toRemote [2]*webrtc.TrackLocalStaticRTP
	relayOn           chan struct{} // closed once the remote leg's binding passed
	relayOnce         sync.Once
	connected         chan struct{} // closed when the local leg connected
	connectedOnce     sync.Once
	wait              *time.Timer // ends a local leg that does not connect
	stopLife          func() bool // stops the AfterFunc of LocalOffer.Lifetime
	closeOnce         sync.Once
	quiet             atomic.Bool // quiesce: no more reports cross the relay

	mu        sync.Mutex
	call      *call         // once attached
	remote    *rtcpeer.Peer // the remote leg once made
	dead      string        // why the local leg ended ("" while it lives)
	localSSRC [2]uint32     // the local peer's tracks (a key frame request from the remote goes to them)
	peerSSRC  [2]uint32     // the remote leg's tracks (one from the local peer goes to them)
	lastKey   [2]time.Time  // last key frame request relayed: to the local peer, to the remote
	// lastReport: the last RTCP report relayed [direction: to the local
	// peer, to the remote][kind][reportSR, reportRR].
	lastReport [2][2][2]time.Time
	fwd        [2][2][]*srtp.Forwarder // [direction: to the remote, to the local peer][kind]
	muted      [2]bool                 // MuteCall: the local peer's media of that kind is not forwarded
	released   bool                    // the local leg's slot in the call table was given back
	trickled   int                     // candidates addCandidate took
	client     bool                    // LocalOffer.Client
}

// newLocalLeg checks o, makes the local leg and returns it with its
// answer (every candidate gathered).
func (g *Gateway) newLocalLeg(ctx context.Context, o LocalOffer) (*localLeg, string, error) {
	kinds, cands, err := checkLocalSDP(o.SDP, o.Client)
	if err != nil {
		return nil, "", err
	}
	if !g.calls.takeLocal() {
		return nil, "", ErrTooManyCalls
	}
	l, answer, err := g.makeLocalLeg(ctx, o, kinds)
	if err != nil {
		g.calls.giveLocal()
		return nil, "", err
	}
	l.trickled = cands // the offer's count against maxLocalCandidates
	return l, answer, nil
}

// newLocalOfferLeg makes a local leg that offers kinds to the local peer
// (a plain Jingle client of gateway mode answering an incoming call,
// front_call.go): it returns the leg with its offer (every candidate
// gathered); [localLeg.takeAnswer] applies the peer's answer. o.SDP is
// ignored. With slot false the leg takes no slot of the call table's
// local legs (its caller holds one for it, see ownSlot).
func (g *Gateway) newLocalOfferLeg(ctx context.Context, o LocalOffer, kinds localKinds, slot bool) (*localLeg, string, error) {
	if !kinds.audio && !kinds.video {
		return nil, "", ErrNoMedia
	}
	if slot && !g.calls.takeLocal() {
		return nil, "", ErrTooManyCalls
	}
	o.SDP = ""
	l, offer, err := g.makeLocalLeg(ctx, o, kinds)
	if err != nil {
		if slot {
			g.calls.giveLocal()
		}
		return nil, "", err
	}
	l.released = !slot // a leg without a slot gives none back
	return l, offer, nil
}

// ownSlot makes a leg of newLocalOfferLeg made without a slot the owner
// of one its caller took (a ringing call's, front_call.go): close gives
// it back.
func (l *localLeg) ownSlot() {
	l.mu.Lock()
	l.released = false
	l.mu.Unlock()
}

// takeAnswer applies the local peer's answer to the offer of a leg made
// by newLocalOfferLeg, checked as an offer is (checkLocalOffer): the
// media it accepts, of those offered, are the leg's from now on.
func (l *localLeg) takeAnswer(answer string) error {
	kinds, cands, err := checkLocalSDP(answer, l.client)
	if err != nil {
		return err
	}
	if kinds.audio && !l.kinds.audio || kinds.video && !l.kinds.video {
		return offerRefused("the answer accepts media that were not offered")
	}
	if err := l.peer.SetAnswer(answer); err != nil {
		return offerRefused("the answer was not accepted: %v", err)
	}
	l.mu.Lock()
	l.kinds = kinds
	l.trickled += cands // the answer's, with those trickled before, against maxLocalCandidates
	l.mu.Unlock()
	return nil
}

// addCandidate applies a candidate the local peer trickles (a XEP-0176
// transport-info of a gateway-mode client): a UDP host candidate on
// loopback only, at most maxLocalCandidates a leg, counting those of its
// offer or answer.
func (l *localLeg) addCandidate(mid, line string) error {
	if err := checkLocalCandidate(line, l.client); err != nil {
		return err
	}
	l.mu.Lock()
	l.trickled++
	n := l.trickled
	l.mu.Unlock()
	if n > maxLocalCandidates {
		return offerRefused("more than %d candidates", maxLocalCandidates)
	}
	return l.peer.AddCandidate(webrtc.ICECandidateInit{Candidate: line, SDPMid: &mid})
}

// makeLocalLeg makes the local leg of kinds: with o.SDP, the answer to
// that offer; without, an offer of its own (newLocalOfferLeg). It returns
// the leg and its description once every candidate is gathered.
func (g *Gateway) makeLocalLeg(ctx context.Context, o LocalOffer, kinds localKinds) (*localLeg, string, error) {
	cert := o.Certificate
	if cert == nil {
		var err error
		if cert, err = dtls.NewCertificate(); err != nil {
			return nil, "", fmt.Errorf("gateway: local leg certificate: %w", err)
		}
	}
	l := &localLeg{g: g, cert: cert, kinds: kinds, client: o.Client, relayOn: make(chan struct{}), connected: make(chan struct{})}
	for i, codec := range []webrtc.RTPCodecCapability{rtcpeer.OpusCodec(), rtcpeer.VP8Codec()} {
		kind := [2]string{"audio", "video"}[i]
		var err error
		if l.toLocal[i], err = webrtc.NewTrackLocalStaticRTP(codec, kind, "securejingle-peer"); err != nil {
			return nil, "", fmt.Errorf("gateway: local leg track: %w", err)
		}
		if l.toRemote[i], err = webrtc.NewTrackLocalStaticRTP(codec, kind, "securejingle-local"); err != nil {
			return nil, "", fmt.Errorf("gateway: relay track: %w", err)
		}
	}
	cfg := rtcpeer.Config{
		Name: "local", Certificate: cert.WebRTC(),
		LoopbackOnly: true,
		Audio:        kinds.audio, Video: kinds.video,
		OnTrack: l.fromLocal, OnRTCP: l.rtcpFromLocal,
		OnSourceRTCP: l.sourceFromLocal, RelayReports: true,
		Logger: g.log,
	}
	if kinds.audio {
		cfg.SendAudio = l.toLocal[kindAudio]
	}
	if kinds.video {
		cfg.SendVideo = l.toLocal[kindVideo]
	}
	peer, err := rtcpeer.New(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("gateway: local leg: %w", err)
	}
	l.peer = peer
	// The local peer is who the authenticated offer says (pion checks its
	// certificate against the offer's fingerprint): its media is taken at
	// once, and waits in fromLocal for the remote leg's binding check.
	peer.Admit()
	gathered := make(chan struct{})
	var once sync.Once
	peer.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			once.Do(func() { close(gathered) })
		}
	})
	peer.OnStateChange(l.stateChanged)
	if o.SDP != "" {
		_, err = peer.AcceptOffer(ctx, o.SDP)
	} else {
		_, err = peer.CreateOffer(ctx)
	}
	if err == nil {
		t := time.NewTimer(localGatherWait)
		select {
		case <-gathered:
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
			err = errors.New("gathering loopback candidates did not finish")
		}
		t.Stop()
	}
	if err != nil {
		peer.Close()
		var le *LocalOfferError
		if errors.As(err, &le) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, "", err
		}
		return nil, "", offerRefused("the offer was not accepted: %v", err)
	}
	desc := peer.LocalDescription()
	if desc == "" {
		peer.Close()
		return nil, "", offerRefused("no answer was made")
	}
	wait := o.ConnectWait
	if wait <= 0 {
		wait = g.callHooks.localConnectWait
	}
	if wait <= 0 {
		wait = defaultLocalConnectWait
	}
	l.wait = time.AfterFunc(wait, func() {
		select {
		case <-l.connected:
		default:
			if l.client {
				l.died(fmt.Sprintf("your XMPP client did not connect its media to securejingle within %v: call again", wait))
				return
			}
			l.died(fmt.Sprintf("the browser did not connect its media to this daemon within %v: reload the page and call again", wait))
		}
	})
	if o.Lifetime != nil {
		// One registration per local leg, released by close: bounded by
		// the local legs (takeLocal).
		l.stopLife = context.AfterFunc(o.Lifetime, func() {
			if l.client {
				l.died(msgClientGone)
				return
			}
			l.died(msgLifetimeEnded)
		})
	}
	return l, desc, nil
}

// media is what the call negotiates with the remote leg: what the local
// peer offers.
func (l *localLeg) media() CallMedia {
	l.mu.Lock()
	defer l.mu.Unlock()
	return CallMedia{Audio: l.kinds.audio, Video: l.kinds.video}
}

// attach gives the leg to call c, which reports its end from now on.
func (l *localLeg) attach(c *call) {
	l.mu.Lock()
	l.call = c
	dead := l.dead != ""
	l.mu.Unlock()
	c.update(func(in *CallInfo) {
		in.LocalLeg, in.LocalLegFingerprint = LocalLegConnecting, l.cert.Fingerprint().String()
	})
	c.notePion(func(e *pionEvents) { e.local = e.local || dead })
	select {
	case <-l.connected:
		c.notePion(func(e *pionEvents) { e.localUp = true })
	default:
	}
}

// stateChanged is the local leg's state callback (pion's goroutine).
func (l *localLeg) stateChanged(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		l.connectedOnce.Do(func() { close(l.connected) })
		l.mu.Lock()
		c := l.call
		l.mu.Unlock()
		if c != nil {
			c.notePion(func(e *pionEvents) { e.localUp = true })
		}
	case webrtc.PeerConnectionStateFailed:
		if l.client {
			l.died("your XMPP client's media connection to securejingle failed (it stopped answering ICE): call again")
			return
		}
		l.died("the browser's media connection to this daemon failed (the page stopped answering ICE): call again from the page")
	case webrtc.PeerConnectionStateClosed:
		if l.client {
			l.died("your XMPP client closed its media connection (it hung up or went away): call again")
			return
		}
		l.died("the browser closed its media connection (the page was closed or reloaded, or hung up): call again from the page")
	}
}

// died records why the local leg ended and tells the call.
func (l *localLeg) died(why string) {
	l.mu.Lock()
	if l.dead == "" {
		l.dead = why
	}
	c := l.call
	l.mu.Unlock()
	if c != nil {
		c.notePion(func(e *pionEvents) { e.local = true })
	}
}

func (l *localLeg) deadReason() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dead
}

// relayOptions are the remote leg's settings that make it the other end
// of the relay.
func (l *localLeg) remoteConfig(cfg *rtcpeer.Config) {
	if cfg.Audio {
		cfg.SendAudio = l.toRemote[kindAudio]
	}
	if cfg.Video {
		cfg.SendVideo = l.toRemote[kindVideo]
	}
	cfg.OnTrack, cfg.OnRTCP = l.fromRemote, l.rtcpFromRemote
	cfg.OnSourceRTCP, cfg.RelayReports = l.sourceFromRemote, true
}

// setRemote records the remote leg once it is made.
func (l *localLeg) setRemote(p *rtcpeer.Peer) {
	l.mu.Lock()
	l.remote = p
	l.mu.Unlock()
}

// startRelay: the remote leg's binding check passed; the local peer's
// media goes out from now on (fromLocal).
func (l *localLeg) startRelay() {
	l.relayOnce.Do(func() { close(l.relayOn) })
}

// fromLocal takes a track of the local peer (its OnTrack): it is read and
// discarded until the remote leg's binding check passed, then forwarded
// to the remote leg's sender of its kind. ctx ends with the local leg.
func (l *localLeg) fromLocal(ctx context.Context, tr *webrtc.TrackRemote) {
	k := kindIndex(tr.Kind())
	l.mu.Lock()
	if l.localSSRC[k] == 0 {
		l.localSSRC[k] = uint32(tr.SSRC())
	}
	l.mu.Unlock()
	buf := make([]byte, 1500)
	for waiting := true; waiting; {
		select {
		case <-l.relayOn:
			waiting = false
			continue
		case <-ctx.Done():
			return
		default:
		}
		if _, _, err := tr.Read(buf); err != nil {
			return
		}
	}
	if k == kindVideo {
		l.keyframe(kindVideo, true) // the remote starts decoding at once
	}
	l.forward(ctx, k, tr, l.toRemote[k])
}

// fromRemote takes a track of the remote leg once our binding check
// admitted it (its OnTrack) and forwards it to the local peer; ctx ends
// with the remote leg's media.
func (l *localLeg) fromRemote(ctx context.Context, tr *webrtc.TrackRemote) {
	k := kindIndex(tr.Kind())
	l.mu.Lock()
	if l.peerSSRC[k] == 0 {
		l.peerSSRC[k] = uint32(tr.SSRC())
	}
	l.mu.Unlock()
	if k == kindVideo {
		l.keyframe(kindVideo, false) // the frames before the check were discarded
	}
	l.forward(ctx, k, tr, l.toLocal[k])
}

// forward runs a Forwarder from tr to out until either ends. A second
// track of one kind (out already fed: ErrTrackInUse) is read and
// discarded: two sources on one sender would reuse SRTP indices.
func (l *localLeg) forward(ctx context.Context, k int, tr *webrtc.TrackRemote, out *webrtc.TrackLocalStaticRTP) {
	f, err := srtp.NewForwarder(tr, out)
	if err != nil {
		l.g.log.Info("relay: a second track of one kind is not forwarded", "kind", tr.Kind().String(), "err", err)
		buf := make([]byte, 1500)
		for ctx.Err() == nil {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
		return
	}
	dir := 0
	if out == l.toLocal[k] {
		dir = 1
	}
	l.mu.Lock()
	l.fwd[dir][k] = append(l.fwd[dir][k], f)
	f.SetPaused(dir == 0 && l.muted[k])
	l.mu.Unlock()
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		l.g.log.Info("relay", "kind", tr.Kind().String(), "err", err)
	}
}

// relayed returns the RTP packets forwarded to the remote leg and to the
// local peer.
func (l *localLeg) relayed() (toRemote, toLocal uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.fwd[0] {
		for _, f := range l.fwd[0][k] {
			toRemote += f.Stats().Packets
		}
		for _, f := range l.fwd[1][k] {
			toLocal += f.Stats().Packets
		}
	}
	return toRemote, toLocal
}

// setMuted stops (or resumes) forwarding the local peer's media of kind
// k; resumed video starts with a key frame.
func (l *localLeg) setMuted(k int, muted bool) {
	l.mu.Lock()
	was := l.muted[k]
	l.muted[k] = muted
	for _, f := range l.fwd[0][k] {
		f.SetPaused(muted)
	}
	l.mu.Unlock()
	if was && !muted && k == kindVideo {
		l.keyframe(kindVideo, true)
	}
}

// rtcpFromLocal: the local peer's RTCP about what we send it (the remote
// leg's media); its key frame requests and its report about that media
// go to the remote leg.
func (l *localLeg) rtcpFromLocal(kind webrtc.RTPCodecType, pkts []rtcp.Packet) {
	l.relayReportBlock(true, kind, pkts)
	if kind == webrtc.RTPCodecTypeVideo && wantsKeyframe(pkts) {
		l.keyframe(kindVideo, false)
	}
}

// rtcpFromRemote: the remote leg's RTCP about what we send it (the local
// peer's media); its key frame requests and its report about that media
// go to the local peer.
func (l *localLeg) rtcpFromRemote(kind webrtc.RTPCodecType, pkts []rtcp.Packet) {
	l.relayReportBlock(false, kind, pkts)
	if kind == webrtc.RTPCodecTypeVideo && wantsKeyframe(pkts) {
		l.keyframe(kindVideo, true)
	}
}

func wantsKeyframe(pkts []rtcp.Packet) bool {
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			return true
		}
	}
	return false
}

// keyframe asks the source of kind k for a key frame: the local peer
// (toLocalPeer) or the remote leg's peer, at most one request per
// keyframeEvery in each direction.
func (l *localLeg) keyframe(k int, toLocalPeer bool) {
	dir := 1
	if toLocalPeer {
		dir = 0
	}
	l.mu.Lock()
	now := time.Now()
	p, ssrc := l.remote, l.peerSSRC[k]
	if toLocalPeer {
		p, ssrc = l.peer, l.localSSRC[k]
	}
	if p == nil || ssrc == 0 || now.Sub(l.lastKey[dir]) < keyframeEvery {
		l.mu.Unlock()
		return
	}
	l.lastKey[dir] = now
	l.mu.Unlock()
	if err := p.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		l.g.log.Debug("relay: key frame request", "err", err)
	}
}

// srtpProfile is the SRTP profile of the local leg ("" before DTLS).
func (l *localLeg) srtpProfile() string {
	if p, ok := l.peer.SRTPProfile(); ok {
		return srtp.ProfileName(p)
	}
	return ""
}

// quiesce stops the relay: nothing more goes to either leg.
func (l *localLeg) quiesce() {
	l.quiet.Store(true)
	l.peer.Quiesce()
}

// close ends the local leg (a DTLS close_notify tells the local peer) and
// waits for its goroutines. It is safe to call more than once.
func (l *localLeg) close() {
	l.closeOnce.Do(func() {
		if l.wait != nil {
			l.wait.Stop()
		}
		if l.stopLife != nil {
			l.stopLife()
		}
		l.peer.Close()
		l.mu.Lock()
		release := !l.released
		l.released = true
		l.mu.Unlock()
		if release {
			l.g.calls.giveLocal()
		}
	})
}
