package gateway

// Calls over a faulty network: the media of two gateways runs on pion's
// virtual network (vnet, via Config.CallNet and SettingEngine.SetNet) —
// one router with a one-way delay, seeded random loss and a switchable
// cut — while their XMPP signaling stays on real loopback.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
)

// vnetDelay is the one-way delay of the virtual link (one router hop).
const vnetDelay = 100 * time.Millisecond

// chunkKind classifies a datagram by its first byte (RFC 7983).
type chunkKind int

const (
	kindSTUN chunkKind = iota
	kindDTLS
	kindMedia // SRTP and SRTCP
	kindOther
	numKinds
)

func classify(b []byte) chunkKind {
	switch {
	case len(b) == 0:
		return kindOther
	case b[0] <= 3:
		return kindSTUN
	case b[0] >= 20 && b[0] <= 63:
		return kindDTLS
	case b[0] >= 128 && b[0] <= 191:
		return kindMedia
	}
	return kindOther
}

// vnetLink is a vnet router joining the call networks of two gateways
// (10.0.0.2 and 10.0.0.3). Its filter drops each chunk with the loss
// probability, every chunk while cut, and for good the chunks of the
// 5-tuples marked dead. The loss draws come from one seeded generator per
// direction and kind of datagram, so the fate of, say, the first DTLS
// datagram alice sends depends on the seed only, not on how it
// interleaves with STUN and media. Safe for concurrent use.
type vnetLink struct {
	router *vnet.Router
	nets   [2]*vnet.Net

	mu      sync.Mutex
	loss    float64
	rng     map[lossKey]*rand.Rand
	cut     bool
	dead    map[string]bool // "src>dst"
	passed  [numKinds]int
	dropped [numKinds]int
}

func newVnetLink(t *testing.T, loss float64, seed int64) *vnetLink {
	t.Helper()
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", MinDelay: vnetDelay, LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	l := &vnetLink{router: r, loss: loss, rng: map[lossKey]*rand.Rand{}, dead: map[string]bool{}}
	for i := range l.nets {
		ip := fmt.Sprintf("10.0.0.%d", i+2)
		nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddNet(nw); err != nil {
			t.Fatal(err)
		}
		l.nets[i] = nw
		for k := range numKinds {
			l.rng[lossKey{ip, k}] = rand.New(rand.NewSource(seed*16 + int64(i)*4 + int64(k)))
		}
	}
	r.AddChunkFilter(l.filter)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return l
}

// lossKey names a loss generator: source IP and kind of datagram.
type lossKey struct {
	ip   string
	kind chunkKind
}

func (l *vnetLink) filter(c vnet.Chunk) bool {
	src, dst := c.SourceAddr().String(), c.DestinationAddr().String()
	k := classify(c.UserData())
	l.mu.Lock()
	defer l.mu.Unlock()
	drop := l.cut || l.dead[src+">"+dst]
	if !drop && l.loss > 0 {
		ip, _, _ := net.SplitHostPort(src)
		if g := l.rng[lossKey{ip, k}]; g != nil && g.Float64() < l.loss {
			drop = true
		}
	}
	if drop {
		l.dropped[k]++
	} else {
		l.passed[k]++
	}
	return !drop
}

// setCut cuts (true) or restores (false) the whole link.
func (l *vnetLink) setCut(on bool) {
	l.mu.Lock()
	l.cut = on
	l.mu.Unlock()
}

// kill blackholes the path between a and b, both ways, for good.
func (l *vnetLink) kill(a, b string) {
	l.mu.Lock()
	l.dead[a+">"+b], l.dead[b+">"+a] = true, true
	l.mu.Unlock()
}

func (l *vnetLink) counts() (passed, dropped [numKinds]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.passed, l.dropped
}

// onVnet puts a gateway's call media on nw: host candidates on the
// virtual network instead of the loopback-only ones callPair sets.
func onVnet(nw *vnet.Net, fs ...func(*Gateway)) func(*Gateway) {
	return func(g *Gateway) {
		g.callHooks.loopback = false
		g.cfg.CallNet = nw
		for _, f := range fs {
			f(g)
		}
	}
}

