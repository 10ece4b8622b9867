package gateway

// Review rvcall2: the re-review of the fixes made after review rvcall
// (front_call.go). Each test asserts a property the fixes or §22.11
// claim, and fails on the code reviewed (1814870).

import (
	"bytes"
	"context"
	"encoding/xml"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/localpeer"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// isBundleLookup reports whether st is a PEP query of the bundles of an
// account (the lookup chatTargets makes of a contact without stored
// devices).
func isBundleLookup(st localxmpp.Stanza) bool {
	return st.Name == "iq" && st.Type == "get" && bytes.Contains(st.Raw, []byte(nsBundlesNode))
}

// plainCallToCarol starts alice's plain call to carol (a contact without
// securejingle): the session-initiate goes to carol, as without the
// gateway. lookups counts the gateway's PEP queries of carol's bundles
// from then on; drop makes the server drop them (a slow or hostile
// server: the lookup times out).
func plainCallToCarol(t *testing.T, sid string) (alice *jingleEndpoint, carol *plainClient, lookups *atomic.Int32, drop *atomic.Bool, tr jingle.Transport, name string) {
	t.Helper()
	srv, a, _ := callPair(t, nil, nil)
	lookups, drop = new(atomic.Int32), new(atomic.Bool)
	srv.SetHook(func(_ localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if isBundleLookup(st) && st.To.Localpart() == "carol" {
			lookups.Add(1)
			if drop.Load() {
				return nil
			}
		}
		return []localxmpp.Stanza{st}
	})
	carol = carolOn(t, srv)
	fa := startFront(t, a)
	alice = newJingleEndpoint(t, fa, "alice@"+testDomain+"/client", "alice")
	contents, groups := alice.peer.JingleOffer(t)
	alice.send(t, `<iq type="set" id="pi1" to="carol@`+testDomain+`/plain">`+marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: alice.full, Contents: contents, Groups: groups})+`</iq>`)
	got := carol.wait(t, "alice's plain offer", func(st *Stanza) bool { return st.Kind == "iq" && st.Child(jingle.NS, "jingle") != nil })
	carol.send(t, `<iq type="result" id="`+got.ID+`" to="`+got.From.String()+`"/>`)
	alice.wait(t, "the initiate's answer", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "pi1" })
	t0 := *contents[0].Transport
	return alice, carol, lookups, drop, jingle.Transport{Ufrag: t0.Ufrag, Pwd: t0.Pwd, Candidates: t0.Candidates[:1]}, contents[0].Name
}

// trickle sends alice's transport-info (id) of the plain session sid to
// carol and returns alice's answer to it; carol acknowledges what she
// gets.
func trickle(t *testing.T, alice *jingleEndpoint, carol *plainClient, sid, id, name string, tr jingle.Transport) *Stanza {
	t.Helper()
	ti := &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: sid,
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: name, Transport: &tr}}}
	alice.send(t, `<iq type="set" id="`+id+`" to="carol@`+testDomain+`/plain">`+marshalJingle(t, ti)+`</iq>`)
	res := alice.wait(t, "the answer to "+id, func(st *Stanza) bool {
		if st.Kind == "iq" && st.ID == id {
			return true
		}
		return false
	})
	return res
}

// carolAcks acknowledges, in the background, every Jingle IQ carol gets.
func carolAcks(t *testing.T, carol *plainClient) {
	t.Helper()
	go func() {
		for {
			select {
			case st, ok := <-carol.in:
				if !ok {
					return
				}
				if st.Kind == "iq" && st.Type == "set" && st.Child(jingle.NS, "jingle") != nil {
					raw := `<iq type="result" id="` + st.ID + `" to="` + st.From.String() + `"/>`
					_ = carol.sess.Send(t.Context(), xml.NewDecoder(strings.NewReader(raw)))
				}
			case <-t.Context().Done():
				return
			}
		}
	}()
}

// TestFrontCallPlainSessionNoLookupPerIQ: a plain call of alice's client
// with carol, who has no securejingle, passes as without the gateway.
// Since 3d07967 every Jingle IQ of the client to an account makes the
// front look the contact's keys up (a PEP query upstream, on the
// client's reader loop, up to frontLookupTimeout): each trickled
// candidate of a plain call costs a server round trip and holds every
// stanza of the client behind it. One lookup a session at most.
func TestFrontCallPlainSessionNoLookupPerIQ(t *testing.T) {
	alice, carol, lookups, _, tr, name := plainCallToCarol(t, "plain1")
	carolAcks(t, carol)
	before := lookups.Load()
	const n = 5
	for i := range n {
		if res := trickle(t, alice, carol, "plain1", "pt"+string(rune('0'+i)), name, tr); res.Type != "result" {
			t.Fatalf("alice's transport-info %d of her plain call was answered %s: %s", i, res.Type, stanzaText(res))
		}
	}
	if got := lookups.Load() - before; got > 1 {
		t.Errorf("%d transport-infos of one plain session made %d PEP lookups of carol's keys upstream, each on alice's client's reader loop", n, got)
	}
}

