// Package pionpair connects pion PeerConnections to each other on
// loopback, for tests of the dtls and srtp packages against real pion:
// each [Peer] has a fresh per-call certificate (dtls.NewCertificate),
// offers only loopback UDP4 host candidates without mDNS, and reports
// its connection and DTLS state on channels; [Signal] runs a complete
// (non-trickle) offer/answer in process and [WaitConnected] waits for
// the result.
//
// It is test code: only _test.go files import it (a test of this
// package checks). Every wait is bounded by [ConnectTimeout], which only
// guards against a hung test; nothing is asserted about how long a
// connection takes.
package pionpair

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
)

// ConnectTimeout bounds every wait of this package.
const ConnectTimeout = 30 * time.Second

// trackBuffer is how many remote tracks [Peer.Tracks] holds.
const trackBuffer = 4

// Peer is one pion PeerConnection on loopback with a per-call
// certificate, closed in the test's cleanup. It is made by [New]; its
// zero value is not usable. The channels may be read from any goroutine.
type Peer struct {
	Name string
	PC   *webrtc.PeerConnection
	Cert *dtls.Certificate
	// Connected is closed when the PeerConnection is connected, Failed
	// when it failed.
	Connected, Failed <-chan struct{}
	// DTLSFailed is closed when DTLS fails. Watch it rather than
	// Failed: after a fatal DTLS alert pion may close the
	// PeerConnection, which then reports closed, not failed.
	DTLSFailed <-chan struct{}
	// Tracks receives the remote tracks as pion reports them.
	Tracks <-chan *webrtc.TrackRemote
}

// LoopbackSettings returns a SettingEngine that gathers loopback UDP4
// host candidates only, without mDNS.
func LoopbackSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// New makes a peer named name (for messages) with pion's default codecs.
// settings, if not nil, changes the [LoopbackSettings] first (an SRTP
// policy, say). A failure fails the test.
func New(t testing.TB, name string, settings func(*webrtc.SettingEngine)) *Peer {
	t.Helper()
	se := LoopbackSettings()
	if settings != nil {
		settings(&se)
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
	connected, failed, dtlsFailed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	tracks := make(chan *webrtc.TrackRemote, trackBuffer)
	p := &Peer{Name: name, PC: pc, Cert: cert, Connected: connected, Failed: failed, DTLSFailed: dtlsFailed, Tracks: tracks}
	var onceConnected, onceFailed, onceDTLS sync.Once
	pc.SCTP().Transport().OnStateChange(func(s webrtc.DTLSTransportState) {
		if s == webrtc.DTLSTransportStateFailed {
			onceDTLS.Do(func() { close(dtlsFailed) })
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			onceConnected.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed:
			onceFailed.Do(func() { close(failed) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	return p
}

// Signal runs a complete (non-trickle) offer/answer between offerer and
// answerer, which must have something to negotiate (a track or a data
// channel). mangle, if not nil, rewrites the answer's SDP on its way to
// the offerer, as a server relaying cleartext signaling could.
func Signal(t testing.TB, offerer, answerer *Peer, mangle func(string) string) {
	t.Helper()
	if err := answerer.PC.SetRemoteDescription(LocalDescription(t, offerer.PC, true)); err != nil {
		t.Fatal(err)
	}
	answer := LocalDescription(t, answerer.PC, false)
	if mangle != nil {
		answer.SDP = mangle(answer.SDP)
	}
	if err := offerer.PC.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
}

// LocalDescription creates an offer (or an answer), sets it and returns
// the local description once ICE gathering is complete.
func LocalDescription(t testing.TB, pc *webrtc.PeerConnection, offer bool) webrtc.SessionDescription {
	t.Helper()
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
	case <-time.After(ConnectTimeout):
		t.Fatal("pionpair: ICE gathering did not complete")
	}
	return *pc.LocalDescription()
}

// WaitConnected waits until every peer is connected; a failed or hung
// connection fails the test.
func WaitConnected(t testing.TB, ps ...*Peer) {
	t.Helper()
	for _, p := range ps {
		select {
		case <-p.Connected:
		case <-p.Failed:
			t.Fatalf("pionpair: %s: connection failed", p.Name)
		case <-time.After(ConnectTimeout):
			t.Fatalf("pionpair: %s: not connected", p.Name)
		}
	}
}
