package gateway

import (
	"context"
	"encoding/xml"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/xmppx"
	"github.com/securejingle/securejingle/policy"
)

// TestCleartextAlertEverySinkOnce: a cleartext chat from a peer with whom a
// secured session exists produces exactly one alert in each sink — the
// user's own JID (as routed by the server), the audit log, the API event
// stream and the metric — and a flood of 10,000 more produces one
// de-duplicated summary, with bounded state and the first alert delivered
// at once.
func TestCleartextAlertEverySinkOnce(t *testing.T) {
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
	// Count alert messages the server routes to Bob's own bare JID.
	var toUser atomic.Int64
	alertRE := regexp.MustCompile(regexpQuote(nsAlert))
	srv.SetHook(func(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && st.To.String() == bob.String() && alertRE.Match(st.Raw) {
			toUser.Add(1)
		}
		return []localxmpp.Stanza{st}
	})

	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	audit, err := policy.OpenAuditLog(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	reg := prometheus.NewRegistry()
	metrics, err := policy.NewMetricsSink(reg)
	if err != nil {
		t.Fatal(err)
	}

	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-pw", gwOptions{})
	b := startGateway(t, srv, bob.String()+"/desk", "bob-pw", gwOptions{dedup: true, sinks: []policy.Sink{audit, metrics}, now: clock, events: 1 << 14})
	g := b.Gateway
	ctx := context.Background()
	a.waitDevices(t, bob.String(), 1)
	b.waitDevices(t, alice.String(), 1)
	if err := a.SendChat(ctx, bob, "secured"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "secured chat", isChat("secured"))
	if err := b.SendChat(ctx, alice, "secured too"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "reply", isChat("secured too"))

	// A plain client of Alice's account sends Bob cleartext.
	plain, err := xmppx.Login(ctx, srv.Addr().String(), jid.MustParse(alice.String()+"/old"), "alice-pw", srv.ClientTLSConfig(), true)
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
	defer plain.Close()
	msg := stanza.Message{To: bob, Type: stanza.ChatMessage}
	if err := plain.Send(ctx, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData("in clear")), xml.StartElement{Name: xml.Name{Local: "body"}}))); err != nil {
		t.Fatal(err)
	}
	ev := b.waitEvent(t, "alert", func(ev Event) bool { return ev.Kind == EventAlert })
	if ev.Alert == nil || ev.Alert.Facts.Protection != policy.ProtectionCleartext || !ev.Alert.Facts.SecuredSession || ev.Alert.Decision.Action != policy.ActionRefuse {
		t.Fatalf("alert %+v", ev.Alert)
	}
	// The user message goes through the server: wait for it to be routed.
	for i := 0; toUser.Load() == 0; i++ {
		if i > 2000 {
			t.Fatal("no alert message to the user's JID")
		}
		time.Sleep(5 * time.Millisecond)
	}
	lines, err := policy.ReadAudit(audit.Path())
	if err != nil {
		t.Fatal(err)
	}
	cnt := func() float64 { return testutil.ToFloat64(metrics.Vec().WithLabelValues("chat", "refuse")) }
	if len(lines) != 1 || toUser.Load() != 1 || cnt() != 1 {
		t.Fatalf("after one cleartext message: audit %d, user messages %d, metric %v; want 1 each", len(lines), toUser.Load(), cnt())
	}

	// A flood: 10,000 more, straight into the gateway's message path.
	var ms1, ms2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	raw := build("message", map[string]string{"type": "chat", "from": alice.String() + "/old", "to": bob.String()}, element(nsClient, "body", "flood"))
	for i := 0; i < 10000; i++ {
		st, err := parseStanza(raw)
		if err != nil {
			t.Fatal(err)
		}
		g.handleMessage(ctx, st)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms2)
	if g.notifier.Tracked() > 1 {
		t.Fatalf("notifier tracks %d keys", g.notifier.Tracked())
	}
	if grew := int64(ms2.HeapAlloc) - int64(ms1.HeapAlloc); grew > 4<<20 {
		t.Fatalf("heap grew %d bytes over the flood", grew)
	}
	if lines, _ := policy.ReadAudit(audit.Path()); len(lines) != 1 {
		t.Fatalf("flood inside the window wrote %d audit lines, want still 1", len(lines))
	}
	// The window closes: one summary counts the whole flood.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if err := g.notifier.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	lines, err = policy.ReadAudit(audit.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || !lines[1].Summary || lines[1].Count != 10000 {
		t.Fatalf("audit after the window: %+v", lines)
	}
	if cnt() != 10001 {
		t.Fatalf("metric %v, want 10001", cnt())
	}
	for i := 0; toUser.Load() < 2; i++ {
		if i > 2000 {
			t.Fatal("no summary message to the user's JID")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if toUser.Load() != 2 {
		t.Fatalf("%d user messages, want 2", toUser.Load())
	}
	var apiAlerts int
	for drained := false; !drained; {
		select {
		case ev := <-b.events:
			if ev.Kind == EventAlert {
				apiAlerts++
			}
		default:
			drained = true
		}
	}
	if apiAlerts != 1 { // the summary (the first was consumed above)
		t.Fatalf("%d more API alert events, want 1 summary", apiAlerts)
	}
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }
