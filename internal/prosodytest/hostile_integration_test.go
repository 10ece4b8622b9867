package prosodytest_test

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/prosodytest"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// testNS stands for the securejingle namespace: the hostile helpers take it
// as a parameter, so these tests do not depend on the protocol version.
const testNS = "urn:x-securejingle:1"

// node is a generic XML element, enough to inspect what a client received.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []node     `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n *node) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// child returns the first child named {ns}local, or nil.
func (n *node) child(ns, local string) *node {
	for i := range n.Children {
		if c := &n.Children[i]; c.XMLName.Space == ns && c.XMLName.Local == local {
			return c
		}
	}
	return nil
}

// path follows children by (ns, local) pairs.
func (n *node) path(names ...xml.Name) *node {
	for _, nm := range names {
		if n = n.child(nm.Space, nm.Local); n == nil {
			return nil
		}
	}
	return n
}

func (n *node) body() string {
	if b := n.child(stanza.NSClient, "body"); b != nil {
		return b.Text
	}
	return ""
}

// rawInbox records every stanza a session receives as a node tree and
// answers roster pushes.
func rawInbox(t *testing.T, sess *xmpp.Session) chan node {
	t.Helper()
	in := make(chan node, 256)
	self := sess.LocalAddr().Bare()
	h := xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local == "iq" {
			if iq, err := stanza.NewIQ(*start); err == nil && iq.Type == stanza.SetIQ && (iq.From.Equal(jid.JID{}) || iq.From.Equal(self)) {
				_, err = xmlstream.Copy(r, iq.Result(nil))
				return err
			}
		}
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), xmlstream.Inner(r), xmlstream.Token(start.End())))
		var n node
		if err := d.Decode(&n); err != nil {
			return err
		}
		select {
		case in <- n:
		default:
			panic("prosodytest_test: inbox overflow")
		}
		return nil
	})
	served := make(chan error, 1)
	go func() { served <- sess.Serve(h) }()
	t.Cleanup(func() {
		sess.Close()
		sess.Conn().Close()
		<-served
	})
	return in
}

// rawSend sends a raw stanza on sess.
func rawSend(t *testing.T, ctx context.Context, sess *xmpp.Session, raw string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(raw))
	if err := sess.Send(ctx, d); err != nil {
		t.Fatalf("sending %s: %v", raw, err)
	}
}

func isPresenceFrom(from jid.JID) func(node) bool {
	return func(n node) bool {
		return n.XMLName.Local == "presence" && n.attr("type") == "" && sameJID(n.attr("from"), from)
	}
}

func isMessageWithBody(body string) func(node) bool {
	return func(n node) bool { return n.XMLName.Local == "message" && n.body() == body }
}

// hostileWorld is one hostile Prosody with alice and bob (mutual contacts),
// each with one available session, and carol (no roster entries).
type hostileWorld struct {
	srv                     *prosodytest.Server
	h                       *prosodytest.Hostile
	alice, bob, carol       *xmpp.Session
	aliceIn, bobIn, carolIn chan node
	aliceJID, bobJID        jid.JID // full
	carolJID                jid.JID
	ctx                     context.Context
}

