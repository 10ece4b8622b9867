package gateway

// Review rvcall: the attacker review of gateway-mode calls
// (front_call.go). Each test asserts a property §22.11 claims, and failed
// on the reviewed code (but TestFrontCallRacesGiveLegsBack, a control).

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/localpeer"
	"github.com/securejingle/securejingle/jingle"
)

// sendJingleRaw sends the Jingle element raw in an IQ set to to and waits
// for its answer, of any type.
func (e *jingleEndpoint) sendJingleRaw(t *testing.T, to, raw string) *Stanza {
	t.Helper()
	id := "r" + randomID()
	e.send(t, `<iq type="set" id="`+id+`" to="`+to+`">`+raw+`</iq>`)
	return e.wait(t, "the answer to "+id, func(st *Stanza) bool { return st.Kind == "iq" && st.ID == id })
}

// noClearJingle fails the test, once, when the server routed a Jingle
// element or a DTLS fingerprint in clear (wireHasMedia, in short).
func noClearJingle(t *testing.T, wire *wireLog) {
	t.Helper()
	for _, st := range wire.all() {
		raw := string(st.Raw)
		if strings.Contains(raw, "urn:xmpp:jingle:1") || strings.Contains(raw, "urn:xmpp:jingle:apps:dtls:0") {
			if len(raw) > 600 {
				raw = raw[:600] + "..."
			}
			t.Errorf("the server routed a Jingle session in clear (%d bytes): %s", len(st.Raw), raw)
			return
		}
	}
}

func marshalJingle(t *testing.T, j *jingle.Jingle) string {
	t.Helper()
	j.XMLName = xml.Name{Space: jingle.NS, Local: "jingle"}
	raw, err := xml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestFrontCallLateAcceptNotSent: the caller hangs up while bob's client is
// ringing; the front ends bob's session and forgets it. Bob's user
// clicked "accept" at that moment: the client's session-accept (its DTLS
// fingerprint, ICE credentials, candidates, codecs) must not go upstream
// in clear to the caller's device (it went, on the reviewed code).
func TestFrontCallLateAcceptNotSent(t *testing.T) {
	wire, _, _, alice, bob := frontCallSetup(t)
	st, init := initiate(t, alice, bob, "late1")
	// Alice hangs up before bob answers.
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: "late1", Reason: &jingle.Reason{Condition: jingle.ReasonCancel}})
	bob.waitJingle(t, jingle.ActionSessionTerminate)
	wire.all() // what came before is not this test's question
	ans, groups := bob.peer.JingleAnswer(t, init)
	bob.sendJingleRaw(t, st.From.String(), marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: bob.full, Contents: ans, Groups: groups}))
	noClearJingle(t, wire)
}

// TestFrontCallTrickleAfterRefusalNotSent: the front refuses a client's
// offer (here plain RTP without a fingerprint) and
// forgets the session; the candidates the client trickles next go
// upstream in clear to the securejingle contact.
func TestFrontCallTrickleAfterRefusalNotSent(t *testing.T) {
	wire, _, _, alice, bob := frontCallSetup(t)
	contents, groups := alice.peer.JingleOffer(t)
	// An offer the front refuses: plain RTP, no DTLS fingerprint.
	for i := range contents {
		contents[i].Transport.Fingerprint = nil
	}
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "tr1", Initiator: alice.full, Contents: contents, Groups: groups})
	alice.waitJingle(t, jingle.ActionSessionTerminate)
	wire.all()
	tr := *contents[0].Transport
	tr.Candidates = []jingle.Candidate{{Component: 1, Foundation: "7", ID: "x7", IP: "198.51.100.9", Network: 0, Port: 5000, Priority: 1, Protocol: "udp", Type: "srflx", RelAddr: "192.0.2.7", RelPort: 4000}}
	ti := &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: "tr1", Contents: []jingle.Content{{Creator: contents[0].Creator, Name: contents[0].Name, Transport: &tr}}}
	alice.sendJingleRaw(t, bob.full, marshalJingle(t, ti))
	noClearJingle(t, wire)
}

// TestFrontCallUnparsedInitiateNotSent: a session-initiate to a securejingle
// contact that the strict parser refuses (here one attribute it does not
// know on <jingle/>) is refused at the front, not sent upstream in clear
// with the client's fingerprint, candidates and codecs.
func TestFrontCallUnparsedInitiateNotSent(t *testing.T) {
	wire, a, _, alice, bob := frontCallSetup(t)
	contents, groups := alice.peer.JingleOffer(t)
	raw := marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "bad1", Initiator: alice.full, Contents: contents, Groups: groups})
	raw = strings.Replace(raw, "<jingle ", `<jingle xmlns:x="urn:example:ext" x:hint="1" `, 1)
	if _, err := jingle.Parse([]byte(raw)); err == nil {
		t.Fatal("the PoC's element parses: it shows nothing")
	}
	alice.sendJingleRaw(t, bob.full, raw)
	if n := len(a.Calls()); n != 0 {
		t.Logf("alice's gateway placed %d calls", n)
	}
	noClearJingle(t, wire)
}

