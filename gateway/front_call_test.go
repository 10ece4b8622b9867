package gateway

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/localpeer"
	"github.com/securejingle/securejingle/jingle"
)

// jingleEndpoint is an unmodified plain Jingle client: a plain XMPP
// client of the front and the project's pion endpoint speaking XEP-0167
// with XEP-0320 DTLS-SRTP and XEP-0176 ICE-UDP in clear, as Conversations
// and Dino do (without their OMEMO fingerprint).
type jingleEndpoint struct {
	*plainClient
	full string
	peer *localpeer.Peer
}

func newJingleEndpoint(t *testing.T, f *testFront, full, name string) *jingleEndpoint {
	t.Helper()
	return &jingleEndpoint{plainClient: f.login(t, full), full: full, peer: localpeer.New(t, name, nil)}
}

// sendJingle sends j in an IQ set to to and waits for its result.
func (e *jingleEndpoint) sendJingle(t *testing.T, to string, j *jingle.Jingle) {
	t.Helper()
	j.XMLName = xml.Name{Space: jingle.NS, Local: "jingle"}
	raw, err := xml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	id := "j" + randomID()
	e.send(t, `<iq type="set" id="`+id+`" to="`+to+`">`+string(raw)+`</iq>`)
	res := e.wait(t, "the answer to "+string(j.Action), func(st *Stanza) bool { return st.Kind == "iq" && st.ID == id })
	if res.Type != "result" {
		t.Fatalf("%s answered %s: %s", j.Action, res.Type, stanzaText(res))
	}
}

// waitJingle waits for a Jingle request of action and acknowledges it.
func (e *jingleEndpoint) waitJingle(t *testing.T, action jingle.Action) (*Stanza, *jingle.Jingle) {
	t.Helper()
	var j *jingle.Jingle
	st := e.wait(t, string(action), func(st *Stanza) bool {
		if st.Kind != "iq" || st.Type != "set" {
			return false
		}
		ch := st.Child(jingle.NS, "jingle")
		if ch == nil {
			return false
		}
		got, err := jingle.Parse(ch.Raw)
		if err != nil {
			t.Fatalf("the front sent bad Jingle: %v\n%s", err, ch.Raw)
		}
		j = got
		return got.Action == action
	})
	e.send(t, `<iq type="result" id="`+st.ID+`" to="`+st.From.String()+`"/>`)
	return st, j
}

// wireHasMedia fails the test when the server routed anything of a call's
// session in clear: Jingle or JMI elements, a DTLS fingerprint, an ICE
// candidate, a codec's payload type, or the fingerprint value of one of
// the endpoints (secrets names their certificates).
func wireHasMedia(t *testing.T, wire *wireLog, endpoints ...*jingleEndpoint) {
	t.Helper()
	var fps []string
	for _, e := range endpoints {
		for _, l := range strings.Split(e.peer.LocalDescription(), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=fingerprint:"); ok {
				_, hex, _ := strings.Cut(v, " ")
				fps = append(fps, hex)
			}
		}
	}
	for _, st := range wire.all() {
		d := xml.NewDecoder(strings.NewReader(string(st.Raw)))
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			el, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			switch {
			case strings.HasPrefix(el.Name.Space, "urn:xmpp:jingle"),
				el.Name.Local == "fingerprint", el.Name.Local == "candidate", el.Name.Local == "payload-type":
				t.Errorf("the server saw <%s xmlns=%q> in clear: %s", el.Name.Local, el.Name.Space, st.Raw)
			}
		}
		for _, fp := range fps {
			if fp != "" && strings.Contains(string(st.Raw), fp) {
				t.Errorf("the server saw an endpoint's fingerprint %s: %s", fp, st.Raw)
			}
		}
	}
}