// TestFrontCallPlainSessionSurvivesSlowLookup: the server stops answering
// the gateway's PEP queries of carol (slow, or hostile) in the middle of
// alice's plain call with her: the call's next transport-info is held
// frontLookupTimeout on alice's reader loop, then answered unknown-session
// (XEP-0166: the session is gone) and never reaches carol, though the
// session was set up in clear to her and nothing new would leak.
func TestFrontCallPlainSessionSurvivesSlowLookup(t *testing.T) {
	alice, carol, _, drop, tr, name := plainCallToCarol(t, "plain2")
	carolAcks(t, carol)
	drop.Store(true)
	start := time.Now()
	res := trickle(t, alice, carol, "plain2", "ps1", name, tr)
	if res.Type != "result" {
		t.Errorf("after %v, alice's transport-info of her plain call with carol was answered %s: %s", time.Since(start).Round(time.Second), res.Type, stanzaText(res))
	}
}

// TestFrontCallLateAcceptHiddenKeysNotSent: the H1 fix (3d07967) keeps a
// client's Jingle of no front session from going in clear to a contact
// with securejingle, but tells such a contact by chatTargets alone. When
// none of the contact's stored devices can be used now (here bob
// distrusted alice; a device certificate that expired, or a key change
// the server forces, do the same) and the server answers the lookup of
// her bundles item-not-found, chatTargets says ErrNoE2E and the late
// session-accept of bob's client (its DTLS fingerprint, ICE credentials,
// candidates: its LAN addresses) goes upstream in clear. The front knows
// better: alice has stored devices (PeerSupportsE2E), the fact plainCallOut
// refuses a session-initiate on since the L4 fix.
func TestFrontCallLateAcceptHiddenKeysNotSent(t *testing.T) {
	srv, a, b := callPair(t, nil, nil)
	wire := &wireLog{ch: make(chan localxmpp.Stanza, 4096)}
	var hide atomic.Bool
	srv.SetHook(func(_ localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if hide.Load() && isBundleLookup(st) && st.To.Localpart() == "alice" {
			// The server says alice has no bundles node.
			e, err := localxmpp.ParseStanza([]byte(`<iq xmlns="jabber:client" type="error" id="` + st.ID + `" from="` + st.To.String() + `" to="` + st.From.String() + `"><error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`))
			if err != nil {
				t.Error(err)
				return nil
			}
			return []localxmpp.Stanza{e}
		}
		select {
		case wire.ch <- st:
		default:
		}
		return []localxmpp.Stanza{st}
	})
	fa, fb := startFront(t, a), startFront(t, b)
	alice := newJingleEndpoint(t, fa, "alice@"+testDomain+"/client", "alice")
	bob := newJingleEndpoint(t, fb, "bob@"+testDomain+"/client", "bob")
	st, init := initiate(t, alice, bob, "late2")
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: "late2", Reason: &jingle.Reason{Condition: jingle.ReasonCancel}})
	bob.waitJingle(t, jingle.ActionSessionTerminate)
	if _, _, err := b.cfg.Trust.Distrust(aliceJID.String()); err != nil {
		t.Fatal(err)
	}
	if f := b.peerFacts(policy.KindMediaCall, policy.DirectionOutgoing, aliceJID.String()); !f.PeerSupportsE2E {
		t.Fatal("bob's gateway does not know alice uses securejingle: the PoC shows nothing")
	}
	hide.Store(true)
	wire.all()
	ans, groups := bob.peer.JingleAnswer(t, init)
	bob.sendJingleRaw(t, st.From.String(), marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: bob.full, Contents: ans, Groups: groups}))
	noClearJingle(t, wire)
}

