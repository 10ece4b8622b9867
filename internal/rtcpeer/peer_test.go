package rtcpeer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// TestLoopbackCall runs a call on loopback with audio and video both ways:
// both recordings hold every payload of the other side's source, in order;
// the counters agree; each side sees the other's certificate.
func TestLoopbackCall(t *testing.T) {
	const d = 3 * time.Second
	dirA, dirB := t.TempDir(), t.TempDir()
	srcA, srcB := testMedia(t, dirA, d, 1), testMedia(t, dirB, d, 2)
	certA, certB := newCert(t), newCert(t)
	cfg := func(name string, cert webrtc.Certificate, src mediagen.Files, dir string) Config {
		return Config{Name: name, Certificate: cert, LoopbackOnly: true, Audio: true, Video: true,
			AudioFile: src.Ogg, VideoFile: src.IVF, RecordDir: dir}
	}
	a := newPeer(t, cfg("alice", certA.WebRTC(), srcA, dirA))
	b := newPeer(t, cfg("bob", certB.WebRTC(), srcB, dirB))
	connect(t, a, b)

	derB, err := a.RemoteCertificate()
	if err != nil {
		t.Fatal(err)
	}
	derA, err := b.RemoteCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(derB, certB.DER()) || !bytes.Equal(derA, certA.DER()) {
		t.Fatal("RemoteCertificate is not the other side's certificate")
	}
	if a.DTLSTransport() == nil || a.DTLSTransport().State() != webrtc.DTLSTransportStateConnected {
		t.Fatal("DTLSTransport not connected")
	}
	for _, p := range []*Peer{a, b} {
		if prof, ok := p.SRTPProfile(); !ok || prof != piondtls.SRTP_AEAD_AES_256_GCM {
			t.Fatalf("SRTP profile %v %v, want AEAD_AES_256_GCM", prof, ok)
		}
	}

	start := time.Now()
	a.StartPlayback()
	b.StartPlayback()
	waitClosed(t, "alice's playback ends", a.PlaybackDone())
	waitClosed(t, "bob's playback ends", b.PlaybackDone())
	// Pacing: the last frame is sent one frame before the end.
	if el := time.Since(start); el < d-100*time.Millisecond {
		t.Fatalf("playback of %v took %v: not paced in real time", d, el)
	}
	// The last VP8 frame is only complete for the reassembly once the
	// stream ends; audio arrives whole.
	for _, w := range []struct {
		p   *Peer
		src mediagen.Files
	}{{b, srcA}, {a, srcB}} {
		eventually(t, "all payloads received", func() bool {
			s := w.p.Stats()
			return s.AudioPayloads == uint64(w.src.Packets) && s.VideoFrames >= uint64(w.src.Frames-1)
		})
	}
	sa, sb := a.Stats(), b.Stats()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Done", a.Done())

	for _, c := range []struct {
		name     string
		sent, rx Stats
		src      mediagen.Files
		rec      []string
	}{{"alice->bob", sa, sb, srcA, b.Recordings()}, {"bob->alice", sb, sa, srcB, a.Recordings()}} {
		if c.sent.AudioSamplesSent != uint64(c.src.Packets) || c.sent.VideoFramesSent != uint64(c.src.Frames) {
			t.Errorf("%s: sent %d samples, %d frames; the files have %d, %d", c.name,
				c.sent.AudioSamplesSent, c.sent.VideoFramesSent, c.src.Packets, c.src.Frames)
		}
		if c.sent.PacketsSent < c.sent.AudioSamplesSent+c.sent.VideoFramesSent || c.sent.BytesSent == 0 {
			t.Errorf("%s: %d packets, %d bytes sent for %d samples", c.name, c.sent.PacketsSent, c.sent.BytesSent,
				c.sent.AudioSamplesSent+c.sent.VideoFramesSent)
		}
		if c.rx.PacketsReceived < c.sent.AudioSamplesSent+c.sent.VideoFramesSent || c.rx.BytesReceived == 0 {
			t.Errorf("%s: %d packets, %d bytes received", c.name, c.rx.PacketsReceived, c.rx.BytesReceived)
		}
		if c.rx.RecordingError != nil || c.sent.PlaybackError != nil {
			t.Errorf("%s: recording error %v, playback error %v", c.name, c.rx.RecordingError, c.sent.PlaybackError)
		}
		if len(c.rec) != 2 {
			t.Fatalf("%s: recordings %v", c.name, c.rec)
		}
		var ogg, ivf string
		for _, r := range c.rec {
			switch filepath.Ext(r) {
			case ".ogg":
				ogg = r
			case ".ivf":
				ivf = r
			}
		}
		if !strings.HasSuffix(ogg, "-audio-0.ogg") || !strings.HasSuffix(ivf, "-video-0.ivf") {
			t.Errorf("%s: recording names %v", c.name, c.rec)
		}
		m, err := ComparePayloads(c.src.Ogg, ogg)
		if err != nil || m.Matched != c.src.Packets || m.Missing != 0 {
			t.Errorf("%s audio: %+v, %v; want all %d packets", c.name, m, err, c.src.Packets)
		}
		m, err = CompareFrames(c.src.IVF, ivf)
		if err != nil || m.Matched != c.src.Frames || m.Missing != 0 {
			t.Errorf("%s video: %+v, %v; want all %d frames", c.name, m, err, c.src.Frames)
		}
		t.Logf("%s: sent %d RTP packets (%d bytes), received %d (%d bytes)", c.name,
			c.sent.PacketsSent, c.sent.BytesSent, c.rx.PacketsReceived, c.rx.BytesReceived)
	}
	leakCheck(t)
}

