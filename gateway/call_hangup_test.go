package gateway

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestCallHangUpWhilePlaying: hanging up while a long file still plays
// ends the call at once; the playback does not hold the media leg's close
// (and with it the call's goroutine) until the file's end.
func TestCallHangUpWhilePlaying(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "long.ogg")
	writeTestOpus(t, in, 3000) // 60 s
	_, a, b := callPair(t, nil, answerWith(CallMedia{AudioFile: in}))
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: in})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second) // far less than the file
	defer cancel()
	if err := a.HangUp(hctx, placed.ID); err != nil {
		t.Fatalf("hang-up during playback: %v", err)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("bob's call ended %+v", end)
	}
}
