package gateway

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// TestReviewICERestartAnswerLost: the path of a connected call is cut;
// the caller restarts ICE; the server drops the callee's answer (its
// transport-infos with the new credentials). The caller's restart stays
// "unanswered" for the rest of the call (callRun.restarting is cleared
// only by an answer), so retryRestart never restarts again: with the path
// back, the call cannot recover and ends with connectivity-error after
// CallOutageTimeout, one restart and no retry in the whole outage.
// (restartICE also leaves restarting set when its own transport-info
// fails to be sent, e.g. while the XMPP connection is re-established.)
func TestReviewICERestartAnswerLost(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	aOgg, bOgg := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "b.ogg")
	writeTestOpus(t, aOgg, 1250)
	writeTestOpus(t, bOgg, 1250)
	link := newVnetLink(t, 0, 1)
	outage := func(g *Gateway) { g.cfg.CallOutageTimeout = 10 * time.Second }
	srv, a, b := callPair(t, onVnet(link.nets[0], outage), onVnet(link.nets[1], outage, answerWith(CallMedia{AudioFile: bOgg})))
	h := &hostile{}
	srv.SetHook(h.hook)
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

	var drop atomic.Bool
	var dropped atomic.Int32
	drop.Store(true)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if drop.Load() && isProtectedIQSet(st, bobJID, aliceJID) {
			dropped.Add(1)
			return nil
		}
		return []localxmpp.Stanza{st}
	})
	link.setCut(true)
	waitUntil(t, ctx, "alice restarted ICE and bob's answer was dropped", func() (bool, string) {
		return ufrags.note(legA) >= 2 && dropped.Load() > 0, fmt.Sprintf("ufrags %v, dropped %d", ufrags.seen, dropped.Load())
	})
	link.setCut(false) // the path is back
	for {
		n := ufrags.note(legA)
		if n >= 3 {
			drop.Store(false) // a second restart: let its answer through
			a.waitCall(t, placed.ID, "alice: connected again", func(c CallInfo) bool { return c.State == CallConnected })
			break
		}
		if c := mustCall(t, a, placed.ID); c.State == CallEnded {
			t.Fatalf("after one lost restart answer alice never restarted ICE again (local ufrags %v) although the outage lasted %v with retries due at 2, 4, 8 s; the call ended %s: %s",
				ufrags.seen, a.outageTimeoutForTest(), c.EndReason, c.Detail)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("hang guard: local ufrags %v", ufrags.seen)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	b.waitEnded(t, placed.ID)
}

func (g *Gateway) outageTimeoutForTest() time.Duration { return g.cfg.CallOutageTimeout }