func startHostileWorld(t *testing.T) *hostileWorld {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	srv := prosodytest.Start(t, prosodytest.WithHostile())
	srv.AddUser(t, "alice", "alice-secret")
	srv.AddUser(t, "bob", "bob-secret")
	srv.AddUser(t, "carol", "carol-secret")
	srv.Subscribe(t, "alice", "bob")
	w := &hostileWorld{srv: srv, h: srv.Hostile(t), ctx: ctx}
	w.alice = prosodytest.Dial(t, ctx, srv, "alice", "alice-secret", "phone")
	w.bob = prosodytest.Dial(t, ctx, srv, "bob", "bob-secret", "desk")
	w.carol = prosodytest.Dial(t, ctx, srv, "carol", "carol-secret", "pad")
	w.aliceIn, w.bobIn, w.carolIn = rawInbox(t, w.alice), rawInbox(t, w.bob), rawInbox(t, w.carol)
	w.aliceJID, w.bobJID, w.carolJID = w.alice.LocalAddr(), w.bob.LocalAddr(), w.carol.LocalAddr()
	// Available presence, and each sees the other's: from here on every
	// presence bob sends reaches alice.
	rawSend(t, ctx, w.alice, "<presence/>")
	rawSend(t, ctx, w.bob, "<presence/>")
	rawSend(t, ctx, w.carol, "<presence/>")
	waitFor(t, ctx, w.aliceIn, "bob's presence at alice", isPresenceFrom(w.bobJID))
	waitFor(t, ctx, w.bobIn, "alice's presence at bob", isPresenceFrom(w.aliceJID))
	return w
}

// run runs a subtest with its own hang guard and removes its rules
// afterwards.
func (w *hostileWorld) run(t *testing.T, name string, f func(t *testing.T, ctx context.Context)) {
	t.Run(name, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		t.Cleanup(func() { w.h.Reset(t) })
		f(t, ctx)
	})
}

