package gateway

// Regression tests of the issue 8 review of the call channel: each one
// fails on the code before its fix.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// forgePresence makes g believe that resource res of bare runs device
// dev, as a server that forges presence can.
func forgePresence(t *testing.T, g *testGateway, bare, res string, dev uint32) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.contacts[bare]
	if c == nil || c.resources[res] == nil {
		t.Fatalf("%s has no presence of %s/%s", g.bare(), bare, res)
	}
	c.resources[res].device = dev
}

// TestCallRegressBoundDevice (findings 5 and 6): the phone took alice's
// call; the server then claims in presence that the phone's resource runs
// the desk's device. Alice's call signaling stays sealed to the phone's
// device (an ICE restart goes through), and the desk's finish, moved by
// the server to the phone's resource, does not end the call.
func TestCallRegressBoundDevice(t *testing.T) {
	noLeaks(t)
	srv, a, phone, desk := bobTwoDevices(t)
	h := &hostile{}
	srv.SetHook(h.hook)
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
	phone.waitCall(t, placed.ID, "phone: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	forgePresence(t, a, bobJID.String(), "phone", desk.eng.Device())
	ca := a.calls.get(placed.ID)

	// Finding 6: the transport-info of the restart is sealed to the
	// phone's device, not to the one presence names.
	if err := ca.postWait(ctx, callMsg{kind: msgRestartICE}); err != nil {
		t.Fatalf("ICE restart with forged presence: %v", err)
	}

	// Finding 5: the desk's finish arrives from the phone's resource.
	deskFrom := regexp.MustCompile(`from=['"]` + regexp.QuoteMeta(desk.JID().String()) + `['"]`)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && st.From.Equal(desk.JID()) {
			return []localxmpp.Stanza{restanza(t, deskFrom.ReplaceAll(st.Raw, []byte(`from="`+phone.JID().String()+`"`)))}
		}
		return []localxmpp.Stanza{st}
	})
	fin := &jingle.JMI{Kind: jingle.JMIFinish, ID: placed.ID, Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}}
	if err := desk.sendCallJMI(ctx, a.JID(), fin); err != nil {
		t.Fatal(err)
	}
	if err := desk.SendChat(ctx, aliceJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "barrier", func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call.ID == placed.ID && ev.Call.State == CallEnded {
			t.Fatalf("the desk's finish ended the phone's call: %+v", ev.Call)
		}
		return isChat("barrier")(ev)
	})
	// The finish was queued before the barrier; this is handled after it.
	if err := ca.postWait(ctx, callMsg{kind: msgNop}); err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Call(placed.ID); c.State == CallEnded { // connected, or reconnecting after the restart
		t.Fatalf("alice's call after the desk's finish: %+v", c)
	}
	h.set(nil)
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := phone.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("phone's call %+v", end)
	}
}

// stallSink is an alert sink that hangs (as a sink sending through a
// stalling server would) until released or its context ends; it records
// the rule of every alert it was handed.
type stallSink struct {
	mu      sync.Mutex
	rules   []string
	release chan struct{}
	once    sync.Once
}

// newStallSink returns a stalling sink, released at the latest when the
// test ends.
func newStallSink(t *testing.T) *stallSink {
	s := &stallSink{release: make(chan struct{})}
	t.Cleanup(s.free)
	return s
}

// free lets every waiting and later alert through.
func (s *stallSink) free() { s.once.Do(func() { close(s.release) }) }

func (s *stallSink) Send(ctx context.Context, a policy.Alert) error {
	s.mu.Lock()
	s.rules = append(s.rules, a.Decision.Rule)
	s.mu.Unlock()
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stallSink) saw(rule string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.rules, rule)
}

// plainPropose is a JMI propose in a plain message, as a server forges
// one around the envelope.
func plainPropose(from, to jid.JID, id string) []byte {
	return []byte(`<message xmlns='jabber:client' type='chat' id='p-` + id + `' from='` + from.String() + `' to='` + to.String() + `'>` +
		`<propose xmlns='urn:xmpp:jingle-message:0' id='` + id + `'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>`)
}

