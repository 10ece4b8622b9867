package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// pepEvent is the PEP notification of a device list, as a server sends it.
func pepEvent(t *testing.T, l *e2e.DeviceList) []byte {
	t.Helper()
	x, err := e2e.MarshalDeviceListXML(l)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`<event xmlns="` + nsPubSubEvent + `"><items node="` + nsDevicesNode + `"><item id="` + devicesItem + `">` +
		string(x) + `</item></items></event>`)
}

// TestRegressStrangerDeviceListEventStoresNothing: a device list
// notification from an account we know nothing of (which a hostile server
// can forge for any JID) pins no key and stores no list.
func TestRegressStrangerDeviceListEventStoresNothing(t *testing.T) {
	srv, _, b := pair(t)
	if err := srv.AddUser("mallory", "mallory-pw"); err != nil {
		t.Fatal(err)
	}
	m := startGateway(t, srv, "mallory@"+testDomain+"/x", "mallory-pw", gwOptions{})
	l, err := m.eng.DeviceList(m.bare())
	if err != nil || l == nil {
		t.Fatalf("mallory's own list: %v", err)
	}
	bobFull := "bob@" + testDomain + "/phone"
	if err := m.send(context.Background(), build("message", map[string]string{"type": "headline", "to": bobFull}, pepEvent(t, l))); err != nil {
		t.Fatal(err)
	}
	sendClear(t, m, bobFull, "barrier")
	b.waitEvent(t, "barrier", isChat("barrier"))
	if got, _ := b.eng.DeviceList(m.bare()); got != nil {
		t.Fatal("bob stored a stranger's device list from a notification")
	}
	if _, err := b.cfg.Trust.Lookup(m.bare()); !errors.Is(err, trust.ErrUnknown) {
		t.Fatalf("bob pinned a stranger's key from a notification: %v", err)
	}
}

// TestDeviceRevocationByPEPEvent: alice's second device joins, bob uses
// it; alice removes it and bob, notified through PEP, stops using it.
func TestDeviceRevocationByPEPEvent(t *testing.T) {
	srv, a, b := pair(t)
	// The second device holds the same account key.
	phone := startGateway(t, srv, "alice@"+testDomain+"/phone", "alice-password", gwOptions{signer: a.signer, addDevice: true})
	b.waitDevices(t, a.bare(), 2)
	if !phone.eng.Certified() {
		t.Fatal("the phone did not join the list with AddThisDevice")
	}
	l, err := a.RemoveDevice(context.Background(), phone.eng.Device())
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "bob drops alice's phone", func() bool {
		ds, _ := b.eng.Devices(a.bare())
		return len(ds) == 1 && ds[0].ID == a.eng.Device()
	})
	if cur, _ := b.eng.DeviceList(a.bare()); cur == nil || cur.Version != l.Version {
		t.Fatalf("bob holds list %+v, want version %d", cur, l.Version)
	}
	poll(t, "the phone learns it was removed", func() bool { return !phone.eng.Certified() })
	if err := phone.SendChat(context.Background(), jid.MustParse(b.bare()), "from a removed device"); !errors.Is(err, ErrDeviceNotCertified) {
		t.Fatalf("chat from a removed device: %v, want ErrDeviceNotCertified", err)
	}
	if err := b.SendChat(context.Background(), jid.MustParse(a.bare()), "laptop only"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "chat on the laptop", isChat("laptop only"))
}

// poll waits for cond, failing after a generous bound (a hang guard, not
// a timing assertion).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRegressForeignOwnListInPEP: a phantom under alice's account (its own
// key) publishes its own device list over hers in PEP. Alice's devices are
// alerted, never adopt it, and a later change of hers succeeds and puts
// her own list back; bob keeps using only her real devices.
func TestRegressForeignOwnListInPEP(t *testing.T) {
	srv, a, b := pair(t)
	// A phantom configured to add itself founds a list under its own key.
	phantom := startGateway(t, srv, "alice@"+testDomain+"/phantom", "alice-password", gwOptions{addDevice: true})
	a.waitEvent(t, "alert on the foreign own device", func(ev Event) bool { return ev.Kind == EventAlert })
	if !phantom.eng.Certified() {
		t.Fatal("the phantom founded no list of its own (the test needs one in PEP)")
	}
	// The phantom leaves (running this gateway, it would answer our list
	// with its own: an attacker who keeps writing PEP wins PEP, never a
	// contact's trust).
	phantom.stop()
	<-phantom.done
	// Alice changes her list: it must work despite the foreign list.
	l, err := a.AddThisDevice(context.Background())
	if err != nil {
		t.Fatalf("adding with a foreign list in PEP: %v", err)
	}
	if len(l.Devices) != 1 || l.Devices[0].ID != a.eng.Device() {
		t.Fatalf("alice's new list %+v holds a foreign device", l.Devices)
	}
	poll(t, "alice's new list in PEP", func() bool {
		pep, err := a.fetchDeviceList(context.Background(), jid.MustParse(a.bare()))
		return err == nil && pep != nil && pep.Version == l.Version && pep.Lists(a.eng.Device(), a.eng.DeviceKey())
	})
	if ds, _ := b.eng.Devices(a.bare()); len(ds) != 1 || ds[0].ID != a.eng.Device() {
		t.Fatalf("bob uses %v", ds)
	}
}

// TestRepublishOwnListAfterForeignOne: a list under another key written
// over ours in PEP at run time (by a second login with the password) is
// answered by publishing ours again.
func TestRepublishOwnListAfterForeignOne(t *testing.T) {
	srv, a, _ := pair(t)
	// A second login that is not a device of the account: it publishes
	// nothing itself (no list of its own, not told to add itself).
	writer := startGateway(t, srv, "alice@"+testDomain+"/writer", "alice-password", gwOptions{})
	key, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e2e.New(e2e.Config{JID: a.bare(), Signer: key, Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := foreign.CertifyThisDevice(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.publishDeviceList(context.Background(), fl); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "alert on the foreign list", func(ev Event) bool {
		return ev.Kind == EventAlert && ev.Alert != nil && strings.Contains(ev.Alert.Decision.Detail, "device list")
	})
	poll(t, "alice's own list back in PEP", func() bool {
		pep, err := a.fetchDeviceList(context.Background(), jid.MustParse(a.bare()))
		return err == nil && pep != nil && pep.Lists(a.eng.Device(), a.eng.DeviceKey())
	})
}
