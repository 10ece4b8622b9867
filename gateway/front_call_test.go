package gateway

import (
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

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

// answer answers the offer of session-initiate j with the endpoint's pion
// peer (every candidate gathered) and returns the answer's contents.
func (e *jingleEndpoint) answer(t *testing.T, j *jingle.Jingle) ([]jingle.Content, []jingle.Group) {
	t.Helper()
	offer, err := jingle.JingleToSDP(j.Contents, j.Groups, 1)
	if err != nil {
		t.Fatal(err)
	}
	gathered := make(chan struct{})
	var once sync.Once
	e.peer.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			once.Do(func() { close(gathered) })
		}
	})
	if _, err := e.peer.AcceptOffer(context.Background(), offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(localpeer.Wait):
		t.Fatal("gathering did not end")
	}
	contents, groups, err := jingle.SDPToJingleAs(e.peer.LocalDescription(), jingle.CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	return contents, groups
}

// wireHasMedia fails the test when the server routed anything of a call's
// session in clear: a DTLS fingerprint, an ICE candidate, a codec, or
// Jingle RTP at all.
func wireHasMedia(t *testing.T, wire *wireLog) {
	t.Helper()
	for _, st := range wire.all() {
		raw := strings.ToLower(string(st.Raw))
		for _, s := range []string{"urn:xmpp:jingle:apps:dtls:0", "fingerprint", "candidate", "opus", "vp8", "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:transports:ice-udp:1"} {
			if strings.Contains(raw, s) {
				t.Errorf("the server saw %q in clear: %s", s, st.Raw)
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

	contents, groups, err := jingle.SDPToJingle(alice.peer.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	alice.sendJingle(t, bob.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "call1", Initiator: alice.full, Contents: contents, Groups: groups})

	// Bob's client is offered the call from alice's device.
	st, init := bob.waitJingle(t, jingle.ActionSessionInitiate)
	if st.From.String() != a.JID().String() || init.Initiator != a.JID().String() {
		t.Errorf("the call was offered from %s (initiator %s), want alice's device %s", st.From, init.Initiator, a.JID())
	}
	alice.waitJingle(t, jingle.ActionSessionInfo) // ringing
	ans, ansGroups := bob.answer(t, init)
	bob.sendJingle(t, st.From.String(), &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.SID, Initiator: init.Initiator, Responder: bob.full, Contents: ans, Groups: ansGroups})

	from, accept := alice.waitJingle(t, jingle.ActionSessionAccept)
	if from.From.String() != bob.full || accept.SID != "call1" {
		t.Errorf("session-accept from %s sid %s, want from %s sid call1", from.From, accept.SID, bob.full)
	}
	answer, err := jingle.JingleToSDPAs(accept.Contents, accept.Groups, 2, jingle.CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.peer.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
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
	wireHasMedia(t, wire)
}
