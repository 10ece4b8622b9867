package gateway

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

func accessMode(t testing.TB, m access.Mode) *access.Controller {
	t.Helper()
	cfg := access.DefaultConfig()
	cfg.Mode = m
	ac, err := access.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ac
}

// isBundleIQTo reports whether st is a bundle request to an account whose
// JID starts with prefix.
func isBundleIQTo(st localxmpp.Stanza, prefix string) bool {
	return st.Name == "iq" && st.Type == "get" && strings.HasPrefix(st.To.String(), prefix) &&
		bytes.Contains(st.Raw, []byte("<bundle"))
}

// sendDirectedPresence makes from send its signed presence to to.
func sendDirectedPresence(t testing.TB, from *testGateway, to string) {
	t.Helper()
	payload, err := from.presencePayload()
	if err != nil {
		t.Fatal(err)
	}
	if err := from.send(context.Background(), build("presence", map[string]string{"to": to}, payload...)); err != nil {
		t.Fatal(err)
	}
}

// sendClear sends a cleartext chat message (a barrier: a sender's stanzas
// are processed in order).
func sendClear(t testing.TB, from *testGateway, to, body string) {
	t.Helper()
	if err := from.send(context.Background(), build("message", map[string]string{"type": "chat", "to": to}, element(nsClient, "body", body))); err != nil {
		t.Fatal(err)
	}
}

func (tg *testGateway) fetchPending(key string) bool {
	tg.fetches.mu.Lock()
	defer tg.fetches.mu.Unlock()
	return tg.fetches.calls[key] != nil
}