// TestCallRegressCriticalAlertKept (finding 2): a flood of unprotected
// JMI proposes while the alert sinks stall does not crowd out the
// dtls-binding alert of a call that is intercepted afterwards.
func TestCallRegressCriticalAlertKept(t *testing.T) {
	noLeaks(t)
	sink := newStallSink(t)
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
	srv, a, b := callPairOpts(t, gwOptions{sinks: []policy.Sink{sink}}, gwOptions{setup: withSetup(mitm, answerWith(CallMedia{Audio: true}))})
	for i := range 2 * maxCallBackground {
		inject(t, srv, plainPropose(b.JID(), a.JID(), fmt.Sprint("flood-", i)))
	}
	ctx := testCtx(t)
	if err := b.SendChat(ctx, aliceJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "barrier", isChat("barrier"))
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "the dtls-binding alert reaches the sinks", func() bool { return sink.saw("dtls-binding") })
	sink.free()
	got := expect(t, a, nil, map[string]func(Event) bool{"binding alert": isCallAlert("dtls-binding"), "end": isCallEnded(placed.ID)})
	if end := got["end"].Call; end.EndReason != "security-error" {
		t.Fatalf("alice's call %+v", end)
	}
}

// TestCallRegressUnprotectedJingleBounded (finding 3): unprotected Jingle
// IQs while the alert sinks stall start no goroutine each; their alerts
// coalesce and arrive once the sinks move again.
func TestCallRegressUnprotectedJingleBounded(t *testing.T) {
	noLeaks(t)
	sink := newStallSink(t)
	srv, a, b := callPairOpts(t, gwOptions{}, gwOptions{sinks: []policy.Sink{sink}})
	ctx := testCtx(t)
	base := runtime.NumGoroutine()
	const n = 200
	for i := range n {
		inject(t, srv, offerXML(a.JID(), b.JID(), fmt.Sprint("u", i), forgedFingerprint, ""))
	}
	// The read loop handles the IQs before it passes the message on.
	if err := a.SendChat(ctx, bobJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "barrier", isChat("barrier"))
	if grew := runtime.NumGoroutine() - base; grew > n/10 {
		t.Fatalf("%d goroutines more after %d unprotected Jingle IQs", grew, n)
	}
	sink.free()
	ev := b.waitEvent(t, "the coalesced alert", isCallAlert("default-refuse-unprotected-jingle"))
	if !strings.Contains(ev.Alert.Decision.Detail, "more alerts like it") {
		// The first may have gone out alone; the next one carries the rest.
		ev = b.waitEvent(t, "the coalesced alert", isCallAlert("default-refuse-unprotected-jingle"))
	}
	if !strings.Contains(ev.Alert.Decision.Detail, "more alerts like it") {
		t.Fatalf("alert detail %q does not say it stands for more", ev.Alert.Decision.Detail)
	}
}

// TestCallRegressStrangerNoReject (finding 2): a stranger's refused
// propose gets no reject back; the caller's call rings on until it hangs
// up.
func TestCallRegressStrangerNoReject(t *testing.T) {
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
	b.waitEvent(t, "bob: stranger alert", isCallAlert("default-refuse-stranger-calls"))
	if err := b.SendChat(ctx, aliceJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "barrier", func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call.State == CallEnded {
			t.Fatalf("alice's call ended before her hang-up: %+v", ev.Call)
		}
		return isChat("barrier")(ev)
	})
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Call(placed.ID); c.EndReason != "cancel" {
		t.Fatalf("alice's call %+v", c)
	}
}

// unstartedCall registers an incoming call of alice on b, bound to her
// device and waiting for her session-initiate, whose goroutine does not
// run: what is queued for it stays queued.
func unstartedCall(t *testing.T, a, b *testGateway, id string) *call {
	t.Helper()
	c := b.newCall(id, false, aliceJID.String(), []string{"audio"})
	c.bound, c.boundFull, c.boundDev = true, a.JID(), a.eng.Device()
	c.sig, c.info.State = sigProceeded, CallConnecting
	if err := b.calls.add(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cancel(); c.finishUnstarted() })
	return c
}

func alicePeer(a *testGateway) *e2e.Peer {
	return &e2e.Peer{Device: e2e.Device{JID: aliceJID.String(), ID: a.eng.Device()}}
}

// TestCallRegressQueueReserved (finding 7): with the call's queue full, a
// session-initiate is answered resource-constraint and changes nothing —
// the peer may send it again — whether it would be taken or refused.
func TestCallRegressQueueReserved(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	c := unstartedCall(t, a, b, "queue-full")
	for c.post(callMsg{kind: msgJingle}) {
	}
	fp := must(dtls.NewCertificate()).Fingerprint().String()
	for _, tt := range []struct {
		name string
		tr   *jingle.Transport
	}{
		{"offer", fpTransport(fp)},
		{"cleartext offer", &jingle.Transport{Ufrag: "Wq3v", Pwd: "asd88fgpdd777uzjYhagZgYh"}},
	} {
		j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: c.id, Initiator: a.JID().String(), Contents: []jingle.Content{rtpContent("0", tt.tr)}}
		_, err := b.handleJingleIQ(InnerIQ{From: a.JID(), Type: "set", Payload: must(j.Marshal()), Peer: alicePeer(a)})
		var se *StanzaError
		if !errors.As(err, &se) || se.Condition != "resource-constraint" {
			t.Fatalf("%s to a full queue: %v", tt.name, err)
		}
		c.mu.Lock()
		sig, sess := c.sig, c.sess
		c.mu.Unlock()
		if sig != sigProceeded || sess != nil {
			t.Fatalf("%s to a full queue changed the session: state %d, session %v", tt.name, sig, sess != nil)
		}
	}
}

