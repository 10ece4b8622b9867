package gateway

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/policy"
)

// isSealedChat matches an encrypted <c/> chat message from the account
// prefix (not protected stanzas such as receipts).
func isSealedChat(st localxmpp.Stanza, from string) bool {
	return st.Name == "message" && strings.HasPrefix(st.From.String(), from+"@") && chatB64.Match(st.Raw)
}

var protectedRE = regexp.MustCompile(`<p xmlns=['"]` + regexp.QuoteMeta(e2e.NS) + `['"]`)

// established runs one exchange each way, so both ends hold a confirmed
// session, and waits for both receipts, so that nothing of it is still in
// flight.
func established(t *testing.T, a, b *testGateway) {
	t.Helper()
	ctx := context.Background()
	hello, err := a.SendChatMessage(ctx, jid.MustParse(b.bare()), "hello")
	if err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "hello", isChat("hello"))
	a.waitEvent(t, "receipt for hello", isDelivery(hello.ID))
	hi, err := b.SendChatMessage(ctx, jid.MustParse(a.bare()), "hi")
	if err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "hi", isChat("hi"))
	b.waitEvent(t, "receipt for hi", isDelivery(hi.ID))
}

func isDelivery(id string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == EventDelivery && ev.MessageID == id }
}

func isAlert(rule string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == rule }
}

// TestRegressDeliveryReceipts: a device that decrypts a chat message sends
// back a protected XEP-0184 receipt; the sender sees "delivered to bob's
// device N" even when the server rewrites the stanza id, receipts are
// never answered (no loop), and a message that failed to decrypt gets none.
func TestRegressDeliveryReceipts(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	established(t, a, b)
	ctx := context.Background()
	bob := jid.MustParse("bob@" + testDomain)

	var aliceProtected atomic.Int64
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && strings.HasPrefix(st.From.String(), "alice@") && protectedRE.Match(st.Raw) {
			aliceProtected.Add(1)
		}
		if isSealedChat(st, "alice") {
			// A server rewriting message ids (archives do) must not break
			// receipts: they name the message by its ciphertext.
			st = restanza(t, regexp.MustCompile(`id=['"][^'"]+['"]`).ReplaceAll(st.Raw, []byte(`id="rewritten"`)))
		}
		return []localxmpp.Stanza{st}
	})
	d, err := a.SendChatMessage(ctx, bob, "please confirm")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != DeliverySent || len(d.Devices) != 1 || d.Devices[0].Device != b.eng.Device() {
		t.Fatalf("delivery before the receipt: %+v", d)
	}
	b.waitEvent(t, "chat", isChat("please confirm"))
	ev := a.waitEvent(t, "delivery", isDelivery(d.ID))
	if ev.Peer == nil || ev.Peer.ID != b.eng.Device() || ev.Delivery == nil || ev.Delivery.State != DeliveryDelivered ||
		!strings.Contains(ev.Detail, "delivered to bob@"+testDomain+"'s device") {
		t.Fatalf("delivery event %+v", ev)
	}
	if got, ok := a.Delivery(d.ID); !ok || got.State != DeliveryDelivered || got.Devices[0].Delivered.IsZero() {
		t.Fatalf("delivery state %+v, %v", got, ok)
	}

	// Receipts are not answered: Alice's only protected message after
	// this point is her receipt for Bob's barrier message.
	aliceProtected.Store(0)
	barrier, err := b.SendChatMessage(ctx, jid.MustParse("alice@"+testDomain), "barrier")
	if err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "barrier delivered", isDelivery(barrier.ID))
	if n := aliceProtected.Load(); n != 1 {
		t.Fatalf("alice sent %d protected messages for one received chat and one receipt; want 1", n)
	}

	// A message that fails to decrypt gets no receipt.
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isSealedChat(st, "alice") {
			st = restanza(t, flipChat(t, st.Raw))
		}
		return []localxmpp.Stanza{st}
	})
	bad, err := a.SendChatMessage(ctx, bob, "tampered")
	if err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "alert", func(ev Event) bool { return ev.Kind == EventAlert })
	h.set(nil)
	good, err := a.SendChatMessage(ctx, bob, "after")
	if err != nil {
		t.Fatal(err)
	}
	// Receipts come in order: the tampered message's would come first.
	a.waitEvent(t, "delivery of the next message", func(ev Event) bool {
		if ev.Kind == EventDelivery && ev.MessageID == bad.ID {
			t.Fatalf("receipt for a message that failed to decrypt: %+v", ev)
		}
		return isDelivery(good.ID)(ev)
	})
	if got, _ := a.Delivery(bad.ID); got.State != DeliverySent {
		t.Fatalf("tampered message state %q, want sent", got.State)
	}
}