// TestRegressStrangerNeverAnswersStall: a stranger (admitted: "anyone"
// mode) sends presence with a valid <e2e/> and never answers the bundle
// request. Messages from a contact keep arriving while that fetch is
// pending, the read loop keeps answering IQs after more stanzas than the
// inbox holds, and all of it still works after the stranger disconnects.
// Before the fix the fetch ran on the worker without a deadline: nothing
// was processed any more and the read loop blocked.
func TestRegressStrangerNeverAnswersStall(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob", "stranger"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)
	if err := srv.Subscribe(alice, bob); err != nil {
		t.Fatal(err)
	}
	h := &hostile{}
	srv.SetHook(h.hook)
	asked := make(chan struct{}, 1)
	var flood atomic.Int32 // the stranger's presences routed to bob
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "presence" && strings.HasPrefix(st.From.String(), "stranger@") {
			flood.Add(1)
		}
		if isBundleIQTo(st, "stranger@") {
			select {
			case asked <- struct{}{}:
			default:
			}
			return nil // the stranger never answers
		}
		return []localxmpp.Stanza{st}
	})
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	// A fetch timeout longer than the test: the stranger's fetch stays
	// pending for as long as the test looks.
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{access: accessMode(t, access.Anyone), fetchTimeout: time.Hour})
	s := startGateway(t, srv, "stranger@"+testDomain+"/bot", "stranger-pw", gwOptions{})
	a.waitDevices(t, bob.String(), 1)
	b.waitDevices(t, alice.String(), 1)
	ctx := context.Background()
	bobFull := "bob@" + testDomain + "/desk"

	sendDirectedPresence(t, s, bobFull)
	select {
	case <-asked:
	case <-time.After(15 * time.Second):
		t.Fatal("bob never asked the stranger for its bundle")
	}
	strangerFetch := bundleKey(jid.MustParse("stranger@"+testDomain+"/bot"), s.eng.Device())
	// More stanzas than the inbox holds, all routed before the ping.
	n := 2 * cap(b.inbox)
	for range n {
		if err := s.send(ctx, build("presence", map[string]string{"to": bobFull})); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; flood.Load() <= int32(n); i++ {
		if i > 1500 {
			t.Fatalf("the server routed %d of the stranger's presences", flood.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := a.sendIQ(pctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": bobFull}, element(nsPing, "ping", ""))); err != nil {
		t.Fatalf("bob's read loop does not answer a ping: %v", err)
	}
	if err := a.SendChat(ctx, bob, "while the stranger stalls"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "contact's chat while the stranger's fetch is pending", isChat("while the stranger stalls"))
	if !b.fetchPending(strangerFetch) {
		t.Fatal("the stranger's fetch is not pending: the test did not measure what it should")
	}

	s.stop()
	<-s.done
	if err := a.SendChat(ctx, bob, "after the stranger left"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "contact's chat after the stranger left", isChat("after the stranger left"))
	if _, err := a.sendIQ(pctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": bobFull}, element(nsPing, "ping", ""))); err != nil {
		t.Fatalf("bob's read loop does not answer a ping: %v", err)
	}
}

// TestRegressStrangerPresenceStoresNothing: under the default roster-only
// access mode, presence from strangers (here two devices, whose gateways
// would serve their bundles to anyone) makes bob fetch nothing and store
// nothing: no bundle, no trust record. Before the fix every presence from
// a fresh device stored a bundle and a trust record.
func TestRegressStrangerPresenceStoresNothing(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"bob", "stranger"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	h := &hostile{}
	srv.SetHook(h.hook)
	var asked atomic.Int32
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		fromBob := strings.HasPrefix(st.From.String(), "bob@")
		if fromBob && (isBundleIQTo(st, "stranger@") || (st.Name == "iq" && strings.Contains(string(st.Raw), nsBundlesNode) && strings.HasPrefix(st.To.String(), "stranger@"))) {
			asked.Add(1)
		}
		return []localxmpp.Stanza{st}
	})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{access: accessMode(t, access.RosterOnly)})
	bobFull := "bob@" + testDomain + "/desk"
	stranger := "stranger@" + testDomain
	for _, res := range []string{"one", "two"} {
		s := startGateway(t, srv, stranger+"/"+res, "stranger-pw", gwOptions{access: accessMode(t, access.Anyone)})
		sendDirectedPresence(t, s, bobFull)
		sendClear(t, s, bobFull, "barrier "+res)
		b.waitEvent(t, "barrier", func(ev Event) bool { return ev.Kind == EventChat && ev.Body == "barrier "+res })
	}
	if ds, err := b.eng.Devices(stranger); err != nil || len(ds) != 0 {
		t.Fatalf("stranger bundles stored: %v, %v", ds, err)
	}
	if r, err := b.cfg.Trust.Lookup(stranger); !errors.Is(err, trust.ErrUnknown) {
		t.Fatalf("stranger trust record stored: %+v, %v", r, err)
	}
	b.fetches.mu.Lock()
	n := len(b.fetches.calls)
	b.fetches.mu.Unlock()
	if n != 0 || asked.Load() != 0 {
		t.Fatalf("bob fetched from the stranger: %d in flight, %d requests", n, asked.Load())
	}
}

// TestRegressStrangerSessionIdlePruned: in "anyone" mode, the session a
// stranger created, with its bundle and trust record, is forgotten once it
// was idle for the idle timeout; a contact's is kept. Before the fix such
// state was never pruned.
func TestRegressStrangerSessionIdlePruned(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob", "stranger"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)
	if err := srv.Subscribe(alice, bob); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{access: accessMode(t, access.Anyone), now: clock})
	s := startGateway(t, srv, "stranger@"+testDomain+"/bot", "stranger-pw", gwOptions{})
	b.waitDevices(t, alice.String(), 1)
	a.waitDevices(t, bob.String(), 1) // alice's chat needs bob's device
	ctx := context.Background()
	if _, err := s.DiscoverBundles(ctx, bob); err != nil {
		t.Fatal(err)
	}
	for _, from := range []*testGateway{a, s} {
		if err := from.SendChat(ctx, bob, "hello from "+from.bare()); err != nil {
			t.Fatal(err)
		}
		b.waitEvent(t, "chat", isChat("hello from "+from.bare()))
	}
	sd := e2e.Device{JID: s.bare(), ID: s.eng.Device()}
	ad := e2e.Device{JID: a.bare(), ID: a.eng.Device()}
	if _, err := b.eng.Session(sd); err != nil {
		t.Fatalf("no session with the stranger: %v", err)
	}
	mu.Lock()
	now = now.Add(e2e.StrangerIdleTimeout + time.Hour)
	mu.Unlock()
	b.pruneStrangers()
	if _, err := b.eng.Session(sd); !errors.Is(err, e2e.ErrNoSession) {
		t.Fatalf("idle stranger session kept: %v", err)
	}
	if ds, _ := b.eng.Devices(s.bare()); len(ds) != 0 {
		t.Fatalf("idle stranger bundle kept: %v", ds)
	}
	if r, err := b.cfg.Trust.Lookup(s.bare()); !errors.Is(err, trust.ErrUnknown) {
		t.Fatalf("idle stranger trust record kept: %+v, %v", r, err)
	}
	if _, err := b.eng.Session(ad); err != nil {
		t.Fatalf("contact's session pruned: %v", err)
	}
}

