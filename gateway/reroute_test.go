package gateway

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// TestRegressReroutedMessageAlerts: a server that delivers alice's
// encrypted message for bob to carol instead (a reroute) is reported at
// carol, who cannot read it ("a message from alice to bob was delivered to
// you instead"), rather than dropped there in silence. Bob gets nothing.
func TestRegressReroutedMessageAlerts(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob, carol := jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain), jid.MustParse("carol@"+testDomain)
	for _, c := range []jid.JID{bob, carol} {
		if err := srv.Subscribe(alice, c); err != nil {
			t.Fatal(err)
		}
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{})
	c := startGateway(t, srv, "carol@"+testDomain+"/tablet", "carol-pw", gwOptions{})
	a.waitDevices(t, bob.String(), 1)
	a.waitDevices(t, carol.String(), 1)
	b.waitDevices(t, alice.String(), 1)
	c.waitDevices(t, alice.String(), 1)
	established(t, a, b)
	established(t, a, c)
	h := &hostile{}
	srv.SetHook(h.hook)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isSealedChat(st, "alice") && st.To.Bare().Equal(bob) {
			st.To = carol // routed to carol, still addressed to bob
		}
		return []localxmpp.Stanza{st}
	})
	if err := a.SendChat(context.Background(), bob, "for bob only"); err != nil {
		t.Fatal(err)
	}
	ev := c.waitEvent(t, "misrouted alert", func(ev Event) bool {
		if ev.Kind == EventChat && ev.Body == "for bob only" {
			t.Fatalf("carol read bob's message: %+v", ev)
		}
		return isAlert("misrouted")(ev)
	})
	if f := ev.Alert.Facts; f.PeerJID != alice.String() || !f.SecuredSession || !f.OnRoster {
		t.Fatalf("misrouted alert facts %+v", f)
	}
	if !strings.Contains(ev.Detail, "A message from "+alice.String()+" to "+bob.String()+" was delivered to you instead: the server misrouted it") {
		t.Fatalf("alert text %q", ev.Detail)
	}
	h.set(nil)
	if err := a.SendChat(context.Background(), bob, "after the reroute"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "next message", func(ev Event) bool {
		if ev.Kind == EventChat && ev.Body == "for bob only" {
			t.Fatalf("rerouted message reached bob: %+v", ev)
		}
		return ev.Kind == EventChat && ev.Body == "after the reroute"
	})
}