// vnetCtx bounds one test.
func vnetCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds, failing with its last report when
// ctx ends first (a hang guard, not a timing assertion).
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, report := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s (%s)", what, report)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func mustCall(t *testing.T, g *testGateway, id string) CallInfo {
	t.Helper()
	c, ok := g.Call(id)
	if !ok {
		t.Fatalf("%s has no call %s", g.bare(), id)
	}
	return c
}

// minDelivered is the least fraction of packets that must arrive over a
// link losing each chunk with probability loss: twice the loss and ten
// points of margin off 100% (0.80 at 5%, 0.50 at 20%). That is more than
// eight standard deviations of the binomial below the expected 1-loss for
// the ~145 packets measured per direction, and still more than 4.8 for a
// window of only 50.
func minDelivered(loss float64) float64 { return 1 - 2*loss - 0.1 }

// lossyCall runs a call with audio both ways over a link with the given
// loss and 100 ms delay: it must connect with the binding checked, and
// the packets sent while both sides were connected must arrive in at
// least the fraction minDelivered(loss).
func lossyCall(t *testing.T, loss float64, seed int64) {
	noLeaks(t)
	const packets = 150 // 3 s of audio each way
	dir := t.TempDir()
	aOgg, bOgg := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "b.ogg")
	writeTestOpus(t, aOgg, packets)
	writeTestOpus(t, bOgg, packets)
	link := newVnetLink(t, loss, seed)
	_, a, b := callPair(t, onVnet(link.nets[0]), onVnet(link.nets[1], answerWith(CallMedia{AudioFile: bOgg})))
	ctx := vnetCtx(t)
	start := time.Now()

	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg})
	if err != nil {
		t.Fatal(err)
	}
	ac := a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	bc := b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	setup := time.Since(start)
	if ac.State != CallConnected || bc.State != CallConnected || ac.SRTPProfile == "" || ac.SRTPProfile != bc.SRTPProfile {
		t.Fatalf("alice %+v\nbob %+v", ac, bc)
	}
	// The window: what each side sends from the moment both are connected.
	a0, b0 := mustCall(t, a, placed.ID), mustCall(t, b, placed.ID)
	waitUntil(t, ctx, "both files played", func() (bool, string) {
		x, y := mustCall(t, a, placed.ID), mustCall(t, b, placed.ID)
		return x.PacketsSent >= packets && y.PacketsSent >= packets, fmt.Sprintf("sent %d and %d of %d", x.PacketsSent, y.PacketsSent, packets)
	})
	want := minDelivered(loss)
	for _, d := range []struct {
		what             string
		from, to         *testGateway
		sent0, received0 uint64
	}{{"alice → bob", a, b, a0.PacketsSent, b0.PacketsReceived}, {"bob → alice", b, a, b0.PacketsSent, a0.PacketsReceived}} {
		window := float64(packets - d.sent0)
		waitUntil(t, ctx, d.what+": packets delivered", func() (bool, string) {
			got := mustCall(t, d.to, placed.ID).PacketsReceived - d.received0
			return float64(got) >= want*window, fmt.Sprintf("%d of %.0f sent while connected, want ≥ %.0f%%", got, window, 100*want)
		})
		sent, recv := mustCall(t, d.from, placed.ID).PacketsSent, mustCall(t, d.to, placed.ID).PacketsReceived
		if recv > sent {
			t.Fatalf("%s: %d packets received of %d sent (replay protection lets no duplicate through)", d.what, recv, sent)
		}
		t.Logf("%s: %d of %d packets (%.1f%%) in total, window of %.0f from %d", d.what, recv, sent, 100*float64(recv)/float64(sent), window, d.sent0)
	}
	passed, dropped := link.counts()
	if dropped[kindMedia] == 0 || dropped[kindDTLS] == 0 {
		t.Fatalf("the link dropped no media or no DTLS (passed %v, dropped %v): the seed no longer tests what it should", passed, dropped)
	}
	t.Logf("loss %.0f%%: set-up to binding passed %v; chunks passed %v dropped %v (STUN, DTLS, media, other)", 100*loss, setup.Round(time.Millisecond), passed, dropped)

	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := mustCall(t, a, placed.ID); end.State != CallEnded || end.EndReason != "success" || end.Binding != BindingPassed {
		t.Fatalf("alice's call after hang-up %+v", end)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" || end.Binding != BindingPassed {
		t.Fatalf("bob's call ended %+v", end)
	}
}

