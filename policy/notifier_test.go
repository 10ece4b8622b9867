package policy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// recorder is an in-memory Sink.
type recorder struct {
	mu     sync.Mutex
	alerts []Alert
	err    error
}

func (r *recorder) Send(_ context.Context, a Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
	return r.err
}

func (r *recorder) all() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.alerts...)
}

// fakeClock advances only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

var cleartextChat = Facts{Kind: KindChat, PeerJID: "bob@example.net/phone", Protection: ProtectionCleartext}

func TestNotifierFlood(t *testing.T) {
	for _, step := range []time.Duration{0, time.Millisecond, 37 * time.Millisecond} {
		t.Run(step.String(), func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			rec := &recorder{}
			n := NewNotifier([]Sink{rec}, WithClock(clk.now), WithWindow(60*time.Second))
			d := Default().Decide(cleartextChat)
			const total = 10000
			maxTracked := 0
			for i := range total {
				if err := n.Notify(ctx, cleartextChat, d); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					got := rec.all()
					if len(got) != 1 || got[0].Summary || got[0].Count != 1 || got[0].Decision.Rule != d.Rule {
						t.Fatalf("first alert not delivered at once: %+v", got)
					}
				}
				maxTracked = max(maxTracked, n.Tracked())
				clk.advance(step)
			}
			if err := n.Close(ctx); err != nil {
				t.Fatal(err)
			}
			sum, firsts, summaries := 0, 0, 0
			for _, a := range rec.all() {
				sum += a.Count
				if a.Summary {
					summaries++
				} else {
					firsts++
				}
			}
			if sum != total {
				t.Fatalf("counts add up to %d, want %d", sum, total)
			}
			windows := int(time.Duration(total-1)*step/(60*time.Second)) + 1
			if firsts != windows || summaries != windows {
				t.Fatalf("%d firsts and %d summaries, want %d each", firsts, summaries, windows)
			}
			if maxTracked != 1 || n.Tracked() != 0 {
				t.Fatalf("tracked %d (max %d)", n.Tracked(), maxTracked)
			}
			if err := n.Notify(ctx, cleartextChat, d); !errors.Is(err, ErrClosed) {
				t.Fatalf("Notify after Close: %v", err)
			}
		})
	}
}

func TestNotifierDistinctPeersBounded(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	rec := &recorder{}
	const maxKeys = 16
	n := NewNotifier([]Sink{rec}, WithClock(clk.now), WithMaxKeys(maxKeys))
	d := Default().Decide(cleartextChat)
	const total = 10000
	firstSeen := map[string]bool{}
	for i := range total {
		f := cleartextChat
		f.PeerJID = "peer" + strconv.Itoa(i%2500) + "@example.net"
		if err := n.Notify(ctx, f, d); err != nil {
			t.Fatal(err)
		}
		if tr := n.Tracked(); tr > maxKeys {
			t.Fatalf("tracked %d > cap %d", tr, maxKeys)
		}
		clk.advance(time.Millisecond)
	}
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, a := range rec.all() {
		sum += a.Count
		if !a.Summary {
			firstSeen[a.Facts.PeerJID] = true
		}
	}
	if sum != total || len(firstSeen) != 2500 {
		t.Fatalf("sum %d, %d peers with a first alert", sum, len(firstSeen))
	}
	if n.Tracked() != 0 {
		t.Fatalf("tracked %d after Flush", n.Tracked())
	}
}