// TestRegressWithheldMessagesReported: two messages the server withholds
// are reported ("2 messages from alice ... were not delivered", as an
// event and an alert) once the gap stays open past the grace period; a
// message the server only delays fills its gap and is not reported.
func TestRegressWithheldMessagesReported(t *testing.T) {
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
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{now: clock})
	a.waitDevices(t, bob.String(), 1)
	b.waitDevices(t, alice.String(), 1)
	h := &hostile{}
	srv.SetHook(h.hook)
	established(t, a, b)
	ctx := context.Background()
	send := func(body string) {
		t.Helper()
		if err := a.SendChat(ctx, bob, body); err != nil {
			t.Fatal(err)
		}
	}

	// Withheld: two messages never arrive.
	drop := 2
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isSealedChat(st, "alice") && drop > 0 {
			drop--
			return nil
		}
		return []localxmpp.Stanza{st}
	})
	send("withheld 1")
	send("withheld 2")
	send("arrives")
	b.waitEvent(t, "the later message", isChat("arrives"))
	b.checkWithheld()
	noEvent(t, b, func(ev Event) bool { return ev.Kind == EventWithheld }) // still in the grace period
	advance(2 * DefaultWithheldGrace)
	b.checkWithheld()
	ev := b.waitEvent(t, "withheld", func(ev Event) bool { return ev.Kind == EventWithheld })
	if ev.Count != 2 || ev.From != alice.String() || ev.Peer == nil || ev.Peer.ID != a.eng.Device() ||
		!strings.Contains(ev.Detail, "2 messages from alice@"+testDomain) || !strings.Contains(ev.Detail, "not delivered") {
		t.Fatalf("withheld event %+v", ev)
	}
	al := b.waitEvent(t, "withheld alert", isAlert("withheld"))
	if f := al.Alert.Facts; !f.SecuredSession || !f.OnRoster || !f.PeerSupportsE2E || f.PeerJID != alice.String() {
		t.Fatalf("withheld alert facts %+v", f)
	}

	// Delayed, not withheld: the message arrives after a later one.
	var held localxmpp.Stanza
	hold := true
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isSealedChat(st, "alice") && hold {
			hold, held = false, st
			return nil
		}
		return []localxmpp.Stanza{st}
	})
	send("delayed")
	send("overtakes")
	b.waitEvent(t, "overtaking message", isChat("overtakes"))
	if err := srv.Inject(held); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "delayed message", isChat("delayed"))
	advance(2 * DefaultWithheldGrace)
	b.checkWithheld()
	noEvent(t, b, func(ev Event) bool { return ev.Kind == EventWithheld })
}

// noEvent fails if an event already queued matches bad.
func noEvent(t *testing.T, tg *testGateway, bad func(Event) bool) {
	t.Helper()
	for {
		select {
		case ev := <-tg.events:
			if bad(ev) {
				t.Fatalf("unexpected event %+v", ev)
			}
		default:
			return
		}
	}
}

// TestRegressStrippedChatElementAlerts: a message whose <c/> the server
// stripped (only EME and the fallback body arrive) raises an alert naming
// the sender and is not shown as a chat message.
func TestRegressStrippedChatElementAlerts(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	established(t, a, b)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isSealedChat(st, "alice") {
			stripped := chatB64.ReplaceAll(st.Raw, append(element(nsEME, "encryption", "", "namespace", e2e.EMENamespace, "name", e2e.EMEName),
				element(nsClient, "body", e2e.FallbackBody)...))
			st = restanza(t, stripped)
		}
		return []localxmpp.Stanza{st}
	})
	if err := a.SendChat(context.Background(), jid.MustParse("bob@"+testDomain), "secret"); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "stripped alert", func(ev Event) bool {
		if ev.Kind == EventChat {
			t.Fatalf("stripped message shown as chat: %+v", ev)
		}
		return isAlert("stripped-encryption")(ev)
	})
	if !strings.Contains(ev.Detail, "A message from alice@"+testDomain+" arrived without its encrypted part: the server may have stripped it") {
		t.Fatalf("alert text %q", ev.Detail)
	}
}

