package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// isProtectedIQSet reports whether st is a protected IQ request from the
// account from to the account to.
func isProtectedIQSet(st localxmpp.Stanza, from, to jid.JID) bool {
	return st.Name == "iq" && st.Type == "set" && st.From.Bare().Equal(from) && st.To.Bare().Equal(to) &&
		bytes.Contains(st.Raw, []byte(e2e.NS))
}

var encBlob = regexp.MustCompile(`(m=["']enc["']>)([A-Za-z0-9+/=]+)(</p>)`)

// flipProtected changes one character of the ciphertext of an encrypted
// <p/>.
func flipProtected(t testing.TB, raw []byte) []byte {
	t.Helper()
	done := false
	out := encBlob.ReplaceAllFunc(raw, func(m []byte) []byte {
		parts := encBlob.FindSubmatch(m)
		b := append([]byte(nil), parts[2]...)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		done = true
		return append(append(append([]byte{}, parts[1]...), b...), parts[3]...)
	})
	if !done {
		t.Fatalf("no encrypted <p/> in %s", raw)
	}
	return out
}

// offerXML is an unprotected session-initiate as a server would forge
// (or rewrite) one.
func offerXML(from, to jid.JID, sid, transportExtra, descExtra string) []byte {
	return []byte(fmt.Sprintf(`<iq xmlns='jabber:client' type='set' id='forged-%s' from='%s' to='%s'>`+
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='%s' initiator='%s'>`+
		`<content creator='initiator' name='0'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>`+
		`<payload-type id='111' name='opus' clockrate='48000' channels='2'/>%s</description>`+
		`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='Wq3v' pwd='asd88fgpdd777uzjYhagZgYh'>%s</transport>`+
		`</content></jingle></iq>`, sid, from, to, sid, from, descExtra, transportExtra))
}

const forgedFingerprint = `<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>` +
	`AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99</fingerprint>`

const sdesCrypto = `<encryption><crypto crypto-suite='AES_CM_128_HMAC_SHA1_80' key-params='inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz' tag='1'/></encryption>`

func inject(t testing.TB, srv *localxmpp.Server, raw []byte) {
	t.Helper()
	if err := srv.Inject(restanza(t, raw)); err != nil {
		t.Fatal(err)
	}
}

func isCallEvent(ev Event) bool { return ev.Kind == EventCall }

func isCallEnded(id string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == EventCall && ev.Call.ID == id && ev.Call.State == CallEnded }
}

// TestCallAttackUnprotectedJingle: Jingle and JMI in clear — a server
// that forges or rewrites an offer (its own fingerprint), plain RTP/AVP,
// SDES keys, Conversations' OMEMO fingerprint, a JMI propose around the
// envelope — are classified, refused from a securejingle peer, flagged
// from a legacy one, alerted, and never ring.
func TestCallAttackUnprotectedJingle(t *testing.T) {
	noLeaks(t)
	srv, a, b := callPair(t, nil, nil)
	if err := srv.AddUser("carol", "carol-password"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Subscribe(jid.MustParse("carol@"+testDomain), bobJID); err != nil {
		t.Fatal(err)
	}
	alice := a.JID()
	carol := jid.MustParse("carol@" + testDomain + "/conversations")
	conv := func(name string) string {
		b, err := os.ReadFile("../jingle/testdata/conversations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	elem := func(doc, local string) string {
		i := strings.Index(doc, "<"+local)
		j := strings.LastIndex(doc, "</"+local+">")
		if i < 0 || j < 0 {
			t.Fatalf("no <%s> in fixture", local)
		}
		return doc[i : j+len("</"+local+">")]
	}
	omemoOffer := strings.NewReplacer("juliet@capulet.example/Conversations.p8Qz", b.JID().String(),
		"romeo@montague.example/Conversations.Xk2a", alice.String()).Replace(elem(conv("session-initiate-omemo.xml"), "iq"))
	omemoOffer = strings.Replace(omemoOffer, "<iq ", "<iq from='"+alice.String()+"' ", 1)
	message := func(from jid.JID, payload string) []byte {
		return []byte(`<message xmlns='jabber:client' type='chat' id='m-` + from.Resourcepart() + `' from='` + from.String() + `' to='` + bobJID.String() + `'>` + payload + `</message>`)
	}
	tests := []struct {
		name       string
		raw        []byte
		rule       string
		protection policy.Protection
	}{
		{"server's own fingerprint in an offer in clear", offerXML(alice, b.JID(), "u1", forgedFingerprint, ""),
			"default-refuse-unprotected-jingle", policy.ProtectionTransportOnly},
		{"plain RTP/AVP", offerXML(alice, b.JID(), "u2", "", ""),
			"default-refuse-cleartext-channels", policy.ProtectionCleartext},
		{"SDES keys", offerXML(alice, b.JID(), "u3", "", sdesCrypto),
			"default-refuse-cleartext-channels", policy.ProtectionCleartext},
		{"Conversations' OMEMO fingerprint", []byte(omemoOffer),
			"default-refuse-unprotected-jingle", policy.ProtectionTransportOnly},
		{"legacy peer, fingerprint in clear", offerXML(carol, b.JID(), "u5", forgedFingerprint, ""),
			"default-flag-transport-only", policy.ProtectionTransportOnly},
		{"legacy peer, plain RTP", offerXML(carol, b.JID(), "u6", "", ""),
			"default-refuse-cleartext-channels", policy.ProtectionCleartext},
		{"JMI propose in a plain message (Conversations)", message(alice, elem(conv("propose.xml"), "propose")),
			"default-refuse-unprotected-jingle", policy.ProtectionTransportOnly},
		{"JMI proceed with a device element", message(alice, elem(conv("proceed-device.xml"), "proceed")),
			"default-refuse-unprotected-jingle", policy.ProtectionTransportOnly},
		{"legacy peer's JMI propose", message(carol, elem(conv("propose.xml"), "propose")),
			"default-flag-transport-only", policy.ProtectionTransportOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inject(t, srv, tt.raw)
			ev := b.waitEvent(t, "alert "+tt.rule, func(ev Event) bool {
				if isCallEvent(ev) {
					t.Fatalf("a call event for unprotected signaling: %+v", ev.Call)
				}
				return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Facts.Kind == policy.KindMediaCall
			})
			f, d := ev.Alert.Facts, ev.Alert.Decision
			if d.Rule != tt.rule || f.Protection != tt.protection || f.Signaling != policy.SignalingUnprotected || f.Direction != policy.DirectionIncoming {
				t.Fatalf("alert facts %+v decision %+v", f, d)
			}
		})
	}
	// Nothing rings; a protected call still works afterwards.
	noEvent(t, b, isCallEvent)
	if len(b.Calls()) != 0 {
		t.Fatalf("calls %+v", b.Calls())
	}
}

// TestCallAttackTamperedOffer: the server changes one byte of the
// protected session-initiate. Bob's engine refuses it (alert); alice's
// call fails cleanly with security-error, bob's ends too.
func TestCallAttackTamperedOffer(t *testing.T) {
	noLeaks(t)
	srv, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true}))
	h := &hostile{}
	srv.SetHook(h.hook)
	tampered := make(chan struct{}, 1)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isProtectedIQSet(st, aliceJID, bobJID) && len(tampered) == 0 {
			tampered <- struct{}{}
			return []localxmpp.Stanza{restanza(t, flipProtected(t, st.Raw))}
		}
		return []localxmpp.Stanza{st}
	})
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "bob: integrity alert", func(ev Event) bool {
		return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == "integrity"
	})
	aEnd := a.waitEnded(t, placed.ID)
	if aEnd.EndReason != "security-error" || aEnd.Binding == BindingPassed || aEnd.Detail == "" {
		t.Fatalf("alice's call %+v", aEnd)
	}
	bEnd := b.waitEnded(t, placed.ID)
	if bEnd.Binding == BindingPassed {
		t.Fatalf("bob's call %+v", bEnd)
	}
}

// TestCallAttackMITM: bob's media leg presents another certificate than
// the one whose fingerprint its protected session-accept carries (as a
// man in the middle of the media path would). Alice's binding check
// catches it — with pion's own check on, and with it off (then only
// securejingle's check stands) — ends the call with security-error and
// alerts. The MITM plays audio at once; alice, who records, holds her
// binding check until its packets arrived and keeps none of them.
func TestCallAttackMITM(t *testing.T) {
	for _, pionCheck := range []bool{true, false} {
		t.Run(fmt.Sprintf("pion check %v", pionCheck), func(t *testing.T) {
			noLeaks(t)
			dir := t.TempDir()
			src := filepath.Join(dir, "mitm.ogg")
			writeTestOpus(t, src, 2*testAudioPackets)
			aRec := mkdir(t, dir, "alice-rec")
			signaled := must(dtls.NewCertificate())
			mitm := func(g *Gateway) {
				g.callHooks.cert = func() *dtls.Certificate { return must(dtls.NewCertificate()) }
				g.callHooks.mutateOutgoing = func(j *jingle.Jingle) {
					for i := range j.Contents {
						if tr := j.Contents[i].Transport; tr != nil && tr.Fingerprint != nil {
							tr.Fingerprint.Value = signaled.Fingerprint().String()
						}
					}
				}
			}
			var received atomic.Uint64 // packets alice's leg had read when she checked
			aliceSetup := func(g *Gateway) {
				g.callHooks.noPionCheck = !pionCheck
				g.callHooks.beforeBinding = func(leg *mediaPeer) {
					for i := 0; i < 500 && leg.stats().packetsReceived < 10; i++ {
						time.Sleep(10 * time.Millisecond)
					}
					received.Store(leg.stats().packetsReceived)
				}
			}
			_, a, b := callPair(t, aliceSetup, withSetup(mitm, answerWith(CallMedia{Audio: true, AudioFile: src})))
			ctx := testCtx(t)
			placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true, RecordDir: aRec})
			if err != nil {
				t.Fatal(err)
			}
			got := expect(t, a, nil, map[string]func(Event) bool{"binding alert": isCallAlert("dtls-binding"), "end": isCallEnded(placed.ID)})
			if ev := got["binding alert"]; ev.Alert.Decision.Action != policy.ActionRefuse || ev.Alert.Facts.Kind != policy.KindMediaCall {
				t.Fatalf("alert %+v", ev.Alert)
			}
			aEnd := *got["end"].Call
			if aEnd.EndReason != "security-error" || aEnd.Binding != BindingFailed || aEnd.PeerFingerprint != signaled.Fingerprint().String() {
				t.Fatalf("alice's call %+v", aEnd)
			}
			if aEnd.Connected != (CallInfo{}).Connected {
				t.Fatalf("alice's call was marked connected: %+v", aEnd)
			}
			if !pionCheck && received.Load() < 10 {
				t.Fatalf("the MITM's media did not reach alice before her check (%d packets): the test shows nothing", received.Load())
			}
			if ents, err := os.ReadDir(aRec); err != nil || len(ents) != 0 || len(aEnd.Recordings) != 0 {
				t.Fatalf("the MITM's media was kept: directory %v (%v), recordings %v", ents, err, aEnd.Recordings)
			}
			bEnd := b.waitEnded(t, placed.ID)
			if bEnd.Binding == BindingPassed && bEnd.EndReason == "success" {
				t.Fatalf("bob's call %+v", bEnd)
			}
		})
	}
}

// TestCallAttackCleartextProtected: a peer that offers plain RTP or SDES
// inside protected signaling is refused by policy (security-required);
// the caller's call ends with security-error.
func TestCallAttackCleartextProtected(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(c *jingle.Content)
	}{
		{"RTP/AVP", func(c *jingle.Content) { c.Transport.Fingerprint = nil }},
		{"SDES", func(c *jingle.Content) {
			c.Transport.Fingerprint = nil
			c.Description.Encryption = &jingle.Encryption{Crypto: []jingle.Crypto{{CryptoSuite: "AES_CM_128_HMAC_SHA1_80",
				KeyParams: "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", Tag: "1"}}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			cleartext := func(g *Gateway) {
				g.callHooks.mutateOutgoing = func(j *jingle.Jingle) {
					for i := range j.Contents {
						if j.Contents[i].Description != nil && j.Contents[i].Transport != nil {
							tt.mod(&j.Contents[i])
						}
					}
				}
			}
			_, a, b := callPair(t, cleartext, answerWith(CallMedia{Audio: true}))
			ctx := testCtx(t)
			placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
			if err != nil {
				t.Fatal(err)
			}
			got := expect(t, b, nil, map[string]func(Event) bool{"cleartext alert": isCallAlert("default-refuse-cleartext-channels"), "end": isCallEnded(placed.ID)})
			if f := got["cleartext alert"].Alert.Facts; f.Protection != policy.ProtectionCleartext || f.Signaling != policy.SignalingProtected {
				t.Fatalf("facts %+v", f)
			}
			if end := got["end"].Call; end.EndReason != "security-error" || end.Binding == BindingPassed {
				t.Fatalf("bob's call %+v", end)
			}
			if end := a.waitEnded(t, placed.ID); end.EndReason != "security-error" {
				t.Fatalf("alice's call %+v", end)
			}
		})
	}
}

// TestCallAttackReplayedInitiate: the server replays alice's protected
// session-initiate into a running call: bob's engine refuses the replay
// (alert) and the call goes on.
func TestCallAttackReplayedInitiate(t *testing.T) {
	noLeaks(t)
	srv, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true}))
	h := &hostile{}
	srv.SetHook(h.hook)
	first := make(chan localxmpp.Stanza, 1)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isProtectedIQSet(st, aliceJID, bobJID) {
			select {
			case first <- st:
			default:
			}
		}
		return []localxmpp.Stanza{st}
	})
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	if err := srv.Inject(<-first); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "bob: replay refused", func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call.State == CallEnded {
			t.Fatalf("the replay ended the call: %+v", ev.Call)
		}
		return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == "integrity"
	})
	if c, _ := b.Call(placed.ID); c.State != CallConnected {
		t.Fatalf("bob's call after the replay %+v", c)
	}
	if len(b.Calls()) != 1 {
		t.Fatalf("bob's calls %+v", b.Calls())
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("bob's call %+v", end)
	}
}

// TestCallAttackOtherDevice: once the phone took the call, bob's desk
// (certified, same account) cannot speak in the session: its Jingle is
// refused with unknown-session and alerted, and a second session-accept
// from the phone is out of order. The call goes on.
func TestCallAttackOtherDevice(t *testing.T) {
	noLeaks(t)
	_, a, phone, desk := bobTwoDevices(t)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	phone.waitCall(t, placed.ID, "phone rings", func(c CallInfo) bool { return c.State == CallRinging })
	if err := phone.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	jerr := func(g *testGateway, action jingle.Action) jingle.ErrorCondition {
		t.Helper()
		j := &jingle.Jingle{Action: action, SID: placed.ID, Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}}
		if action == jingle.ActionSessionAccept {
			j.Reason = nil
			j.Contents = []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "0",
				Description: &jingle.Description{Media: "audio", PayloadTypes: []jingle.PayloadType{{ID: 111, Name: "opus", Clockrate: 48000, Channels: 2}}},
				Transport:   &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh"}}}
		}
		payload := must(j.Marshal())
		_, _, err := g.SendProtectedIQ(ctx, a.JID(), "set", payload, false)
		var pe *ProtectedError
		if !errors.As(err, &pe) {
			t.Fatalf("%s from %s: %v", action, g.JID(), err)
		}
		jc, _ := jingle.ParseErrorCondition(pe.Payload)
		return jc
	}
	if jc := jerr(desk, jingle.ActionSessionTerminate); jc != jingle.ErrUnknownSession {
		t.Fatalf("desk's terminate: %q", jc)
	}
	a.waitEvent(t, "alice: binding alert", isCallAlert("call-binding"))
	if jc := jerr(phone, jingle.ActionSessionAccept); jc != jingle.ErrOutOfOrder {
		t.Fatalf("phone's second accept: %q", jc)
	}
	if c, _ := a.Call(placed.ID); c.State != CallConnected {
		t.Fatalf("alice's call %+v", c)
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := phone.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("phone's call %+v", end)
	}
}

// TestCallAttackPhantomPropose: a device under alice's account that her
// account key never certified (added by the server or with her password)
// proposes calls to bob. Bob's engine opens nothing from it: no call
// rings, bob is told once (alert de-duplication), and the phantom's own
// PlaceCall refuses to start.
func TestCallAttackPhantomPropose(t *testing.T) {
	noLeaks(t)
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(aliceJID, bobJID); err != nil {
		t.Fatal(err)
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{setup: withSetup()})
	b := startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{dedup: true, setup: withSetup()})
	a.waitDevices(t, bobJID.String(), 1)
	b.waitDevices(t, aliceJID.String(), 1)
	phantom := startGateway(t, srv, "alice@"+testDomain+"/phantom", "alice-password", gwOptions{signer: a.signer, setup: withSetup()})
	phantom.waitDevices(t, bobJID.String(), 1)
	ctx := testCtx(t)
	if _, err := phantom.PlaceCall(ctx, bobJID, CallMedia{Audio: true}); !errors.Is(err, ErrDeviceNotCertified) {
		t.Fatalf("phantom PlaceCall: %v", err)
	}
	alerts := 0
	for i := range 5 {
		m := &jingle.JMI{Kind: jingle.JMIPropose, ID: fmt.Sprintf("phantom-%d", i), Descriptions: []jingle.Description{{Media: "audio"}}}
		if err := phantom.sendCallJMI(ctx, bobJID, m); err != nil {
			t.Fatal(err)
		}
	}
	// A real call afterwards is the barrier: everything before it was
	// processed when it rings.
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "bob: the real call rings", func(ev Event) bool {
		switch {
		case ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Facts.PeerJID == aliceJID.String():
			alerts++
		case ev.Kind == EventCall && ev.Call.ID != placed.ID:
			t.Fatalf("a phantom's call event: %+v", ev.Call)
		}
		return ev.Kind == EventCall && ev.Call.ID == placed.ID && ev.Call.State == CallRinging
	})
	if alerts != 1 {
		t.Fatalf("%d alerts about alice's phantom device, want exactly 1 (de-duplicated)", alerts)
	}
	for _, c := range b.Calls() {
		if c.ID != placed.ID {
			t.Fatalf("phantom call listed: %+v", c)
		}
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
}

// TestCallStrangerNeverRings: a certified device of an account that is not
// on bob's roster proposes a call: policy refuses it
// (default-refuse-stranger-calls) and bob is alerted. (The caller hears
// nothing: TestCallRegressStrangerNoReject.)
func TestCallStrangerNeverRings(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	b.mu.Lock()
	delete(b.roster, aliceJID.String()) // alice becomes a stranger to bob
	b.mu.Unlock()
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "bob: stranger alert", func(ev Event) bool {
		if isCallEvent(ev) {
			t.Fatalf("a stranger's call rings: %+v", ev.Call)
		}
		return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == "default-refuse-stranger-calls"
	})
	if f := ev.Alert.Facts; f.OnRoster || f.Protection != policy.ProtectionE2EBound || f.Signaling != policy.SignalingProtected {
		t.Fatalf("facts %+v", f)
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if len(b.Calls()) != 0 {
		t.Fatalf("bob's calls %+v", b.Calls())
	}
}