// TestReceiveOnly: a peer without files receives (and records) but sends
// no media; a kind the answerer does not want is rejected.
func TestReceiveOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, time.Second, 3)
	a := newPeer(t, Config{Name: "a", LoopbackOnly: true, Audio: true, Video: true, AudioFile: src.Ogg, VideoFile: src.IVF})
	b := newPeer(t, Config{Name: "b", LoopbackOnly: true, Audio: true, RecordDir: dir})
	connect(t, a, b)
	sdp := b.LocalDescription()
	if i := strings.Index(sdp, "m=video"); i < 0 || !strings.Contains(sdp[i:], "a=inactive") {
		t.Errorf("answer does not refuse video:\n%s", sdp)
	}
	a.StartPlayback()
	b.StartPlayback() // nothing to play
	waitClosed(t, "b's playback (none) ends", b.PlaybackDone())
	waitClosed(t, "a's playback ends", a.PlaybackDone())
	eventually(t, "all audio received", func() bool { return b.Stats().AudioPayloads == uint64(src.Packets) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	s := b.Stats()
	if s.PacketsSent != 0 || s.VideoFrames != 0 || len(s.Recordings) != 1 {
		t.Fatalf("receive-only peer: %+v", s)
	}
	if m, err := ComparePayloads(src.Ogg, s.Recordings[0]); err != nil || m.Missing != 0 {
		t.Fatalf("%+v %v", m, err)
	}
}

// TestRecordingLimit: a recording stops at its size limit, stays a valid
// file and holds a prefix of the source.
func TestRecordingLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, 2*time.Second, 4)
	const limit = 10 << 10 // above one key frame (at most 9 KiB), below the files
	a := newPeer(t, Config{LoopbackOnly: true, Audio: true, Video: true, AudioFile: src.Ogg, VideoFile: src.IVF})
	b := newPeer(t, Config{Name: "lim", LoopbackOnly: true, Audio: true, Video: true, RecordDir: dir, MaxRecordingBytes: limit})
	connect(t, a, b)
	a.StartPlayback()
	waitClosed(t, "playback ends", a.PlaybackDone())
	eventually(t, "all audio received", func() bool { return b.Stats().AudioPayloads == uint64(src.Packets) })
	b.Close()
	s := b.Stats()
	if !errors.Is(s.RecordingError, ErrRecordingLimit) {
		t.Fatalf("RecordingError %v, want ErrRecordingLimit", s.RecordingError)
	}
	for _, r := range s.Recordings {
		fi, err := os.Stat(r)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > limit {
			t.Errorf("%s: %d bytes, limit %d", r, fi.Size(), limit)
		}
		var m Match
		if filepath.Ext(r) == ".ogg" {
			m, err = ComparePayloads(src.Ogg, r)
		} else {
			m, err = CompareFrames(src.IVF, r)
		}
		if err != nil || m.Matched == 0 || m.Missing == 0 {
			t.Errorf("%s: %+v %v; want a non-empty strict prefix", r, m, err)
		}
	}
}

