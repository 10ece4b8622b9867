package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

func rtpContent(name string, tr *jingle.Transport) jingle.Content {
	return jingle.Content{Creator: jingle.CreatorInitiator, Name: name,
		Description: &jingle.Description{Media: "audio", PayloadTypes: []jingle.PayloadType{{ID: 111, Name: "opus", Clockrate: 48000, Channels: 2}}},
		Transport:   tr}
}

func fpTransport(fp string) *jingle.Transport {
	return &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh",
		Fingerprint: &jingle.Fingerprint{Hash: "sha-256", Setup: jingle.SetupActpass, Value: fp}}
}

// TestClassifyOffer: what protects the media of an offer, for policy.
func TestClassifyOffer(t *testing.T) {
	a := must(dtls.NewCertificate()).Fingerprint().String()
	b := must(dtls.NewCertificate()).Fingerprint().String()
	omemo := &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh", Other: []jingle.Raw{{
		XMLName: xmlName(jingle.NSOMEMOVerification, "fingerprint")}}}
	sdes := rtpContent("0", &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh"})
	sdes.Description.Encryption = &jingle.Encryption{Crypto: []jingle.Crypto{{CryptoSuite: "AES_CM_128_HMAC_SHA1_80", KeyParams: "inline:x", Tag: "1"}}}
	tests := []struct {
		name     string
		contents []jingle.Content
		sig      policy.Signaling
		want     policy.Protection
		err      bool
	}{
		{"protected DTLS-SRTP", []jingle.Content{rtpContent("0", fpTransport(a)), rtpContent("1", fpTransport(a))}, policy.SignalingProtected, policy.ProtectionE2EBound, false},
		{"fingerprint in clear", []jingle.Content{rtpContent("0", fpTransport(a))}, policy.SignalingUnprotected, policy.ProtectionTransportOnly, false},
		{"RTP/AVP", []jingle.Content{rtpContent("0", &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh"})}, policy.SignalingProtected, policy.ProtectionCleartext, false},
		{"no transport", []jingle.Content{rtpContent("0", nil)}, policy.SignalingProtected, policy.ProtectionCleartext, false},
		{"SDES", []jingle.Content{sdes}, policy.SignalingProtected, policy.ProtectionCleartext, false},
		{"SDES next to DTLS", []jingle.Content{rtpContent("0", fpTransport(a)), sdes}, policy.SignalingProtected, policy.ProtectionCleartext, false},
		{"OMEMO fingerprint only", []jingle.Content{rtpContent("0", omemo)}, policy.SignalingUnprotected, policy.ProtectionTransportOnly, false},
		{"different fingerprints", []jingle.Content{rtpContent("0", fpTransport(a)), rtpContent("1", fpTransport(b))}, policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		{"sha-1 fingerprint", []jingle.Content{rtpContent("0", &jingle.Transport{Fingerprint: &jingle.Fingerprint{Hash: "sha-1", Value: "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD"}})}, policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		{"no RTP content", nil, policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		// Finding 12: one fingerprint on every transport.
		{"OMEMO fingerprint on one content, XEP-0320 on the other", []jingle.Content{rtpContent("0", fpTransport(a)), rtpContent("1", omemo)},
			policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		{"XEP-0320 on one content, OMEMO on the first", []jingle.Content{rtpContent("0", omemo), rtpContent("1", fpTransport(a))},
			policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		{"a content without description and fingerprint", []jingle.Content{rtpContent("0", fpTransport(a)),
			{Creator: jingle.CreatorInitiator, Name: "data", Transport: &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh"}}},
			policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		{"a content without description, another fingerprint", []jingle.Content{rtpContent("0", fpTransport(a)),
			{Creator: jingle.CreatorInitiator, Name: "data", Transport: fpTransport(b)}},
			policy.SignalingProtected, policy.ProtectionTransportOnly, true},
		{"a content without description, the same fingerprint", []jingle.Content{rtpContent("0", fpTransport(a)),
			{Creator: jingle.CreatorInitiator, Name: "data", Transport: fpTransport(a)}},
			policy.SignalingProtected, policy.ProtectionE2EBound, false},
		{"OMEMO fingerprint next to the XEP-0320 one", []jingle.Content{rtpContent("0", &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh",
			Fingerprint: &jingle.Fingerprint{Hash: "sha-256", Setup: jingle.SetupActpass, Value: a}, Other: omemo.Other})}, policy.SignalingProtected, policy.ProtectionTransportOnly, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := classifyOffer(&jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "s", Contents: tt.contents}, tt.sig)
			if cl.prot != tt.want || (cl.err != nil) != tt.err {
				t.Fatalf("protection %v err %v, want %v err %v (%s)", cl.prot, cl.err, tt.want, tt.err, cl.why)
			}
			if cl.prot == policy.ProtectionE2EBound && cl.fp.String() != a {
				t.Fatalf("fingerprint %s, want %s", cl.fp, a)
			}
		})
	}
}

// TestCallTableBounds: concurrent calls and ringing proposals per peer
// are capped; ended calls beyond the history are forgotten.
func TestCallTableBounds(t *testing.T) {
	tab := newCallTable()
	mk := func(id, peer string, outgoing bool, st CallState) *call {
		c := &call{id: id, peer: peer, outgoing: outgoing}
		c.info.State = st
		return c
	}
	if err := tab.add(mk("r1", "eve@x", false, CallRinging)); err != nil {
		t.Fatal(err)
	}
	if err := tab.add(mk("r2", "eve@x", false, CallRinging)); err != nil {
		t.Fatal(err)
	}
	if err := tab.add(mk("r3", "eve@x", false, CallRinging)); !errors.Is(err, ErrTooManyCalls) {
		t.Fatalf("third ringing proposal of one peer: %v", err)
	}
	if err := tab.add(mk("r1", "bob@x", true, CallProposed)); !errors.Is(err, ErrCallState) {
		t.Fatalf("duplicate id: %v", err)
	}
	for i := range maxActiveCalls - 2 {
		if err := tab.add(mk(fmt.Sprint("o", i), "bob@x", true, CallProposed)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.add(mk("o-extra", "carol@x", true, CallProposed)); !errors.Is(err, ErrTooManyCalls) {
		t.Fatalf("call beyond the cap: %v", err)
	}
	for _, c := range tab.list() {
		c.ended = true
	}
	for i := range maxCallHistory + 5 {
		c := mk(fmt.Sprint("h", i), "bob@x", true, CallEnded)
		c.ended = true
		if err := tab.add(c); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tab.list()); n != maxCallHistory {
		t.Fatalf("%d calls kept, want %d", n, maxCallHistory)
	}
	if tab.get("r1") != nil || tab.get(fmt.Sprint("h", maxCallHistory+4)) == nil {
		t.Fatal("the oldest ended calls must go first")
	}
}

// TestCallRingTimeout: nobody answers; alice's proposal ends with timeout
// and bob stops ringing.
func TestCallRingTimeout(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, func(g *Gateway) { g.cfg.RingTimeout = 300 * time.Millisecond }, nil)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCall(t, placed.ID, "bob rings", func(c CallInfo) bool { return c.State == CallRinging })
	if end := a.waitEnded(t, placed.ID); end.EndReason != "timeout" {
		t.Fatalf("alice's call %+v", end)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "cancel" {
		t.Fatalf("bob's call %+v", end)
	}
}

// TestCallGatewayStops: alice's gateway stops during a call; every call
// goroutine is gone when Run returns, and bob's call ends.
func TestCallGatewayStops(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true}))
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	a.stop()
	<-a.done
	if c, _ := a.Call(placed.ID); c.State != CallEnded || c.EndReason != "gone" {
		t.Fatalf("alice's call after the stop %+v", c)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "gone" {
		t.Fatalf("bob's call %+v", end)
	}
	if _, err := a.PlaceCall(context.Background(), bobJID, CallMedia{Audio: true}); err == nil {
		t.Fatal("a stopped gateway placed a call")
	}
}
