package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/policy"
)

// The attack suite of issue 7 against a real Prosody that attacks its own
// users through mod_securejingle_hostile (internal/prosodytest/prosody):
// phantom devices for a contact and for the own account (invented by the
// server, and logged in for real with the password), a swapped presence
// key, replays, a reroute, a stripped support element, a stripped <c/>
// and forged carbons. Each subtest checks both halves: nothing the attack
// offered is accepted (no chat event, no stored device, no message
// encrypted to it, read from what really crossed the wire in the server's
// stanza log), and the user is told (the alert or event the gateway
// raises for it).
//
// Ordering is proved, never waited for: the module applies a rule before
// it acknowledges it, a gateway's events follow the stanzas it processed,
// and barrier() shows that a gateway processed everything it was sent
// before a probe injected behind it.

// attackNet is a hostile Prosody with accounts whose password is
// local+"-pw".
type attackNet struct {
	p *prosodytest.Server
	h *prosodytest.Hostile
}

func startAttackNet(t *testing.T, users ...string) *attackNet {
	t.Helper()
	p := prosodytest.Start(t, prosodytest.WithHostile())
	for _, u := range users {
		p.AddUser(t, u, u+"-pw")
	}
	return &attackNet{p: p, h: p.Hostile(t)}
}

func (n *attackNet) bare(local string) jid.JID { return jid.MustParse(local + "@" + n.p.Domain()) }

func (n *attackNet) full(local, resource string) jid.JID {
	return jid.MustParse(local + "@" + n.p.Domain() + "/" + resource)
}

// gateway logs a gateway in as local/resource.
func (n *attackNet) gateway(t *testing.T, local, resource string, opt gwOptions) *testGateway {
	t.Helper()
	return startGatewayAt(t, server{n.p.Addr(), n.p.TLSConfig()}, n.full(local, resource).String(), local+"-pw", opt)
}

// pair subscribes alice and bob, logs in alice/laptop and bob/desk and
// waits until each has the other's device.
func (n *attackNet) pair(t *testing.T, aliceOpt, bobOpt gwOptions) (a, b *testGateway) {
	t.Helper()
	n.p.Subscribe(t, "alice", "bob")
	a = n.gateway(t, "alice", "laptop", aliceOpt)
	b = n.gateway(t, "bob", "desk", bobOpt)
	a.waitDevices(t, n.bare("bob").String(), 1)
	b.waitDevices(t, n.bare("alice").String(), 1)
	return a, b
}

// sentBy returns the message with stanza id that the client at from sent
// to the server, as the server's log has it.
func (n *attackNet) sentBy(t *testing.T, from jid.JID, id string) *Stanza {
	t.Helper()
	e := n.h.WaitLog(t, "message "+id+" from "+from.String(), func(e prosodytest.LogEntry) bool {
		return e.Dir == "in" && e.Name == "message" && e.Session == from.String() && e.ID == id
	})
	st, err := parseStanza([]byte(e.XML))
	if err != nil {
		t.Fatalf("logged stanza: %v\n%s", err, e.XML)
	}
	return st
}

// deliveredTo returns the log entry of the message with stanza id that the
// server wrote to the session to.
func (n *attackNet) deliveredTo(t *testing.T, to jid.JID, id string) prosodytest.LogEntry {
	t.Helper()
	return n.h.WaitLog(t, "message "+id+" to "+to.String(), func(e prosodytest.LogEntry) bool {
		return e.Dir == "out" && e.Name == "message" && e.Session == to.String() && e.ID == id
	})
}

var barrierSeq atomic.Int64

// barrier proves that tg processed every stanza its session was sent
// before the call: it injects a cleartext probe behind them and waits for
// the probe's chat event, failing on any event before it that bad matches.
// (A stanza held back for a bundle fetch waits behind its own sender only;
// those tests wait for the fetch's outcome instead.)
func (n *attackNet) barrier(t *testing.T, tg *testGateway, bad func(Event) bool) {
	t.Helper()
	body := fmt.Sprintf("barrier %d", barrierSeq.Add(1))
	n.h.Inject(t, tg.JID(), string(build("message", map[string]string{"type": "chat", "id": randomID(), "from": n.full("probe", "barrier").String()},
		element(nsClient, "body", body))))
	tg.waitEvent(t, body, func(ev Event) bool {
		if bad != nil && bad(ev) {
			t.Fatalf("%s: accepted: %+v", tg.bare(), ev)
		}
		return ev.Kind == EventChat && ev.Body == body
	})
}