// TestHostile shows that each attack of the hostile module really happens on
// the wire: the receiving plain client sees it, and the stanza log says so.
func TestHostile(t *testing.T) {
	w := startHostileWorld(t)
	h := w.h
	alice, bob := w.aliceJID.Bare(), w.bobJID.Bare()

	w.run(t, "phantom-contact", func(t *testing.T, ctx context.Context) {
		phantom := jid.MustParse("bob@" + w.srv.Domain() + "/phantom")
		const fakeE2E = "<e2e xmlns='" + testNS + "' d='666' k='attacker-key'/>"
		const fakeBundle = "<bundle xmlns='" + testNS + "' device='666'>attacker bundle</bundle>"
		dev := h.Phantom(t, prosodytest.Phantom{
			JID: phantom, To: alice,
			Presence: []string{fakeE2E},
			Answers: []prosodytest.Answer{{
				Child:  xml.Name{Space: testNS, Local: "bundle"},
				Result: []string{fakeBundle},
			}},
		})
		p := waitFor(t, ctx, w.aliceIn, "phantom presence at alice", isPresenceFrom(phantom))
		if e := p.child(testNS, "e2e"); e == nil || e.attr("k") != "attacker-key" || e.attr("d") != "666" {
			t.Fatalf("phantom presence %+v lacks the attacker's <e2e/>", p)
		}
		// Alice asks the phantom for its bundle; the server answers for it.
		var got node
		err := iq(ctx, w.alice, stanza.GetIQ, phantom, struct {
			XMLName xml.Name `xml:"urn:x-securejingle:1 bundle"`
			Device  string   `xml:"device,attr"`
		}{Device: "666"}, &got)
		if err != nil {
			t.Fatalf("bundle request to the phantom: %v", err)
		}
		if got.XMLName.Local != "bundle" || got.Text != "attacker bundle" {
			t.Fatalf("phantom bundle %+v", got)
		}
		if n := dev.Rules[0].Hits(t); n != 1 {
			t.Fatalf("answer rule hits %d, want 1", n)
		}
		dev.Leave(t)
		waitFor(t, ctx, w.aliceIn, "phantom leaves", func(n node) bool {
			return n.XMLName.Local == "presence" && n.attr("type") == "unavailable" && sameJID(n.attr("from"), phantom)
		})
		// With the answer rule gone, the address has no session again.
		err = iq(ctx, w.alice, stanza.GetIQ, phantom, struct {
			XMLName xml.Name `xml:"urn:x-securejingle:1 bundle"`
		}{}, nil)
		if se := (stanza.Error{}); !errors.As(err, &se) || se.Condition != stanza.ServiceUnavailable {
			t.Fatalf("bundle request after Leave: %v, want service-unavailable", err)
		}
	})

	w.run(t, "phantom-own-account", func(t *testing.T, ctx context.Context) {
		// The server invents a device of alice's own account...
		phantom := jid.MustParse("alice@" + w.srv.Domain() + "/phantom")
		h.Phantom(t, prosodytest.Phantom{JID: phantom, To: alice, Presence: []string{"<e2e xmlns='" + testNS + "' d='7'/>"}})
		p := waitFor(t, ctx, w.aliceIn, "own phantom at alice", isPresenceFrom(phantom))
		if p.child(testNS, "e2e") == nil {
			t.Fatalf("own phantom presence %+v", p)
		}
		// ...or anyone with the password logs a real one in.
		evil := prosodytest.Dial(t, ctx, w.srv, "alice", "alice-secret", "evil")
		rawInbox(t, evil)
		rawSend(t, ctx, evil, "<presence><e2e xmlns='"+testNS+"' d='8'/></presence>")
		for _, in := range []chan node{w.aliceIn, w.bobIn} {
			p := waitFor(t, ctx, in, "logged-in phantom's presence", isPresenceFrom(evil.LocalAddr()))
			if e := p.child(testNS, "e2e"); e == nil || e.attr("d") != "8" {
				t.Fatalf("second-login presence %+v", p)
			}
		}
	})

	w.run(t, "presence-key-swap", func(t *testing.T, ctx context.Context) {
		r := h.SwapPresenceKey(t, bob, testNS, "<e2e xmlns='"+testNS+"' d='1' k='attacker-key'/>")
		rawSend(t, ctx, w.bob, "<presence><status>swap</status><e2e xmlns='"+testNS+"' d='1' k='bob-key'/></presence>")
		p := waitFor(t, ctx, w.aliceIn, "bob's presence at alice", func(n node) bool {
			return isPresenceFrom(w.bobJID)(n) && n.child(stanza.NSClient, "status") != nil
		})
		var keys []string
		for _, c := range p.Children {
			if c.XMLName.Space == testNS && c.XMLName.Local == "e2e" {
				keys = append(keys, c.attr("k"))
			}
		}
		if len(keys) != 1 || keys[0] != "attacker-key" {
			t.Fatalf("alice sees keys %q in %+v, want only the attacker's", keys, p)
		}
		// The log shows both sides: what bob sent and what alice got.
		sent := h.WaitLog(t, "bob's presence as sent", func(e prosodytest.LogEntry) bool {
			return e.Dir == "in" && sameJID(e.Session, w.bobJID) && strings.Contains(e.XML, "swap")
		})
		got := h.WaitLog(t, "bob's presence as delivered", func(e prosodytest.LogEntry) bool {
			return e.Dir == "out" && sameJID(e.Session, w.aliceJID) && strings.Contains(e.XML, "swap")
		})
		if !strings.Contains(sent.XML, "bob-key") || strings.Contains(got.XML, "bob-key") || got.Rules != r.ID {
			t.Fatalf("log: sent %+v, delivered %+v (rule %s)", sent, got, r.ID)
		}
		// Bob's own echo is rewritten too (the rule matches every receiver).
		if r.Hits(t) < 1 {
			t.Fatal("no hits")
		}
	})

	w.run(t, "strip-support", func(t *testing.T, ctx context.Context) {
		h.StripSupport(t, bob, testNS)
		rawSend(t, ctx, w.bob, "<presence><status>strip</status><e2e xmlns='"+testNS+"' d='1'/>"+
			"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>")
		p := waitFor(t, ctx, w.aliceIn, "bob's presence at alice", func(n node) bool {
			return isPresenceFrom(w.bobJID)(n) && n.child(stanza.NSClient, "status") != nil
		})
		if p.child(testNS, "e2e") != nil {
			t.Fatalf("support element still there: %+v", p)
		}
		if p.child("http://jabber.org/protocol/caps", "c") == nil {
			t.Fatalf("strip removed more than the support element: %+v", p)
		}
	})

	w.run(t, "replay", func(t *testing.T, ctx context.Context) {
		rawSend(t, ctx, w.bob, "<message type='chat' id='once' to='"+w.aliceJID.String()+"'><body>said once</body></message>")
		waitFor(t, ctx, w.aliceIn, "the original", isMessageWithBody("said once"))
		var orig prosodytest.LogEntry
		for _, e := range h.Log(t) {
			if e.Dir == "out" && e.ID == "once" && sameJID(e.Session, w.aliceJID) {
				orig = e
			}
		}
		if orig.Seq == 0 {
			t.Fatal("original message not in the log")
		}
		if n := h.Replay(t, orig); n != 1 {
			t.Fatalf("replayed to %d sessions", n)
		}
		again := waitFor(t, ctx, w.aliceIn, "the replay", isMessageWithBody("said once"))
		if again.attr("id") != "once" || !sameJID(again.attr("from"), w.bobJID) {
			t.Fatalf("replay %+v", again)
		}
	})

	w.run(t, "reroute", func(t *testing.T, ctx context.Context) {
		r := h.Reroute(t, prosodytest.Reroute{From: bob, To: alice, NewTo: w.carolJID.Bare()})
		rawSend(t, ctx, w.bob, "<message type='chat' to='"+w.aliceJID.String()+"'><body>for alice only</body></message>")
		got := waitFor(t, ctx, w.carolIn, "rerouted message at carol", isMessageWithBody("for alice only"))
		if !sameJID(got.attr("to"), w.aliceJID) || !sameJID(got.attr("from"), w.bobJID) {
			t.Fatalf("carol got %+v, want bob's message still addressed to alice", got)
		}
		// Variant: the address is rewritten too.
		r.Remove(t)
		h.Reroute(t, prosodytest.Reroute{From: bob, To: alice, NewTo: w.carolJID, RewriteTo: true})
		rawSend(t, ctx, w.bob, "<message type='chat' to='"+alice.String()+"'><body>also for alice</body></message>")
		got = waitFor(t, ctx, w.carolIn, "rewritten message at carol", isMessageWithBody("also for alice"))
		if !sameJID(got.attr("to"), w.carolJID) {
			t.Fatalf("carol got %+v, want it addressed to her", got)
		}
		// Alice never saw either: after the rules are gone, bob's next
		// message is the first one she gets (one sender's messages are
		// routed in order).
		h.Reset(t)
		rawSend(t, ctx, w.bob, "<message type='chat' to='"+w.aliceJID.String()+"'><body>sentinel</body></message>")
		first := waitFor(t, ctx, w.aliceIn, "a message at alice", func(n node) bool { return n.XMLName.Local == "message" })
		if first.body() != "sentinel" {
			t.Fatalf("alice got %+v before the sentinel", first)
		}
	})

	w.run(t, "strip-content", func(t *testing.T, ctx context.Context) {
		// Alice's second device has carbons on: the copy is stripped too.
		tablet := prosodytest.Dial(t, ctx, w.srv, "alice", "alice-secret", "tablet")
		tabletIn := rawInbox(t, tablet)
		rawSend(t, ctx, tablet, "<presence/>")
		if err := iq(ctx, tablet, stanza.SetIQ, jid.JID{}, carbonsEnable{}, nil); err != nil {
			t.Fatal(err)
		}
		h.StripContent(t, bob, testNS)
		rawSend(t, ctx, w.bob, "<message type='chat' to='"+w.aliceJID.String()+"'><c xmlns='"+testNS+"'>ciphertext</c><body>fallback</body></message>")
		got := waitFor(t, ctx, w.aliceIn, "bob's message at alice", isMessageWithBody("fallback"))
		if got.child(testNS, "c") != nil {
			t.Fatalf("<c/> still there: %+v", got)
		}
		carbon := waitFor(t, ctx, tabletIn, "carbon at the tablet", func(n node) bool { return n.child(nsCarbons, "received") != nil })
		fwd := carbon.path(xml.Name{Space: nsCarbons, Local: "received"}, xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"},
			xml.Name{Space: stanza.NSClient, Local: "message"})
		if fwd == nil || fwd.body() != "fallback" || fwd.child(testNS, "c") != nil {
			t.Fatalf("carbon %+v: want the forwarded message without <c/>", carbon)
		}
	})

	w.run(t, "forged-sent-carbon", func(t *testing.T, ctx context.Context) {
		other := jid.MustParse("alice@" + w.srv.Domain() + "/other")
		if n := h.ForgeCarbon(t, prosodytest.Carbon{Account: alice, From: other, To: bob, Body: "I never wrote this"}); n < 1 {
			t.Fatalf("forged carbon reached %d sessions", n)
		}
		got := waitFor(t, ctx, w.aliceIn, "forged carbon", func(n node) bool { return n.child(nsCarbons, "sent") != nil })
		fwd := got.path(xml.Name{Space: nsCarbons, Local: "sent"}, xml.Name{Space: "urn:xmpp:forward:0", Local: "forwarded"},
			xml.Name{Space: stanza.NSClient, Local: "message"})
		if got.attr("from") != "" || fwd == nil || fwd.body() != "I never wrote this" ||
			!sameJID(fwd.attr("from"), other) || !sameJID(fwd.attr("to"), bob) {
			t.Fatalf("forged carbon %+v", got)
		}
	})

	w.run(t, "withhold", func(t *testing.T, ctx context.Context) {
		r := h.Withhold(t, prosodytest.Match{Stanza: "message", From: bob})
		rawSend(t, ctx, w.bob, "<message type='chat' to='"+w.aliceJID.String()+"'><body>withheld</body></message>")
		r.WaitHits(t, 1)
		h.WaitLog(t, "the drop", func(e prosodytest.LogEntry) bool {
			return e.Dir == "drop" && e.Rules == r.ID && strings.Contains(e.XML, "withheld")
		})
		r.Remove(t)
		rawSend(t, ctx, w.bob, "<message type='chat' to='"+w.aliceJID.String()+"'><body>after</body></message>")
		first := waitFor(t, ctx, w.aliceIn, "a message at alice", func(n node) bool { return n.XMLName.Local == "message" })
		if first.body() != "after" {
			t.Fatalf("alice got %+v", first)
		}
	})

	w.run(t, "forged-pep", func(t *testing.T, ctx context.Context) {
		h.Answer(t, prosodytest.Answer{
			To: bob, Child: xml.Name{Space: "http://jabber.org/protocol/pubsub", Local: "pubsub"},
			Result: []string{"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='" + testNode + "'>" +
				"<item id='current'><test xmlns='" + testNode + "'>forged</test></item></items></pubsub>"},
		})
		query := pubsubItemsQuery{}
		query.Items.Node = testNode
		var res pubsubItemsResult
		if err := iq(ctx, w.alice, stanza.GetIQ, bob, query, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Items.Item) != 1 || res.Items.Item[0].Payload.Text != "forged" {
			t.Fatalf("PEP items %+v", res.Items)
		}
	})

	w.run(t, "control-only", func(t *testing.T, ctx context.Context) {
		// An ordinary account cannot command the module.
		cmd := struct {
			XMLName xml.Name `xml:"urn:securejingle:prosodytest:hostile:0 command"`
			JSON    string   `xml:",chardata"`
		}{JSON: `{"op":"reset"}`}
		err := iq(ctx, w.carol, stanza.SetIQ, jid.MustParse(w.srv.Domain()), cmd, nil)
		if se := (stanza.Error{}); !errors.As(err, &se) || se.Condition != stanza.Forbidden {
			t.Fatalf("command from carol: %v, want forbidden", err)
		}
	})
}
