package srtp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
)

// connectTimeout only guards against a hung test.
const connectTimeout = 30 * time.Second

var opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}

// rtcPeer is a pion PeerConnection on loopback with one local audio track.
type rtcPeer struct {
	name      string
	pc        *webrtc.PeerConnection
	track     *webrtc.TrackLocalStaticRTP
	connected chan struct{}
	failed    chan struct{} // the PeerConnection failed
	// dtlsFailed is closed when DTLS fails. Watch it rather than failed:
	// after a fatal DTLS alert pion may close the PeerConnection, which then
	// reports closed, not failed.
	dtlsFailed chan struct{}
	tracks     chan *webrtc.TrackRemote
}

// newRTCPeer makes a peer; policy sets its SRTP policy (Configure, or a
// stand-in for another client).
func newRTCPeer(t testing.TB, name string, policy func(*webrtc.SettingEngine)) *rtcPeer {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if policy != nil {
		policy(&se)
	}
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	cert, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert.WebRTC()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(opus, "audio", name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	p := &rtcPeer{name: name, pc: pc, track: track, connected: make(chan struct{}), failed: make(chan struct{}), dtlsFailed: make(chan struct{}), tracks: make(chan *webrtc.TrackRemote, 4)}
	var once1, once2, once3 sync.Once
	pc.SCTP().Transport().OnStateChange(func(s webrtc.DTLSTransportState) {
		if s == webrtc.DTLSTransportStateFailed {
			once3.Do(func() { close(p.dtlsFailed) })
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once1.Do(func() { close(p.connected) })
		case webrtc.PeerConnectionStateFailed:
			once2.Do(func() { close(p.failed) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { p.tracks <- tr })
	return p
}

func rtcSignal(t testing.TB, offerer, answerer *rtcPeer) {
	t.Helper()
	describe := func(pc *webrtc.PeerConnection, offer bool) webrtc.SessionDescription {
		var sd webrtc.SessionDescription
		var err error
		if offer {
			sd, err = pc.CreateOffer(nil)
		} else {
			sd, err = pc.CreateAnswer(nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(sd); err != nil {
			t.Fatal(err)
		}
		select {
		case <-gathered:
		case <-time.After(connectTimeout):
			t.Fatal("ICE gathering did not complete")
		}
		return *pc.LocalDescription()
	}
	if err := answerer.pc.SetRemoteDescription(describe(offerer.pc, true)); err != nil {
		t.Fatal(err)
	}
	if err := offerer.pc.SetRemoteDescription(describe(answerer.pc, false)); err != nil {
		t.Fatal(err)
	}
}

func rtcWaitConnected(t testing.TB, ps ...*rtcPeer) {
	t.Helper()
	for _, p := range ps {
		select {
		case <-p.connected:
		case <-p.failed:
			t.Fatalf("%s: connection failed", p.name)
		case <-time.After(connectTimeout):
			t.Fatalf("%s: not connected", p.name)
		}
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
				t.Errorf("%s: WriteRTP: %v", p.name, err)
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
	case tr = <-p.tracks:
	case <-time.After(connectTimeout):
		t.Fatalf("%s: no remote track", p.name)
	}
	if tr.Codec().MimeType != webrtc.MimeTypeOpus {
		t.Fatalf("%s: remote track is %s", p.name, tr.Codec().MimeType)
	}
	for range n {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if string(pkt.Payload) != string(mediaPayload(pkt.SequenceNumber, 160)) {
			t.Fatalf("%s: packet %d has a payload that was not sent", p.name, pkt.SequenceNumber)
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
				got, ok := NegotiatedProfile(p.pc)
				if !ok || got != tc.want {
					t.Fatalf("%s: negotiated %s (%v), want %s", p.name, ProfileName(got), ok, ProfileName(tc.want))
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
			case <-a.dtlsFailed:
			case <-b.dtlsFailed:
			case <-a.connected:
				t.Fatal("connected with a NULL-only peer")
			case <-b.connected:
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
	case remote = <-r1.tracks:
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