var presenceHash = regexp.MustCompile(`( h=['"])(.)`)

// corruptPresence alters the bundle hash in a's presence element, so that
// its signature no longer verifies.
func corruptPresence(st localxmpp.Stanza) (localxmpp.Stanza, bool) {
	if st.Name != "presence" || !strings.HasPrefix(st.From.String(), "alice@") || !bytes.Contains(st.Raw, []byte("<e2e")) {
		return st, false
	}
	raw := presenceHash.ReplaceAllFunc(st.Raw, func(m []byte) []byte {
		c := byte('A')
		if m[len(m)-1] == 'A' {
			c = 'B'
		}
		return append(m[:len(m)-1:len(m)-1], c)
	})
	out, err := localxmpp.ParseStanza(raw)
	if err != nil {
		return st, false
	}
	return out, true
}

// TestRegressFailedPresenceRecovers: a contact whose presence element
// failed verification (altered in transit) is marked as supporting
// securejingle again without a new presence: through a bundle fetch from
// the resource, or through the next authenticated stanza from it. Before
// the fix it stayed "no securejingle" until it sent presence again.
func TestRegressFailedPresenceRecovers(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	alice := "alice@" + testDomain
	bobFull := "bob@" + testDomain + "/phone"
	device := func() uint32 { return b.Contacts(alice)["laptop"] }
	corruptNext := func(dropFetches bool) {
		var done atomic.Bool
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if dropFetches && isBundleIQTo(st, "alice@") {
				return nil
			}
			if !done.Load() {
				if out, ok := corruptPresence(st); ok {
					done.Store(true)
					return []localxmpp.Stanza{out}
				}
			}
			return []localxmpp.Stanza{st}
		})
		sendDirectedPresence(t, a, bobFull)
		b.waitEvent(t, "alert on the altered presence", func(ev Event) bool {
			return ev.Kind == EventAlert && ev.Alert != nil && strings.Contains(ev.Alert.Decision.Detail, "presence element")
		})
		// A barrier: alice's stanzas are processed in order.
		sendClear(t, a, bobFull, "barrier")
		b.waitEvent(t, "barrier", func(ev Event) bool { return ev.Kind == EventChat && ev.Body == "barrier" })
	}

	t.Run("bundle fetch", func(t *testing.T) {
		corruptNext(false)
		for i := 0; device() == 0; i++ {
			if i > 1500 {
				t.Fatal("alice's resource still marked as not supporting securejingle")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if device() != a.eng.Device() {
			t.Fatalf("resource device %d, want %d", device(), a.eng.Device())
		}
	})
	t.Run("authenticated stanza", func(t *testing.T) {
		corruptNext(true)
		if device() != 0 {
			t.Fatal("the altered presence did not mark the resource unsupported")
		}
		if err := a.SendChat(context.Background(), jid.MustParse("bob@"+testDomain), "still me"); err != nil {
			t.Fatal(err)
		}
		b.waitEvent(t, "chat", isChat("still me"))
		if device() != a.eng.Device() {
			t.Fatalf("resource device %d after an authenticated chat, want %d", device(), a.eng.Device())
		}
	})
	h.set(nil)
}

// TestRegressEnvelopeNamespaces: the payload of a protected stanza is
// dispatched with each element in the namespace it has in the envelope: an
// unprefixed <body/> there is in the securejingle namespace and does not
// become a jabber:client body (no chat event), and a foreign-namespace
// element keeps its namespace with its children. Before the fix the
// content was spliced as raw bytes and changed namespace.
func TestRegressEnvelopeNamespaces(t *testing.T) {
	_, a, b := pair(t)
	ctx := context.Background()
	payload := []byte(`<body>not a chat body</body><f:q xmlns:f="urn:example:foreign" f:n="1"><f:r/><s xmlns="urn:example:other">t</s></f:q>`)
	if err := a.SendProtectedMessage(ctx, jid.MustParse("bob@"+testDomain), "chat", payload, e2e.Encrypt); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "stanza", func(ev Event) bool {
		if ev.Kind == EventChat && ev.Body == "not a chat body" {
			t.Fatalf("an envelope-namespace body was dispatched as a jabber:client body: %+v", ev)
		}
		return ev.Kind == EventStanza
	})
	var names []xml.Name
	var attr xml.Attr
	d := xml.NewDecoder(bytes.NewReader(ev.Payload))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("payload %s: %v", ev.Payload, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			names = append(names, se.Name)
			for _, a := range se.Attr {
				if a.Name.Local == "n" {
					attr = a
				}
			}
		}
	}
	want := []xml.Name{{Space: e2e.NS, Local: "body"}, {Space: "urn:example:foreign", Local: "q"},
		{Space: "urn:example:foreign", Local: "r"}, {Space: "urn:example:other", Local: "s"}}
	if len(names) != len(want) {
		t.Fatalf("payload %s: elements %v, want %v", ev.Payload, names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("payload %s: elements %v, want %v", ev.Payload, names, want)
		}
	}
	if attr.Name.Space != "urn:example:foreign" || attr.Value != "1" {
		t.Fatalf("payload %s: attribute %+v", ev.Payload, attr)
	}
	// A jabber:client body still is one.
	if err := a.SendProtectedMessage(ctx, jid.MustParse("bob@"+testDomain), "chat", []byte(`<body xmlns="jabber:client">a chat body</body>`), e2e.Encrypt); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "chat", func(ev Event) bool {
		if ev.Kind == EventChat && ev.Body == "not a chat body" {
			t.Fatalf("an envelope-namespace body was dispatched as a jabber:client body: %+v", ev)
		}
		return ev.Kind == EventChat && ev.Body == "a chat body"
	})
}

