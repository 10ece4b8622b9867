package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/localpeer"
	"github.com/securejingle/securejingle/internal/pionpair"
	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/jingle"
)

func sessionCert(t *testing.T) *dtls.Certificate {
	t.Helper()
	c, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connectedLocal is a call that is connected, bound and relayed.
func connectedLocal(in CallInfo) bool {
	return in.State == CallConnected && in.Binding == BindingPassed && in.LocalLeg == LocalLegConnected
}

// localCall places a call from alice's stand-in to bob's, answered by
// bob's stand-in, and waits until both are connected end to end.
func localCall(t *testing.T, a, b *testGateway) (sa, sb *localpeer.Peer, id string) {
	t.Helper()
	ctx := testCtx(t)
	certA, certB := sessionCert(t), sessionCert(t)
	sa, sb = localpeer.New(t, "alice", certA), localpeer.New(t, "bob", certB)
	info, answer, err := a.PlaceLocalCall(ctx, bobJID, LocalOffer{SDP: sa.Offer(t), Certificate: certA})
	if err != nil {
		t.Fatal(err)
	}
	sa.Answered(t, answer, localpeer.Pinned(certA))
	b.waitCall(t, info.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
	answer, err = b.AnswerLocalCall(ctx, info.ID, LocalOffer{SDP: sb.Offer(t), Certificate: certB})
	if err != nil {
		t.Fatal(err)
	}
	sb.Answered(t, answer, localpeer.Pinned(certB))
	a.waitCall(t, info.ID, "connected and relayed", connectedLocal)
	b.waitCall(t, info.ID, "connected and relayed", connectedLocal)
	return sa, sb, info.ID
}

// TestLocalCallRelay: media flows stand-in → daemon → daemon → stand-in
// both ways, unaltered and complete; the call reports both legs.
func TestLocalCallRelay(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, sb, id := localCall(t, a, b)
	sa.StartPlayback()
	sb.StartPlayback()
	sb.Received(t)
	sa.Received(t)

	for _, g := range []*testGateway{a, b} {
		in, _ := g.Call(id)
		if in.LocalSRTPProfile == "" || in.SRTPProfile == "" || in.LocalLegFingerprint == "" {
			t.Errorf("%s: call %+v: want both legs' SRTP profiles and the local leg's fingerprint", g.bare(), in)
		}
		if in.RelayedToPeer < localpeer.Packets || in.RelayedToLocal < localpeer.Packets {
			t.Errorf("%s: relayed %d to the peer, %d to the local peer", g.bare(), in.RelayedToPeer, in.RelayedToLocal)
		}
	}
	if err := a.HangUp(testCtx(t), id); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*testGateway{a, b} {
		in := g.waitEnded(t, id)
		if in.EndReason != string(jingle.ReasonSuccess) || in.LocalLeg != LocalLegEnded {
			t.Errorf("%s: ended %s (%s), local leg %q", g.bare(), in.EndReason, in.Detail, in.LocalLeg)
		}
	}
	sa.SameMedia(t, sb)
	sb.SameMedia(t, sa)
}

// TestLocalCallKeyframeRelay: a key frame request of bob's browser (a
// PLI about alice's video) crosses both daemons to alice's browser, so
// that video recovers after a loss.
func TestLocalCallKeyframeRelay(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, sb, _ := localCall(t, a, b)
	sa.StartPlayback()
	sb.StartPlayback()
	sb.Received(t) // the relay's own requests at its start are behind us
	base := sa.KeyframeRequests()
	deadline := time.Now().Add(pionpair.ConnectTimeout)
	for sa.KeyframeRequests() == base {
		if time.Now().After(deadline) {
			t.Fatal("bob's key frame requests never reached alice's browser")
		}
		sb.RequestKeyframe(t)
		time.Sleep(2 * keyframeEvery)
	}
}

// TestLocalLegClosedEndsCall: the page goes away (its peer closes): the
// call ends on both sides, here with a reason that says so.
func TestLocalLegClosedEndsCall(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, sb, id := localCall(t, a, b)
	sb.Close()
	in := b.waitEnded(t, id)
	if in.EndReason != string(jingle.ReasonGone) || !strings.Contains(in.Detail, "browser") {
		t.Errorf("bob: ended %s (%s), want gone and the browser named", in.EndReason, in.Detail)
	}
	if in := a.waitEnded(t, id); in.EndReason != string(jingle.ReasonGone) {
		t.Errorf("alice: ended %s (%s), want gone", in.EndReason, in.Detail)
	}
	// Alice's page learns it from its leg: the daemon closed it.
	select {
	case <-sa.Done():
	case <-time.After(pionpair.ConnectTimeout):
		t.Fatal("alice's local leg was not closed")
	}
}

// TestLocalLegLifetimeEndsCall: the local leg's Lifetime (the web
// session) ends while the call runs and the local peer does nothing: the
// daemon hangs the call up on both sides, and closes the local leg.
func TestLocalLegLifetimeEndsCall(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	life, end := context.WithCancel(context.Background())
	defer end()
	certA, certB := sessionCert(t), sessionCert(t)
	sa, sb := localpeer.New(t, "alice", certA), localpeer.New(t, "bob", certB)
	info, answer, err := a.PlaceLocalCall(ctx, bobJID, LocalOffer{SDP: sa.Offer(t), Certificate: certA, Lifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	sa.Answered(t, answer, localpeer.Pinned(certA))
	b.waitCall(t, info.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
	answer, err = b.AnswerLocalCall(ctx, info.ID, LocalOffer{SDP: sb.Offer(t), Certificate: certB})
	if err != nil {
		t.Fatal(err)
	}
	sb.Answered(t, answer, localpeer.Pinned(certB))
	a.waitCall(t, info.ID, "connected and relayed", connectedLocal)
	end()
	in := a.waitEnded(t, info.ID)
	if in.EndReason != string(jingle.ReasonGone) || in.Detail != msgLifetimeEnded || in.LocalLeg != LocalLegEnded {
		t.Errorf("alice: ended %s (%s), local leg %q: want gone, the session's end named", in.EndReason, in.Detail, in.LocalLeg)
	}
	if in := b.waitEnded(t, info.ID); in.EndReason != string(jingle.ReasonGone) {
		t.Errorf("bob: ended %s (%s), want gone", in.EndReason, in.Detail)
	}
	select {
	case <-sa.Done():
	case <-time.After(pionpair.ConnectTimeout):
		t.Fatal("alice's local leg was not closed")
	}
}

// TestLocalLegWrongCertificate: a local peer whose DTLS certificate is
// not the one its offer names never connects; the call ends with a
// reason naming the browser, not as a silent hang.
func TestLocalLegWrongCertificate(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, func(g *Gateway) { g.callHooks.localConnectWait = 3 * time.Second }, nil)
	cert := sessionCert(t)
	s := localpeer.New(t, "alice", nil)
	other := sessionCert(t)
	offer := s.Offer(t)
	offer = replaceFingerprint(t, offer, other.Fingerprint())
	info, answer, err := a.PlaceLocalCall(testCtx(t), bobJID, LocalOffer{SDP: offer, Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	s.Answered(t, answer, localpeer.Pinned(cert))
	in := a.waitEnded(t, info.ID)
	if in.EndReason != string(jingle.ReasonGone) || !strings.Contains(in.Detail, "browser") || in.Binding == BindingPassed {
		t.Errorf("ended %s (%s), binding %s", in.EndReason, in.Detail, in.Binding)
	}
	b.waitEnded(t, info.ID) // the proposal was retracted
}

func replaceFingerprint(t *testing.T, sdp string, f dtls.Fingerprint) string {
	t.Helper()
	var b strings.Builder
	n := 0
	for _, l := range strings.SplitAfter(sdp, "\n") {
		if strings.HasPrefix(l, "a=fingerprint:") {
			l = "a=fingerprint:" + f.Hash + " " + f.String() + "\r\n"
			n++
		}
		b.WriteString(l)
	}
	if n == 0 {
		t.Fatal("offer without fingerprint")
	}
	return b.String()
}

// browserLikeOffer is an offer of a pion peer with pion's default codecs
// (Opus, VP8, VP9, H264, AV1, RTX...) on loopback, as a browser makes one.
func browserLikeOffer(t *testing.T) string {
	t.Helper()
	p := pionpair.New(t, "browser", nil)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := p.PC.AddTransceiverFromKind(k); err != nil {
			t.Fatal(err)
		}
	}
	return pionpair.LocalDescription(t, p.PC, true).SDP
}

// TestLocalOfferChecks: a browser-like offer is taken; an offer that
// names no or two certificates, a candidate off loopback (an address, an
// mDNS name), a TCP or relayed candidate, a section that is neither audio
// nor video or lacks the relay's codec, or that is too big is refused
// before pion sees it.
func TestLocalOfferChecks(t *testing.T) {
	good := browserLikeOffer(t)
	if !strings.Contains(good, "a=candidate:") || !strings.Contains(good, "H264") {
		t.Fatalf("offer without candidates or without the other codecs:\n%s", good)
	}
	if k, err := checkLocalOffer(good); err != nil || !k.audio || !k.video {
		t.Fatalf("browser-like offer: %+v, %v", k, err)
	}
	cand := func(sdp, with string) string {
		var b strings.Builder
		for _, l := range strings.SplitAfter(sdp, "\n") {
			if strings.HasPrefix(l, "a=candidate:") {
				l = "a=candidate:" + with + "\r\n"
			}
			b.WriteString(l)
		}
		return b.String()
	}
	dropLines := func(sdp, prefix string) string {
		var b strings.Builder
		for _, l := range strings.SplitAfter(sdp, "\n") {
			if !strings.HasPrefix(l, prefix) {
				b.WriteString(l)
			}
		}
		return b.String()
	}
	for name, offer := range map[string]string{
		"no fingerprint":   dropLines(good, "a=fingerprint:"),
		"two fingerprints": replaceFirstFingerprint(t, good),
		"md5 fingerprint":  strings.Replace(good, "a=fingerprint:sha-256", "a=fingerprint:md5", 1),
		"off loopback":     cand(good, "1 1 udp 2130706431 192.0.2.7 50000 typ host"),
		"link-local":       cand(good, "1 1 udp 2130706431 fe80::1 50000 typ host"),
		"mdns name":        cand(good, "1 1 udp 2130706431 3f4e5d6c-1111-2222-3333-444455556666.local 50000 typ host"),
		"tcp":              cand(good, "1 1 tcp 2130706431 127.0.0.1 50000 typ host tcptype passive"),
		"relayed":          cand(good, "1 1 udp 16777215 127.0.0.1 50000 typ relay raddr 0.0.0.0 rport 0"),
		"data channel":     good + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n",
		"no opus":          strings.ReplaceAll(good, "opus/48000", "foo/48000"),
		"no vp8":           strings.ReplaceAll(good, "VP8/90000", "XYZ/90000"),
		"not sdp":          "hello",
		// Each rid is a track of its own to read and relay.
		"simulcast": good + "a=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n",
		"a rid":     good + "a=rid:h send\r\n",
		// A rejected section's candidates and fingerprint are checked:
		// pion takes the transport of the bundle's first section,
		// whatever its port.
		"candidate in a rejected section": good + "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:9\r\n" +
			"a=candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host\r\n",
		"first section rejected, off loopback": rejectFirst(t, good, "a=candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host\r\n"),
		"fingerprint in a rejected section":    rejectFirst(t, good, "a=fingerprint:sha-256 "+sessionCert(t).Fingerprint().String()+"\r\n"),
		// A bundle-only section (port 0) is live in the BUNDLE group.
		"bundle-only data channel": good + "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\na=mid:2\r\n",
		"bundle-only second audio": good + "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\na=mid:3\r\na=rtpmap:111 opus/48000/2\r\n",
		"too big":                  good + strings.Repeat("a=x-pad:"+strings.Repeat("p", 100)+"\r\n", rtcpeer.MaxSDPBytes/100),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := checkLocalOffer(offer); !errors.Is(err, ErrLocalOffer) {
				t.Fatalf("checkLocalOffer: %v, want ErrLocalOffer", err)
			}
		})
	}
}

// rejectFirst sets the first media section's port to 0 and replaces its
// candidates and fingerprint by extra.
func rejectFirst(t *testing.T, sdp, extra string) string {
	t.Helper()
	var b strings.Builder
	section := 0
	for _, l := range strings.SplitAfter(sdp, "\n") {
		if strings.HasPrefix(l, "m=") {
			section++
			if section == 1 {
				f := strings.Fields(l)
				f[1] = "0"
				l = strings.Join(f, " ") + "\r\n"
				b.WriteString(l)
				b.WriteString(extra)
				continue
			}
		}
		if section == 1 && (strings.HasPrefix(l, "a=candidate:") || strings.HasPrefix(l, "a=fingerprint:")) {
			continue
		}
		b.WriteString(l)
	}
	if section < 2 {
		t.Fatal("offer with fewer than two sections")
	}
	return b.String()
}

// replaceFirstFingerprint gives the first media section a fingerprint
// of its own.
func replaceFirstFingerprint(t *testing.T, sdp string) string {
	t.Helper()
	other := sessionCert(t).Fingerprint()
	var b strings.Builder
	done := false
	for _, l := range strings.SplitAfter(sdp, "\n") {
		if !done && strings.HasPrefix(l, "a=fingerprint:") {
			continue // the session's or the first section's
		}
		b.WriteString(l)
		if !done && strings.HasPrefix(l, "m=") {
			b.WriteString("a=fingerprint:sha-256 " + other.String() + "\r\n")
			done = true
		}
	}
	return b.String()
}

// TestPlaceLocalCallRefusedOffer: a refused offer places no call and
// leaves no local leg behind.
func TestPlaceLocalCallRefusedOffer(t *testing.T) {
	noLeaks(t)
	_, a, _ := callPair(t, nil, nil)
	good := browserLikeOffer(t)
	offer := strings.Replace(good, "127.0.0.1", "192.0.2.7", -1)
	if _, _, err := a.PlaceLocalCall(testCtx(t), bobJID, LocalOffer{SDP: offer}); !errors.Is(err, ErrLocalOffer) {
		t.Fatalf("PlaceLocalCall: %v, want ErrLocalOffer", err)
	}
	if cs := a.Calls(); len(cs) != 0 {
		t.Fatalf("calls after a refused offer: %+v", cs)
	}
	a.calls.mu.Lock()
	n := a.calls.locals
	a.calls.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d local legs left", n)
	}
}

// dropped returns the packets of the local peer not forwarded (muted,
// duplicates, cut short).
func (l *localLeg) dropped() (n uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.fwd[0] {
		for _, f := range l.fwd[0][k] {
			n += f.Stats().Dropped
		}
	}
	return n
}

// TestLocalCallMute: alice mutes: bob's call shows her muted (XEP-0167
// mute in a protected session-info) and her daemon stops forwarding what
// her browser sends; unmuted, both go back.
func TestLocalCallMute(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, _, id := localCall(t, a, b)
	sa.StartPlayback()
	if err := a.MuteCall(testCtx(t), id, true, true); err != nil {
		t.Fatal(err)
	}
	both := func(s []string) bool { return len(s) == 2 && s[0] == "audio" && s[1] == "video" }
	b.waitCall(t, id, "alice muted", func(in CallInfo) bool { return both(in.PeerMuted) })
	if in, _ := a.Call(id); !both(in.Muted) {
		t.Fatalf("alice's call: muted %v", in.Muted)
	}
	c := a.calls.get(id)
	deadline := time.Now().Add(pionpair.ConnectTimeout)
	for c.local.dropped() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("muted media was still forwarded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.MuteCall(testCtx(t), id, false, true); err != nil {
		t.Fatal(err)
	}
	b.waitCall(t, id, "alice unmuted audio", func(in CallInfo) bool { return len(in.PeerMuted) == 1 && in.PeerMuted[0] == "video" })
}
