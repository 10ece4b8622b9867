package policy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestBroadcasterSlowSubscriber(t *testing.T) {
	var b Broadcaster
	fast := b.Subscribe(100)
	slow := b.Subscribe(2)
	for i := range 10 {
		if err := b.Send(context.Background(), testAlert(i)); err != nil {
			t.Fatal(err)
		}
	}
	if slow.Dropped() != 8 || fast.Dropped() != 0 {
		t.Fatalf("dropped slow %d fast %d", slow.Dropped(), fast.Dropped())
	}
	if a := <-slow.C; a.ID != "seq-0" {
		t.Fatalf("got %s", a.ID)
	}
	slow.Close()
	slow.Close()
	if b.Subscribers() != 1 {
		t.Fatalf("%d subscribers", b.Subscribers())
	}
	for range slow.C { // drains the buffered alert, then ends: C is closed
	}
	fast.Close()
}

func TestBroadcasterConcurrentClose(t *testing.T) {
	var b Broadcaster
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				s := b.Subscribe(1)
				_ = b.Send(context.Background(), testAlert(0))
				s.Close()
			}
		})
	}
	wg.Wait()
	if b.Subscribers() != 0 {
		t.Fatal("leaked subscribers")
	}
}

func TestMetricsSink(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetricsSink(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewMetricsSink(reg) // shares the counter
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(0)
	m.Send(context.Background(), a)
	a.Count, a.Summary = 41, true
	m2.Send(context.Background(), a)
	chat := testAlert(1)
	chat.Facts.Kind, chat.Decision.Action = KindChat, ActionFlag
	m.Send(context.Background(), chat)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != MetricName {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["kind"]+"/"+labels["action"]] = mt.GetCounter().GetValue()
		}
	}
	if got["file-transfer/refuse"] != 42 || got["chat/flag"] != 1 || len(got) != 2 {
		t.Fatalf("%v", got)
	}
}