// TestNeedBundleHoldsBackInOrder: first messages from a device whose bundle
// is not stored are held back while the bundle is fetched in the
// background, then all opened in their order; a contact whose bundle fetch
// hangs delays nobody else meanwhile.
func TestNeedBundleHoldsBackInOrder(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := srv.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob, carol := jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain), jid.MustParse("carol@"+testDomain)
	for _, c := range []jid.JID{alice, carol} {
		if err := srv.Subscribe(c, bob); err != nil {
			t.Fatal(err)
		}
	}
	h := &hostile{}
	srv.SetHook(h.hook)
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	c := startGateway(t, srv, "carol@"+testDomain+"/tablet", "carol-pw", gwOptions{})
	b := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-pw", gwOptions{fetchTimeout: time.Hour})
	for _, g := range []*testGateway{a, c} {
		g.waitDevices(t, bob.String(), 1)
		b.waitDevices(t, g.bare(), 1)
	}
	// Bob forgets alice's bundle, and does not get it back until released.
	b.store.Update(func(tx store.Tx) error {
		return tx.Delete("e2e/peers", alice.String()+"/"+strconv.FormatUint(uint64(a.eng.Device()), 10))
	})
	release := make(chan struct{})
	var held []localxmpp.Stanza
	var hmu sync.Mutex
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "iq" && strings.HasPrefix(st.From.String(), "bob@") && strings.HasPrefix(st.To.String(), "alice@") {
			select {
			case <-release:
			default:
				hmu.Lock()
				held = append(held, st)
				hmu.Unlock()
				return nil
			}
		}
		return []localxmpp.Stanza{st}
	})
	ctx := context.Background()
	bodies := []string{"one", "two", "three"}
	for _, body := range bodies {
		if err := a.SendChat(ctx, bob, body); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; ; i++ {
		hmu.Lock()
		n := len(held)
		hmu.Unlock()
		if n > 0 {
			break
		}
		if i > 1500 {
			t.Fatal("bob never asked for alice's bundle")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.SendChat(ctx, bob, "carol is not held back"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "carol's chat", func(ev Event) bool {
		if ev.Kind == EventChat && ev.From == alice.String() {
			t.Fatalf("alice's chat opened before her bundle came: %+v", ev)
		}
		return isChat("carol is not held back")(ev)
	})
	close(release)
	hmu.Lock()
	for _, st := range held {
		if err := srv.Inject(st); err != nil {
			t.Fatal(err)
		}
	}
	hmu.Unlock()
	var got []string
	b.waitEvent(t, "alice's chats", func(ev Event) bool {
		if ev.Kind == EventAlert {
			t.Fatalf("alert: %s", ev.Detail)
		}
		if ev.Kind == EventChat && ev.From == alice.String() {
			got = append(got, ev.Body)
		}
		return len(got) == len(bodies)
	})
	if strings.Join(got, ",") != strings.Join(bodies, ",") {
		t.Fatalf("alice's chats opened as %v, want %v", got, bodies)
	}
}

// names decodes b (inside a wrapper with default namespace ctx, if not
// empty) and lists each element's and attribute's qualified name.
func names(t *testing.T, b []byte, ctx string) []string {
	t.Helper()
	if ctx != "" {
		b = append(append([]byte(`<w xmlns="`+ctx+`">`), b...), "</w>"...)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var out []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			if ctx != "" && v.Name.Local == "w" && v.Name.Space == ctx && out == nil {
				out = []string{}
				continue
			}
			out = append(out, "{"+v.Name.Space+"}"+v.Name.Local)
			for _, a := range v.Attr {
				if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
					out = append(out, "@{"+a.Name.Space+"}"+a.Name.Local+"="+a.Value)
				}
			}
		case xml.CharData:
			if len(bytes.TrimSpace(v)) > 0 {
				out = append(out, "#"+string(v))
			}
		}
	}
}

