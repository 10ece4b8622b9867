package srtp

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/pionpair"
)

// connectTimeout only guards against a hung test.
const connectTimeout = pionpair.ConnectTimeout

var opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}

// rtcPeer is a pion PeerConnection on loopback with one local audio track.
type rtcPeer struct {
	*pionpair.Peer
	track *webrtc.TrackLocalStaticRTP
}

// newRTCPeer makes a peer; policy sets its SRTP policy (Configure, or a
// stand-in for another client).
func newRTCPeer(t testing.TB, name string, policy func(*webrtc.SettingEngine)) *rtcPeer {
	t.Helper()
	p := &rtcPeer{Peer: pionpair.New(t, name, policy)}
	var err error
	if p.track, err = webrtc.NewTrackLocalStaticRTP(opus, "audio", name); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PC.AddTrack(p.track); err != nil {
		t.Fatal(err)
	}
	return p
}

func rtcSignal(t testing.TB, offerer, answerer *rtcPeer) {
	t.Helper()
	pionpair.Signal(t, offerer.Peer, answerer.Peer, nil)
}

func rtcWaitConnected(t testing.TB, ps ...*rtcPeer) {
	t.Helper()
	for _, p := range ps {
		pionpair.WaitConnected(t, p.Peer)
	}
}

// mediaPayload is the payload of packet seq: its sequence number and a
// pattern, so that a receiver can check every packet it gets.
func mediaPayload(seq uint16, n int) []byte {
	b := payloadOf(n, byte(seq))
	binary.BigEndian.PutUint16(b, seq)
	return b
}

// sendMedia writes audio packets on p's track, as a 50 packet/s source
// would, until stop is closed.
func sendMedia(t testing.TB, p *rtcPeer, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 1}, Payload: mediaPayload(seq, 160)}
			if err := p.track.WriteRTP(pkt); err != nil {
				t.Errorf("%s: WriteRTP: %v", p.Name, err)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return &wg
}

// receiveMedia waits for p's remote track and checks n packets from it.
func receiveMedia(t testing.TB, p *rtcPeer, n int) {
	t.Helper()
	var tr *webrtc.TrackRemote
	select {
	case tr = <-p.Tracks:
	case <-time.After(connectTimeout):
		t.Fatalf("%s: no remote track", p.Name)
	}
	if tr.Codec().MimeType != webrtc.MimeTypeOpus {
		t.Fatalf("%s: remote track is %s", p.Name, tr.Codec().MimeType)
	}
	for range n {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if string(pkt.Payload) != string(mediaPayload(pkt.SequenceNumber, 160)) {
			t.Fatalf("%s: packet %d has a payload that was not sent", p.Name, pkt.SequenceNumber)
		}
	}
}

func TestPionNegotiation(t *testing.T) {
	dino := func(se *webrtc.SettingEngine) {
		se.SetSRTPProtectionProfiles(piondtls.SRTP_AES128_CM_HMAC_SHA1_80)
	}
	for _, tc := range []struct {
		name              string
		offerer, answerer func(*webrtc.SettingEngine)
		want              piondtls.SRTPProtectionProfile
	}{
		{"both configured", Configure, Configure, piondtls.SRTP_AEAD_AES_256_GCM},
		{"answerer like Dino", Configure, dino, piondtls.SRTP_AES128_CM_HMAC_SHA1_80},
		{"offerer like Dino", dino, Configure, piondtls.SRTP_AES128_CM_HMAC_SHA1_80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newRTCPeer(t, "offerer", tc.offerer), newRTCPeer(t, "answerer", tc.answerer)
			rtcSignal(t, a, b)
			rtcWaitConnected(t, a, b)
			for _, p := range []*rtcPeer{a, b} {
				got, ok := NegotiatedProfile(p.PC)
				if !ok || got != tc.want {
					t.Fatalf("%s: negotiated %s (%v), want %s", p.Name, ProfileName(got), ok, ProfileName(tc.want))
				}
			}
			stop := make(chan struct{})
			wa, wb := sendMedia(t, a, stop), sendMedia(t, b, stop)
			receiveMedia(t, a, 10)
			receiveMedia(t, b, 10)
			close(stop)
			wa.Wait()
			wb.Wait()
		})
	}
}

// TestPionRefusesNull: a peer that offers only NULL profiles does not
// connect to a configured one.
func TestPionRefusesNull(t *testing.T) {
	null := func(se *webrtc.SettingEngine) {
		se.SetSRTPProtectionProfiles(piondtls.SRTP_NULL_HMAC_SHA1_80)
	}
	for _, order := range []string{"null offers", "null answers"} {
		t.Run(order, func(t *testing.T) {
			offerer, answerer := Configure, null
			if order == "null offers" {
				offerer, answerer = null, Configure
			}
			a, b := newRTCPeer(t, "offerer", offerer), newRTCPeer(t, "answerer", answerer)
			rtcSignal(t, a, b)
			select {
			case <-a.DTLSFailed:
			case <-b.DTLSFailed:
			case <-a.Connected:
				t.Fatal("connected with a NULL-only peer")
			case <-b.Connected:
				t.Fatal("connected with a NULL-only peer")
			case <-time.After(connectTimeout):
				t.Fatal("neither connected nor failed")
			}
		})
	}
}

// TestForwarder relays audio from A through a gateway's two
// PeerConnections to B: A -> R1 (leg A), R2 -> B (leg B).
func TestForwarder(t *testing.T) {
	a, r1 := newRTCPeer(t, "A", Configure), newRTCPeer(t, "R1", Configure)
	r2, b := newRTCPeer(t, "R2", Configure), newRTCPeer(t, "B", Configure)
	rtcSignal(t, a, r1)
	rtcSignal(t, r2, b)
	rtcWaitConnected(t, a, r1, r2, b)

	stop := make(chan struct{})
	wa := sendMedia(t, a, stop)
	var remote *webrtc.TrackRemote
	select {
	case remote = <-r1.Tracks:
	case <-time.After(connectTimeout):
		t.Fatal("R1 got no track")
	}
	f, err := NewForwarder(remote, r2.track)
	if err != nil {
		t.Fatal(err)
	}
	// A second source for the same local track would reuse its sequence
	// numbers, so its SRTP indices: refused, also after the first stops.
	if _, err := NewForwarder(remote, r2.track); !errors.Is(err, ErrTrackInUse) {
		t.Fatalf("second forwarder into one local track: %v, want ErrTrackInUse", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	receiveMedia(t, b, 20)
	close(stop)
	wa.Wait()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v, want context.Canceled", err)
	}
	if s := f.Stats(); s.Packets < 20 || s.Bytes < 20*(12+160) {
		t.Fatalf("stats %+v", s)
	}
	if _, err := NewForwarder(remote, r2.track); !errors.Is(err, ErrTrackInUse) {
		t.Fatalf("forwarder into a local track fed before: %v, want ErrTrackInUse", err)
	}
}
