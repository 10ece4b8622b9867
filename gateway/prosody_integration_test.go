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
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

// startProsodyGateway runs a gateway against a real Prosody.
func startProsodyGateway(t *testing.T, p *prosodytest.Server, local, password, resource string) *testGateway {
	t.Helper()
	return startProsodyGatewayWith(t, p, local, password, resource, nil)
}

func startProsodyGatewayWith(t *testing.T, p *prosodytest.Server, local, password, resource string, ac *access.Controller) *testGateway {
	t.Helper()
	j := jid.MustParse(local + "@" + p.Domain() + "/" + resource)
	st := store.NewMemory()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	ts := trust.New(st, nil)
	eng, err := e2e.New(e2e.Config{JID: j.Bare().String(), Signer: signer, Store: st, Trust: &e2e.PinningTrust{Store: ts}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{JID: j, Password: password, Addr: p.Addr(), TLS: p.TLSConfig(), Engine: eng, Trust: ts, Access: ac,
		Logger: testLogger().With("gw", j.String()), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	events, _ := g.Subscribe(1024)
	ctx, cancel := context.WithCancel(context.Background())
	tg := &testGateway{Gateway: g, events: events, stop: cancel, done: make(chan struct{}), store: st}
	go func() { defer close(tg.done); g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-tg.done })
	select {
	case <-g.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not log in to Prosody (log: %s)", j, p.LogPath())
	}
	return tg
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