// TestEnvelopeContentNamespaces: re-encoded envelope content, put inside
// a jabber:client stanza, decodes to the same qualified names it has inside
// the envelope; undeclared prefixes and excessive nesting are errors.
func TestEnvelopeContentNamespaces(t *testing.T) {
	for _, in := range []string{
		`<body>x &amp; y</body>`,
		` <a xmlns="urn:a"><b/><c xmlns="">t</c></a> <d/> `,
		`<p:x xmlns:p="urn:p" p:k="v" k="w" xml:lang="en"><p:y><z/></p:y></p:x>`,
		`<q xmlns="jabber:client" xmlns:s="urn:s"><s:r s:t="1"/></q>`,
		`<x xmlns="">none</x>`,
	} {
		out, err := envelopeContent([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want, got := strings.Join(names(t, []byte(in), e2e.NS), " "), strings.Join(names(t, out, nsClient), " ")
		if want != got {
			t.Errorf("%s\n re-encoded %s\n names %s\n want  %s", in, out, got, want)
		}
	}
	for _, bad := range []string{`<u:x/>`, `<x u:a="1"/>`, strings.Repeat("<a>", maxContentDepth+1) + strings.Repeat("</a>", maxContentDepth+1), `<a>`} {
		if out, err := envelopeContent([]byte(bad)); err == nil {
			t.Errorf("%.40s accepted as %.60s", bad, out)
		}
	}
}