// TestFrontCallRingForgottenNoSlotLeak: firstRing keeps at most
// maxFrontRung calls as offered; beyond, the oldest is forgotten even
// while it still rings. (Here 64 updates of other ringing incoming calls
// stand for 64 calls of the user's contacts within two ring timeouts;
// callChanged makes the same record for each.) The next update of the
// forgotten call (the user mutes it before answering) offers it again:
// callChanged takes a second ring slot and overwrites byCall and
// ringSlot, orphaning the first sessions: the client is offered the
// call twice, and once the call is over a local-leg slot is never given
// back (each such leak takes one of maxActiveCalls for good).
func TestFrontCallRingForgottenNoSlotLeak(t *testing.T) {
	_, a, b := callPair(t, nil, nil)
	fb := startFront(t, b)
	c1 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c1", "bob-c1")
	info, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	c1.waitJingle(t, jingle.ActionSessionInitiate)
	for i := range maxFrontRung {
		b.Front().callChanged(&CallInfo{ID: "other" + strconv.Itoa(i), Direction: CallIncoming, State: CallRinging})
	}
	if err := b.MuteCall(testCtx(t), info.ID, true, false); err != nil {
		t.Fatal(err)
	}
	// MuteCall returns once its update ran callChanged.
	if n := localsOf(b.Gateway); n != 1 {
		t.Errorf("one ringing call holds %d local-leg slots, want 1", n)
	}
	a.HangUp(testCtx(t), info.ID)
	b.waitEnded(t, info.ID)
	deadline := time.Now().Add(15 * time.Second)
	for localsOf(b.Gateway) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's gateway holds %d local legs after the call", localsOf(b.Gateway))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLocalLegCandidatesCountedAcrossAnswer: a leg of newLocalOfferLeg
// (a client ringing) takes the client's trickled candidates before its
// answer (transport-info before session-accept, queued); takeAnswer then
// sets the count to the answer's candidates instead of adding them, so a
// client gets maxLocalCandidates more (the L1 fix counts the offer's
// and answer's candidates with the trickled ones, §22.11).
func TestLocalLegCandidatesCountedAcrossAnswer(t *testing.T) {
	_, a, _ := callPair(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), localGatherWait*2)
	defer cancel()
	leg, offer, err := a.newLocalOfferLeg(ctx, LocalOffer{Client: true}, localKinds{audio: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer leg.close()
	cand := func(i int) string {
		return "candidate:" + strconv.Itoa(i) + " 1 udp 2130706431 127.0.0.1 " + strconv.Itoa(40000+i) + " typ host"
	}
	took := 0
	for i := range maxLocalCandidates {
		if leg.addCandidate("0", cand(i)) == nil {
			took++
		}
	}
	p := localpeer.New(t, "client", nil)
	gathered := make(chan struct{})
	var once sync.Once
	p.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			once.Do(func() { close(gathered) })
		}
	})
	if _, err := p.AcceptOffer(ctx, offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatal("gathering did not end")
	}
	if err := leg.takeAnswer(p.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	for i := range maxLocalCandidates {
		if leg.addCandidate("0", cand(100+i)) == nil {
			took++
		}
	}
	if took > maxLocalCandidates {
		t.Errorf("the leg took %d trickled candidates besides its answer's, the limit is %d a leg", took, maxLocalCandidates)
	}
}

// TestFrontCallTwoChildIQNotSent: an IQ set whose <jingle/> has a sibling
// element (RFC 6120 §8.2.3 allows one payload; a client extension or bug
// adds another) is not the front's (clientJingle takes one child only):
// the session-initiate with the client's fingerprint and candidates goes
// upstream in clear to bob, who uses securejingle. The H2 rule (what the
// front cannot read never goes in clear to such a contact) covers it not.
func TestFrontCallTwoChildIQNotSent(t *testing.T) {
	wire, _, _, alice, bob := frontCallSetup(t)
	contents, groups := alice.peer.JingleOffer(t)
	raw := marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "two1", Initiator: alice.full, Contents: contents, Groups: groups})
	wire.all()
	alice.send(t, `<iq type="set" id="tw1" to="`+bob.full+`">`+raw+`<hint xmlns="urn:example:ext"/></iq>`)
	// A barrier: the server routed what alice sent before her ping.
	alice.send(t, `<iq type="get" id="tw2" to="`+testDomain+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	alice.wait(t, "the ping's answer", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "tw2" })
	noClearJingle(t, wire)
}

// TestFrontInboundTwoChildJingleRefused: the same on the way in
// (front_inbound.go plainSignal takes an IQ set of one child only): an
// unprotected session-initiate the server forges "from" alice's device
// (alice uses securejingle) is refused at bob's front
// (default-refuse-unprotected-jingle, §22.4: the server could sit in the
// middle of the call) — unless a sibling element rides along: then it is
// handed to bob's client, which finds its <jingle/> and rings with a call
// in clear shown as alice's. The one-child case is the control.
func TestFrontInboundTwoChildJingleRefused(t *testing.T) {
	srv, _, b := callPair(t, nil, nil)
	fb := startFront(t, b)
	bob := newJingleEndpoint(t, fb, "bob@"+testDomain+"/client", "bob")
	mallory := localpeer.New(t, "mallory", nil)
	contents, groups := mallory.JingleOffer(t)
	from := "alice@" + testDomain + "/laptop"
	inject := func(raw string) {
		t.Helper()
		st, err := localxmpp.ParseStanza([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Inject(st); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, sibling string }{{"one child", ""}, {"with a sibling", `<hint xmlns="urn:example:ext"/>`}} {
		sid := "forged" + strconv.Itoa(len(tc.sibling))
		raw := marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: from, Contents: contents, Groups: groups})
		inject(`<iq xmlns="jabber:client" type="set" id="f` + sid + `" from="` + from + `" to="` + bob.full + `">` + raw + tc.sibling + `</iq>`)
		// A barrier: the next stanza reached bob's client after it.
		inject(`<iq xmlns="jabber:client" type="get" id="b` + sid + `" from="` + from + `" to="` + bob.full + `"><query xmlns="jabber:iq:version"/></iq>`)
		bob.wait(t, "the version query", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "b"+sid })
		for _, st := range bob.seen {
			if st.Kind == "iq" && st.ID == "f"+sid {
				t.Errorf("%s: bob's client got the forged unprotected session-initiate from %s", tc.name, st.From)
			}
		}
	}
}
