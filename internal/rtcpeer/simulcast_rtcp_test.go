package rtcpeer

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// lockedBuffer is a bytes.Buffer for a logger shared by goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSimulcastSourceRTCP: a peer that sends simulcast (a page may offer
// it: rids on one video m-line) makes one received track per rid on one
// receiver. Each track's RTCP is read as its own (ReadSimulcast): not
// every track's goroutine reading the first one's with Read, which pion
// answers with an error log line for every RTCP packet, while the other
// rids' RTCP is never read and their sender reports never reach
// OnSourceRTCP.
func TestSimulcastSourceRTCP(t *testing.T) {
	var logs lockedBuffer
	var mu sync.Mutex
	srs := map[uint32]int{}
	wrong := 0
	var tracks sync.WaitGroup
	tracks.Add(2)
	b := newPeer(t, Config{Name: "b", LoopbackOnly: true, Video: true,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnTrack: func(ctx context.Context, tr *webrtc.TrackRemote) {
			tracks.Done()
			buf := make([]byte, 1500)
			for ctx.Err() == nil {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
			}
		},
		OnSourceRTCP: func(_ webrtc.RTPCodecType, ssrc uint32, pkts []rtcp.Packet) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range pkts {
				if sr, ok := p.(*rtcp.SenderReport); ok {
					srs[sr.SSRC]++
					if sr.SSRC != ssrc {
						wrong++
					}
				}
			}
		}})
	b.Admit()

	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(vp8Codec(), webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var layers []*webrtc.TrackLocalStaticRTP
	for _, rid := range []string{"a", "b"} {
		l, err := webrtc.NewTrackLocalStaticRTP(VP8Codec(), "video", "sim", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	sender, err := pc.AddTrack(layers[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.AddEncoding(layers[1]); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	bGathered := make(chan struct{})
	var once sync.Once
	b.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			once.Do(func() { close(bGathered) })
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := b.AcceptOffer(ctx, pc.LocalDescription().SDP); err != nil {
		t.Fatal(err)
	}
	<-bGathered
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: b.LocalDescription()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Connected():
	case <-ctx.Done():
		t.Fatal("not connected")
	}
	var midID, ridID uint8
	params := sender.GetParameters()
	for _, e := range params.HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		}
	}
	if midID == 0 || ridID == 0 || len(params.Encodings) != 2 {
		t.Fatalf("mid %d rid %d encodings %+v", midID, ridID, params.Encodings)
	}
	got := make(chan struct{})
	go func() { tracks.Wait(); close(got) }()
	mid := pc.GetTransceivers()[0].Mid()
	for seq := uint16(0); ; seq++ {
		for _, l := range layers {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, PayloadType: vp8PayloadType, Timestamp: uint32(seq) * 3000}, Payload: []byte{0x10, 0, 0, 0}}
			if err := pkt.Header.SetExtension(midID, []byte(mid)); err != nil {
				t.Fatal(err)
			}
			if err := pkt.Header.SetExtension(ridID, []byte(l.RID())); err != nil {
				t.Fatal(err)
			}
			if err := l.WriteRTP(pkt); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("the rids' tracks did not all arrive")
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	for range 10 {
		var pkts []rtcp.Packet
		for _, e := range params.Encodings {
			pkts = append(pkts, &rtcp.SenderReport{SSRC: uint32(e.SSRC), NTPTime: 1 << 32})
		}
		for _, p := range pkts {
			if err := pc.WriteRTCP([]rtcp.Packet{p}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, e := range params.Encodings {
		if srs[uint32(e.SSRC)] == 0 {
			t.Errorf("no sender report of rid %q reached OnSourceRTCP: %v", e.RID, srs)
		}
	}
	if wrong != 0 {
		t.Errorf("%d sender reports reached OnSourceRTCP as another rid's", wrong)
	}
	if n := strings.Count(logs.String(), "ReadSimulcast"); n != 0 {
		t.Errorf("pion logged %d times that Read was called on a simulcast receiver", n)
	}
}