// TestCallRegressPionEventsKept (finding 7): pion's events reach the
// call's goroutine even when its queue is full; the latest state wins.
// (The callbacks were closures that posted to the queue.)
func TestCallRegressPionEventsKept(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	c := unstartedCall(t, a, b, "queue-full")
	for c.post(callMsg{kind: msgJingle}) {
	}
	c.onPCState(webrtc.PeerConnectionStateFailed)
	c.onPCState(webrtc.PeerConnectionStateConnected)
	c.onICEState(webrtc.ICEConnectionStateDisconnected)
	c.onDTLSState(webrtc.DTLSTransportStateFailed)
	if len(c.kick) != 1 {
		t.Fatal("no kick pending for the call's goroutine")
	}
	e := c.takePion()
	if e.pc != webrtc.PeerConnectionStateConnected || e.ice != webrtc.ICEConnectionStateDisconnected || !e.dtlsFailed {
		t.Fatalf("pending events %+v", e)
	}
}

// TestCallRegressPeerCaps (finding 4): the incoming calls of one peer
// account take at most maxCallsPerPeer slots in whatever state (an
// auto-answerer moves them past ringing), and incoming calls leave a
// slot for one the user places.
func TestCallRegressPeerCaps(t *testing.T) {
	tab := newCallTable()
	mk := func(id, peer string, outgoing bool, st CallState) *call {
		c := &call{id: id, peer: peer, outgoing: outgoing}
		c.info.State = st
		return c
	}
	for i, st := range []CallState{CallConnecting, CallConnected} {
		if err := tab.add(mk(fmt.Sprint("eve", i), "eve@x", false, st)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.add(mk("eve-ringing", "eve@x", false, CallRinging)); !errors.Is(err, ErrTooManyCalls) {
		t.Fatalf("a third incoming call of one peer, the others answered: %v", err)
	}
	if err := tab.add(mk("carol", "carol@x", false, CallRinging)); err != nil {
		t.Fatal(err)
	}
	if err := tab.add(mk("dave", "dave@x", false, CallRinging)); !errors.Is(err, ErrTooManyCalls) {
		t.Fatalf("an incoming call in the slot kept for outgoing calls: %v", err)
	}
	if err := tab.add(mk("out", "bob@x", true, CallProposed)); err != nil {
		t.Fatalf("an outgoing call with incoming ones in every other slot: %v", err)
	}
}

// TestCallRegressProposeRate (finding 4): a contact that proposes and
// retracts over and over rings proposeBurst times, then not until the
// rate refills (bob's clock stands still here).
func TestCallRegressProposeRate(t *testing.T) {
	noLeaks(t)
	t0 := time.Now()
	_, a, b := callPairOpts(t, gwOptions{}, gwOptions{now: func() time.Time { return t0 }})
	ctx := testCtx(t)
	for range proposeBurst {
		placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
		if err != nil {
			t.Fatal(err)
		}
		b.waitCall(t, placed.ID, "bob rings", func(c CallInfo) bool { return c.State == CallRinging })
		if err := a.HangUp(ctx, placed.ID); err != nil {
			t.Fatal(err)
		}
		b.waitEnded(t, placed.ID)
	}
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SendChat(ctx, bobJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "barrier", func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call.ID == placed.ID {
			t.Fatalf("a propose over the rate rings: %+v", ev.Call)
		}
		return isChat("barrier")(ev)
	})
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
}

// hostCand is a host candidate of ip:port.
func hostCand(ip string, port uint16) jingle.Candidate {
	return jingle.Candidate{Component: 1, Foundation: "1", ID: fmt.Sprint("c", port), IP: ip, Network: 0, Port: port,
		Priority: 2130706431, Protocol: "udp", Type: "host"}
}

// TestCallRegressRemoteCandidates (finding 8): the peer's candidates are
// bounded per set of ICE credentials and per call, and addresses that do
// not reach a peer (loopback, link-local, unspecified, multicast,
// broadcast, host names) are refused unless calls run on loopback.
func TestCallRegressRemoteCandidates(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, func(g *Gateway) { g.callHooks.loopback = false })
	c := unstartedCall(t, a, b, "candidates")
	r := &callRun{}
	ti := func(ufrag string, cands ...jingle.Candidate) *jingle.Jingle {
		return &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: c.id, Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "0",
			Transport: &jingle.Transport{Ufrag: ufrag, Pwd: "asd88fgpdd777uzjYhagZgYh", Candidates: cands}}}}
	}
	var bad []jingle.Candidate
	for i, ip := range []string{"127.0.0.1", "::1", "169.254.1.2", "fe80::1", "0.0.0.0", "::", "224.0.0.251", "ff02::fb",
		"255.255.255.255", "::ffff:127.0.0.1", "peer.example", "abcd.local"} {
		bad = append(bad, hostCand(ip, uint16(1000+i)))
	}
	c.onTransportInfo(r, ti("Wq3v", bad...), false)
	if len(r.remoteCands) != 0 {
		t.Fatalf("refused addresses kept: %v", r.remoteCands)
	}
	// Transport-infos of one set of credentials: 64 candidates at most.
	for n := range 5 {
		var cands []jingle.Candidate
		for i := range jingle.MaxCandidates {
			cands = append(cands, hostCand("192.0.2.1", uint16(2000+n*jingle.MaxCandidates+i)))
		}
		c.onTransportInfo(r, ti("Wq3v", cands...), false)
	}
	if len(r.remoteCands) != maxCandsPerUfrag {
		t.Fatalf("%d candidates of one ufrag kept, want %d", len(r.remoteCands), maxCandsPerUfrag)
	}
	// Across ICE restarts: 256 per call.
	for n := range 2 * maxCandsPerCall / maxCandsPerUfrag {
		u := fmt.Sprint("restart", n)
		for i := range maxCandsPerUfrag {
			c.takeRemoteCandidate(r, u, hostCand("192.0.2.2", uint16(i+1)))
		}
	}
	if r.candsTaken != maxCandsPerCall {
		t.Fatalf("%d candidates taken in a call, want %d", r.candsTaken, maxCandsPerCall)
	}
	// On loopback, loopback candidates are taken; so are those at the
	// address of a STUN/TURN server of ours on this host.
	all := func(netip.Addr) bool { return true }
	if err := candidateAddrErr("127.0.0.1", all); err != nil {
		t.Fatal(err)
	}
	if err := candidateAddrErr("fe80::1", all); err == nil {
		t.Fatal("a link-local candidate on a loopback call")
	}
	servers := []webrtc.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp", "stun:[::1]:3478", "turns:turn.example:5349"}}, {URLs: []string{"stun:localhost"}}}
	got := iceServerLoopback(servers)
	for _, want := range []string{"127.0.0.1", "::1"} {
		if !slices.Contains(got, netip.MustParseAddr(want)) {
			t.Fatalf("loopback servers %v lack %s", got, want)
		}
	}
	relay := hostCand("127.0.0.1", 59004)
	relay.Type = "relay"
	if !c.takeRemoteCandidate(&callRun{iceLoopback: got}, "x", relay) {
		t.Fatal("a relay candidate at the address of our own TURN server on this host was refused")
	}
	if c.takeRemoteCandidate(&callRun{iceLoopback: got}, "x", hostCand("127.0.0.1", 59005)) {
		t.Fatal("a host candidate at the address of our own TURN server on this host was taken")
	}
	if c.takeRemoteCandidate(&callRun{iceLoopback: got}, "x", hostCand("127.0.0.2", 59004)) {
		t.Fatal("a loopback candidate at another address than our servers' was taken")
	}
}