// TestFrontCallRelayed: two unmodified plain Jingle endpoints, each
// behind its account's gateway, call each other; each gateway terminates
// its client's session on loopback and the call crosses between the
// gateways as a protected, bound session. Media flows both ways, and the
// server never sees a fingerprint, a candidate or a codec.
func TestFrontCallRelayed(t *testing.T) {
	noLeaks(t)
	srv, a, b := callPair(t, nil, nil)
	wire := recordWire(srv)
	fa, fb := startFront(t, a), startFront(t, b)
	alice := newJingleEndpoint(t, fa, "alice@"+testDomain+"/client", "alice")
	bob := newJingleEndpoint(t, fb, "bob@"+testDomain+"/client", "bob")

	contents, groups := alice.peer.JingleOffer(t)
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "call1", Initiator: alice.full, Contents: contents, Groups: groups})

	// Bob's client is offered the call from alice's device.
	st, init := bob.waitJingle(t, jingle.ActionSessionInitiate)
	if st.From.String() != a.JID().String() || init.Initiator != a.JID().String() {
		t.Errorf("the call was offered from %s (initiator %s), want alice's device %s", st.From, init.Initiator, a.JID())
	}
	alice.waitJingle(t, jingle.ActionSessionInfo) // ringing
	ans, ansGroups := bob.peer.JingleAnswer(t, init)
	bob.sendJingle(t, st.From.String(), &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: bob.full, Contents: ans, Groups: ansGroups})

	from, accept := alice.waitJingle(t, jingle.ActionSessionAccept)
	if from.From.String() != bob.full || accept.SID != "call1" {
		t.Errorf("session-accept from %s sid %s, want from %s sid call1", from.From, accept.SID, bob.full)
	}
	alice.peer.JingleAnswered(t, accept)
	calls := a.Calls()
	if len(calls) != 1 {
		t.Fatalf("alice's gateway has %d calls, want 1", len(calls))
	}
	id := calls[0].ID
	a.waitCall(t, id, "connected and relayed", connectedLocal)
	b.waitCall(t, id, "connected and relayed", connectedLocal)
	alice.peer.StartPlayback()
	bob.peer.StartPlayback()
	alice.peer.Received(t)
	bob.peer.Received(t)

	// Alice hangs up in her client: bob's client is told.
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: "call1", Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}})
	_, term := bob.waitJingle(t, jingle.ActionSessionTerminate)
	if term.SID != init.SID || term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
		t.Errorf("bob's client got terminate %+v, want success for sid %s", term.Reason, init.SID)
	}
	for _, g := range []*testGateway{a, b} {
		if in := g.waitEnded(t, id); in.EndReason != string(jingle.ReasonSuccess) {
			t.Errorf("%s: the call ended with %q", g.bare(), in.EndReason)
		}
	}
	wireHasMedia(t, wire, alice, bob)
}

// frontCallSetup is a pair of gateways with fronts, alice's and bob's
// plain Jingle endpoints logged in, and the server's wire log.
func frontCallSetup(t *testing.T) (wire *wireLog, a, b *testGateway, alice, bob *jingleEndpoint) {
	t.Helper()
	srv, a, b := callPair(t, nil, nil)
	wire = recordWire(srv)
	fa, fb := startFront(t, a), startFront(t, b)
	alice = newJingleEndpoint(t, fa, "alice@"+testDomain+"/client", "alice")
	bob = newJingleEndpoint(t, fb, "bob@"+testDomain+"/client", "bob")
	return wire, a, b, alice, bob
}

// initiate sends alice's session-initiate (sid) of her endpoint's offer
// to bob's client; bob's client is offered the call.
func initiate(t *testing.T, alice, bob *jingleEndpoint, sid string) (*Stanza, *jingle.Jingle) {
	t.Helper()
	contents, groups := alice.peer.JingleOffer(t)
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: alice.full, Contents: contents, Groups: groups})
	return bob.waitJingle(t, jingle.ActionSessionInitiate)
}

// TestFrontCallDeclined: bob's client declines the call: alice's client
// is told with the reason decline, and the call ends on both gateways.
func TestFrontCallDeclined(t *testing.T) {
	wire, a, b, alice, bob := frontCallSetup(t)
	st, init := initiate(t, alice, bob, "call2")
	bob.sendJingle(t, st.From.String(), &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: init.SID, Reason: &jingle.Reason{Condition: jingle.ReasonDecline}})
	_, term := alice.waitJingle(t, jingle.ActionSessionTerminate)
	if term.SID != "call2" || term.Reason == nil || term.Reason.Condition != jingle.ReasonDecline {
		t.Errorf("alice's client got terminate %+v for %s, want decline for call2", term.Reason, term.SID)
	}
	id := a.Calls()[0].ID
	for _, g := range []*testGateway{a, b} {
		if in := g.waitEnded(t, id); in.EndReason != string(jingle.ReasonDecline) {
			t.Errorf("%s: the call ended with %q, want decline", g.bare(), in.EndReason)
		}
	}
	wireHasMedia(t, wire, alice, bob)
}

// TestFrontCallClientGone: a client that disconnects in a call hangs it
// up: the other client is told, both gateways end the call.
func TestFrontCallClientGone(t *testing.T) {
	_, a, b, alice, bob := frontCallSetup(t)
	st, init := initiate(t, alice, bob, "call3")
	ans, groups := bob.peer.JingleAnswer(t, init)
	bob.sendJingle(t, st.From.String(), &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: bob.full, Contents: ans, Groups: groups})
	_, accept := alice.waitJingle(t, jingle.ActionSessionAccept)
	alice.peer.JingleAnswered(t, accept)
	id := a.Calls()[0].ID
	b.waitCall(t, id, "connected and relayed", connectedLocal)
	alice.sess.Conn().Close()
	_, term := bob.waitJingle(t, jingle.ActionSessionTerminate)
	if term.SID != init.SID {
		t.Errorf("terminate for %s, want %s", term.SID, init.SID)
	}
	a.waitEnded(t, id)
	b.waitEnded(t, id)
}

