package gateway

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

// startProsodyGateway runs a gateway against a real Prosody.
func startProsodyGateway(t *testing.T, p *prosodytest.Server, local, password, resource string) *testGateway {
	t.Helper()
	return startProsodyGatewayWith(t, p, local, password, resource, nil)
}

func startProsodyGatewayWith(t *testing.T, p *prosodytest.Server, local, password, resource string, ac *access.Controller) *testGateway {
	t.Helper()
	return startGatewayAt(t, server{p.Addr(), p.TLSConfig()}, local+"@"+p.Domain()+"/"+resource, password, gwOptions{access: ac})
}

// TestIntegrationProsody: two gateways on a real Prosody find each other,
// chat encrypted and exchange protected IQs; a plain client's cleartext
// message during a secured session raises an alert.
func TestIntegrationProsody(t *testing.T) {
	p := prosodytest.Start(t)
	p.AddUser(t, "alice", "alice-pw")
	p.AddUser(t, "bob", "bob-pw")
	p.Subscribe(t, "alice", "bob")
	a := startProsodyGateway(t, p, "alice", "alice-pw", "laptop")
	b := startProsodyGateway(t, p, "bob", "bob-pw", "desk")
	alice, bob := jid.MustParse("alice@"+p.Domain()), jid.MustParse("bob@"+p.Domain())
	a.waitDevices(t, bob.String(), 1)
	b.waitDevices(t, alice.String(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := a.SendChat(ctx, bob, "hello over prosody"); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "chat", isChat("hello over prosody"))
	if !ev.Encrypted {
		t.Fatal("chat not encrypted")
	}
	if err := b.SendChat(ctx, alice, "hello back"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "reply", isChat("hello back"))

	b.HandleIQ(xml.Name{Space: "urn:example:echo", Local: "echo"}, func(req InnerIQ) ([]byte, error) {
		return req.Payload, nil
	})
	for _, auth := range []bool{e2e.Encrypt, e2e.AuthOnly} {
		resp, _, err := a.SendProtectedIQ(ctx, jid.MustParse(bob.String()+"/desk"), "get", []byte(`<echo xmlns="urn:example:echo">over prosody</echo>`), auth)
		if err != nil || !strings.Contains(string(resp), "over prosody") {
			t.Fatalf("protected IQ (auth-only %v): %q, %v", auth, resp, err)
		}
	}

	// A plain client of Alice's account (no e2e) sends Bob cleartext.
	plain := prosodytest.Dial(t, ctx, p, "alice", "alice-pw", "plain")
	go plain.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error { return nil }))
	msg := stanza.Message{To: bob, Type: stanza.ChatMessage}
	if err := plain.Send(ctx, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData("plain text, no e2e")), xml.StartElement{Name: xml.Name{Local: "body"}}))); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "cleartext alert", func(ev Event) bool {
		return ev.Kind == EventAlert && strings.Contains(ev.Detail, "cleartext")
	})
}

// TestIntegrationProsodyOpportunistic: a stranger (not on Bob's roster)
// discovers Bob's bundle in PEP, where Bob published it readable by anyone
// because his access control admits anyone, and opens an encrypted session
// with a first message carrying its own bundle inline. Bob's access control
// lets it through, and Bob can answer.
func TestIntegrationProsodyOpportunistic(t *testing.T) {
	p := prosodytest.Start(t)
	p.AddUser(t, "bob", "bob-pw")
	p.AddUser(t, "stranger", "stranger-pw")
	cfg := access.DefaultConfig()
	cfg.Mode = access.Anyone
	ac, err := access.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := startProsodyGatewayWith(t, p, "bob", "bob-pw", "desk", ac)
	s := startProsodyGatewayWith(t, p, "stranger", "stranger-pw", "bot", nil)
	bob := jid.MustParse("bob@" + p.Domain())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := s.DiscoverBundles(ctx, bob)
	if err != nil || n != 1 {
		t.Fatalf("PEP discovery by a stranger: %d bundles, %v", n, err)
	}
	if err := s.SendChat(ctx, bob, "hello from a stranger"); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "stranger's chat", isChat("hello from a stranger"))
	if !ev.Encrypted || ev.Peer == nil || !ev.Peer.NewSession {
		t.Fatalf("event %+v", ev)
	}
	if err := b.SendChat(ctx, jid.MustParse("stranger@"+p.Domain()), "hello stranger"); err != nil {
		t.Fatal(err)
	}
	s.waitEvent(t, "bob's answer", isChat("hello stranger"))
}