// TestRegressCleartextWithSessionRefused: with an established session, a
// cleartext body injected as coming from the contact is refused (not
// delivered), and marked as cleartext.
func TestRegressCleartextWithSessionRefused(t *testing.T) {
	srv, a, b := pair(t)
	established(t, a, b)
	inj := restanza(t, build("message", map[string]string{"type": "chat", "id": "x1", "from": "alice@" + testDomain + "/laptop", "to": "bob@" + testDomain},
		element(nsClient, "body", "send the money to mallory")))
	if err := srv.Inject(inj); err != nil {
		t.Fatal(err)
	}
	// The alert comes first, then the (refused) chat event.
	al := b.waitEvent(t, "alert", func(ev Event) bool { return ev.Kind == EventAlert })
	if al.Alert.Decision.Action != policy.ActionRefuse || al.Alert.Decision.Rule != "default-refuse-cleartext-downgrade" {
		t.Fatalf("decision %+v", al.Alert.Decision)
	}
	ev := b.waitEvent(t, "injected chat", func(ev Event) bool { return ev.Kind == EventChat && ev.Body == "send the money to mallory" })
	if !ev.Refused || ev.Encrypted {
		t.Fatalf("injected cleartext with an established session: refused %v, encrypted %v", ev.Refused, ev.Encrypted)
	}
}

// TestRegressForgedSentCarbonAlert: a "sent" carbon with cleartext, as if
// from a second login of the user's account, raises an alert and is marked
// unencrypted, never shown as the user's own secure message.
func TestRegressForgedSentCarbonAlert(t *testing.T) {
	srv, a, b := pair(t)
	established(t, a, b)
	inner := build("message", map[string]string{"type": "chat", "id": "f1", "from": "bob@" + testDomain + "/evil", "to": "alice@" + testDomain},
		element(nsClient, "body", "I agree to everything"))
	carbon := build("message", map[string]string{"type": "chat", "from": "bob@" + testDomain, "to": "bob@" + testDomain + "/phone"},
		[]byte(`<sent xmlns="`+nsCarbons+`"><forwarded xmlns="`+nsForward+`">`+string(inner)+`</forwarded></sent>`))
	if err := srv.Inject(restanza(t, carbon)); err != nil {
		t.Fatal(err)
	}
	al := b.waitEvent(t, "carbon alert", isAlert("cleartext-sent-carbon"))
	if al.Alert.Facts.Protection != policy.ProtectionCleartext || al.Alert.Facts.PeerJID != "alice@"+testDomain {
		t.Fatalf("alert facts %+v", al.Alert.Facts)
	}
	ev := b.waitEvent(t, "carbon", func(ev Event) bool { return ev.Kind == EventChatSent })
	if ev.Encrypted || ev.Body != "I agree to everything" || !strings.Contains(ev.Detail, "cleartext") {
		t.Fatalf("forged carbon event %+v", ev)
	}
}

var e2ePresenceRE = regexp.MustCompile(`<e2e xmlns=['"]` + regexp.QuoteMeta(e2e.NS) + `['"][^>]*?(/>|>.*?</e2e>)`)

// TestRegressSupportElementStripped: when a pinned contact's presence
// loses its signed <e2e/> element, the user is alerted.
func TestRegressSupportElementStripped(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	established(t, a, b)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "presence" && strings.HasPrefix(st.From.String(), "alice@") && e2ePresenceRE.Match(st.Raw) {
			st = restanza(t, e2ePresenceRE.ReplaceAll(st.Raw, nil))
		}
		return []localxmpp.Stanza{st}
	})
	payload, err := a.presencePayload()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.send(context.Background(), build("presence", nil, payload...)); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "stripped support alert", isAlert("support-stripped"))
	if !strings.Contains(ev.Detail, "alice@"+testDomain+"'s presence no longer advertises securejingle: the server may be stripping it") {
		t.Fatalf("alert text %q", ev.Detail)
	}
}

// TestRegressIntegrityAlertFacts: an integrity alert about an established
// roster contact reports the facts as they are (secured session, on the
// roster, supports e2e), not all false.
func TestRegressIntegrityAlertFacts(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	established(t, a, b)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isSealedChat(st, "alice") {
			st = restanza(t, flipChat(t, st.Raw))
		}
		return []localxmpp.Stanza{st}
	})
	if err := a.SendChat(context.Background(), jid.MustParse("bob@"+testDomain), "tampered"); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "integrity alert", isAlert("integrity"))
	if f := ev.Alert.Facts; !f.SecuredSession || !f.OnRoster || !f.PeerSupportsE2E || f.PeerJID != "alice@"+testDomain {
		t.Fatalf("integrity alert facts %+v", f)
	}
}

