package rtcpeer

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// simNet is a simulated network of two hosts behind one router that delays
// every packet and drops some, or all.
type simNet struct {
	router     *vnet.Router
	netA, netB *vnet.Net
	cut        atomic.Bool // drop everything
	mu         sync.Mutex
	rng        *rand.Rand
	lossPct    int
	dropped    atomic.Uint64
	passed     atomic.Uint64
}

// vnetBuild serialises building vnet routers and nets: vnet numbers their
// MAC addresses from a global counter without a lock (pion/transport
// v5.1.4 vnet.newMACAddress), a data race when tests build them in
// parallel.
var vnetBuild sync.Mutex

func newSimNet(t testing.TB, latency time.Duration, lossPct int, seed uint64) *simNet {
	t.Helper()
	vnetBuild.Lock()
	defer vnetBuild.Unlock()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", MinDelay: latency, LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	s := &simNet{router: r, rng: rand.New(rand.NewPCG(seed, 0x6c6f7373)), lossPct: lossPct}
	r.AddChunkFilter(func(vnet.Chunk) bool {
		if s.cut.Load() {
			s.dropped.Add(1)
			return false
		}
		s.mu.Lock()
		drop := s.rng.IntN(100) < s.lossPct
		s.mu.Unlock()
		if drop {
			s.dropped.Add(1)
			return false
		}
		s.passed.Add(1)
		return true
	})
	for i, ip := range []string{"10.0.0.2", "10.0.0.3"} {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddNet(n); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			s.netA = n
		} else {
			s.netB = n
		}
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return s
}

// TestVNetLoss runs calls over a path of 100 ms one-way latency that
// loses 5% and 20% of the packets in each direction: the call connects and
// media flows both ways, in proportion to the loss.
func TestVNetLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time media over a simulated network")
	}
	t.Parallel()
	for _, c := range []struct {
		loss int
		// minimum share of audio packets and video frames received, in
		// percent; far below what the loss leaves (NACK recovers video
		// packets), so that chance cannot fail the test.
		minAudio, minVideo int
	}{{5, 80, 50}, {20, 50, 25}} {
		t.Run("loss"+strconv.Itoa(c.loss), func(t *testing.T) {
			t.Parallel()
			const d = 2 * time.Second
			dir := t.TempDir()
			// A key frame every 10 frames: losing the first packet of the
			// stream (which no NACK can ask for) costs a third of a second.
			src := testMediaWith(t, dir, mediagen.Options{Duration: d, Seed: uint64(c.loss), KeyEvery: 10})
			sim := newSimNet(t, 100*time.Millisecond, c.loss, uint64(c.loss))
			cfg := func(n *vnet.Net) Config {
				return Config{Net: n, Audio: true, Video: true, AudioFile: src.Ogg, VideoFile: src.IVF}
			}
			a, b := newPeer(t, cfg(sim.netA)), newPeer(t, cfg(sim.netB))
			start := time.Now()
			connect(t, a, b)
			setup := time.Since(start)
			a.StartPlayback()
			b.StartPlayback()
			waitClosed(t, "playback ends", a.PlaybackDone())
			waitClosed(t, "playback ends", b.PlaybackDone())
			// The last packets (and retransmissions) arrive later: the path
			// delays them, and the reassembly waits for gaps.
			for _, rx := range []*Peer{a, b} {
				settle(func() uint64 { s := rx.Stats(); return s.AudioPayloads + s.VideoFrames })
			}
			a.Close()
			b.Close()
			for _, w := range []struct {
				name string
				rx   *Peer
			}{{"a->b", b}, {"b->a", a}} {
				s := w.rx.Stats()
				t.Logf("%d%% loss %s: connected in %v; %d/%d audio packets, %d/%d video frames, %d RTP packets",
					c.loss, w.name, setup.Round(time.Millisecond), s.AudioPayloads, src.Packets, s.VideoFrames, src.Frames, s.PacketsReceived)
				if s.AudioPayloads*100 < uint64(c.minAudio*src.Packets) {
					t.Errorf("%s: %d of %d audio packets received, want at least %d%%", w.name, s.AudioPayloads, src.Packets, c.minAudio)
				}
				if s.VideoFrames*100 < uint64(c.minVideo*src.Frames) {
					t.Errorf("%s: %d of %d video frames received, want at least %d%%", w.name, s.VideoFrames, src.Frames, c.minVideo)
				}
				if s.AudioPayloads > uint64(src.Packets) || s.VideoFrames > uint64(src.Frames) {
					t.Errorf("%s: more received than sent: %+v", w.name, s)
				}
			}
			t.Logf("router: %d packets passed, %d dropped", sim.passed.Load(), sim.dropped.Load())
		})
	}
}

// TestVNetRestart cuts the path of a running call until ICE fails, mends
// it, and restarts ICE: the connection comes back and media flows again,
// under the same DTLS session.
func TestVNetRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time media over a simulated network")
	}
	t.Parallel()
	dir := t.TempDir()
	src := testMedia(t, dir, 2*time.Second, 7)
	sim := newSimNet(t, 20*time.Millisecond, 0, 7)
	cfg := func(n *vnet.Net) Config {
		return Config{Net: n, Audio: true, Video: true, AudioFile: src.Ogg, VideoFile: src.IVF, Loop: true,
			ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: time.Second, ICEKeepaliveInterval: 200 * time.Millisecond}
	}
	a, b := newPeer(t, cfg(sim.netA)), newPeer(t, cfg(sim.netB))
	la, lb := watchStates(a), watchStates(b)
	connect(t, a, b)
	derBefore, err := a.RemoteCertificate()
	if err != nil {
		t.Fatal(err)
	}
	a.StartPlayback()
	b.StartPlayback()
	eventually(t, "media flows", func() bool { return b.Stats().AudioPayloads > 20 && a.Stats().AudioPayloads > 20 })

	sim.cut.Store(true)
	la.waitFor(t, webrtc.PeerConnectionStateDisconnected, 1)
	la.waitFor(t, webrtc.PeerConnectionStateFailed, 1)
	lb.waitFor(t, webrtc.PeerConnectionStateFailed, 1)
	// Nothing crosses a cut path.
	rxA, rxB := a.Stats().AudioPayloads, b.Stats().AudioPayloads
	sim.cut.Store(false)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ufrag1, _ := a.LocalCredentials()
	offer, err := a.Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ufrag2, _ := a.LocalCredentials(); ufrag2 == ufrag1 || ufrag2 == "" {
		t.Fatalf("restart kept the ICE credentials (%q, %q)", ufrag1, ufrag2)
	}
	answer, err := b.AcceptOffer(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	la.waitFor(t, webrtc.PeerConnectionStateConnected, 2)
	lb.waitFor(t, webrtc.PeerConnectionStateConnected, 2)
	eventually(t, "media flows again both ways", func() bool {
		return b.Stats().AudioPayloads > rxB+20 && a.Stats().AudioPayloads > rxA+20 &&
			b.Stats().VideoFrames > 0 && a.Stats().VideoFrames > 0
	})
	derAfter, err := a.RemoteCertificate()
	if err != nil || string(derAfter) != string(derBefore) {
		t.Fatalf("DTLS session changed across the ICE restart (%v)", err)
	}
	select {
	case <-a.Done():
		t.Fatal("peer closed by the failure")
	default:
	}
}

// settle waits until count has not changed for half a second (at most
// five seconds); the caller then checks (and reports) what it got.
func settle(count func() uint64) {
	last, same := count(), 0
	for deadline := time.Now().Add(5 * time.Second); same < 5 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if n := count(); n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
}
