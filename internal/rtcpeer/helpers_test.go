package rtcpeer

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// waitLimit bounds every wait of a test; reaching it fails the test, it
// measures nothing.
const waitLimit = 30 * time.Second

// testMedia writes d of test audio and video seeded with seed into dir.
func testMedia(t testing.TB, dir string, d time.Duration, seed uint64) mediagen.Files {
	t.Helper()
	return testMediaWith(t, dir, mediagen.Options{Duration: d, Seed: seed})
}

func testMediaWith(t testing.TB, dir string, o mediagen.Options) mediagen.Files {
	t.Helper()
	f, err := mediagen.WriteFilesWith(filepath.Join(dir, "src.ogg"), filepath.Join(dir, "src.ivf"), o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newCert returns a fresh call certificate.
func newCert(t testing.TB) *dtls.Certificate {
	t.Helper()
	c, err := dtls.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newPeer(t testing.TB, cfg Config) *Peer {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// stateLog records the states a Peer reports and lets a test wait for one.
type stateLog struct {
	mu     sync.Mutex
	states []webrtc.PeerConnectionState
	ch     chan struct{}
}

func watchStates(p *Peer) *stateLog {
	l := &stateLog{ch: make(chan struct{}, 1)}
	p.OnStateChange(func(s webrtc.PeerConnectionState) {
		l.mu.Lock()
		l.states = append(l.states, s)
		l.mu.Unlock()
		select {
		case l.ch <- struct{}{}:
		default:
		}
	})
	return l
}

// waitFor waits until the peer has reported state s at least n times in
// all.
func (l *stateLog) waitFor(t testing.TB, s webrtc.PeerConnectionState, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		c := 0
		for _, x := range l.states {
			if x == s {
				c++
			}
		}
		states := append([]webrtc.PeerConnectionState(nil), l.states...)
		l.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("state %s (%d times) never reached; states: %v", s, n, states)
		}
	}
}

// connect signals a and b to each other in process: a offers, b answers,
// candidates trickle both ways as they are gathered; once connected both
// admit received media.
func connect(t testing.TB, a, b *Peer) {
	t.Helper()
	connectHeld(t, a, b)
	a.Admit() // the tests' peers are who they should be
	b.Admit()
}

// connectHeld is connect without Admit: received media is held.
func connectHeld(t testing.TB, a, b *Peer) {
	t.Helper()
	trickle(t, a, b)
	trickle(t, b, a)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	offer, err := a.CreateOffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := b.AcceptOffer(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Peer{a, b} {
		select {
		case <-p.Connected():
		case <-ctx.Done():
			t.Fatalf("not connected: %s", p.State())
		}
	}
}

func trickle(t testing.TB, from, to *Peer) {
	from.OnCandidate(func(c *webrtc.ICECandidateInit) {
		if c == nil {
			return
		}
		if err := to.AddCandidate(*c); err != nil {
			t.Errorf("AddCandidate: %v", err)
		}
	})
}

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitClosed(t testing.TB, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("never: %s", what)
	}
}

// leakCheck fails the test if goroutines of this package (other than the
// test's own) or of pion's webrtc, ice, dtls, srtp or sctp packages are
// still running a while after it is called.
func leakCheck(t testing.TB) {
	t.Helper()
	var left []string
	for range 250 {
		left = left[:0]
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "rtcpeer.leakCheck") {
				continue
			}
			for _, pkg := range []string{"internal/rtcpeer.(*", "pion/webrtc/", "pion/ice/", "pion/dtls/", "pion/srtp/", "pion/sctp"} {
				if strings.Contains(g, pkg) && !strings.Contains(g, "rtcpeer.Test") {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
}
