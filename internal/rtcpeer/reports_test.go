package rtcpeer

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// rtcpLog counts the sender reports and report blocks a Peer received.
type rtcpLog struct {
	mu            sync.Mutex
	srs, blocks   int
	lsrNonZero    int // report blocks that echo a sender report
	unexpectedSRC int // sender reports OnSourceRTCP got about another SSRC
}

func (l *rtcpLog) config(cfg *Config) {
	cfg.OnSourceRTCP = func(_ webrtc.RTPCodecType, ssrc uint32, pkts []rtcp.Packet) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				l.srs++
				if sr.SSRC != ssrc {
					l.unexpectedSRC++
				}
			}
		}
	}
	cfg.OnRTCP = func(_ webrtc.RTPCodecType, pkts []rtcp.Packet) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, p := range pkts {
			var blocks []rtcp.ReceptionReport
			switch r := p.(type) {
			case *rtcp.ReceiverReport:
				blocks = r.Reports
			case *rtcp.SenderReport:
				blocks = r.Reports
			}
			l.blocks += len(blocks)
			for _, b := range blocks {
				if b.LastSenderReport != 0 {
					l.lsrNonZero++
				}
			}
		}
	}
}

func (l *rtcpLog) counts() (srs, blocks, lsr, unexpected int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.srs, l.blocks, l.lsrNonZero, l.unexpectedSRC
}

// TestRelayReports: a peer with RelayReports sends no sender or receiver
// reports of its own, while it receives (OnSourceRTCP, OnRTCP) those of
// an ordinary peer; a sender report the relay peer writes itself is
// echoed (LSR) in the ordinary peer's receiver reports, since a Peer reads
// its receivers' RTCP.
func TestRelayReports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, 4*time.Second, 7)
	var la, lb rtcpLog
	ca := Config{Name: "a", LoopbackOnly: true, Audio: true, AudioFile: src.Ogg}
	cb := Config{Name: "b", LoopbackOnly: true, Audio: true, AudioFile: src.Ogg, RelayReports: true}
	la.config(&ca)
	lb.config(&cb)
	a, b := newPeer(t, ca), newPeer(t, cb)
	connect(t, a, b)
	a.StartPlayback()
	b.StartPlayback()
	// a's interceptors report every second: b sees its sender reports and
	// its receiver reports about b's audio.
	eventually(t, "b receives a's sender and receiver reports", func() bool {
		srs, blocks, _, _ := lb.counts()
		return srs >= 2 && blocks >= 2
	})
	srs, blocks, _, unexpected := la.counts()
	if srs != 0 || blocks != 0 {
		t.Errorf("the relay peer sent %d sender reports and %d report blocks of its own", srs, blocks)
	}
	if _, _, lsr, _ := lb.counts(); lsr != 0 {
		t.Errorf("%d of a's report blocks echo a sender report b never sent", lsr)
	}
	if _, _, _, u := lb.counts(); u+unexpected != 0 {
		t.Errorf("OnSourceRTCP got sender reports about another SSRC")
	}
	ssrc, ok := b.SenderSSRC(webrtc.RTPCodecTypeAudio)
	if !ok || ssrc == 0 {
		t.Fatalf("SenderSSRC: %d %v", ssrc, ok)
	}
	if _, ok := b.SenderSSRC(webrtc.RTPCodecTypeVideo); ok {
		t.Error("SenderSSRC names a video sender of an audio-only peer")
	}
	// b, as a relay, writes a sender report of its own: a's receiver
	// reports then echo it (a reads its receivers' RTCP).
	deadline := time.Now().Add(waitLimit)
	for {
		if err := b.WriteRTCP([]rtcp.Packet{&rtcp.SenderReport{SSRC: ssrc, NTPTime: uint64(time.Now().Unix()+2208988800) << 32}}); err != nil {
			t.Fatal(err)
		}
		if _, _, lsr, _ := lb.counts(); lsr > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's receiver reports never echo b's sender report")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSenderSSRCNoAllocs: a relay calls SenderSSRC for every RTCP packet
// a leg's peer sends (before its rate limit): once known, the SSRC costs
// no allocation, however many packets a hostile peer floods.
func TestSenderSSRCNoAllocs(t *testing.T) {
	dir := t.TempDir()
	src := testMedia(t, dir, time.Second, 7)
	a := newPeer(t, Config{Name: "a", LoopbackOnly: true, Audio: true, Video: true, AudioFile: src.Ogg, VideoFile: src.IVF})
	b := newPeer(t, Config{Name: "b", LoopbackOnly: true, Audio: true, Video: true})
	connect(t, a, b)
	want, ok := a.SenderSSRC(webrtc.RTPCodecTypeVideo)
	if !ok {
		t.Fatal("no video sender")
	}
	if n := testing.AllocsPerRun(1000, func() {
		if got, _ := a.SenderSSRC(webrtc.RTPCodecTypeVideo); got != want {
			t.Fatalf("SenderSSRC %d, then %d", want, got)
		}
	}); n >= 1 { // (the Peer's own goroutines allocate too: an average)
		t.Errorf("SenderSSRC: %v allocations a call", n)
	}
	if _, ok := b.SenderSSRC(webrtc.RTPCodecTypeVideo); ok {
		t.Error("SenderSSRC names a video sender of a peer that sends none")
	}
}
