package gateway

import (
	"github.com/pion/webrtc/v4"

	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCallDuration: CallMedia.Duration hangs the call up with success
// after it connected.
func TestCallDuration(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true}))
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if end := a.waitEnded(t, placed.ID); end.EndReason != "success" || end.Binding != BindingPassed {
		t.Fatalf("alice's call %+v", end)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("bob's call %+v", end)
	}
}

// TestCallDurationFromFirstConnect: the media connection of a running
// call fails and comes back (an ICE restart): CallMedia.Duration still
// counts from the first connect, so its timer is armed once, with the
// whole duration, and not again by the reconnect.
func TestCallDurationFromFirstConnect(t *testing.T) {
	noLeaks(t)
	var mu sync.Mutex
	var armed []time.Duration
	// The outage is the test's: alice's call sees the ICE state it
	// plays, not the real path's (which, on a loaded machine, may fail
	// or come back on its own in between; and which a played event alone
	// would not change: the call reads the state that holds).
	var ice atomic.Int32
	ice.Store(int32(webrtc.ICEConnectionStateConnected))
	aliceSetup := func(g *Gateway) {
		g.callHooks.durationArmed = func(d time.Duration) { mu.Lock(); armed = append(armed, d); mu.Unlock() }
		g.callHooks.iceNow = func() webrtc.ICEConnectionState { return webrtc.ICEConnectionState(ice.Load()) }
	}
	_, a, b := callPair(t, aliceSetup, answerWith(CallMedia{Audio: true}))
	ctx := testCtx(t)
	const d = time.Hour // never runs out here: the test hangs up
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true, Duration: d})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: connected", func(c CallInfo) bool { return c.State == CallConnected })
	c := a.calls.get(placed.ID)
	// The path fails (alice restarts ICE and waits) and comes back.
	ice.Store(int32(webrtc.ICEConnectionStateDisconnected))
	c.notePion(func(e *pionEvents) { e.ice = webrtc.ICEConnectionStateDisconnected })
	if err := c.postWait(ctx, callMsg{kind: msgNop}); err != nil { // handled
		t.Fatal(err)
	}
	if in := mustCall(t, a, placed.ID); in.State != CallReconnecting {
		t.Fatalf("alice's call during the outage %+v", in)
	}
	ice.Store(int32(webrtc.ICEConnectionStateConnected))
	c.notePion(func(e *pionEvents) {
		e.ice, e.pc = webrtc.ICEConnectionStateConnected, webrtc.PeerConnectionStateConnected
	})
	if err := c.postWait(ctx, callMsg{kind: msgNop}); err != nil {
		t.Fatal(err)
	}
	if in := mustCall(t, a, placed.ID); in.State != CallConnected {
		t.Fatalf("alice's call after the outage %+v", in)
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("bob's call %+v", end)
	}
	a.waitEnded(t, placed.ID)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(armed, []time.Duration{d}) {
		t.Fatalf("the duration timer was armed with %v; want once with %v", armed, d)
	}
}
