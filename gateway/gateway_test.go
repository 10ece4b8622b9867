package gateway

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

const testDomain = "example.test"

func testLogger() *slog.Logger {
	if os.Getenv("SJ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startServer(t testing.TB) *localxmpp.Server {
	t.Helper()
	srv, err := localxmpp.New(testDomain, localxmpp.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// testGateway is a running gateway and what tests look at.
type testGateway struct {
	*Gateway
	events <-chan Event
	stop   context.CancelFunc
	done   chan struct{}
	store  store.Store
	signer identity.Signer // the account key
}

type gwOptions struct {
	access       *access.Controller
	store        store.Store
	signer       identity.Signer
	noUserAlerts bool
	dedup        bool          // keep the default alert de-duplication window
	sinks        []policy.Sink // extra alert sinks
	now          func() time.Time
	events       int            // event buffer (default 1024)
	plainAuth    bool           // allow SASL PLAIN (the embedded server has no SCRAM)
	fetchTimeout time.Duration  // overrides the fetch timeout
	addDevice    bool           // Config.AddThisDevice: join the account's existing device list
	setup        func(*Gateway) // runs after New, before Run (call settings, test hooks)
}

// server is where a test gateway logs in.
type server struct {
	addr string
	tls  *tls.Config
}

func startGateway(t testing.TB, srv *localxmpp.Server, addr, password string, opt gwOptions) *testGateway {
	t.Helper()
	opt.plainAuth = true
	return startGatewayAt(t, server{srv.Addr().String(), srv.ClientTLSConfig()}, addr, password, opt)
}

// startGatewayAt runs a gateway for the account addr (a full JID) on a
// fresh engine (or opt's store and signer) until the test ends.
func startGatewayAt(t testing.TB, srv server, addr, password string, opt gwOptions) *testGateway {
	t.Helper()
	j := jid.MustParse(addr)
	st := opt.store
	if st == nil {
		st = store.NewMemory()
	}
	signer := opt.signer
	if signer == nil {
		var err error
		if signer, err = identity.GenerateMemorySigner(); err != nil {
			t.Fatal(err)
		}
	}
	ts := trust.New(st, nil)
	eng, err := e2e.New(e2e.Config{JID: j.Bare().String(), Signer: signer, Store: st, Trust: &e2e.PinningTrust{Store: ts}})
	if err != nil {
		t.Fatal(err)
	}
	window := time.Duration(-1)
	if opt.dedup {
		window = 0
	}
	g, err := New(Config{JID: j, Password: password, Addr: srv.addr, TLS: srv.tls, AllowPlain: opt.plainAuth,
		Engine: eng, Trust: ts, Access: opt.access, AlertWindow: window, NoUserAlerts: opt.noUserAlerts,
		AlertSinks: opt.sinks, Now: opt.now, Logger: testLogger().With("gw", addr),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AddThisDevice: opt.addDevice})
	if err != nil {
		t.Fatal(err)
	}
	if opt.fetchTimeout > 0 {
		g.fetchTimeout = opt.fetchTimeout
	}
	if opt.setup != nil {
		opt.setup(g)
	}
	buf := opt.events
	if buf == 0 {
		buf = 1024
	}
	events, _ := g.Subscribe(buf)
	ctx, cancel := context.WithCancel(context.Background())
	tg := &testGateway{Gateway: g, events: events, stop: cancel, done: make(chan struct{}), store: st, signer: signer}
	go func() {
		defer close(tg.done)
		g.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-tg.done })
	select {
	case <-g.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not log in", addr)
	}
	return tg
}

// waitEvent returns the first event matching ok, failing after a generous
// bound (a hang guard, not a timing assertion).
func (tg *testGateway) waitEvent(t testing.TB, what string, ok func(Event) bool) Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-tg.events:
			if ok(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("%s: no event: %s", tg.bare(), what)
		}
	}
}

// waitDevices waits until the gateway has bundles for n devices of bare.
func (tg *testGateway) waitDevices(t testing.TB, bare string, n int) {
	t.Helper()
	for i := 0; ; i++ {
		ds, err := tg.eng.Devices(bare)
		if err == nil && len(ds) >= n {
			return
		}
		if i > 1500 {
			t.Fatalf("%s never learned %d devices of %s (have %d)", tg.bare(), n, bare, len(ds))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pair(t testing.TB) (*localxmpp.Server, *testGateway, *testGateway) {
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)); err != nil {
		t.Fatal(err)
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{})
	b := startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{})
	a.waitDevices(t, "bob@"+testDomain, 1)
	b.waitDevices(t, "alice@"+testDomain, 1)
	return srv, a, b
}

func isChat(body string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == EventChat && ev.Body == body }
}

func TestDiscoveryAndEncryptedChat(t *testing.T) {
	_, a, b := pair(t)
	ctx := context.Background()
	bob := jid.MustParse("bob@" + testDomain)
	alice := jid.MustParse("alice@" + testDomain)
	if err := a.SendChat(ctx, bob, "hello bob"); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "chat from alice", isChat("hello bob"))
	if !ev.Encrypted || ev.Peer == nil || ev.Peer.JID != alice.String() {
		t.Fatalf("event %+v", ev)
	}
	if err := b.SendChat(ctx, alice, "hi alice"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "chat from bob", isChat("hi alice"))
	for i := 0; i < 5; i++ {
		if err := a.SendChat(ctx, bob, "burst "+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		b.waitEvent(t, "burst", isChat("burst "+string(rune('a'+i))))
	}
}

