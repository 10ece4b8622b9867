package clienttest

import (
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

// Wire is what the server's stanza log must show of the chat in
// [TwoAccountChat].
type Wire int

const (
	// WireClear: every body crossed the server in clear (a relay that
	// protects nothing: the control case).
	WireClear Wire = iota
	// WireProtected: no body appears anywhere in the log, and messages
	// from alice to bob and from bob to alice carried securejingle's
	// namespace (gateways in between).
	WireProtected
)

// TwoAccountChat is the real-client chat of issue 11 between the accounts
// of alice and bob on the Prosody whose stanza log is h (started with
// prosodytest.WithHostile), each endpoint either the server itself or
// something in front of it (a relay, a gateway's local front):
//
//  1. slixmpp as alice sends to bob, `go-sendxmpp -l` as bob prints it;
//  2. go-sendxmpp as bob sends to alice, slixmpp prints it;
//  3. Profanity as bob shows a message slixmpp sends.
//
// Each client must see the body plain; then the log is checked for wire.
// Bodies carry a random tag, so that nothing else can match them.
func TwoAccountChat(t *testing.T, h *prosodytest.Hostile, alice, bob Endpoint, wire Wire) {
	t.Helper()
	aliceJID, bobJID := alice.JID.String(), bob.JID.String()
	tag := randomID()
	bodies := []string{
		"slixmpp to go-sendxmpp " + tag,
		"go-sendxmpp to slixmpp " + tag,
		"slixmpp to profanity " + tag,
	}
	a := StartSlixmpp(t, alice)
	l := StartSendxmppListener(t, bob)
	a.WaitPresence(bobJID)
	a.Send(bobJID, bodies[0], "")
	l.WaitMessage(func(m Message) bool { return m.Body == bodies[0] && m.From == aliceJID })
	SendxmppSend(t, bob, aliceJID, bodies[1])
	a.WaitMessage(func(m Message) bool { return m.Body == bodies[1] && bareOf(m.From) == bobJID })
	p := StartProfanity(t, bob)
	a.WaitPresence(bobJID + "/" + ProfanityResource)
	a.Send(bobJID, bodies[2], "")
	p.WaitMessage(aliceJID, bodies[2])

	switch wire {
	case WireClear:
		for _, body := range bodies {
			h.WaitLog(t, "the body "+body+" in clear", func(e prosodytest.LogEntry) bool {
				return e.Name == "message" && strings.Contains(e.XML, body)
			})
		}
	case WireProtected:
		for _, dir := range [][2]string{{aliceJID, bobJID}, {bobJID, aliceJID}} {
			h.WaitLog(t, "a protected message from "+dir[0]+" to "+dir[1], func(e prosodytest.LogEntry) bool {
				return e.Dir == "out" && e.Name == "message" && bareOf(e.From) == dir[0] && bareOf(e.To) == dir[1] &&
					strings.Contains(e.XML, e2e.NS)
			})
		}
		for _, e := range h.Log(t) {
			for _, body := range bodies {
				if strings.Contains(e.XML, body) {
					t.Errorf("the server saw %q in clear (%s %s %s -> %s): %s", body, e.Dir, e.Name, e.From, e.To, e.XML)
				}
			}
		}
	default:
		t.Fatalf("clienttest: unknown wire %d", wire)
	}
}
