package gateway

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A hang-up ends the call while its files are still playing: playback
// stops with the media leg instead of running to the end of the file
// (regression: close waited for the players, which only watched the
// call's context, so a hang-up took as long as the rest of the file).
func TestCallHangUpStopsPlayback(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	const long = 3000 // 60 s of 20 ms packets
	aOgg, bOgg := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "b.ogg")
	writeTestOpus(t, aOgg, long)
	writeTestOpus(t, bOgg, long)
	_, a, b := callPair(t, nil, answerWith(CallMedia{AudioFile: bOgg}))
	placed, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{AudioFile: aOgg})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	// Far less than the 60 s the files last: the old code could not
	// finish the hang-up within it.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatalf("hang-up while playing: %v", err)
	}
	end, ok := a.Call(placed.ID)
	if !ok || end.State != CallEnded {
		t.Fatalf("alice's call after hang-up: %+v", end)
	}
	if end.PacketsSent >= long {
		t.Fatalf("alice sent %d packets: the whole file played before the hang-up ended", end.PacketsSent)
	}
	if bEnd := b.waitEnded(t, placed.ID); bEnd.EndReason != "success" {
		t.Fatalf("bob's call ended %+v", bEnd)
	}
}