// TestCallVnetLoss5: 5% loss each way with 100 ms one-way delay. Seed 20
// loses the first DTLS datagram alice sends, so the handshake completes
// only by a retransmission.
func TestCallVnetLoss5(t *testing.T) { lossyCall(t, 0.05, 20) }

// TestCallVnetLoss20: 20% loss each way with 100 ms one-way delay: ICE
// and the DTLS handshake (by its retransmissions) still complete. Seed
// 138 loses the first DTLS datagram of each side.
func TestCallVnetLoss20(t *testing.T) { lossyCall(t, 0.20, 138) }

// iceLog records the ICE connection states of a gateway's call legs.
type iceLog struct {
	mu     sync.Mutex
	states []webrtc.ICEConnectionState
}

func (l *iceLog) hook(g *Gateway) {
	g.callHooks.iceState = func(_ string, s webrtc.ICEConnectionState) {
		l.mu.Lock()
		l.states = append(l.states, s)
		l.mu.Unlock()
	}
}

// since returns the states recorded from index i on, and the count.
func (l *iceLog) since(i int) ([]webrtc.ICEConnectionState, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]webrtc.ICEConnectionState(nil), l.states[min(i, len(l.states)):]...), len(l.states)
}

func hasState(ss []webrtc.ICEConnectionState, want ...webrtc.ICEConnectionState) bool {
	for _, s := range ss {
		for _, w := range want {
			if s == w {
				return true
			}
		}
	}
	return false
}

// selectedPath returns the addresses of a leg's selected candidate pair.
func selectedPath(p *mediaPeer) (local, remote string) {
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return "", ""
	}
	return net.JoinHostPort(pair.Local.Address, fmt.Sprint(pair.Local.Port)), net.JoinHostPort(pair.Remote.Address, fmt.Sprint(pair.Remote.Port))
}