// TestFrontCallRingsTakeOneSlot: one incoming call rings each of bob's
// four connected clients; the rings hold one of the call table's four
// local-leg slots, whatever the number of clients, so bob can still
// answer it in the web app (on the reviewed code each ring held one).
func TestFrontCallRingsTakeOneSlot(t *testing.T) {
	srv, a, b := callPair(t, nil, nil)
	_ = srv
	fb := startFront(t, b)
	var clients []*jingleEndpoint
	for _, r := range []string{"c1", "c2", "c3", "c4"} {
		clients = append(clients, newJingleEndpoint(t, fb, "bob@"+testDomain+"/"+r, "bob-"+r))
	}
	info, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.waitJingle(t, jingle.ActionSessionInitiate)
	}
	web := localpeer.New(t, "web", nil)
	ctx, cancel := context.WithTimeout(context.Background(), localGatherWait*2)
	defer cancel()
	_, err = b.AnswerLocalCall(ctx, info.ID, LocalOffer{SDP: web.Offer(t)})
	if errors.Is(err, ErrTooManyCalls) {
		t.Errorf("the web app could not answer the ringing call: %v (the rings of the clients hold every local leg)", err)
	}
}

// TestFrontCallRingsLeaveOwnSlot: a contact rings bob twice (its
// maxCallsPerPeer) while bob has two clients connected: bob's own call
// from a client is not refused ("too many calls"): rings never take the
// last local-leg slot, as the call table keeps one for the user's own
// call (maxIncomingCalls).
func TestFrontCallRingsLeaveOwnSlot(t *testing.T) {
	_, a, b := callPair(t, nil, nil)
	fb := startFront(t, b)
	c1 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c1", "bob-c1")
	c2 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c2", "bob-c2")
	for range 2 {
		if _, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{Audio: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*jingleEndpoint{c1, c2} {
		c.waitJingle(t, jingle.ActionSessionInitiate)
		c.waitJingle(t, jingle.ActionSessionInitiate)
	}
	contents, groups := c1.peer.JingleOffer(t)
	c1.sendJingle(t, aliceJID.String(), &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "mine", Initiator: c1.full, Contents: contents, Groups: groups})
	_, term := c1.waitJingle(t, jingle.ActionSessionTerminate)
	if term.SID == "mine" && term.Reason != nil && strings.Contains(term.Reason.Text, "too many calls") {
		t.Errorf("bob's own call was refused while a contact's two calls ring: %s", term.Reason.Text)
	}
}

// TestFrontCallErrorToRingingEndsNothing: XEP-0166 §7.2 has a client that does
// not understand a session-info payload answer it with an error
// (feature-not-implemented, unsupported-info). Such an error to the
// front's <ringing/> ends nothing: the call connects when the callee
// answers (§22.11 ends a session on an error to the session-initiate or
// session-accept only).
func TestFrontCallErrorToRingingEndsNothing(t *testing.T) {
	_, a, _, alice, bob := frontCallSetup(t)
	contents, groups := alice.peer.JingleOffer(t)
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "ring1", Initiator: alice.full, Contents: contents, Groups: groups})
	bst, binit := bob.waitJingle(t, jingle.ActionSessionInitiate)
	st := alice.wait(t, "the ringing", func(st *Stanza) bool {
		return st.Kind == "iq" && st.Type == "set" && st.Child(jingle.NS, "jingle") != nil && attrOf(st.Child(jingle.NS, "jingle").Raw, "action") == string(jingle.ActionSessionInfo)
	})
	alice.send(t, `<iq type="error" id="`+st.ID+`" to="`+st.From.String()+`"><error type="modify"><feature-not-implemented xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><unsupported-info xmlns="urn:xmpp:jingle:errors:1"/></error></iq>`)
	// Bob answers: alice's client must get the session-accept, not the end.
	ans, ansGroups := bob.peer.JingleAnswer(t, binit)
	bob.sendJingleRaw(t, bst.From.String(), marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: binit.SID, Initiator: binit.Initiator, Responder: bob.full, Contents: ans, Groups: ansGroups}))
	var got CallInfo
	a.waitEvent(t, "alice's call connecting or ended", func(ev Event) bool {
		if ev.Kind != EventCall || ev.Call == nil {
			return false
		}
		got = *ev.Call
		return got.State == CallConnecting || got.State == CallEnded
	})
	if got.State == CallEnded {
		t.Errorf("alice's call ended (%s) because her client did not understand <ringing/>; her client was not told", got.EndReason)
	}
}

// localsOf returns the local legs gateway g holds.
func localsOf(g *Gateway) int {
	g.calls.mu.Lock()
	defer g.calls.mu.Unlock()
	return g.calls.locals
}

// TestFrontCallRacesGiveLegsBack: two of bob's clients ring; one goes away,
// the other accepts while alice hangs up. Every local leg is given back
// and no goroutine outlives the test (a control: passes on the reviewed
// code).
func TestFrontCallRacesGiveLegsBack(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	fb := startFront(t, b)
	c1 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c1", "bob-c1")
	c2 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c2", "bob-c2")
	info, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	c1.waitJingle(t, jingle.ActionSessionInitiate)
	st, init := c2.waitJingle(t, jingle.ActionSessionInitiate)
	c1.sess.Conn().Close()
	ans, groups := c2.peer.JingleAnswer(t, init)
	done := make(chan struct{})
	go func() { defer close(done); a.HangUp(context.Background(), info.ID) }()
	c2.sendJingleRaw(t, st.From.String(), marshalJingle(t, &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: c2.full, Contents: ans, Groups: groups}))
	<-done
	b.waitEnded(t, info.ID)
	deadline := time.Now().Add(15 * time.Second)
	for localsOf(b.Gateway) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's gateway holds %d local legs after the call", localsOf(b.Gateway))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