func TestProtectedIQ(t *testing.T) {
	_, a, b := pair(t)
	echo := xml.Name{Space: "urn:example:echo", Local: "echo"}
	b.HandleIQ(echo, func(req InnerIQ) ([]byte, error) {
		if req.Peer == nil || req.Peer.JID != "alice@"+testDomain {
			return nil, &StanzaError{Type: "auth", Condition: "forbidden"}
		}
		return []byte(strings.Replace(string(req.Payload), "ping", "pong", 1)), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bobFull := jid.MustParse("bob@" + testDomain + "/phone")
	for _, auth := range []bool{e2e.Encrypt, e2e.AuthOnly} {
		resp, peer, err := a.SendProtectedIQ(ctx, bobFull, "get", []byte(`<echo xmlns="urn:example:echo">ping</echo>`), auth)
		if err != nil {
			t.Fatalf("authOnly=%v: %v", auth, err)
		}
		if !strings.Contains(string(resp), "pong") || peer.JID != "bob@"+testDomain {
			t.Fatalf("response %q from %+v", resp, peer)
		}
	}
	// Built-in requests work protected too, as if they had arrived in place.
	resp, _, err := a.SendProtectedIQ(ctx, bobFull, "get", []byte(`<query xmlns="http://jabber.org/protocol/disco#info"/>`), e2e.Encrypt)
	if err != nil || !strings.Contains(string(resp), e2e.NS) {
		t.Fatalf("protected disco#info: %q, %v", resp, err)
	}
	if _, _, err := a.SendProtectedIQ(ctx, bobFull, "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`), e2e.AuthOnly); err != nil {
		t.Fatalf("protected ping: %v", err)
	}
	// Protected Jingle goes to the call channel (never to the unprotected
	// path): a malformed request is a bad request, one for a session that
	// does not exist gets unknown-session.
	_, _, err = a.SendProtectedIQ(ctx, bobFull, "set", []byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="x"/>`), e2e.Encrypt)
	var pj *ProtectedError
	if !errors.As(err, &pj) || !strings.Contains(string(pj.Payload), "bad-request") {
		t.Fatalf("protected jingle: %v", err)
	}
	_, _, err = a.SendProtectedIQ(ctx, bobFull, "set", []byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="x"><reason><success/></reason></jingle>`), e2e.Encrypt)
	if !errors.As(err, &pj) {
		t.Fatalf("protected jingle, unknown session: %v", err)
	}
	if jc, ok := jingle.ParseErrorCondition(pj.Payload); !ok || jc != jingle.ErrUnknownSession {
		t.Fatalf("protected jingle, unknown session: %s", pj.Payload)
	}
	// An unknown payload gets a protected error back.
	_, _, err = a.SendProtectedIQ(ctx, bobFull, "get", []byte(`<nope xmlns="urn:example:none"/>`), e2e.Encrypt)
	var pe *ProtectedError
	if !errors.As(err, &pe) || !strings.Contains(string(pe.Payload), "service-unavailable") {
		t.Fatalf("unknown payload: %v", err)
	}
}

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

// TestDiscoAdvertisesSupport: disco#info of a gateway's resource lists the
// securejingle feature, and the caps hash in its presence matches it.
func TestDiscoAdvertisesSupport(t *testing.T) {
	_, a, b := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": "d1", "to": "bob@" + testDomain + "/phone"}, element(nsDiscoInfo, "query", "")))
	if err != nil {
		t.Fatal(err)
	}
	q := resp.Child(nsDiscoInfo, "query")
	if q == nil || !strings.Contains(string(q.Raw), e2e.NS) || !strings.Contains(string(q.Raw), nsBundlesNode+"+notify") {
		t.Fatalf("disco#info: %v", resp)
	}
	if b.capsVer() == "" || b.capsVer() != a.capsVer() {
		t.Fatal("caps verification string differs between identical gateways")
	}
}

// TestProtectedIQFetchesMissingBundle: a protected IQ that starts a session
// with a device whose bundle the responder lacks gets a "wait" error while
// the responder fetches the bundle; the retry succeeds.
func TestProtectedIQFetchesMissingBundle(t *testing.T) {
	_, a, b := pair(t)
	alice := "alice@" + testDomain
	// Bob forgets Alice's device entirely.
	b.store.Update(func(tx store.Tx) error {
		for _, d := range must(b.eng.Devices(alice)) {
			tx.Delete("e2e/peers", d.JID+"/"+strconv.FormatUint(uint64(d.ID), 10))
		}
		return nil
	})
	if ds, _ := b.eng.Devices(alice); len(ds) != 0 {
		t.Fatal("bundle not forgotten")
	}
	b.HandleIQ(xmlName("urn:example:echo", "echo"), func(req InnerIQ) ([]byte, error) { return req.Payload, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bobFull := jid.MustParse("bob@" + testDomain + "/phone")
	_, _, err := a.SendProtectedIQ(ctx, bobFull, "get", []byte(`<echo xmlns="urn:example:echo">x</echo>`), e2e.Encrypt)
	var iqErr *IQError
	if !errors.As(err, &iqErr) || iqErr.Condition() != "not-acceptable" {
		t.Fatalf("first attempt: %v", err)
	}
	b.waitDevices(t, alice, 1)
	if _, _, err := a.SendProtectedIQ(ctx, bobFull, "get", []byte(`<echo xmlns="urn:example:echo">x</echo>`), e2e.Encrypt); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
