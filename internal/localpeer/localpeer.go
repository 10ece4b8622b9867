// Package localpeer stands in for the web app's browser in tests of
// relayed calls: a [Peer] is an internal/rtcpeer peer on loopback that
// offers audio and video (send and receive) without trickle, checks the
// daemon's answer against the pinned fingerprint of the web session as
// the page does, plays synthetic test media (mediagen) when told to and
// records what it receives, so that a test can count and compare what
// crossed browser → daemon → daemon → browser.
//
// It is test code: only _test.go files import it. Every wait is bounded
// by [Wait], which only guards against a hung test.
package localpeer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// Wait bounds every wait of this package.
const Wait = 30 * time.Second

// Test media of a Peer.
const (
	Packets = 50 // Opus packets (20 ms each)
	Frames  = 45 // VP8 frames (30 fps, a key frame a second)
)

// Peer is one stand-in browser, closed when the test ends. Its zero value
// is not usable: use [New].
type Peer struct {
	*rtcpeer.Peer
	Ogg, IVF string // what it plays
	dir      string // where it records
	keyReqs  atomic.Int64

	rtcpMu  sync.Mutex
	rtcpLog []Received
}

// Received is one RTCP packet the stand-in received (about what it
// sends or about a track it receives) and when it was read.
type Received struct {
	Packet rtcp.Packet
	At     time.Time
}

// maxRTCPLog bounds the RTCP packets a Peer keeps ([Peer.RTCP]).
const maxRTCPLog = 1 << 14

func (p *Peer) logRTCP(pkts []rtcp.Packet) {
	now := time.Now()
	p.rtcpMu.Lock()
	defer p.rtcpMu.Unlock()
	for _, pkt := range pkts {
		if len(p.rtcpLog) < maxRTCPLog {
			p.rtcpLog = append(p.rtcpLog, Received{Packet: pkt, At: now})
		}
	}
}

// RTCP returns the RTCP packets the stand-in received so far (the first
// 16384), from its senders and its receivers, in the order they were
// read.
func (p *Peer) RTCP() []Received {
	p.rtcpMu.Lock()
	defer p.rtcpMu.Unlock()
	return append([]Received(nil), p.rtcpLog...)
}

// New makes a stand-in named name whose DTLS certificate is cert (nil:
// a fresh one). Its media are written under t.TempDir(), with payloads
// of their own (seeded from name).
func New(t testing.TB, name string, cert *dtls.Certificate) *Peer {
	t.Helper()
	dir := t.TempDir()
	p := &Peer{Ogg: filepath.Join(dir, name+".ogg"), IVF: filepath.Join(dir, name+".ivf"), dir: filepath.Join(dir, "rec")}
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	seed := uint64(len(name))
	for _, b := range []byte(name) {
		seed = seed*131 + uint64(b)
	}
	if _, err := mediagen.WriteFilesWith(p.Ogg, "", mediagen.Options{Duration: Packets * mediagen.OpusPacketDuration, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	if _, err := mediagen.WriteFilesWith("", p.IVF, mediagen.Options{Duration: (Frames*time.Second + 29) / 30, Seed: seed + 1}); err != nil {
		t.Fatal(err)
	}
	cfg := rtcpeer.Config{Name: name, LoopbackOnly: true, Audio: true, Video: true,
		AudioFile: p.Ogg, VideoFile: p.IVF, RecordDir: p.dir,
		OnSourceRTCP: func(_ webrtc.RTPCodecType, _ uint32, pkts []rtcp.Packet) { p.logRTCP(pkts) },
		OnRTCP: func(kind webrtc.RTPCodecType, pkts []rtcp.Packet) {
			p.logRTCP(pkts)
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					p.keyReqs.Add(1)
				}
			}
		}}
	if cert != nil {
		cfg.Certificate = cert.WebRTC()
	}
	rp, err := rtcpeer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rp.Close() })
	rp.Admit() // the page trusts the daemon whose fingerprint it pinned
	p.Peer = rp
	return p
}