// expect waits until each of want has matched an event of tg (in any
// order), failing at once on an event that bad matches. It returns the
// first match of each.
func expect(t *testing.T, tg *testGateway, bad func(Event) bool, want map[string]func(Event) bool) map[string]Event {
	t.Helper()
	got := map[string]Event{}
	deadline := time.After(30 * time.Second) // a hang guard, not a timing assertion
	for len(got) < len(want) {
		select {
		case ev := <-tg.events:
			if bad != nil && bad(ev) {
				t.Fatalf("%s: accepted: %+v", tg.bare(), ev)
			}
			for what, ok := range want {
				if _, done := got[what]; !done && ok(ev) {
					got[what] = ev
				}
			}
		case <-deadline:
			var missing []string
			for what := range want {
				if _, done := got[what]; !done {
					missing = append(missing, what)
				}
			}
			t.Fatalf("%s: no event: %s", tg.bare(), strings.Join(missing, "; "))
		}
	}
	return got
}

func isChatBody(body string) func(Event) bool {
	return func(ev Event) bool { return (ev.Kind == EventChat || ev.Kind == EventChatSent) && ev.Body == body }
}

// isKeyChanged matches the key-changed event for device of bare.
func isKeyChanged(bare jid.JID, device uint32) func(Event) bool {
	return func(ev Event) bool {
		return ev.Kind == EventKeyChanged && ev.From == bare.String() && strings.Contains(ev.Detail, fmt.Sprintf("device %d of ", device))
	}
}

// isKeyChangeRefused matches the policy alert that refuses device of bare
// for its unpinned account key.
func isKeyChangeRefused(bare jid.JID, device uint32) func(Event) bool {
	return func(ev Event) bool {
		return isAlert("default-refuse-key-changed")(ev) && ev.Alert.Facts.PeerJID == bare.String() &&
			ev.Alert.Facts.PeerDevice == device && ev.Alert.Facts.Trust == policy.TrustKeyChanged
	}
}

// isIntegrity matches an integrity alert about bare whose details contain
// part.
func isIntegrity(bare jid.JID, part string) func(Event) bool {
	return func(ev Event) bool {
		return isAlert("integrity")(ev) && ev.Alert.Facts.PeerJID == bare.String() && strings.Contains(ev.Alert.Decision.Detail, part)
	}
}

// storedDevice matches the event of a stored bundle of device of bare.
func storedDevice(bare jid.JID, device uint32) func(Event) bool {
	return func(ev Event) bool {
		return ev.Kind == EventPeer && ev.From == bare.String() && ev.Detail == fmt.Sprintf("device %d", device)
	}
}

func anyOf(fs ...func(Event) bool) func(Event) bool {
	return func(ev Event) bool {
		for _, f := range fs {
			if f(ev) {
				return true
			}
		}
		return false
	}
}

