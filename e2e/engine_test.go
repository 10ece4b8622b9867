package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// testClock is a settable clock shared by engines in a test.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newClock() *testClock { return &testClock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

type testEngine struct {
	*Engine
	store store.Store
}

func newTestEngine(t testing.TB, jid string, clk *testClock, suites ...SuiteID) *testEngine {
	t.Helper()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	cfg := Config{JID: jid, Signer: signer, Store: st, Now: clk.now}
	if len(suites) > 0 {
		cfg.Suites = suites
	}
	e, err := newCertified(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testEngine{e, st}
}

// introduce gives each engine the other's bundle, as presence + bundle
// fetch would.
func introduce(t testing.TB, engines ...*testEngine) {
	t.Helper()
	for _, a := range engines {
		for _, b := range engines {
			if a == b {
				continue
			}
			if err := a.AddBundle(b.JID(), b.Bundle()); err != nil {
				t.Fatalf("%s adding bundle of %s: %v", a.JID(), b.JID(), err)
			}
		}
	}
}

func dev(e *testEngine) Device { return Device{e.JID(), e.Device()} }

func chatCtx(from, to *testEngine) Context {
	return Context{From: from.JID(), To: to.JID(), StanzaKind: "message", StanzaType: "chat"}
}

func send(t testing.TB, from, to *testEngine, body string) *ChatElement {
	t.Helper()
	el, err := from.SealChat(chatCtx(from, to), []Device{dev(to)}, body, false)
	if err != nil {
		t.Fatalf("seal %q: %v", body, err)
	}
	return el
}

func recv(t testing.TB, from, to *testEngine, el *ChatElement, want string) *Peer {
	t.Helper()
	got, peer, err := to.OpenChat(chatCtx(from, to), el)
	if err != nil {
		t.Fatalf("open %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("opened %q, want %q", got, want)
	}
	return peer
}

func TestConversation(t *testing.T) {
	for _, sid := range DefaultSuites {
		t.Run(sid.String(), func(t *testing.T) {
			clk := newClock()
			a := newTestEngine(t, "alice@example.org", clk, sid)
			b := newTestEngine(t, "bob@example.net", clk, sid)
			introduce(t, a, b)
			// Alice sends three before Bob answers (all carry the init).
			for _, m := range []string{"hi", "are you there?", "hello?"} {
				p := recv(t, a, b, send(t, a, b, m), m)
				if p.Suite != sid || p.JID != a.JID() || p.ID != a.Device() {
					t.Fatalf("peer = %+v", p)
				}
			}
			// Then a long alternating conversation with bursts.
			for i := 0; i < 40; i++ {
				from, to := a, b
				if i%3 != 0 {
					from, to = b, a
				}
				m := "message " + string(rune('A'+i%26))
				p := recv(t, from, to, send(t, from, to, m), m)
				if i > 1 && !p.Established {
					t.Fatalf("message %d: session not established", i)
				}
			}
			ia, err := a.Session(dev(b))
			if err != nil {
				t.Fatal(err)
			}
			ib, err := b.Session(dev(a))
			if err != nil {
				t.Fatal(err)
			}
			if ia.Transcript != ib.Transcript || !ia.Established || !ib.Established {
				t.Fatalf("sessions disagree: %+v vs %+v", ia, ib)
			}
		})
	}
}

func TestReplayAndReorder(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	first := send(t, a, b, "first")
	recv(t, a, b, first, "first")
	// Replaying the first message (a new session attempt) is refused.
	if _, _, err := b.OpenChat(chatCtx(a, b), first); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed first message: %v, want ErrReplay", err)
	}
	recv(t, b, a, send(t, b, a, "reply"), "reply")
	var msgs []*ChatElement
	for i := 0; i < 5; i++ {
		msgs = append(msgs, send(t, a, b, string(rune('0'+i))))
	}
	// Deliver out of order: 4, 1, 3, 0, 2.
	for _, i := range []int{4, 1, 3, 0, 2} {
		recv(t, a, b, msgs[i], string(rune('0'+i)))
	}
	for _, m := range msgs {
		if _, _, err := b.OpenChat(chatCtx(a, b), m); !errors.Is(err, ErrReplay) {
			t.Fatalf("duplicate: %v, want ErrReplay", err)
		}
	}
}

func TestPeers(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	c := newTestEngine(t, "carol@example.com", clk)
	introduce(t, a, b, c)
	ps, err := a.Peers()
	if err != nil || len(ps) != 2 {
		t.Fatalf("peers %v, %v", ps, err)
	}
	for _, p := range ps {
		if p != dev(b) && p != dev(c) {
			t.Fatalf("unexpected peer %v", p)
		}
	}
}

func TestSetAttestations(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.com", clk)
	b := newTestEngine(t, "bob@example.com", clk)
	before := a.Bundle().Hash()
	atts := []Attestation{{Type: "self", Data: make([]byte, 64)}, {Type: "openpgp", Data: []byte("armored")}}
	if err := a.SetAttestations(atts); err != nil {
		t.Fatal(err)
	}
	bu := a.Bundle()
	if bu.Hash() == before || len(bu.Attestations) != 2 || bu.Attestations[1].Type != "openpgp" ||
		string(bu.Attestations[1].Data) != "armored" {
		t.Fatalf("bundle not re-signed with the attestations: %+v", bu.Attestations)
	}
	if p := a.Presence(); p == nil || !p.Matches(bu) {
		t.Fatal("presence does not name the re-signed bundle")
	}
	if err := b.AddBundle(a.JID(), bu); err != nil {
		t.Fatal(err)
	}
	got, err := b.PeerBundle(dev(a))
	if err != nil || len(got.Attestations) != 2 {
		t.Fatalf("peer bundle %v, %v", got, err)
	}
	// The same attestations again: the bundle is kept.
	if err := a.SetAttestations(atts); err != nil {
		t.Fatal(err)
	}
	if a.Bundle().Hash() != bu.Hash() {
		t.Fatal("bundle re-signed without a change")
	}
	// Invalid attestations are refused and change nothing.
	for _, bad := range [][]Attestation{
		{{Type: "Bad Type", Data: []byte("x")}},
		{{Type: "big", Data: make([]byte, maxAttestationSize+1)}},
		make([]Attestation, maxAttestations+1),
	} {
		if err := a.SetAttestations(bad); err == nil {
			t.Fatalf("SetAttestations accepted %d invalid attestations", len(bad))
		}
	}
	if a.Bundle().Hash() != bu.Hash() {
		t.Fatal("refused attestations changed the bundle")
	}
	// Concurrent use with Refresh (run with -race).
	done := make(chan error, 1)
	go func() { done <- a.Refresh() }()
	if err := a.SetAttestations(nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(a.Bundle().Attestations) != 0 {
		t.Fatal("attestations not cleared")
	}
}

// TestStalePendingSessionRestarts: an unanswered first message is given up
// for a new one when the peer publishes a new bundle (its old prekey may be
// gone), and the new handshake works.
func TestStalePendingSessionRestarts(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	send(t, a, b, "never delivered") // the server drops it
	// Bob rotates prekeys past the old one's life, and Alice fetches the
	// new bundle.
	clk.t = clk.t.Add(30 * 24 * time.Hour)
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := a.AddBundle(b.JID(), b.Bundle()); err != nil {
		t.Fatal(err)
	}
	el := send(t, a, b, "after the new bundle")
	recv(t, a, b, el, "after the new bundle")
	recv(t, b, a, send(t, b, a, "reply"), "reply")
	recv(t, a, b, send(t, a, b, "and on"), "and on")
}

// newCertified creates an engine and puts it on its account's device list
// (what the gateway does on the first login of an account), extending the
// list the account's other devices already hold.
func newCertified(_ testing.TB, cfg Config, others ...*Engine) (*Engine, error) {
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	var known *DeviceList
	for _, o := range others {
		if l, _ := o.DeviceList(o.JID()); l != nil && (known == nil || l.Version > known.Version) {
			known = l
		}
	}
	if _, err := e.CertifyThisDevice(known); err != nil {
		return nil, err
	}
	return e, nil
}