// TestRelayOnlyNoCandidates: relay-only without a TURN server gathers
// nothing: no candidate reaches OnCandidate, none is in the offer.
func TestRelayOnlyNoCandidates(t *testing.T) {
	t.Parallel()
	p := newPeer(t, Config{RelayOnly: true, IncludeLoopback: true, Audio: true})
	var got []*webrtc.ICECandidateInit
	done := make(chan struct{})
	p.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			close(done)
			return
		}
		got = append(got, c)
	})
	if _, err := p.CreateOffer(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "gathering completes", done)
	if len(got) != 0 {
		t.Fatalf("relay-only peer emitted candidates: %v", got)
	}
	if sdp := p.LocalDescription(); strings.Contains(sdp, "a=candidate") {
		t.Fatalf("relay-only offer has candidates:\n%s", sdp)
	}
}

// TestRelayOnlyFilter: in relay-only mode a non-relay candidate pion might
// produce never reaches OnCandidate, nor a description.
func TestRelayOnlyFilter(t *testing.T) {
	t.Parallel()
	p := newPeer(t, Config{RelayOnly: true})
	var got []string
	p.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c != nil {
			got = append(got, c.Candidate)
		}
	})
	for _, typ := range []webrtc.ICECandidateType{webrtc.ICECandidateTypeHost, webrtc.ICECandidateTypeSrflx,
		webrtc.ICECandidateTypePrflx, webrtc.ICECandidateTypeRelay} {
		p.localCandidate(&webrtc.ICECandidate{Foundation: "1", Protocol: webrtc.ICEProtocolUDP, Address: "192.0.2.1",
			Port: 5000, Typ: typ, Component: 1})
	}
	if len(got) != 1 || !strings.Contains(got[0], "typ relay") {
		t.Fatalf("OnCandidate got %q, want the relay candidate only", got)
	}
	sdp := "v=0\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n" +
		"a=candidate:2 1 udp 1 192.0.2.2 5000 typ srflx raddr 0.0.0.0 rport 0\r\n" +
		"a=candidate:3 1 udp 1 192.0.2.3 5000 typ relay raddr 0.0.0.0 rport 0\r\na=end-of-candidates\r\n"
	want := "v=0\r\na=candidate:3 1 udp 1 192.0.2.3 5000 typ relay raddr 0.0.0.0 rport 0\r\na=end-of-candidates\r\n"
	if f := relayCandidatesOnly(sdp); f != want {
		t.Fatalf("relayCandidatesOnly:\n%q\nwant\n%q", f, want)
	}
}

// TestCandidatesBeforeDescription: remote candidates that arrive before
// the offer are queued and applied with it, and the queue is bounded.
func TestCandidatesBeforeDescription(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, 500*time.Millisecond, 5)
	a := newPeer(t, Config{LoopbackOnly: true, Audio: true, AudioFile: src.Ogg})
	b := newPeer(t, Config{LoopbackOnly: true, Audio: true})
	// a's candidates reach b before a's offer does: hold the offer back
	// until gathering is complete.
	gathered := make(chan struct{})
	a.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			close(gathered)
			return
		}
		if err := b.AddCandidate(*c); err != nil {
			t.Errorf("AddCandidate: %v", err)
		}
	})
	trickle(t, b, a)
	ctx := context.Background()
	offer, err := a.CreateOffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "a gathers", gathered)
	answer, err := b.AcceptOffer(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "connected", b.Connected())

	c := newPeer(t, Config{Audio: true})
	cand := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 1 192.0.2.1 5000 typ host"}
	for i := range MaxPendingCandidates {
		if err := c.AddCandidate(cand); err != nil {
			t.Fatalf("candidate %d: %v", i, err)
		}
	}
	if err := c.AddCandidate(cand); !errors.Is(err, ErrLimit) {
		t.Fatalf("candidate beyond the queue: %v, want ErrLimit", err)
	}
	long := webrtc.ICECandidateInit{Candidate: strings.Repeat("x", MaxCandidateBytes+1)}
	if err := c.AddCandidate(long); !errors.Is(err, ErrLimit) {
		t.Fatalf("long candidate: %v, want ErrLimit", err)
	}
}

