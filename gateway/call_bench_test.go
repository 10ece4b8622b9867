package gateway

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/srtp"
)

// BenchmarkCallSetup measures a call on the embedded server over loopback
// from PlaceCall to the first media packet the callee decrypted: JMI
// propose and proceed, the protected session-initiate and -accept,
// trickle, ICE, DTLS, the binding check on both sides and SRTP. It reports
// the caller's signaling requests that wait for an answer before media
// (round trips). Compare with BenchmarkPionOfferAnswer in the same run.
func BenchmarkCallSetup(b *testing.B) {
	dir := b.TempDir()
	aOgg, bOgg := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "b.ogg")
	writeTestOpus(b, aOgg, 3000)
	writeTestOpus(b, bOgg, 3000)
	srv, a, bob := callPair(b, nil, answerWith(CallMedia{AudioFile: bOgg}))
	var stanzas atomic.Int64
	srv.SetHook(func(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if ctx.Session.Bare().String() == aliceJID.String() && (st.Name == "message" || st.Type == "set") {
			stanzas.Add(1)
		}
		return []localxmpp.Stanza{st}
	})
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stanzas.Store(0)
		placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg})
		if err != nil {
			b.Fatal(err)
		}
		bob.waitCall(b, placed.ID, "bob: connected", func(c CallInfo) bool { return c.State == CallConnected })
		c := bob.calls.get(placed.ID)
		for c == nil || c.peerConn() == nil || c.peerConn().stats().packetsReceived == 0 {
			time.Sleep(time.Millisecond)
			c = bob.calls.get(placed.ID)
		}
		b.StopTimer()
		b.ReportMetric(float64(stanzas.Load()), "caller-stanzas/op")
		if err := a.HangUp(ctx, placed.ID); err != nil {
			b.Fatal(err)
		}
		bob.waitEnded(b, placed.ID)
		b.StartTimer()
	}
}

// BenchmarkPionOfferAnswer is the baseline: two pion PeerConnections with
// the same certificates, SRTP profiles and loopback settings, offer and
// answer exchanged in process (one round trip, candidates in the
// descriptions), to the first media packet received.
func BenchmarkPionOfferAnswer(b *testing.B) {
	newPC := func() *webrtc.PeerConnection {
		cert, err := dtls.NewCertificate()
		if err != nil {
			b.Fatal(err)
		}
		se := webrtc.SettingEngine{}
		srtp.Configure(&se)
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return len(name) >= 2 && name[:2] == "lo" })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert.WebRTC()}})
		if err != nil {
			b.Fatal(err)
		}
		return pc
	}
	payload := make([]byte, 100)
	for i := 0; i < b.N; i++ {
		caller, callee := newPC(), newPC()
		got := make(chan struct{}, 1)
		callee.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if _, _, err := tr.ReadRTP(); err == nil {
				got <- struct{}{}
			}
		})
		track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := caller.AddTrack(track); err != nil {
			b.Fatal(err)
		}
		offer, _ := caller.CreateOffer(nil)
		done := webrtc.GatheringCompletePromise(caller)
		caller.SetLocalDescription(offer)
		<-done
		if err := callee.SetRemoteDescription(*caller.LocalDescription()); err != nil {
			b.Fatal(err)
		}
		answer, _ := callee.CreateAnswer(nil)
		done = webrtc.GatheringCompletePromise(callee)
		callee.SetLocalDescription(answer)
		<-done
		if err := caller.SetRemoteDescription(*callee.LocalDescription()); err != nil {
			b.Fatal(err)
		}
		seq := uint16(0)
	send:
		for {
			select {
			case <-got:
				break send
			case <-time.After(20 * time.Millisecond):
				seq++
				buf := append([]byte{0x80, 111, byte(seq >> 8), byte(seq), 0, 0, 0, 0, 1, 2, 3, 4}, payload...)
				track.Write(buf)
			}
		}
		b.StopTimer()
		caller.Close()
		callee.Close()
		b.StartTimer()
	}
}