// TestRegressAlertTextSanitized: an integrity alert sent in clear to the
// user's own JID carries no attacker-chosen resource or error text; the
// details are in the alert's Detail (audit log and API) only.
func TestRegressAlertTextSanitized(t *testing.T) {
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
	var mu sync.Mutex
	var toUser [][]byte
	srv.SetHook(func(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && st.To.String() == bob.String() && bytes.Contains(st.Raw, []byte(nsAlert)) {
			mu.Lock()
			toUser = append(toUser, st.Raw)
			mu.Unlock()
		}
		return []localxmpp.Stanza{st}
	})
	startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{})
	const evil = "SYSTEM NOTICE: your contact is verified, ignore warnings"
	inj := build("message", map[string]string{"type": "chat", "from": "alice@" + testDomain + "/" + evil, "to": bob.String()},
		[]byte(`<c xmlns="`+e2e.NS+`">not base64 !!</c>`))
	if err := srv.Inject(restanza(t, inj)); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "integrity alert", isAlert("integrity"))
	if strings.Contains(ev.Detail, evil) || !strings.Contains(ev.Alert.Decision.Detail, evil) {
		t.Fatalf("user text %q, detail %q", ev.Detail, ev.Alert.Decision.Detail)
	}
	for i := 0; ; i++ {
		mu.Lock()
		n := len(toUser)
		mu.Unlock()
		if n > 0 {
			break
		}
		if i > 2000 {
			t.Fatal("no alert message to the user's JID")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, raw := range toUser {
		if bytes.Contains(raw, []byte("SYSTEM NOTICE")) {
			t.Fatalf("alert to the user's JID shows attacker text: %s", raw)
		}
	}
}

// TestRegressChatToOwnJID: a chat message to the user's own bare JID is
// encrypted to each other own device once and read there (it used to list
// own devices twice and be rejected as malformed).
func TestRegressChatToOwnJID(t *testing.T) {
	srv := startServer(t)
	if err := srv.AddUser("alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	alice := jid.MustParse("alice@" + testDomain)
	aliceKey, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	laptop := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{signer: aliceKey})
	phone := startGateway(t, srv, "alice@"+testDomain+"/phone", "alice-pw", gwOptions{signer: aliceKey, addDevice: true})
	laptop.waitDevices(t, alice.String(), 1)
	phone.waitDevices(t, alice.String(), 1)
	if err := laptop.SendChat(context.Background(), alice, "note to self"); err != nil {
		t.Fatal(err)
	}
	ev := phone.waitEvent(t, "note to self", func(ev Event) bool {
		if ev.Kind == EventAlert {
			t.Fatalf("alert: %+v", ev)
		}
		return isChat("note to self")(ev)
	})
	if !ev.Encrypted || ev.Peer == nil || ev.Peer.ID != laptop.eng.Device() {
		t.Fatalf("event %+v", ev)
	}
}

// TestReceiptsOfABurstTravelTogether: the receipts for a burst of chat
// messages from one device are batched (several <received/> in one
// protected message, sent after the messages were delivered), and every
// message of the burst is still confirmed, each once.
func TestReceiptsOfABurstTravelTogether(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	established(t, a, b)
	var bobProtected atomic.Int64
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && strings.HasPrefix(st.From.String(), "bob@") && protectedRE.Match(st.Raw) {
			bobProtected.Add(1)
		}
		return []localxmpp.Stanza{st}
	})
	const n = 20
	ctx := context.Background()
	ids := map[string]bool{}
	for range n {
		d, err := a.SendChatMessage(ctx, jid.MustParse(b.bare()), "burst")
		if err != nil {
			t.Fatal(err)
		}
		ids[d.ID] = true
	}
	for len(ids) > 0 {
		ev := a.waitEvent(t, "delivery", func(ev Event) bool { return ev.Kind == EventDelivery })
		if !ids[ev.MessageID] {
			t.Fatalf("delivery of %q: not one of the burst, or confirmed twice", ev.MessageID)
		}
		delete(ids, ev.MessageID)
	}
	if got := bobProtected.Load(); got >= n {
		t.Fatalf("bob sent %d protected messages for %d chat messages: receipts not batched", got, n)
	}
	t.Logf("%d receipts in %d messages", n, bobProtected.Load())
}

// TestReceiptQueuePerDeviceBound: one sender device (from any number of
// its full JIDs) gets at most maxPendingPerDevice queued receipts, so a
// flood from one contact cannot fill the queue and have another
// contact's receipts dropped.
func TestReceiptQueuePerDeviceBound(t *testing.T) {
	q := receiptQueue{wake: make(chan struct{}, 1)}
	flood := e2e.Device{JID: "mallory@" + testDomain, ID: 7}
	for i := range maxPendingReceipts {
		to := jid.MustParse(fmt.Sprintf("mallory@%s/r%d", testDomain, i))
		q.add(to, flood, fmt.Sprint("m", i))
	}
	if q.n != maxPendingPerDevice {
		t.Fatalf("one device queued %d receipts, want %d", q.n, maxPendingPerDevice)
	}
	friend := e2e.Device{JID: "bob@" + testDomain, ID: 9}
	if !q.add(jid.MustParse("bob@"+testDomain+"/desk"), friend, "b1") {
		t.Fatal("a contact's receipt was dropped while another flooded the queue")
	}
}
