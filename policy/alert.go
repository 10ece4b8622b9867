package policy

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Alert is one notification about a flagged or refused channel, or a
// summary of several identical ones. It is a plain value; sinks must not
// modify it.
type Alert struct {
	// ID is unique per alert (26 random base32 characters).
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Facts and Decision are those of the first alert of a window, or of
	// the last suppressed one for a summary.
	Facts    Facts    `json:"facts"`
	Decision Decision `json:"decision"`
	// Count is the number of channel events the alert stands for: 1 for an
	// alert delivered as it happened, the number of suppressed events for
	// a summary.
	Count int `json:"count"`
	// Summary marks an alert that summarises suppressed duplicates.
	Summary bool `json:"summary,omitempty"`
	// Since is, for a summary, when its de-duplication window opened.
	Since time.Time `json:"since,omitzero"`
}

// Sink receives alerts. Send must be safe for concurrent use. ctx bounds how
// long Send may block; when it is cancelled Send should return promptly with
// an error.
type Sink interface {
	Send(ctx context.Context, a Alert) error
}

// ErrClosed is returned by [Notifier.Notify] after [Notifier.Close].
var ErrClosed = errors.New("policy: notifier closed")

// Notifier defaults.
const (
	DefaultWindow  = 60 * time.Second
	DefaultMaxKeys = 4096
)

// dedupKey identifies a flood: the same action by the same rule with the
// same severity on the same kind of channel with the same peer (bare JID,
// case-folded). The rule and severity are part of the key so that a flood
// of one benign alert (which a hostile server can forge at will) never
// hides a different, more serious one of the same peer.
type dedupKey struct {
	peer     string
	kind     Kind
	action   Action
	rule     string
	severity Severity
}

type window struct {
	key   dedupKey
	start time.Time
	count int   // suppressed alerts so far
	last  Alert // the last suppressed alert
}

// Notifier de-duplicates alerts and fans them out to sinks. Per (peer, kind,
// action, rule, severity) it opens a window on the first alert, which it delivers at once;
// later alerts in the window are counted and delivered as one summary when
// the window closes (found by the next Notify or [Notifier.Expire]), on
// [Notifier.Flush] or on [Notifier.Close]. At most MaxKeys windows are
// tracked; when a new key arrives at the cap, the oldest window is closed
// early (its summary delivered) to make room, so a first alert is never
// dropped.
//
// Alerts go to every sink in order, outside the Notifier's lock; concurrent
// Notify calls may interleave their deliveries. Create with [NewNotifier];
// the zero value is not usable. A Notifier is safe for concurrent use. It
// does not own its sinks: close them after closing the Notifier.
type Notifier struct {
	sinks   []Sink
	win     time.Duration
	maxKeys int
	now     func() time.Time
	onErr   func(error)

	mu     sync.Mutex
	byKey  map[dedupKey]*list.Element
	order  list.List // *window, oldest first
	closed bool
}

// NotifierOption configures a [Notifier]; see the With* functions.
type NotifierOption func(*Notifier)

// WithWindow sets the de-duplication window (default [DefaultWindow]).
// A window of zero or less disables de-duplication.
func WithWindow(d time.Duration) NotifierOption { return func(n *Notifier) { n.win = d } }

// WithMaxKeys caps the number of tracked windows (default
// [DefaultMaxKeys]); values below 1 count as 1.
func WithMaxKeys(k int) NotifierOption { return func(n *Notifier) { n.maxKeys = max(k, 1) } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) NotifierOption { return func(n *Notifier) { n.now = now } }

// WithErrorHandler receives delivery errors from [Notifier.Run].
func WithErrorHandler(f func(error)) NotifierOption { return func(n *Notifier) { n.onErr = f } }

