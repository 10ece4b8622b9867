package dtls_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
)

// connectTimeout only guards against a hung test; nothing is asserted about
// how long a connection takes.
const connectTimeout = 30 * time.Second

// peer is one pion PeerConnection on loopback with a per-call certificate.
type peer struct {
	name      string
	pc        *webrtc.PeerConnection
	cert      *dtls.Certificate
	connected chan struct{}
	failed    chan struct{} // the PeerConnection failed
	// dtlsFailed is closed when DTLS fails. Watch it rather than failed:
	// after a fatal DTLS alert pion may close the PeerConnection, which then
	// reports closed, not failed.
	dtlsFailed chan struct{}
}

func loopbackSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

func newPeer(t *testing.T, name string) *peer {
	t.Helper()
	cert, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(loopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert.WebRTC()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	p := &peer{name: name, pc: pc, cert: cert, connected: make(chan struct{}), failed: make(chan struct{}), dtlsFailed: make(chan struct{})}
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
	return p
}

// signal runs a complete (non-trickle) offer/answer in process. mangle, if
// not nil, rewrites the answer on its way to the offerer, as a server
// relaying cleartext signaling could.
func signal(t *testing.T, offerer, answerer *peer, mangle func(string) string) {
	t.Helper()
	if _, err := offerer.pc.CreateDataChannel("probe", nil); err != nil {
		t.Fatal(err)
	}
	offer := localDescription(t, offerer.pc, true)
	if err := answerer.pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer := localDescription(t, answerer.pc, false)
	if mangle != nil {
		answer.SDP = mangle(answer.SDP)
	}
	if err := offerer.pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
}

func localDescription(t *testing.T, pc *webrtc.PeerConnection, offer bool) webrtc.SessionDescription {
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
	case <-time.After(connectTimeout):
		t.Fatal("ICE gathering did not complete")
	}
	return *pc.LocalDescription()
}

func waitConnected(t *testing.T, ps ...*peer) {
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

// sdpFingerprint returns the fingerprint an SDP advertises, parsed as if it
// had arrived as the text of a XEP-0320 element.
func sdpFingerprint(t *testing.T, sdp string) dtls.Fingerprint {
	t.Helper()
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=fingerprint:"); ok {
			hash, value, _ := strings.Cut(v, " ")
			fp, err := dtls.ParseFingerprint(hash, value)
			if err != nil {
				t.Fatalf("SDP fingerprint %q: %v", v, err)
			}
			return fp
		}
	}
	t.Fatal("SDP has no a=fingerprint")
	return dtls.Fingerprint{}
}

// swapFingerprint replaces every a=fingerprint of sdp with fp.
func swapFingerprint(sdp string, fp dtls.Fingerprint) string {
	var b strings.Builder
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "a=fingerprint:") {
			line = "a=fingerprint:" + fp.Hash + " " + fp.String() + "\r\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// TestBindingOverPion connects two pion peers with per-call certificates;
// each side's binding check passes with the fingerprint the other side
// advertised, and fails with any other.
func TestBindingOverPion(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	signal(t, alice, bob, nil)
	waitConnected(t, alice, bob)

	// What each side advertised (and would put into its protected stanza).
	aliceAdv := sdpFingerprint(t, alice.pc.LocalDescription().SDP)
	bobAdv := sdpFingerprint(t, bob.pc.LocalDescription().SDP)
	if !aliceAdv.Equal(alice.cert.Fingerprint()) || !bobAdv.Equal(bob.cert.Fingerprint()) {
		t.Fatal("pion advertises a fingerprint other than our certificate's")
	}

	if err := (dtls.Binding{SID: "s1", Peer: "bob@example.org", Device: 2, Expected: bobAdv}).CheckTransport(alice.pc.SCTP().Transport()); err != nil {
		t.Fatalf("alice's check of bob: %v", err)
	}
	if err := (dtls.Binding{SID: "s1", Peer: "alice@example.org", Device: 1, Expected: aliceAdv}).CheckPeerConnection(bob.pc); err != nil {
		t.Fatalf("bob's check of alice: %v", err)
	}
	// The check can fail: alice's own fingerprint is not bob's.
	if err := (dtls.Binding{SID: "s1", Expected: aliceAdv}).CheckPeerConnection(alice.pc); !errors.Is(err, dtls.ErrBindingMismatch) {
		t.Fatalf("alice's check with her own fingerprint: %v, want ErrBindingMismatch", err)
	}
}

// TestPionChecksSDPFingerprint shows that pion does its own check: when the
// fingerprint in the SDP answer is not the certificate the answerer
// presents, the offerer's DTLS fails.
func TestPionChecksSDPFingerprint(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	other, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	signal(t, alice, bob, func(sdp string) string { return swapFingerprint(sdp, other.Fingerprint()) })
	select {
	case <-alice.dtlsFailed:
	case <-alice.connected:
		t.Fatal("alice connected to a certificate that is not the SDP's")
	case <-time.After(connectTimeout):
		t.Fatal("alice's connection neither failed nor connected")
	}
}

// TestBindingCatchesMITM plays the attack that pion's check cannot see: the
// server rewrites the fingerprints in cleartext SDP to Mallory's and Mallory
// terminates DTLS on both legs with her own certificate. Each pion sees the
// certificate its SDP announced and connects; the binding check against the
// fingerprint from the peer's protected stanza refuses the session on both
// sides.
func TestBindingCatchesMITM(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	// Mallory answers alice's offer as "bob" and offers to bob as "alice".
	malloryA, malloryB := newPeer(t, "mallory-to-alice"), newPeer(t, "mallory-to-bob")
	signal(t, alice, malloryA, nil)
	signal(t, malloryB, bob, nil)
	waitConnected(t, alice, malloryA, malloryB, bob)

	// Pion's view: the SDP alice got names the certificate she was shown.
	pionView := sdpFingerprint(t, alice.pc.RemoteDescription().SDP)
	if err := (dtls.Binding{SID: "s1", Expected: pionView}).CheckPeerConnection(alice.pc); err != nil {
		t.Fatalf("against the SDP's fingerprint the check passes, as pion's does: %v", err)
	}

	// Our view: the fingerprints inside the protected session-accept from
	// bob's certified device and session-initiate from alice's.
	for _, tc := range []struct {
		p        *peer
		peerName string
		expected dtls.Fingerprint
	}{
		{alice, "bob@example.org", bob.cert.Fingerprint()},
		{bob, "alice@example.org", alice.cert.Fingerprint()},
	} {
		b := dtls.Binding{SID: "s1", Peer: tc.peerName, Device: 9, Expected: tc.expected}
		err := b.CheckPeerConnection(tc.p.pc)
		var me *dtls.MismatchError
		if !errors.As(err, &me) || !errors.Is(err, dtls.ErrBindingMismatch) {
			t.Fatalf("%s: check = %v, want a *MismatchError", tc.p.name, err)
		}
		if !me.Expected.Equal(tc.expected) || me.SID != "s1" || me.Peer != tc.peerName || me.Device != 9 {
			t.Fatalf("%s: MismatchError = %+v", tc.p.name, me)
		}
		mallory := malloryA
		if tc.p == bob {
			mallory = malloryB
		}
		if !me.Got.Equal(mallory.cert.Fingerprint()) {
			t.Fatalf("%s: Got = %s, want Mallory's %s", tc.p.name, me.Got, mallory.cert.Fingerprint())
		}
	}
}