// TestFrontCallDropsForeignCandidates: the local leg takes UDP host
// candidates on this host only; the client's others (another host's,
// server-reflexive) are dropped, not sent anywhere, and the call goes on.
func TestFrontCallDropsForeignCandidates(t *testing.T) {
	wire, a, _, alice, bob := frontCallSetup(t)
	contents, groups := alice.peer.JingleOffer(t)
	tr := contents[0].Transport
	tr.Candidates = append(tr.Candidates,
		jingle.Candidate{Component: 1, Foundation: "9", ID: "x9", IP: "192.0.2.7", Network: 0, Port: 4000, Priority: 1, Protocol: "udp", Type: "host"},
		jingle.Candidate{Component: 1, Foundation: "8", ID: "x8", IP: "198.51.100.9", Network: 0, Port: 5000, Priority: 1, Protocol: "udp", Type: "srflx", RelAddr: "192.0.2.7", RelPort: 4000})
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "call4", Initiator: alice.full, Contents: contents, Groups: groups})
	bob.waitJingle(t, jingle.ActionSessionInitiate)
	if n := len(a.Calls()); n != 1 {
		t.Errorf("alice's gateway placed %d calls, want 1", n)
	}
	wireHasMedia(t, wire, alice)
}

// TestFrontCallRefusesPlainRTP: an offer without DTLS (plain RTP/AVP) is
// refused with the reason, no call is placed, and the candidates the
// client trickles next are not sent to the contact (in clear) but
// answered unknown-session.
func TestFrontCallRefusesPlainRTP(t *testing.T) {
	wire, a, _, alice, bob := frontCallSetup(t)
	contents, groups := alice.peer.JingleOffer(t)
	for i := range contents {
		contents[i].Transport.Fingerprint = nil
	}
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "call7", Initiator: alice.full, Contents: contents, Groups: groups})
	_, term := alice.waitJingle(t, jingle.ActionSessionTerminate)
	if term.Reason == nil || term.Reason.Condition != jingle.ReasonFailedApplication || !strings.Contains(term.Reason.Text, "fingerprint") {
		t.Errorf("terminate %+v, want failed-application naming the fingerprint", term.Reason)
	}
	alice.wait(t, "the notice", isAlertFrom("fingerprint"))
	tr := contents[0].Transport
	ti := &jingle.Jingle{XMLName: xml.Name{Space: jingle.NS, Local: "jingle"}, Action: jingle.ActionTransportInfo, SID: "call7",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: contents[0].Name, Transport: &jingle.Transport{Ufrag: tr.Ufrag, Pwd: tr.Pwd, Candidates: tr.Candidates[:1]}}}}
	raw, err := xml.Marshal(ti)
	if err != nil {
		t.Fatal(err)
	}
	alice.send(t, `<iq type="set" id="ti1" to="`+bob.full+`">`+string(raw)+`</iq>`)
	res := alice.wait(t, "the transport-info's answer", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "ti1" })
	if res.Type != "error" || !strings.Contains(stanzaText(res), "unknown-session") {
		t.Errorf("transport-info of no session answered %s: %s", res.Type, stanzaText(res))
	}
	if n := len(a.Calls()); n != 0 {
		t.Errorf("alice's gateway placed %d calls", n)
	}
	wireHasMedia(t, wire, alice)
}

// TestFrontCallToPlainContact: a call to a contact without securejingle
// is not terminated at the front: policy classifies it (DTLS-SRTP with
// the fingerprint in clear signaling is transport-only, flagged by
// default), the client is warned, and the session goes to the contact.
func TestFrontCallToPlainContact(t *testing.T) {
	srv, a, _ := callPair(t, nil, nil)
	carol := carolOn(t, srv)
	fa := startFront(t, a)
	alice := newJingleEndpoint(t, fa, "alice@"+testDomain+"/client", "alice")
	contents, groups := alice.peer.JingleOffer(t)
	j := &jingle.Jingle{XMLName: xml.Name{Space: jingle.NS, Local: "jingle"}, Action: jingle.ActionSessionInitiate, SID: "call5", Initiator: alice.full, Contents: contents, Groups: groups}
	raw, err := xml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	alice.send(t, `<iq type="set" id="p1" to="carol@`+testDomain+`/plain">`+string(raw)+`</iq>`)
	got := carol.wait(t, "alice's plain offer", func(st *Stanza) bool { return st.Kind == "iq" && st.Child(jingle.NS, "jingle") != nil })
	if got.From.String() != alice.full {
		t.Errorf("carol got the offer from %s", got.From)
	}
	alice.wait(t, "the warning", isAlertFrom("carol@"))
	if n := len(a.Calls()); n != 0 {
		t.Errorf("alice's gateway placed %d calls", n)
	}
}

