package gateway

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/xmppx"
)

func TestMultiDeviceAndCarbons(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)
	if err := srv.Subscribe(alice, bob); err != nil {
		t.Fatal(err)
	}
	// One account key (in Alice's agent) for both of her devices: trust is
	// per account.
	aliceKey, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	laptop := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{signer: aliceKey})
	phone := startGateway(t, srv, "alice@"+testDomain+"/phone", "alice-pw", gwOptions{signer: aliceKey, addDevice: true})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{})
	laptop.waitDevices(t, bob.String(), 1)
	laptop.waitDevices(t, alice.String(), 1) // the phone
	phone.waitDevices(t, bob.String(), 1)
	phone.waitDevices(t, alice.String(), 1) // the laptop
	b.waitDevices(t, alice.String(), 2)
	ctx := context.Background()

	// Bob to Alice reaches both of Alice's devices.
	if err := b.SendChat(ctx, alice, "to all of alice"); err != nil {
		t.Fatal(err)
	}
	laptop.waitEvent(t, "chat on laptop", isChat("to all of alice"))
	phone.waitEvent(t, "chat on phone", isChat("to all of alice"))

	// Alice's laptop to Bob: Bob reads it, and the phone reads its carbon.
	if err := laptop.SendChat(ctx, bob, "sent from the laptop"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "chat from laptop", isChat("sent from the laptop"))
	ev := phone.waitEvent(t, "carbon on phone", func(ev Event) bool {
		return ev.Kind == EventChatSent && ev.Body == "sent from the laptop"
	})
	if !ev.Encrypted || ev.To != bob.String() {
		t.Fatalf("carbon event %+v", ev)
	}
}

func TestReconnectLosesNothing(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)
	if err := srv.Subscribe(alice, bob); err != nil {
		t.Fatal(err)
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	bobStore := store.NewMemory()
	bobKey, _ := identity.GenerateMemorySigner()
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{store: bobStore, signer: bobKey})
	a.waitDevices(t, bob.String(), 1)
	b.waitDevices(t, alice.String(), 1)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := a.SendChat(ctx, bob, fmt.Sprint("before ", i)); err != nil {
			t.Fatal(err)
		}
		b.waitEvent(t, "before", isChat(fmt.Sprint("before ", i)))
	}
	b.SendChat(ctx, alice, "reply")
	a.waitEvent(t, "reply", isChat("reply"))

	// Bob's gateway goes away in the middle of the conversation.
	b.stop()
	<-b.done
	for i := 0; len(a.Contacts(bob.String())) != 0; i++ {
		if i > 1500 {
			t.Fatal("alice never saw bob go offline")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		if err := a.SendChat(ctx, bob, fmt.Sprint("while away ", i)); err != nil {
			t.Fatal(err)
		}
	}
	// It comes back with the same state: every message arrives, in order.
	b2 := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{store: bobStore, signer: bobKey})
	for i := 0; i < 5; i++ {
		b2.waitEvent(t, "offline message", isChat(fmt.Sprint("while away ", i)))
	}
	if err := b2.SendChat(ctx, alice, "back"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "back", isChat("back"))
}

func TestBundleRequestFlood(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"bob", "mallory"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := access.DefaultConfig()
	cfg.Mode, cfg.Burst, cfg.Rate = access.Anyone, 3, 0.001
	ac, err := access.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{access: ac})
	m := startGateway(t, srv, "mallory@"+testDomain+"/bot", "mallory-pw", gwOptions{})
	bobFull := jid.MustParse("bob@" + testDomain + "/desk")
	ok, refused := 0, 0
	for i := 0; i < 50; i++ {
		_, err := m.fetchBundleIQ(context.Background(), bobFull, b.eng.Device())
		var iqErr *IQError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &iqErr) && iqErr.Condition() == "resource-constraint":
			refused++
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if ok != cfg.Burst || refused != 50-cfg.Burst {
		t.Fatalf("flood of 50 bundle requests: %d served, %d refused; want %d served", ok, refused, cfg.Burst)
	}
	if st := ac.Stats(); st.Strangers > 1 {
		t.Fatalf("tracked %d strangers", st.Strangers)
	}
}

// TestFallbackOnlyWhenNeeded: EME and a fallback body are added only when
// an available resource of the contact does not support securejingle.
func TestFallbackOnlyWhenNeeded(t *testing.T) {
	srv, a, b := pair(t)
	var mu sync.Mutex
	var last []byte
	srv.SetHook(func(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && strings.HasPrefix(st.From.String(), "alice@") {
			mu.Lock()
			last = st.Raw
			mu.Unlock()
		}
		return []localxmpp.Stanza{st}
	})
	sent := func() string { mu.Lock(); defer mu.Unlock(); return string(last) }
	ctx := context.Background()
	bob := jid.MustParse("bob@" + testDomain)
	if err := a.SendChat(ctx, bob, "all devices support it"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "chat", isChat("all devices support it"))
	if s := sent(); strings.Contains(s, "urn:xmpp:eme:0") || strings.Contains(s, "<body") || !strings.Contains(s, "urn:xmpp:hints") {
		t.Fatalf("steady message carries fallback or lacks the store hint: %s", s)
	}
	// Bob comes online with an old client as well.
	old, err := xmppx.Login(ctx, srv.Addr().String(), jid.MustParse("bob@"+testDomain+"/old"), "bob-password", srv.ClientTLSConfig(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	go old.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
	if err := old.Send(ctx, tokens(build("presence", nil))); err != nil {
		t.Fatal(err)
	}
	for i := 0; a.Contacts(bob.String())["old"] != 0 || len(a.Contacts(bob.String())) < 2; i++ {
		if i > 2000 {
			t.Fatal("alice never saw bob's old client")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.SendChat(ctx, bob, "one device is old"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "chat", isChat("one device is old"))
	if s := sent(); !strings.Contains(s, "urn:xmpp:eme:0") || !strings.Contains(s, e2e.FallbackBody) {
		t.Fatalf("message to a contact with an old client lacks EME or the fallback body: %s", s)
	}
}

// TestProtectedMessageInPlace: a protected message payload is unwrapped and
// processed as if it had arrived in place.
func TestProtectedMessageInPlace(t *testing.T) {
	_, a, b := pair(t)
	ctx := context.Background()
	payload := []byte(`<body xmlns="jabber:client">inside the envelope</body><x xmlns="urn:example:extra">42</x>`)
	for _, auth := range []bool{e2e.Encrypt, e2e.AuthOnly} {
		if err := a.SendProtectedMessage(ctx, jid.MustParse("bob@"+testDomain), "chat", payload, auth); err != nil {
			t.Fatal(err)
		}
		ev := b.waitEvent(t, "stanza", func(ev Event) bool { return ev.Kind == EventStanza })
		if !bytes.Contains(ev.Payload, []byte("urn:example:extra")) || ev.Encrypted == auth || ev.Peer == nil {
			t.Fatalf("stanza event %+v", ev)
		}
		chat := b.waitEvent(t, "chat in place", isChat("inside the envelope"))
		if chat.Encrypted == auth {
			t.Fatalf("chat event %+v", chat)
		}
	}
}

// TestProtectedPresence: presence payloads can be wrapped too.
func TestProtectedPresence(t *testing.T) {
	_, a, b := pair(t)
	err := a.SendProtectedPresence(context.Background(), jid.MustParse("bob@"+testDomain+"/phone"), []byte(`<mood xmlns="http://jabber.org/protocol/mood"><happy/></mood>`), e2e.Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "protected presence", func(ev Event) bool { return ev.Kind == EventStanza })
	if !bytes.Contains(ev.Payload, []byte("<happy/>")) || !ev.Encrypted || ev.Peer.JID != "alice@"+testDomain {
		t.Fatalf("event %+v", ev)
	}
	if d := b.Contacts("alice@" + testDomain)["laptop"]; d == 0 {
		t.Fatal("protected presence made alice's resource look unsupported")
	}
}

// TestOpportunisticStranger: on the embedded server too, a stranger finds
// Bob's bundle in PEP (published open because Bob admits anyone) and opens
// a session with a first message carrying its own bundle inline.
func TestOpportunisticStranger(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"bob", "stranger"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := access.DefaultConfig()
	cfg.Mode = access.Anyone
	ac, err := access.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{access: ac})
	s := startGateway(t, srv, "stranger@"+testDomain+"/bot", "stranger-pw", gwOptions{})
	ctx := context.Background()
	bob := jid.MustParse("bob@" + testDomain)
	if n, err := s.DiscoverBundles(ctx, bob); err != nil || n != 1 {
		t.Fatalf("PEP discovery: %d, %v", n, err)
	}
	if err := s.SendChat(ctx, bob, "hi from nowhere"); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "stranger chat", isChat("hi from nowhere"))
	if !ev.Encrypted || !ev.Peer.NewSession {
		t.Fatalf("event %+v", ev)
	}
	if err := b.SendChat(ctx, jid.MustParse("stranger@"+testDomain), "welcome"); err != nil {
		t.Fatal(err)
	}
	s.waitEvent(t, "answer", isChat("welcome"))
}