// TestCallRegressStalePropose (finding 10): a propose whose protected
// time (its envelope's) is older than the ring timeout plus the clock
// skew allowed — held back by the server — or too far in the future does
// not ring; one within the skew does. Bob's clock is moved instead of
// holding the propose back.
func TestCallRegressStalePropose(t *testing.T) {
	for _, tt := range []struct {
		name  string
		shift time.Duration // bob's clock ahead of alice's
		rings bool
	}{
		{"held back past the ring timeout", DefaultRingTimeout + callClockSkew + time.Minute, false},
		{"dated in the future", -callClockSkew - time.Minute, false},
		{"within the clock skew", callClockSkew / 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			_, a, b := callPairOpts(t, gwOptions{}, gwOptions{now: func() time.Time { return time.Now().Add(tt.shift) }})
			ctx := testCtx(t)
			placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
			if err != nil {
				t.Fatal(err)
			}
			if tt.rings {
				b.waitCall(t, placed.ID, "bob rings", func(c CallInfo) bool { return c.State == CallRinging })
			} else {
				if err := a.SendChat(ctx, bobJID, "barrier"); err != nil {
					t.Fatal(err)
				}
				b.waitEvent(t, "barrier", func(ev Event) bool {
					if ev.Kind == EventCall && ev.Call.ID == placed.ID {
						t.Fatalf("a stale propose rings: %+v", ev.Call)
					}
					return isChat("barrier")(ev)
				})
			}
			if err := a.HangUp(ctx, placed.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCallCrossingProposes (finding 11): alice and bob call each other at
// once (the server holds both proposes until both were sent). The call
// with the lower id goes on and rings; the other ends with expired on its
// caller's side, and never rings.
func TestCallCrossingProposes(t *testing.T) {
	noLeaks(t)
	srv, a, b := callPair(t, nil, nil)
	h := &hostile{}
	srv.SetHook(h.hook)
	held := make(chan localxmpp.Stanza, 64)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && (st.From.Bare().Equal(aliceJID) && st.To.Bare().Equal(bobJID) || st.From.Bare().Equal(bobJID) && st.To.Bare().Equal(aliceJID)) {
			held <- st
			return nil
		}
		return []localxmpp.Stanza{st}
	})
	ctx := testCtx(t)
	ca, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.PlaceCall(ctx, aliceJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	h.set(nil)
	for len(held) > 0 {
		if err := srv.Inject(<-held); err != nil {
			t.Fatal(err)
		}
	}
	// winner's caller, loser's caller
	wc, lc, win, lose := a, b, ca.ID, cb.ID
	if cb.ID < ca.ID {
		wc, lc, win, lose = b, a, cb.ID, ca.ID
	}
	notLoser := func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call.ID == lose && ev.Call.Direction == CallIncoming {
			t.Fatalf("the call that lost the tie-break rings: %+v", ev.Call)
		}
		return false
	}
	got := expect(t, lc, notLoser, map[string]func(Event) bool{
		"loser ended": func(ev Event) bool {
			return ev.Kind == EventCall && ev.Call.ID == lose && ev.Call.State == CallEnded
		},
		"winner rings": func(ev Event) bool {
			return ev.Kind == EventCall && ev.Call.ID == win && ev.Call.State == CallRinging
		},
	})
	if end := got["loser ended"].Call; end.EndReason != "expired" || end.Detail != tieBreakLost {
		t.Fatalf("the losing call %+v", end)
	}
	wc.waitCall(t, win, "the winning call rings at the callee", func(c CallInfo) bool { return c.State == CallRinging })
	if err := lc.SendChat(ctx, wc.JID().Bare(), "barrier"); err != nil {
		t.Fatal(err)
	}
	wc.waitEvent(t, "barrier", func(ev Event) bool { notLoser(ev); return isChat("barrier")(ev) })
	if c, ok := wc.Call(lose); ok {
		t.Fatalf("the losing call is listed at its callee: %+v", c)
	}
	if err := lc.AnswerCall(ctx, win, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	wc.waitCall(t, win, "binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	if err := wc.HangUp(ctx, win); err != nil {
		t.Fatal(err)
	}
	if end := lc.waitEnded(t, win); end.EndReason != "success" {
		t.Fatalf("the winning call at its callee %+v", end)
	}
}

// TestCallRegressTieBreakFull (finding 11): bob's call to alice would
// lose the tie-break against alice's propose, but bob has no slot for
// hers: his own call goes on (alice hears busy), rather than both ending.
func TestCallRegressTieBreakFull(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	for i := range maxActiveCalls - 1 {
		c := b.newCall(fmt.Sprint("other-", i), true, "carol@"+testDomain, []string{"audio"})
		if err := b.calls.add(c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.cancel(); c.finishUnstarted() })
	}
	placed, err := b.PlaceCall(ctx, aliceJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice rings", func(c CallInfo) bool { return c.State == CallRinging })
	low := "00000000-0000-4000-8000-000000000000" // wins any tie-break
	if err := a.sendCallJMI(ctx, bobJID, &jingle.JMI{Kind: jingle.JMIPropose, ID: low, Descriptions: []jingle.Description{{Media: "audio"}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.SendChat(ctx, bobJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "barrier", isChat("barrier"))
	if err := b.calls.get(placed.ID).postWait(ctx, callMsg{kind: msgNop}); err != nil {
		t.Fatalf("bob's call after alice's propose: %v", err)
	}
	if c, _ := b.Call(placed.ID); c.State == CallEnded {
		t.Fatalf("bob's call ended though alice's could not take its place: %+v", c)
	}
	if err := b.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
}