// Offer returns the stand-in's offer with all its candidates, as the page
// POSTs it.
func (p *Peer) Offer(t testing.TB) string {
	t.Helper()
	gathered := make(chan struct{})
	var once sync.Once
	p.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			once.Do(func() { close(gathered) })
		}
	})
	if _, err := p.CreateOffer(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(Wait):
		t.Fatal("localpeer: gathering did not end")
	}
	return p.LocalDescription()
}

// Answered applies the daemon's answer after the page's check: its
// fingerprint must be pinned ("sha-256 AB:CD:...", the web session's
// leg_fingerprint); another fails the test.
func (p *Peer) Answered(t testing.TB, answer, pinned string) {
	t.Helper()
	if err := CheckPinned(answer, pinned); err != nil {
		t.Fatal(err)
	}
	if err := p.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
}

// CheckPinned reports an error unless every a=fingerprint of sdp is
// pinned ("hash AB:CD:...") and there is one.
func CheckPinned(sdp, pinned string) error {
	hash, value, _ := strings.Cut(pinned, " ")
	want, err := dtls.ParseFingerprint(hash, value)
	if err != nil {
		return fmt.Errorf("localpeer: pinned fingerprint %q: %w", pinned, err)
	}
	n := 0
	for _, l := range strings.Split(sdp, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=fingerprint:")
		if !ok {
			continue
		}
		n++
		h, val, _ := strings.Cut(v, " ")
		got, err := dtls.ParseFingerprint(h, val)
		if err != nil || !got.Equal(want) {
			return fmt.Errorf("localpeer: the answer's fingerprint %q is not the pinned %q", v, pinned)
		}
	}
	if n == 0 {
		return fmt.Errorf("localpeer: the answer has no fingerprint")
	}
	return nil
}

// Pinned is the pinned form of c's fingerprint ("sha-256 AB:CD:...").
func Pinned(c *dtls.Certificate) string {
	f := c.Fingerprint()
	return f.Hash + " " + f.String()
}

// KeyframeRequests counts the PLIs and FIRs the stand-in received for
// what it sends.
func (p *Peer) KeyframeRequests() int64 { return p.keyReqs.Load() }

// RequestKeyframe sends a PLI for the video track the stand-in receives,
// as a browser does when it cannot decode.
func (p *Peer) RequestKeyframe(t testing.TB) {
	t.Helper()
	for _, r := range p.PeerConnection().GetReceivers() {
		if tr := r.Track(); tr != nil && tr.Kind() == webrtc.RTPCodecTypeVideo && tr.SSRC() != 0 {
			if err := p.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}}); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("localpeer: no video track received")
}

// Received waits until the stand-in counted every Opus payload and VP8
// frame another stand-in plays.
func (p *Peer) Received(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		st := p.Stats()
		if st.AudioPayloads >= Packets && st.VideoFrames >= Frames {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("localpeer: received %d of %d Opus payloads and %d of %d VP8 frames", st.AudioPayloads, Packets, st.VideoFrames, Frames)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SameMedia closes the stand-in and fails the test unless its recordings
// hold exactly what from played, complete and unaltered.
func (p *Peer) SameMedia(t testing.TB, from *Peer) {
	t.Helper()
	p.Close()
	var ogg, ivf string
	for _, f := range p.Recordings() {
		switch filepath.Ext(f) {
		case ".ogg":
			ogg = f
		case ".ivf":
			ivf = f
		}
	}
	if ogg == "" || ivf == "" {
		t.Fatalf("localpeer: recordings %v: want audio and video", p.Recordings())
	}
	for _, c := range []struct {
		what, src, rec string
		cmp            func(string, string) (rtcpeer.Match, error)
	}{{"audio", from.Ogg, ogg, rtcpeer.ComparePayloads}, {"video", from.IVF, ivf, rtcpeer.CompareFrames}} {
		m, err := c.cmp(c.src, c.rec)
		if err != nil || m.Source == 0 || m.Missing != 0 {
			t.Errorf("localpeer: %s: %d of %d payloads recorded (%v)", c.what, m.Matched, m.Source, err)
		}
	}
}
