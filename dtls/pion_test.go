package dtls_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/pionpair"
)

// signal runs a complete offer/answer for a data channel from offerer
// (see pionpair.Signal for mangle).
func signal(t *testing.T, offerer, answerer *pionpair.Peer, mangle func(string) string) {
	t.Helper()
	if _, err := offerer.PC.CreateDataChannel("probe", nil); err != nil {
		t.Fatal(err)
	}
	pionpair.Signal(t, offerer, answerer, mangle)
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
	alice, bob := pionpair.New(t, "alice", nil), pionpair.New(t, "bob", nil)
	signal(t, alice, bob, nil)
	pionpair.WaitConnected(t, alice, bob)

	// What each side advertised (and would put into its protected stanza).
	aliceAdv := sdpFingerprint(t, alice.PC.LocalDescription().SDP)
	bobAdv := sdpFingerprint(t, bob.PC.LocalDescription().SDP)
	if !aliceAdv.Equal(alice.Cert.Fingerprint()) || !bobAdv.Equal(bob.Cert.Fingerprint()) {
		t.Fatal("pion advertises a fingerprint other than our certificate's")
	}

	if err := (dtls.Binding{SID: "s1", Peer: "bob@example.org", Device: 2, Expected: bobAdv}).CheckTransport(alice.PC.SCTP().Transport()); err != nil {
		t.Fatalf("alice's check of bob: %v", err)
	}
	if err := (dtls.Binding{SID: "s1", Peer: "alice@example.org", Device: 1, Expected: aliceAdv}).CheckPeerConnection(bob.PC); err != nil {
		t.Fatalf("bob's check of alice: %v", err)
	}
	// The check can fail: alice's own fingerprint is not bob's.
	if err := (dtls.Binding{SID: "s1", Expected: aliceAdv}).CheckPeerConnection(alice.PC); !errors.Is(err, dtls.ErrBindingMismatch) {
		t.Fatalf("alice's check with her own fingerprint: %v, want ErrBindingMismatch", err)
	}
}

// TestPionChecksSDPFingerprint shows that pion does its own check: when the
// fingerprint in the SDP answer is not the certificate the answerer
// presents, the offerer's DTLS fails.
func TestPionChecksSDPFingerprint(t *testing.T) {
	alice, bob := pionpair.New(t, "alice", nil), pionpair.New(t, "bob", nil)
	other, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	signal(t, alice, bob, func(sdp string) string { return swapFingerprint(sdp, other.Fingerprint()) })
	select {
	case <-alice.DTLSFailed:
	case <-alice.Connected:
		t.Fatal("alice connected to a certificate that is not the SDP's")
	case <-time.After(pionpair.ConnectTimeout):
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
	alice, bob := pionpair.New(t, "alice", nil), pionpair.New(t, "bob", nil)
	// Mallory answers alice's offer as "bob" and offers to bob as "alice".
	malloryA, malloryB := pionpair.New(t, "mallory-to-alice", nil), pionpair.New(t, "mallory-to-bob", nil)
	signal(t, alice, malloryA, nil)
	signal(t, malloryB, bob, nil)
	pionpair.WaitConnected(t, alice, malloryA, malloryB, bob)

	// Pion's view: the SDP alice got names the certificate she was shown.
	pionView := sdpFingerprint(t, alice.PC.RemoteDescription().SDP)
	if err := (dtls.Binding{SID: "s1", Expected: pionView}).CheckPeerConnection(alice.PC); err != nil {
		t.Fatalf("against the SDP's fingerprint the check passes, as pion's does: %v", err)
	}

	// Our view: the fingerprints inside the protected session-accept from
	// bob's certified device and session-initiate from alice's.
	for _, tc := range []struct {
		p        *pionpair.Peer
		peerName string
		expected dtls.Fingerprint
	}{
		{alice, "bob@example.org", bob.Cert.Fingerprint()},
		{bob, "alice@example.org", alice.Cert.Fingerprint()},
	} {
		b := dtls.Binding{SID: "s1", Peer: tc.peerName, Device: 9, Expected: tc.expected}
		err := b.CheckPeerConnection(tc.p.PC)
		var me *dtls.MismatchError
		if !errors.As(err, &me) || !errors.Is(err, dtls.ErrBindingMismatch) {
			t.Fatalf("%s: check = %v, want a *MismatchError", tc.p.Name, err)
		}
		if !me.Expected.Equal(tc.expected) || me.SID != "s1" || me.Peer != tc.peerName || me.Device != 9 {
			t.Fatalf("%s: MismatchError = %+v", tc.p.Name, me)
		}
		mallory := malloryA
		if tc.p == bob {
			mallory = malloryB
		}
		if !me.Got.Equal(mallory.Cert.Fingerprint()) {
			t.Fatalf("%s: Got = %s, want Mallory's %s", tc.p.Name, me.Got, mallory.Cert.Fingerprint())
		}
	}
}