// TestCallVnetICERestart: a running call over a 100 ms link loses its
// path completely. ICE on the caller's leg goes disconnected and the
// caller restarts ICE by itself (new credentials in protected
// transport-info both ways); the link comes back, but the old candidate
// pair stays dead, so only the restarted ICE can carry the call. It
// connects again on a new pair, media flows both ways again, and the call
// keeps its DTLS session: the same peer certificate, still matching the
// fingerprint of the protected Jingle, the binding still passed.
func TestCallVnetICERestart(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	aOgg, bOgg := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "b.ogg")
	writeTestOpus(t, aOgg, 1250) // 25 s: plays through the cut; the hang-up ends it
	writeTestOpus(t, bOgg, 1250)
	link := newVnetLink(t, 0, 1)
	var iceA, iceB iceLog
	_, a, b := callPair(t, onVnet(link.nets[0], iceA.hook), onVnet(link.nets[1], iceB.hook, answerWith(CallMedia{AudioFile: bOgg})))
	ctx := vnetCtx(t)
	start := time.Now()
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg})
	if err != nil {
		t.Fatal(err)
	}
	before := a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	legA, legB := a.calls.get(placed.ID).peerConn(), b.calls.get(placed.ID).peerConn()
	flowing := func(what string) {
		t.Helper()
		x0, y0 := mustCall(t, a, placed.ID).PacketsReceived, mustCall(t, b, placed.ID).PacketsReceived
		waitUntil(t, ctx, what, func() (bool, string) {
			x, y := mustCall(t, a, placed.ID).PacketsReceived, mustCall(t, b, placed.ID).PacketsReceived
			return x >= x0+10 && y >= y0+10, fmt.Sprintf("alice received %d more, bob %d more", x-x0, y-y0)
		})
	}
	flowing("media both ways")
	certA, certB := legA.pc.SCTP().Transport().GetRemoteCertificate(), legB.pc.SCTP().Transport().GetRemoteCertificate()
	ufragA, ufragB := remoteUfrag(legA), remoteUfrag(legB)
	oldLocal, oldRemote := selectedPath(legA)
	if oldLocal == "" || ufragA == "" || ufragB == "" || len(certA) == 0 || len(certB) == 0 {
		t.Fatalf("no selected pair (%q), credentials (%q %q) or certificates before the cut", oldLocal, ufragA, ufragB)
	}
	connected := time.Since(start)

	// Cut the path: every media chunk is lost.
	_, markA := iceA.since(0)
	_, markB := iceB.since(0)
	link.setCut(true)
	cut := time.Now()
	sentCut := mustCall(t, a, placed.ID).PacketsSent
	waitUntil(t, ctx, "ICE loses the path", func() (bool, string) {
		sa, _ := iceA.since(markA)
		sb, _ := iceB.since(markB)
		// The caller reports disconnected (and restarts); the callee may
		// see its agent restarted by the new offer before its own timer.
		return hasState(sa, webrtc.ICEConnectionStateDisconnected) &&
				hasState(sb, webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateChecking),
			fmt.Sprintf("alice %v, bob %v", sa, sb)
	})
	lost := time.Since(cut)
	// Nobody asked for it: the caller restarts ICE on its own.
	waitUntil(t, ctx, "ICE restart: new credentials both ways", func() (bool, string) {
		x, y := remoteUfrag(legA), remoteUfrag(legB)
		return x != "" && y != "" && x != ufragA && y != ufragB, fmt.Sprintf("alice has %q, bob %q", x, y)
	})
	restarted := time.Since(cut)
	sentRestart := mustCall(t, a, placed.ID).PacketsSent
	if c := mustCall(t, a, placed.ID); c.State != CallReconnecting {
		t.Fatalf("alice's call during the cut %+v", c) // a lost path is not the end of the call
	}

	// The network comes back, but not the old pair.
	link.kill(oldLocal, oldRemote)
	_, markA = iceA.since(0)
	_, markB = iceB.since(0)
	link.setCut(false)
	waitUntil(t, ctx, "ICE connected again", func() (bool, string) {
		sa, _ := iceA.since(markA)
		sb, _ := iceB.since(markB)
		return legA.pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected && legB.pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected &&
			hasState(sa, webrtc.ICEConnectionStateConnected) && hasState(sb, webrtc.ICEConnectionStateConnected), fmt.Sprintf("alice %v, bob %v", sa, sb)
	})
	waitUntil(t, ctx, "both calls connected again", func() (bool, string) {
		x, y := mustCall(t, a, placed.ID), mustCall(t, b, placed.ID)
		return x.State == CallConnected && y.State == CallConnected, fmt.Sprintf("alice %s, bob %s", x.State, y.State)
	})
	if l, r := selectedPath(legA); l == "" || l == oldLocal && r == oldRemote {
		t.Fatalf("alice's selected pair after the restart %s → %s, before %s → %s", l, r, oldLocal, oldRemote)
	}
	flowing("media both ways after the restart")
	recovered := time.Since(cut)

	// The same DTLS session, still bound to the protected fingerprints.
	for _, s := range []struct {
		who   string
		g     *testGateway
		leg   *mediaPeer
		cert  []byte
		other *testGateway
	}{{"alice", a, legA, certA, b}, {"bob", b, legB, certB, a}} {
		c := mustCall(t, s.g, placed.ID)
		if c.State != CallConnected || c.Binding != BindingPassed || c.SRTPProfile != before.SRTPProfile {
			t.Fatalf("%s's call after the restart %+v", s.who, c)
		}
		tr := s.leg.pc.SCTP().Transport()
		if st := tr.State(); st != webrtc.DTLSTransportStateConnected {
			t.Fatalf("%s's DTLS transport %s after the restart", s.who, st)
		}
		if !bytes.Equal(tr.GetRemoteCertificate(), s.cert) {
			t.Fatalf("%s: the peer certificate changed over the ICE restart", s.who)
		}
		fp, err := dtls.ParseFingerprint("sha-256", c.PeerFingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if err := (dtls.Binding{SID: placed.ID, Expected: fp}).CheckTransport(tr); err != nil {
			t.Fatalf("%s: binding after the restart: %v", s.who, err)
		}
		if c.PeerFingerprint != mustCall(t, s.other, placed.ID).LocalFingerprint {
			t.Fatalf("%s: peer fingerprint %s is not the peer's own", s.who, c.PeerFingerprint)
		}
	}
	passed, dropped := link.counts()
	t.Logf("connected and media after %v; after the cut: ICE lost %v, restarted %v, media again %v; alice sent %d packets during the cut; chunks passed %v dropped %v",
		connected.Round(time.Millisecond), lost.Round(time.Millisecond), restarted.Round(time.Millisecond), recovered.Round(time.Millisecond), sentRestart-sentCut, passed, dropped)

	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" || end.Binding != BindingPassed {
		t.Fatalf("bob's call ended %+v", end)
	}
}

