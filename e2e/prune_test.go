package e2e

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// strangerPrune keeps contact@ and the own account, and forgets trust
// records through ts.
func strangerPrune(ts *trust.Store, now time.Time, max int) PruneConfig {
	return PruneConfig{
		Keep: func(tx store.Tx, d Device) (bool, error) {
			return d.JID == "contact@example.org" || d.JID == "bob@example.org", nil
		},
		Forget:     func(tx store.Tx, jid string) error { return ts.RemoveTx(tx, jid) },
		MaxDevices: max,
		Now:        now,
	}
}

// TestRegressStrangerStateCapped: bundles and trust records of strangers
// are capped (least recently active evicted first) while roster contacts'
// are never touched. Before the fix nothing bounded them.
func TestRegressStrangerStateCapped(t *testing.T) {
	clk := newClock()
	bob := newTrustedEngine(t, "bob@example.org", clk)
	ts := trust.New(bob.store, clk.now)
	contact := newTestEngine(t, "contact@example.org", clk)
	if err := bob.AddBundle(contact.JID(), contact.Bundle()); err != nil {
		t.Fatal(err)
	}
	var strangers []*testEngine
	for i := range 6 {
		s := newTestEngine(t, fmt.Sprintf("s%d@example.net", i), clk)
		if err := bob.AddBundle(s.JID(), s.Bundle()); err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, s)
		// The first two are the oldest: their activity is recorded first.
		clk.t = clk.t.Add(time.Hour)
		if err := bob.NoteActivity(dev(s)); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := bob.PruneStrangers(strangerPrune(ts, clk.t, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 2 || dropped[0] != dev(strangers[0]) || dropped[1] != dev(strangers[1]) {
		t.Fatalf("dropped %v, want the two least recently active strangers", dropped)
	}
	for i, s := range strangers {
		_, berr := bob.PeerBundle(dev(s))
		_, terr := ts.Lookup(s.JID())
		if gone := i < 2; gone != errors.Is(berr, store.ErrNotFound) || gone != errors.Is(terr, trust.ErrUnknown) {
			t.Fatalf("stranger %d: bundle %v, trust record %v", i, berr, terr)
		}
	}
	if _, err := bob.PeerBundle(dev(contact)); err != nil {
		t.Fatalf("contact's bundle pruned: %v", err)
	}
	if _, err := ts.Lookup(contact.JID()); err != nil {
		t.Fatalf("contact's trust record pruned: %v", err)
	}
}

// TestRegressStrangerSessionsPruned: in "anyone" mode, a session a
// stranger created is forgotten once idle for StrangerIdleTimeout, with
// its bundle and trust record; a contact's idle session is kept. Before
// the fix such sessions were never pruned.
func TestRegressStrangerSessionsPruned(t *testing.T) {
	clk := newClock()
	bob := newTrustedEngine(t, "bob@example.org", clk)
	ts := trust.New(bob.store, clk.now)
	for _, jid := range []string{"stranger@example.net", "contact@example.org"} {
		s := newTestEngine(t, jid, clk)
		if err := s.AddBundle(bob.JID(), bob.Bundle()); err != nil {
			t.Fatal(err)
		}
		el, err := s.SealChat(chatCtx(s, bob.testEngine), []Device{dev(bob.testEngine)}, "hi", true)
		if err != nil {
			t.Fatal(err)
		}
		if p := recv(t, s, bob.testEngine, el, "hi"); !p.NewSession {
			t.Fatal("no new session")
		}
		if err := bob.NoteActivity(dev(s)); err != nil {
			t.Fatal(err)
		}
		defer func(d Device) {
			_, serr := bob.Session(d)
			_, berr := bob.PeerBundle(d)
			_, terr := ts.Lookup(d.JID)
			stranger := d.JID == "stranger@example.net"
			if stranger != errors.Is(serr, ErrNoSession) || stranger != errors.Is(berr, store.ErrNotFound) || stranger != errors.Is(terr, trust.ErrUnknown) {
				t.Errorf("%s after idle prune: session %v, bundle %v, trust %v", d.JID, serr, berr, terr)
			}
		}(dev(s))
	}
	// Not yet idle: nothing goes.
	if dropped, err := bob.PruneStrangers(strangerPrune(ts, clk.t.Add(StrangerIdleTimeout), 0)); err != nil || len(dropped) != 0 {
		t.Fatalf("pruned before the idle timeout: %v, %v", dropped, err)
	}
	dropped, err := bob.PruneStrangers(strangerPrune(ts, clk.t.Add(StrangerIdleTimeout+time.Minute), 0))
	if err != nil || len(dropped) != 1 {
		t.Fatalf("idle prune: %v, %v", dropped, err)
	}
}