func TestSDPLimits(t *testing.T) {
	t.Parallel()
	p := newPeer(t, Config{Audio: true})
	ctx := context.Background()
	if _, err := p.AcceptOffer(ctx, strings.Repeat("a", MaxSDPBytes+1)); !errors.Is(err, ErrLimit) {
		t.Fatalf("large offer: %v", err)
	}
	if _, err := p.AcceptOffer(ctx, "v=0\r\n"+strings.Repeat("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", MaxMediaSections+1)); !errors.Is(err, ErrLimit) {
		t.Fatalf("many m-lines: %v", err)
	}
	if err := p.SetAnswer(strings.Repeat("a", MaxSDPBytes+1)); !errors.Is(err, ErrLimit) {
		t.Fatalf("large answer: %v", err)
	}
	if _, err := p.Restart(ctx); err == nil {
		t.Fatal("restart before any answer succeeded")
	}
	p.Close()
	if _, err := p.CreateOffer(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("offer after Close: %v", err)
	}
	if err := p.AddCandidate(webrtc.ICECandidateInit{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("candidate after Close: %v", err)
	}
	if _, err := p.RemoteCertificate(); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("RemoteCertificate unconnected: %v", err)
	}
	waitClosed(t, "Done", p.Done())
	waitClosed(t, "PlaybackDone", p.PlaybackDone())
}

func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, 200*time.Millisecond, 6)
	bad := filepath.Join(dir, "bad.ogg")
	if err := os.WriteFile(bad, []byte("OggS not really"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  Config
		is   error
	}{
		{"name with slash", Config{Name: "../x"}, ErrConfig},
		{"long name", Config{Name: strings.Repeat("a", 65)}, ErrConfig},
		{"NULL profile", Config{SRTPProfiles: []piondtls.SRTPProtectionProfile{piondtls.SRTP_NULL_HMAC_SHA1_80}}, ErrConfig},
		{"32-bit tag profile", Config{SRTPProfiles: []piondtls.SRTPProtectionProfile{piondtls.SRTP_AES128_CM_HMAC_SHA1_32}}, ErrConfig},
		{"empty profiles", Config{SRTPProfiles: []piondtls.SRTPProtectionProfile{}}, ErrConfig},
		{"audio file without audio", Config{AudioFile: src.Ogg}, ErrConfig},
		{"video file without video", Config{VideoFile: src.IVF}, ErrConfig},
		{"missing record dir", Config{RecordDir: filepath.Join(dir, "nope")}, ErrConfig},
		{"record dir is a file", Config{RecordDir: src.Ogg}, ErrConfig},
		{"bad audio file", Config{Audio: true, AudioFile: bad}, ErrBadMedia},
		{"IVF as audio", Config{Audio: true, AudioFile: src.IVF}, ErrBadMedia},
		{"Ogg as video", Config{Video: true, VideoFile: src.Ogg}, ErrBadMedia},
		{"negative limit", Config{MaxRecordingBytes: -1}, ErrConfig},
	} {
		p, err := New(c.cfg)
		if err == nil {
			p.Close()
		}
		if !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v", c.name, err, c.is)
		}
	}
	p, err := New(Config{Name: "ok_1-2", SRTPProfiles: []piondtls.SRTPProtectionProfile{piondtls.SRTP_AEAD_AES_128_GCM},
		Audio: true, Video: true, AudioFile: src.Ogg, VideoFile: src.IVF, RecordDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}