// localUfrags records the distinct local ICE ufrags of a leg as they
// change.
type localUfrags struct{ seen []string }

func (u *localUfrags) note(p *mediaPeer) int {
	if f, _ := p.localCredentials(); f != "" && (len(u.seen) == 0 || u.seen[len(u.seen)-1] != f) {
		u.seen = append(u.seen, f)
	}
	return len(u.seen)
}

// TestCallVnetReconnecting (item A): the path of a running call is cut
// for longer than one ICE restart. Both calls report reconnecting (an
// event, and in CallInfo); the caller restarts ICE again with backoff;
// when the link comes back, the call connects again (an event) and media
// flows. A path that stays cut ends the call after CallOutageTimeout with
// connectivity-error, on both sides.
func TestCallVnetReconnecting(t *testing.T) {
	for _, back := range []bool{true, false} {
		t.Run(fmt.Sprintf("path back %v", back), func(t *testing.T) {
			noLeaks(t)
			dir := t.TempDir()
			aOgg, bOgg := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "b.ogg")
			writeTestOpus(t, aOgg, 1250) // 25 s: plays through the cut
			writeTestOpus(t, bOgg, 1250)
			link := newVnetLink(t, 0, 1)
			outage := func(g *Gateway) { g.cfg.CallOutageTimeout = 20 * time.Second }
			if !back {
				outage = func(g *Gateway) { g.cfg.CallOutageTimeout = 6 * time.Second }
			}
			_, a, b := callPair(t, onVnet(link.nets[0], outage), onVnet(link.nets[1], outage, answerWith(CallMedia{AudioFile: bOgg})))
			ctx := vnetCtx(t)
			placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg})
			if err != nil {
				t.Fatal(err)
			}
			a.waitCall(t, placed.ID, "alice: connected", func(c CallInfo) bool { return c.State == CallConnected })
			b.waitCall(t, placed.ID, "bob: connected", func(c CallInfo) bool { return c.State == CallConnected })
			legA := a.calls.get(placed.ID).peerConn()
			var ufrags localUfrags
			ufrags.note(legA)

			link.setCut(true)
			a.waitCall(t, placed.ID, "alice: reconnecting", func(c CallInfo) bool { return c.State == CallReconnecting })
			b.waitCall(t, placed.ID, "bob: reconnecting", func(c CallInfo) bool { return c.State == CallReconnecting })
			// Longer than one restart: the caller restarts a second time.
			waitUntil(t, ctx, "two ICE restarts during the cut", func() (bool, string) {
				return ufrags.note(legA) >= 3, fmt.Sprintf("local ufrags %v", ufrags.seen)
			})
			if !back {
				for _, g := range []*testGateway{a, b} {
					if end := g.waitEnded(t, placed.ID); end.EndReason != "connectivity-error" || end.Detail == "" {
						t.Fatalf("%s's call after the outage %+v", g.bare(), end)
					}
				}
				return
			}
			if c := mustCall(t, a, placed.ID); c.State != CallReconnecting {
				t.Fatalf("alice's call during the cut %+v", c)
			}
			link.setCut(false)
			a.waitCall(t, placed.ID, "alice: connected again", func(c CallInfo) bool { return c.State == CallConnected })
			b.waitCall(t, placed.ID, "bob: connected again", func(c CallInfo) bool { return c.State == CallConnected })
			x0, y0 := mustCall(t, a, placed.ID).PacketsReceived, mustCall(t, b, placed.ID).PacketsReceived
			waitUntil(t, ctx, "media both ways again", func() (bool, string) {
				x, y := mustCall(t, a, placed.ID).PacketsReceived, mustCall(t, b, placed.ID).PacketsReceived
				return x >= x0+10 && y >= y0+10, fmt.Sprintf("alice received %d more, bob %d more", x-x0, y-y0)
			})
			if c := mustCall(t, a, placed.ID); c.Binding != BindingPassed {
				t.Fatalf("alice's call after the outage %+v", c)
			}
			if err := a.HangUp(ctx, placed.ID); err != nil {
				t.Fatal(err)
			}
			if end := b.waitEnded(t, placed.ID); end.EndReason != "success" {
				t.Fatalf("bob's call ended %+v", end)
			}
		})
	}
}