func TestCommandSink(t *testing.T) {
	tee, err := exec.LookPath("tee")
	if err != nil {
		t.Skip("tee not installed")
	}
	out := filepath.Join(t.TempDir(), "hook.json")
	c, err := NewCommandSink(tee, []string{out}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := testAlert(5)
	want.Facts.PeerJID = "bob@example.net; rm -rf / $(id)" // no shell: inert
	if err := c.Send(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got Alert
	if err := json.Unmarshal(data, &got); err != nil || got.ID != want.ID || got.Facts.PeerJID != want.Facts.PeerJID {
		t.Fatalf("%s: %v", data, err)
	}
	if _, err := NewCommandSink("tee", nil, 0); err == nil {
		t.Fatal("relative path accepted")
	}
}

func TestCommandSinkFailures(t *testing.T) {
	falseBin, err1 := exec.LookPath("false")
	sleepBin, err2 := exec.LookPath("sleep")
	if err1 != nil || err2 != nil {
		t.Skip("coreutils missing")
	}
	c, _ := NewCommandSink(falseBin, nil, 0)
	var ee *exec.ExitError
	if err := c.Send(context.Background(), testAlert(0)); !errors.As(err, &ee) {
		t.Fatalf("exit status: %v", err)
	}
	c, _ = NewCommandSink(sleepBin, []string{"60"}, 50*time.Millisecond)
	if err := c.Send(context.Background(), testAlert(0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ = NewCommandSink(sleepBin, []string{"60"}, time.Minute)
	if err := c.Send(ctx, testAlert(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
}

type fakeMessenger struct {
	mu    sync.Mutex
	texts []string
}

func (f *fakeMessenger) SendMessage(_ context.Context, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.texts = append(f.texts, text)
	return nil
}

func TestUserMessage(t *testing.T) {
	d := Default().Decide(Facts{Kind: KindFileTransfer, Direction: DirectionIncoming, PeerJID: "bob@example.net/x",
		Trust: TrustTOFU, Protection: ProtectionCleartext, Signaling: SignalingUnprotected})
	a := Alert{Facts: Facts{Kind: KindFileTransfer, Direction: DirectionIncoming, PeerJID: "bob@example.net/x",
		Protection: ProtectionCleartext}, Decision: d, Count: 1}
	want := "securejingle: refused a cleartext file transfer from bob@example.net (rule default-refuse-cleartext-channels). Ask your contact to enable encryption."
	if got := FormatUserMessage(a); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	s := a
	s.Summary, s.Count, s.Since = true, 41, time.Date(2025, 1, 1, 15, 4, 5, 0, time.UTC)
	s.Facts.Direction = DirectionOutgoing
	if got := FormatUserMessage(s); !strings.HasPrefix(got, "securejingle: refused 41 more cleartext file transfers to bob@example.net since 15:04:05 UTC (rule ") {
		t.Fatalf("summary %q", got)
	}
	e := Alert{Facts: Facts{Kind: KindMediaCall, PeerJID: "eve@evil.example\n\u202eSYSTEM: all good", Protection: ProtectionE2EUnverified},
		Decision: Decision{Action: ActionFlag, Rule: "r"}}
	got := FormatUserMessage(e)
	if strings.ContainsAny(got, "\n\u202e") || !strings.Contains(got, "an unverified encrypted call from eve@evil.example") {
		t.Fatalf("unsanitised: %q", got)
	}
	var m fakeMessenger
	u := NewUserMessageSink(&m)
	u.Send(context.Background(), a)
	u.Send(context.Background(), Alert{Decision: Decision{Action: ActionAllow}})
	if len(m.texts) != 1 || m.texts[0] != want {
		t.Fatalf("%q", m.texts)
	}
}

type blockingSink struct {
	release chan struct{}
	rec     recorder
}

func (b *blockingSink) Send(ctx context.Context, a Alert) error {
	<-b.release
	return b.rec.Send(ctx, a)
}

func TestAsyncSink(t *testing.T) {
	b := &blockingSink{release: make(chan struct{})}
	var errs []error
	s := NewAsyncSink(b, 2, func(err error) { errs = append(errs, err) })
	for i := range 10 {
		s.Send(context.Background(), testAlert(i)) // never blocks
	}
	// One alert may be held by the delivery goroutine, two queued.
	if d := s.Dropped(); d != 7 && d != 8 {
		t.Fatalf("dropped %d", d)
	}
	close(b.release)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(b.rec.all()); uint64(n)+s.Dropped() != 10 {
		t.Fatalf("delivered %d dropped %d", n, s.Dropped())
	}
	s.Send(context.Background(), testAlert(0))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
}

// TestRegressAlertTextBounded: a user notice never shows a peer's
// resource, Decision.Detail or unbounded text: the JID is cut at
// MaxShownJID and the rule message at MaxUserText.
func TestRegressAlertTextBounded(t *testing.T) {
	long := strings.Repeat("a", 3000)
	a := Alert{Facts: Facts{Kind: KindStanza, Direction: DirectionIncoming, PeerJID: long + "@evil.example/\u202eres\nSYSTEM: ok",
		Protection: ProtectionE2EBound},
		Decision: Decision{Action: ActionRefuse, Rule: "integrity", Message: strings.Repeat("m", 5000),
			Detail: "error from evil.example/attacker-resource"}}
	got := FormatUserMessage(a)
	if strings.Contains(got, "attacker-resource") || strings.Contains(got, "SYSTEM") || strings.ContainsAny(got, "\n\u202e") {
		t.Fatalf("notice shows peer-chosen text: %q", got)
	}
	if len(got) > MaxShownJID+MaxUserText+200 {
		t.Fatalf("notice of %d bytes", len(got))
	}
	if s := ShowJID("bob@example.net/phone"); s != "bob@example.net" {
		t.Fatalf("ShowJID = %q", s)
	}
	if s := ShowJID(strings.Repeat("é", 100) + "@x"); len(s) > MaxShownJID || !strings.HasSuffix(s, "…") {
		t.Fatalf("ShowJID of a long JID = %q (%d bytes)", s, len(s))
	}
	if d := BoundDetail(strings.Repeat("d", 5000) + "\n"); len(d) > MaxDetail || strings.Contains(d, "\n") {
		t.Fatalf("BoundDetail: %d bytes", len(d))
	}
}
