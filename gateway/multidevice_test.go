package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
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
	laptop := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	phone := startGateway(t, srv, "alice@"+testDomain+"/phone", "alice-pw", gwOptions{})
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