// TestFrontCallJMI: a client that proposes its call first (XEP-0353, as
// Conversations and Dino do) gets the proceed from the front at once and
// sends its session there; the call reaches bob's client, and no JMI
// goes to the server in clear.
func TestFrontCallJMI(t *testing.T) {
	wire, a, b, alice, bob := frontCallSetup(t)
	alice.send(t, `<message type="chat" to="bob@`+testDomain+`" id="jm1"><propose xmlns="urn:xmpp:jingle-message:0" id="call6"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"/></propose></message>`)
	proceed := alice.wait(t, "the proceed", func(st *Stanza) bool { return st.Kind == "message" && jmiElement(st) != nil })
	jm, err := jingle.ParseJMI(jmiElement(proceed).Raw)
	if err != nil || jm.Kind != jingle.JMIProceed || jm.ID != "call6" {
		t.Fatalf("got %+v (%v), want proceed for call6", jm, err)
	}
	if want := "bob@" + testDomain + "/" + FrontCallResource; proceed.From.String() != want {
		t.Errorf("proceed from %s, want %s", proceed.From, want)
	}
	contents, groups := alice.peer.JingleOffer(t)
	alice.sendJingle(t, proceed.From.String(), &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "call6", Initiator: alice.full, Contents: contents, Groups: groups})
	st, init := bob.waitJingle(t, jingle.ActionSessionInitiate)
	ans, ansGroups := bob.peer.JingleAnswer(t, init)
	bob.sendJingle(t, st.From.String(), &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: bob.full, Contents: ans, Groups: ansGroups})
	_, accept := alice.waitJingle(t, jingle.ActionSessionAccept)
	alice.peer.JingleAnswered(t, accept)
	id := a.Calls()[0].ID
	a.waitCall(t, id, "connected and relayed", connectedLocal)
	b.waitCall(t, id, "connected and relayed", connectedLocal)
	// A retract of the call hangs it up.
	alice.send(t, `<message type="chat" to="bob@`+testDomain+`" id="jm2"><retract xmlns="urn:xmpp:jingle-message:0" id="call6"/></message>`)
	bob.waitJingle(t, jingle.ActionSessionTerminate)
	a.waitEnded(t, id)
	wireHasMedia(t, wire, alice, bob)
}

// TestFrontCallEveryClientDeclines: an incoming call rings two clients;
// once both declined it, the call is declined (not left ringing until
// its timeout), and it is not offered to them again.
func TestFrontCallEveryClientDeclines(t *testing.T) {
	_, a, b := callPair(t, nil, nil)
	fb := startFront(t, b)
	c1 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c1", "bob-c1")
	c2 := newJingleEndpoint(t, fb, "bob@"+testDomain+"/c2", "bob-c2")
	info, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	var sts []*Stanza
	var inits []*jingle.Jingle
	for _, c := range []*jingleEndpoint{c1, c2} {
		st, init := c.waitJingle(t, jingle.ActionSessionInitiate)
		sts, inits = append(sts, st), append(inits, init)
	}
	done := make(chan struct{})
	for i, c := range []*jingleEndpoint{c1, c2} {
		go func() {
			defer func() { done <- struct{}{} }()
			raw, err := xml.Marshal(&jingle.Jingle{XMLName: xml.Name{Space: jingle.NS, Local: "jingle"}, Action: jingle.ActionSessionTerminate, SID: inits[i].SID, Reason: &jingle.Reason{Condition: jingle.ReasonDecline}})
			if err != nil {
				panic(err)
			}
			c.sess.Send(context.Background(), xml.NewDecoder(strings.NewReader(`<iq type="set" id="d`+inits[i].SID+`" to="`+sts[i].From.String()+`">`+string(raw)+`</iq>`)))
		}()
	}
	<-done
	<-done
	if in := a.waitEnded(t, info.ID); in.EndReason != string(jingle.ReasonDecline) {
		t.Errorf("alice's call ended with %q, want decline", in.EndReason)
	}
	for _, c := range []*jingleEndpoint{c1, c2} {
		for _, st := range c.seen {
			if st.Kind == "iq" && st.Child(jingle.NS, "jingle") != nil && attrOf(st.Child(jingle.NS, "jingle").Raw, "action") == "session-initiate" {
				t.Errorf("%s was offered the call again", c.full)
			}
		}
	}
}