func TestNotifierEvictionKeepsSummary(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	rec := &recorder{}
	n := NewNotifier([]Sink{rec}, WithClock(clk.now), WithMaxKeys(1))
	d := Decision{Action: ActionFlag, Rule: "r"}
	a, b := cleartextChat, cleartextChat
	b.PeerJID = "carol@example.net"
	for _, f := range []Facts{a, a, a, b} {
		if err := n.Notify(ctx, f, d); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.all()
	if len(got) != 3 || got[1].Count != 2 || !got[1].Summary || got[2].Facts.PeerJID != b.PeerJID || got[2].Summary {
		t.Fatalf("%+v", got)
	}
	if !got[1].Since.Equal(got[0].Time) {
		t.Fatalf("summary since %v, window opened %v", got[1].Since, got[0].Time)
	}
}

func TestNotifierExpireAndKeys(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	rec := &recorder{}
	n := NewNotifier([]Sink{rec}, WithClock(clk.now), WithWindow(time.Minute))
	flag := Decision{Action: ActionFlag}
	refuse := Decision{Action: ActionRefuse}
	call := cleartextChat
	call.Kind = KindMediaCall
	upper := cleartextChat
	upper.PeerJID = "BOB@example.net/laptop"
	// Different action or kind: separate windows; same bare JID in another
	// case or resource: same window.
	for _, x := range []struct {
		f Facts
		d Decision
	}{{cleartextChat, flag}, {cleartextChat, refuse}, {call, flag}, {upper, flag}} {
		if err := n.Notify(ctx, x.f, x.d); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(rec.all()); got != 3 || n.Tracked() != 3 {
		t.Fatalf("%d delivered, %d tracked", got, n.Tracked())
	}
	clk.advance(59 * time.Second)
	if err := n.Expire(ctx); err != nil || len(rec.all()) != 3 {
		t.Fatalf("expired early: %v %d", err, len(rec.all()))
	}
	clk.advance(time.Second)
	if err := n.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 4 || !got[3].Summary || got[3].Count != 1 || n.Tracked() != 0 {
		t.Fatalf("%+v, tracked %d", got, n.Tracked())
	}
}

func TestNotifierSinkErrors(t *testing.T) {
	bad := &recorder{err: errors.New("boom")}
	good := &recorder{}
	n := NewNotifier([]Sink{bad, good})
	err := n.Notify(context.Background(), cleartextChat, Decision{Action: ActionFlag})
	if err == nil || len(good.all()) != 1 {
		t.Fatalf("err %v, good sink got %d", err, len(good.all()))
	}
}

func TestNotifierNoWindow(t *testing.T) {
	rec := &recorder{}
	n := NewNotifier([]Sink{rec}, WithWindow(0))
	for range 3 {
		if err := n.Notify(context.Background(), cleartextChat, Decision{Action: ActionFlag}); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.all()) != 3 || n.Tracked() != 0 {
		t.Fatal("de-duplication not disabled")
	}
}

func TestNotifierConcurrent(t *testing.T) {
	rec := &recorder{}
	n := NewNotifier([]Sink{rec}, WithMaxKeys(8))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				f := cleartextChat
				f.PeerJID = "p" + strconv.Itoa((g*500+i)%20) + "@x.example"
				_ = n.Notify(context.Background(), f, Decision{Action: ActionFlag})
			}
		})
	}
	wg.Wait()
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, a := range rec.all() {
		sum += a.Count
	}
	if sum != 4000 {
		t.Fatalf("sum %d", sum)
	}
}

// TestNotifierRuleSeverityCritical: alerts of one peer, kind and action
// merge only with the same rule and severity: a flood of a benign alert
// (which a hostile server can forge) cannot hide a critical one in its
// summary; a flood of one critical alert is still one alert and a summary.
func TestNotifierRuleSeverityCritical(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	rec := &recorder{}
	n := NewNotifier([]Sink{rec}, WithClock(clk.now), WithWindow(time.Minute))
	call := cleartextChat
	call.Kind = KindMediaCall
	benign := Decision{Action: ActionRefuse, Severity: SeverityWarning, Rule: "default-refuse-unprotected-jingle"}
	other := Decision{Action: ActionRefuse, Severity: SeverityWarning, Rule: "another-rule"}
	louder := Decision{Action: ActionRefuse, Severity: SeverityInfo, Rule: "default-refuse-unprotected-jingle"}
	critical := Decision{Action: ActionRefuse, Severity: SeverityCritical, Rule: "dtls-binding"}
	for _, d := range []Decision{benign, critical, other, louder, critical, benign} {
		if err := n.Notify(ctx, call, d); err != nil {
			t.Fatal(err)
		}
	}
	var rules []string
	for _, a := range rec.all() {
		rules = append(rules, a.Decision.Rule+"/"+a.Decision.Severity.String())
	}
	want := "[default-refuse-unprotected-jingle/warning dtls-binding/critical another-rule/warning default-refuse-unprotected-jingle/info]"
	if got := fmt.Sprint(rules); got != want || n.Tracked() != 4 {
		t.Fatalf("delivered %s (want %s), tracked %d", got, want, n.Tracked())
	}
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 6 || !got[4].Summary || !got[5].Summary || got[4].Count != 1 || got[5].Count != 1 ||
		got[4].Decision.Rule != benign.Rule || got[5].Decision.Rule != critical.Rule {
		t.Fatalf("after flush %+v", got[4:])
	}
}