// NewNotifier returns a Notifier delivering to sinks.
func NewNotifier(sinks []Sink, opts ...NotifierOption) *Notifier {
	n := &Notifier{
		sinks:   append([]Sink(nil), sinks...),
		win:     DefaultWindow,
		maxKeys: DefaultMaxKeys,
		now:     time.Now,
		byKey:   map[dedupKey]*list.Element{},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// Notify records a decision about a channel. The first alert of a window is
// delivered to every sink before Notify returns; duplicates are counted.
// Summaries of windows that have closed meanwhile are delivered too. The
// error joins the sinks' errors; every sink is tried. Cancelling ctx is
// passed on to the sinks.
func (n *Notifier) Notify(ctx context.Context, f Facts, d Decision) error {
	now := n.now()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	out := n.expireLocked(now, nil)
	a := Alert{ID: rand.Text(), Time: now, Facts: f, Decision: d, Count: 1}
	if n.win > 0 {
		bare, _ := splitJID(f.PeerJID)
		k := dedupKey{peer: strings.ToLower(bare), kind: f.Kind, action: d.Action, rule: d.Rule, severity: d.Severity}
		if e, ok := n.byKey[k]; ok {
			w := e.Value.(*window)
			w.count++
			w.last = a
			n.mu.Unlock()
			return n.deliver(ctx, out)
		}
		if len(n.byKey) >= n.maxKeys {
			out = n.closeLocked(n.order.Front(), now, out)
		}
		n.byKey[k] = n.order.PushBack(&window{key: k, start: now})
	}
	out = append(out, a)
	n.mu.Unlock()
	return n.deliver(ctx, out)
}

// closeLocked forgets a window and appends its summary, if any, to out.
func (n *Notifier) closeLocked(e *list.Element, now time.Time, out []Alert) []Alert {
	w := n.order.Remove(e).(*window)
	delete(n.byKey, w.key)
	if w.count == 0 {
		return out
	}
	s := w.last
	s.ID = rand.Text()
	s.Time = now
	s.Count = w.count
	s.Summary = true
	s.Since = w.start
	return append(out, s)
}

func (n *Notifier) expireLocked(now time.Time, out []Alert) []Alert {
	for e := n.order.Front(); e != nil; e = n.order.Front() {
		if now.Before(e.Value.(*window).start.Add(n.win)) {
			break
		}
		out = n.closeLocked(e, now, out)
	}
	return out
}

func (n *Notifier) deliver(ctx context.Context, alerts []Alert) error {
	var errs []error
	for _, a := range alerts {
		for i, s := range n.sinks {
			if err := s.Send(ctx, a); err != nil {
				errs = append(errs, fmt.Errorf("policy: sink %d (%T): %w", i, s, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Expire delivers the summaries of windows that have closed. Call it
// periodically (see [Notifier.Run]) so a flood that stops is still
// summarised.
func (n *Notifier) Expire(ctx context.Context) error {
	n.mu.Lock()
	out := n.expireLocked(n.now(), nil)
	n.mu.Unlock()
	return n.deliver(ctx, out)
}

// Flush closes every window at once, delivering pending summaries. The
// next alert for any key is delivered immediately again.
func (n *Notifier) Flush(ctx context.Context) error {
	now := n.now()
	n.mu.Lock()
	var out []Alert
	for e := n.order.Front(); e != nil; e = n.order.Front() {
		out = n.closeLocked(e, now, out)
	}
	n.mu.Unlock()
	return n.deliver(ctx, out)
}

// Close flushes pending summaries and makes later Notify calls fail with
// [ErrClosed]. It does not close the sinks.
func (n *Notifier) Close(ctx context.Context) error {
	err := n.Flush(ctx)
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	// Alerts that raced with Close may have opened windows; summarise them.
	return errors.Join(err, n.Flush(ctx))
}

// Tracked returns the number of open de-duplication windows.
func (n *Notifier) Tracked() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.byKey)
}

// Run calls [Notifier.Expire] every interval (a quarter of the window if
// interval <= 0) until ctx is done, reporting errors to the handler set with
// [WithErrorHandler]. It returns ctx.Err().
func (n *Notifier) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = max(n.win/4, time.Second)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := n.Expire(ctx); err != nil && n.onErr != nil {
				n.onErr(err)
			}
		}
	}
}