// impostor is what an attacker can make for the account bare without its
// account key: a device under a fresh account key of its own, which
// certifies the device and signs a device list for bare.
func impostor(t *testing.T, bare jid.JID) *e2e.Engine {
	t.Helper()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := e2e.New(e2e.Config{JID: bare.String(), Signer: signer, Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.CertifyThisDevice(nil); err != nil {
		t.Fatal(err)
	}
	return eng
}

func presenceXML(t *testing.T, eng *e2e.Engine) string {
	t.Helper()
	b, err := xml.Marshal(eng.Presence())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func bundleXML(t *testing.T, eng *e2e.Engine) string {
	t.Helper()
	b, err := e2e.MarshalBundleXML(eng.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var bundleRequest = xml.Name{Space: e2e.NS, Local: "bundle"}

// recipients reads the recipient device ids of a sealed chat message from
// the wire format of its blob (docs/protocol.md §12.1: u32 sender device,
// then entries of u32 recipient device, u8 kind byte with 0x80 marking the
// sender's own account, uvarint-length body). It is written from the spec,
// apart from the engine's parser, to show what really went out.
func recipients(t *testing.T, st *Stanza) (peer, own []uint32) {
	t.Helper()
	c := st.Child(e2e.NS, "c")
	if c == nil {
		t.Fatalf("message %s has no <c/>", st.ID)
	}
	el, err := e2e.ParseChatElement(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	b := el.Blob
	if len(b) < 4 {
		t.Fatal("blob without sender")
	}
	for b = b[4:]; len(b) > 0; {
		if len(b) < 5 {
			t.Fatalf("truncated entry in message %s", st.ID)
		}
		dev, kind := binary.BigEndian.Uint32(b), b[4]
		n, k := binary.Uvarint(b[5:])
		if k <= 0 || uint64(len(b)-5-k) < n {
			t.Fatalf("bad entry length in message %s", st.ID)
		}
		b = b[5+k+int(n):]
		if kind&0x80 != 0 {
			own = append(own, dev)
		} else {
			peer = append(peer, dev)
		}
	}
	slices.Sort(peer)
	slices.Sort(own)
	return peer, own
}

// sentOnlyTo checks, on the wire, that message id sent by from was
// encrypted to exactly the devices peer of the contact and own of the
// sender's own account.
func (n *attackNet) sentOnlyTo(t *testing.T, from *testGateway, id string, peer, own []uint32) {
	t.Helper()
	gotPeer, gotOwn := recipients(t, n.sentBy(t, from.JID(), id))
	slices.Sort(peer)
	slices.Sort(own)
	if !slices.Equal(gotPeer, peer) || !slices.Equal(gotOwn, own) {
		t.Fatalf("message %s encrypted to contact devices %v and own devices %v; want exactly %v and %v", id, gotPeer, gotOwn, peer, own)
	}
}

// devicesAre checks that tg uses exactly the devices ids of bare.
func devicesAre(t *testing.T, tg *testGateway, bare jid.JID, ids ...uint32) {
	t.Helper()
	ds, err := tg.eng.Devices(bare.String())
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, d := range ds {
		got = append(got, d.ID)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("%s stores devices %v of %s, want %v", tg.bare(), got, bare, ids)
	}
}

// neverUsed checks that tg stores, and may use, no device id of bare, and
// that the pinned account key of bare is still pinned (as the accepted
// key) when pinned is not nil.
func neverUsed(t *testing.T, tg *testGateway, bare jid.JID, id uint32, pinned []byte) {
	t.Helper()
	d := e2e.Device{JID: bare.String(), ID: id}
	if _, err := tg.eng.PeerBundle(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: bundle of the phantom device %d of %s: %v", tg.bare(), id, bare, err)
	}
	if tg.eng.CheckDevice(d) == nil {
		t.Fatalf("%s may use the phantom device %d of %s", tg.bare(), id, bare)
	}
	if pinned == nil {
		return
	}
	rec, err := tg.cfg.Trust.Lookup(bare.String())
	if err != nil || !rec.Accepts(pinned) || subtle.ConstantTimeCompare(rec.Key, pinned) != 1 {
		t.Fatalf("%s: trust record of %s %+v (%v) no longer pins the real account key", tg.bare(), bare, rec, err)
	}
}

// chatTo sends body from tg to to and returns the message's stanza id.
func chatTo(t *testing.T, tg *testGateway, to jid.JID, body string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := tg.SendChatMessage(ctx, to, body)
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// resendPresence makes tg send its available presence again.
func resendPresence(t *testing.T, tg *testGateway) {
	t.Helper()
	payload, err := tg.presencePayload()
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.send(context.Background(), build("presence", nil, payload...)); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is a settable clock for the withheld-message grace period.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// expectWithheld moves tg's clock past the grace period and waits for the
// report that count messages of device from never arrived. The barrier
// first makes sure tg has finished with the last message it was sent (its
// chat event is published before its gap is recorded).
func (n *attackNet) expectWithheld(t *testing.T, tg *testGateway, clock *fakeClock, from *testGateway, count int) {
	t.Helper()
	n.barrier(t, tg, nil)
	clock.advance(2 * DefaultWithheldGrace)
	tg.checkWithheld()
	ev := tg.waitEvent(t, "withheld report", func(ev Event) bool { return ev.Kind == EventWithheld })
	if ev.Count != count || ev.From != from.bare() || ev.Peer == nil || ev.Peer.ID != from.eng.Device() {
		t.Fatalf("withheld event %+v; want %d messages of %s device %d", ev, count, from.bare(), from.eng.Device())
	}
	tg.waitEvent(t, "withheld alert", isAlert("withheld"))
}

// TestIntegrationProsodyAttacks runs each attack of issue 7 on its own
// hostile Prosody.
func TestIntegrationProsodyAttacks(t *testing.T) {
	t.Run("phantom contact device invented by the server", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		established(t, a, b)
		alice, bob := n.bare("alice"), n.bare("bob")
		evil := impostor(t, bob)
		phantom := n.full("bob", "phantom")
		ph := n.h.Phantom(t, prosodytest.Phantom{JID: phantom, To: alice,
			Presence: []string{presenceXML(t, evil)},
			Answers:  []prosodytest.Answer{{Child: bundleRequest, Result: []string{bundleXML(t, evil)}}}})
		accepted := anyOf(storedDevice(bob, evil.Device()), isChatBody("the phantom speaks"))
		expect(t, a, accepted, map[string]func(Event) bool{
			"key-changed event naming the phantom device": isKeyChanged(bob, evil.Device()),
			"key-change alert refusing it":                isKeyChangeRefused(bob, evil.Device()),
		})
		if ph.Rules[0].Hits(t) == 0 {
			t.Fatal("alice never asked the phantom for its bundle")
		}
		// The phantom talks: a first message with its bundle inline.
		if err := evil.AddBundle(alice.String(), a.eng.Bundle()); err != nil {
			t.Fatal(err)
		}
		el, err := evil.SealChat(e2e.Context{From: bob.String(), To: alice.String(), StanzaKind: "message", StanzaType: "chat"},
			[]e2e.Device{{JID: alice.String(), ID: a.eng.Device()}}, "the phantom speaks", true)
		if err != nil {
			t.Fatal(err)
		}
		cx, err := xml.Marshal(el)
		if err != nil {
			t.Fatal(err)
		}
		n.h.Inject(t, a.JID(), string(build("message", map[string]string{"type": "chat", "id": randomID(), "from": phantom.String(), "to": alice.String()}, cx)))
		expect(t, a, accepted, map[string]func(Event) bool{
			"integrity alert for the phantom's message": isIntegrity(bob, phantom.String()),
		})
		neverUsed(t, a, bob, evil.Device(), b.eng.Identity())
		devicesAre(t, a, bob, b.eng.Device())
		id := chatTo(t, a, bob, "after the phantom")
		b.waitEvent(t, "sentinel", isChat("after the phantom"))
		n.sentOnlyTo(t, a, id, []uint32{b.eng.Device()}, nil)
	})

	t.Run("phantom contact device logged in with the password", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		established(t, a, b)
		alice, bob := n.bare("alice"), n.bare("bob")
		// A second login of bob's account with the password but without
		// bob's account key: its gateway certifies itself under a key of
		// its own and publishes its own device list for bob.
		evil := n.gateway(t, "bob", "evil", gwOptions{addDevice: true}) // configured to add itself: it founds a list of its own
		ev := evil.eng.Device()
		accepted := anyOf(storedDevice(bob, ev), isChatBody("it is me, bob, on a new phone"))
		expect(t, a, accepted, map[string]func(Event) bool{
			"key-changed event naming the phantom device": isKeyChanged(bob, ev),
			"key-change alert refusing it":                isKeyChangeRefused(bob, ev),
			"bob's device list from the phantom refused":  isIntegrity(bob, "device list of "+bob.String()+" refused"),
		})
		// Bob is told that a device list for his account is not his.
		expect(t, b, storedDevice(bob, ev), map[string]func(Event) bool{
			"own device list from the phantom refused": isIntegrity(bob, "device list of "+bob.String()+" refused"),
		})
		// The phantom talks to alice (whose bundle it pinned); she refuses
		// it.
		evil.waitDevices(t, alice.String(), 1)
		if err := evil.SendChat(context.Background(), alice, "it is me, bob, on a new phone"); err != nil {
			t.Fatal(err)
		}
		expect(t, a, accepted, map[string]func(Event) bool{
			"integrity alert for the phantom's message": isIntegrity(bob, "/evil"),
		})
		neverUsed(t, a, bob, ev, b.eng.Identity())
		devicesAre(t, a, bob, b.eng.Device())
		neverUsed(t, b, bob, ev, nil)
		// Alice's next message is for bob's real device only: the phantom
		// receives it from the server and cannot read it.
		id := chatTo(t, a, bob, "after the second login")
		b.waitEvent(t, "sentinel", isChat("after the second login"))
		n.sentOnlyTo(t, a, id, []uint32{b.eng.Device()}, nil)
		n.deliveredTo(t, evil.JID(), id)
		n.barrier(t, evil, isChatBody("after the second login"))
	})

	t.Run("phantom own device invented by the server", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		n.p.Subscribe(t, "alice", "bob")
		alice, bob := n.bare("alice"), n.bare("bob")
		// Alice has two real devices under one account key.
		key, err := identity.GenerateMemorySigner()
		if err != nil {
			t.Fatal(err)
		}
		a := n.gateway(t, "alice", "laptop", gwOptions{signer: key})
		phone := n.gateway(t, "alice", "phone", gwOptions{signer: key, addDevice: true})
		b := n.gateway(t, "bob", "desk", gwOptions{})
		a.waitDevices(t, alice.String(), 1)
		a.waitDevices(t, bob.String(), 1)
		phone.waitDevices(t, alice.String(), 1)
		b.waitDevices(t, alice.String(), 2)
		established(t, a, b)
		evil := impostor(t, alice)
		ph := n.h.Phantom(t, prosodytest.Phantom{JID: n.full("alice", "phantom"), To: alice,
			Presence: []string{presenceXML(t, evil)},
			Answers:  []prosodytest.Answer{{Child: bundleRequest, Result: []string{bundleXML(t, evil)}}}})
		claim := fmt.Sprintf("a device claiming to be yours (device %d) is not certified by your account key", evil.Device())
		for _, tg := range []*testGateway{a, phone} {
			expect(t, tg, storedDevice(alice, evil.Device()), map[string]func(Event) bool{
				"alert: a device claiming to be yours": isIntegrity(alice, claim),
			})
			neverUsed(t, tg, alice, evil.Device(), nil)
		}
		ph.Rules[0].WaitHits(t, 2) // both devices asked the phantom
		devicesAre(t, a, alice, phone.eng.Device())
		// Own-device copies go to the phone, never to the phantom.
		id := chatTo(t, a, bob, "after the own phantom")
		b.waitEvent(t, "sentinel", isChat("after the own phantom"))
		phone.waitEvent(t, "carbon", func(ev Event) bool {
			return ev.Kind == EventChatSent && ev.Body == "after the own phantom" && ev.Encrypted
		})
		n.sentOnlyTo(t, a, id, []uint32{b.eng.Device()}, []uint32{phone.eng.Device()})
	})

	t.Run("phantom own device logged in with the password", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		established(t, a, b)
		alice := n.bare("alice")
		evil := n.gateway(t, "alice", "evil", gwOptions{addDevice: true})
		ev := evil.eng.Device()
		claim := fmt.Sprintf("a device claiming to be yours (device %d) is not certified by your account key", ev)
		expect(t, a, storedDevice(alice, ev), map[string]func(Event) bool{
			"alert: a device claiming to be yours":     isIntegrity(alice, claim),
			"own device list from the phantom refused": isIntegrity(alice, "device list of "+alice.String()+" refused"),
		})
		// Bob sees the phantom as a device of alice under another key.
		expect(t, b, storedDevice(alice, ev), map[string]func(Event) bool{
			"key-changed event naming the phantom device": isKeyChanged(alice, ev),
			"key-change alert refusing it":                isKeyChangeRefused(alice, ev),
		})
		neverUsed(t, a, alice, ev, nil)
		neverUsed(t, b, alice, ev, a.eng.Identity())
		devicesAre(t, a, alice)
		devicesAre(t, b, alice, a.eng.Device())
		// Neither alice's own copies nor bob's messages go to the phantom.
		id := chatTo(t, a, n.bare("bob"), "own copies")
		b.waitEvent(t, "sentinel", isChat("own copies"))
		n.sentOnlyTo(t, a, id, []uint32{b.eng.Device()}, nil)
		id = chatTo(t, b, alice, "for the laptop only")
		a.waitEvent(t, "sentinel", isChat("for the laptop only"))
		n.sentOnlyTo(t, b, id, []uint32{a.eng.Device()}, nil)
		n.deliveredTo(t, evil.JID(), id)
		n.barrier(t, evil, isChatBody("for the laptop only"))
	})

	t.Run("presence key swap", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		established(t, a, b)
		bob := n.bare("bob")
		evil := impostor(t, bob)
		bad := storedDevice(bob, evil.Device())

		// The swapped element alone: its bundle is nowhere to be had.
		swap := n.h.SwapPresenceKey(t, bob, e2e.NS, presenceXML(t, evil))
		resendPresence(t, b)
		n.h.WaitLog(t, "swapped presence to alice", func(e prosodytest.LogEntry) bool {
			return e.Dir == "out" && e.Name == "presence" && e.Session == a.JID().String() && strings.Contains(e.Rules, swap.ID)
		})
		n.barrier(t, a, bad)
		neverUsed(t, a, bob, evil.Device(), b.eng.Identity())

		swap.Remove(t)

		// With the server also serving the impostor's bundle for bob/desk
		// (another impostor device, so that no fetch of the first one is
		// still in flight for it).
		evil2 := impostor(t, bob)
		bad = anyOf(bad, storedDevice(bob, evil2.Device()))
		swap = n.h.SwapPresenceKey(t, bob, e2e.NS, presenceXML(t, evil2))
		serve := n.h.Answer(t, prosodytest.Answer{To: b.JID(), Child: bundleRequest, Result: []string{bundleXML(t, evil2)}})
		resendPresence(t, b)
		expect(t, a, bad, map[string]func(Event) bool{
			"key-changed event naming the swapped-in device": isKeyChanged(bob, evil2.Device()),
			"key-change alert refusing it":                   isKeyChangeRefused(bob, evil2.Device()),
		})
		if serve.Hits(t) == 0 {
			t.Fatal("alice never asked for the swapped-in bundle")
		}
		swap.Remove(t)
		serve.Remove(t)
		neverUsed(t, a, bob, evil.Device(), b.eng.Identity())
		neverUsed(t, a, bob, evil2.Device(), b.eng.Identity())
		devicesAre(t, a, bob, b.eng.Device())
		id := chatTo(t, a, bob, "after the swap")
		b.waitEvent(t, "sentinel", isChat("after the swap"))
		n.sentOnlyTo(t, a, id, []uint32{b.eng.Device()}, nil)
	})

	t.Run("replay", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		alice, bob := n.bare("alice"), n.bare("bob")
		replayed := e2e.ErrReplay.Error()
		// The first message of the session (a handshake), replayed before
		// and after the session is confirmed.
		first := chatTo(t, a, bob, "first words")
		b.waitEvent(t, "first message", isChat("first words"))
		firstOut := n.deliveredTo(t, b.JID(), first)
		n.h.Replay(t, firstOut)
		expect(t, b, isChatBody("first words"), map[string]func(Event) bool{
			"replay alert for the first message": isIntegrity(alice, replayed),
		})
		established(t, a, b)
		n.h.Replay(t, firstOut)
		expect(t, b, isChatBody("first words"), map[string]func(Event) bool{
			"replay alert for the first message, session confirmed": isIntegrity(alice, replayed),
		})
		// A ratchet message.
		later := chatTo(t, a, bob, "said once")
		b.waitEvent(t, "ratchet message", isChat("said once"))
		n.h.Replay(t, n.deliveredTo(t, b.JID(), later))
		expect(t, b, isChatBody("said once"), map[string]func(Event) bool{
			"replay alert for a ratchet message": isIntegrity(alice, replayed),
		})
		n.barrier(t, b, anyOf(isChatBody("first words"), isChatBody("said once")))
		// The session survives the replays.
		chatTo(t, a, bob, "after the replays")
		b.waitEvent(t, "sentinel", isChat("after the replays"))
	})

	t.Run("reroute", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob", "carol")
		clock := newFakeClock()
		a, b := n.pair(t, gwOptions{}, gwOptions{now: clock.Now})
		n.p.Subscribe(t, "alice", "carol")
		c := n.gateway(t, "carol", "tablet", gwOptions{})
		alice, bob, carol := n.bare("alice"), n.bare("bob"), n.bare("carol")
		a.waitDevices(t, carol.String(), 1)
		c.waitDevices(t, alice.String(), 1)
		established(t, a, b)
		established(t, a, c) // carol has a session with alice too
		read := anyOf(isChatBody("for bob only"), isChatBody("for bob, addressed to carol"))

		// Delivered to carol as it is, still addressed to bob.
		r := n.h.Reroute(t, prosodytest.Reroute{From: alice, To: bob, NewTo: carol})
		id := chatTo(t, a, bob, "for bob only")
		r.WaitHits(t, 1)
		n.deliveredTo(t, c.JID(), id)
		expect(t, c, read, map[string]func(Event) bool{
			"misrouted alert at carol": func(ev Event) bool {
				return isAlert("misrouted")(ev) && ev.Alert.Facts.PeerJID == alice.String() && strings.Contains(ev.Detail, bob.String())
			},
		})
		r.Remove(t)

		// Readdressed to carol and routed again.
		r = n.h.Reroute(t, prosodytest.Reroute{From: alice, To: bob, NewTo: carol, RewriteTo: true})
		id = chatTo(t, a, bob, "for bob, addressed to carol")
		r.WaitHits(t, 1)
		n.deliveredTo(t, c.JID(), id)
		n.barrier(t, c, read)
		r.Remove(t)

		// Bob never got either; the next message shows the gap.
		chatTo(t, a, bob, "after the reroutes")
		b.waitEvent(t, "sentinel", func(ev Event) bool {
			if read(ev) {
				t.Fatalf("rerouted message reached bob: %+v", ev)
			}
			return ev.Kind == EventChat && ev.Body == "after the reroutes"
		})
		n.expectWithheld(t, b, clock, a, 2)
	})

	t.Run("stripped support element", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		established(t, a, b)
		bob := n.bare("bob")
		strip := n.h.StripSupport(t, bob, e2e.NS)
		resendPresence(t, b)
		got := expect(t, a, nil, map[string]func(Event) bool{
			"support-stripped alert": isAlert("support-stripped"),
		})
		if f := got["support-stripped alert"].Alert.Facts; f.PeerJID != bob.String() || f.PeerDevice != b.eng.Device() {
			t.Fatalf("support-stripped alert facts %+v", f)
		}
		if strip.Hits(t) == 0 {
			t.Fatal("no presence was stripped")
		}
		// Alice does not fall back to cleartext: the message is still
		// encrypted to bob's pinned device (the fallback body is added
		// for the resource that now looks unsupported).
		const secret = "still encrypted after the strip"
		id := chatTo(t, a, bob, secret)
		ev := b.waitEvent(t, "sentinel", isChat(secret))
		if !ev.Encrypted {
			t.Fatalf("chat event %+v", ev)
		}
		n.sentOnlyTo(t, a, id, []uint32{b.eng.Device()}, nil)
		for _, ch := range n.sentBy(t, a.JID(), id).Children {
			if strings.Contains(string(ch.Raw), secret) || (ch.Name.Local == "body" && !strings.Contains(string(ch.Raw), e2e.FallbackBody)) {
				t.Fatalf("cleartext on the wire: %s", ch.Raw)
			}
		}
	})

	t.Run("stripped content element", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		clock := newFakeClock()
		a, b := n.pair(t, gwOptions{}, gwOptions{now: clock.Now})
		established(t, a, b)
		alice, bob := n.bare("alice"), n.bare("bob")
		shown := func(ev Event) bool { return ev.Kind == EventChat && ev.From == alice.String() }
		strip := n.h.StripContent(t, alice, e2e.NS)

		// No fallback (every resource of bob supports securejingle):
		// nothing is left to show; the gap is reported below.
		chatTo(t, a, bob, "stripped, no fallback")
		strip.WaitHits(t, 1)
		n.barrier(t, b, shown)

		// Bob also runs a plain client, so alice adds the fallback body.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		plain := prosodytest.Dial(t, ctx, n.p, "bob", "bob-pw", "old")
		go plain.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
		if err := plain.Send(ctx, tokens(build("presence", nil))); err != nil {
			t.Fatal(err)
		}
		n.h.WaitLog(t, "plain client's presence to alice", func(e prosodytest.LogEntry) bool {
			return e.Dir == "out" && e.Name == "presence" && e.Session == a.JID().String() && e.From == n.full("bob", "old").String()
		})
		n.barrier(t, a, nil)
		if d, ok := a.Contacts(bob.String())["old"]; !ok || d != 0 {
			t.Fatalf("alice's view of bob's plain client: %v %v", d, ok)
		}
		chatTo(t, a, bob, "stripped, with fallback")
		got := expect(t, b, shown, map[string]func(Event) bool{
			"stripped-encryption alert": isAlert("stripped-encryption"),
		})
		if f := got["stripped-encryption alert"].Alert.Facts; f.PeerJID != alice.String() || f.Protection != policy.ProtectionCleartext {
			t.Fatalf("stripped-encryption alert facts %+v", f)
		}
		strip.Remove(t)
		n.barrier(t, b, shown)

		chatTo(t, a, bob, "after the strips")
		ev := b.waitEvent(t, "sentinel", isChat("after the strips"))
		if !ev.Encrypted {
			t.Fatalf("chat event %+v", ev)
		}
		n.expectWithheld(t, b, clock, a, 2)
	})

	t.Run("forged carbons", func(t *testing.T) {
		n := startAttackNet(t, "alice", "bob")
		a, b := n.pair(t, gwOptions{}, gwOptions{})
		established(t, a, b)
		alice, bob := n.bare("alice"), n.bare("bob")
		secure := func(ev Event) bool { return (ev.Kind == EventChat || ev.Kind == EventChatSent) && ev.Encrypted }

		// "Sent by another login of yours", in cleartext.
		n.h.ForgeCarbon(t, prosodytest.Carbon{Account: alice, From: n.full("alice", "evil"), To: bob, Body: "I agree to everything"})
		got := expect(t, a, anyOf(secure, func(ev Event) bool { return ev.Kind == EventChat && ev.Body == "I agree to everything" }),
			map[string]func(Event) bool{
				"cleartext-sent-carbon alert": isAlert("cleartext-sent-carbon"),
				"chat-sent marked cleartext":  isChatBody("I agree to everything"),
			})
		if f := got["cleartext-sent-carbon alert"].Alert.Facts; f.PeerJID != bob.String() || f.Protection != policy.ProtectionCleartext {
			t.Fatalf("cleartext-sent-carbon alert facts %+v", f)
		}
		if ev := got["chat-sent marked cleartext"]; ev.Kind != EventChatSent || ev.Encrypted || !strings.Contains(ev.Detail, "cleartext") {
			t.Fatalf("forged carbon event %+v", ev)
		}

		// "Received from bob", in cleartext, while a session with bob is
		// established: a downgrade, refused.
		n.h.ForgeCarbon(t, prosodytest.Carbon{Account: alice, From: n.full("bob", "desk"), To: alice, Body: "send the money", Received: true})
		got = expect(t, a, secure, map[string]func(Event) bool{
			"cleartext downgrade alert": isAlert("default-refuse-cleartext-downgrade"),
			"refused chat":              isChatBody("send the money"),
		})
		if ev := got["refused chat"]; !ev.Refused || ev.Encrypted {
			t.Fatalf("forged received carbon event %+v", ev)
		}

		// A carbon from a foreign JID.
		inner := build("message", map[string]string{"type": "chat", "id": randomID(), "from": alice.String() + "/evil", "to": bob.String()},
			element(nsClient, "body", "from a foreign carbon"))
		n.h.Inject(t, a.JID(), string(build("message", map[string]string{"type": "chat", "from": bob.String()},
			[]byte(`<sent xmlns="`+nsCarbons+`"><forwarded xmlns="`+nsForward+`">`+string(inner)+`</forwarded></sent>`))))
		expect(t, a, anyOf(secure, isChatBody("from a foreign carbon")), map[string]func(Event) bool{
			"forged carbon alert": isIntegrity(bob, "forged message carbon"),
		})
		n.barrier(t, a, anyOf(secure, isChatBody("from a foreign carbon")))
	})
}
