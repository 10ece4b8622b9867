package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestAnswerGivenUp: an answer or decline whose request ended before
// the call took it (the page was closed, the client gave up) has no
// effect: the call still rings and can be answered or declined.
func TestAnswerGivenUp(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCall(t, placed.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
	for _, try := range []func() error{
		func() error { return b.AnswerCall(gone, placed.ID, CallMedia{Audio: true}) },
		func() error { return b.DeclineCall(gone, placed.ID) },
	} {
		if err := try(); !errors.Is(err, context.Canceled) {
			t.Fatalf("with a cancelled request: %v", err)
		}
		// The call's goroutine has handled whatever it took once it
		// handled a message sent after.
		if err := b.calls.get(placed.ID).postWait(ctx, callMsg{kind: msgNop}); err != nil {
			t.Fatal(err)
		}
		if in, _ := b.callInfo(placed.ID); in.State != CallRinging {
			t.Fatalf("a cancelled request was carried out: the call is %s", in.State)
		}
	}
	if err := b.DeclineCall(ctx, placed.ID); err != nil {
		t.Fatalf("decline after requests that were given up: %v", err)
	}
	b.waitEnded(t, placed.ID)
	a.waitEnded(t, placed.ID)
}

// TestAnswerLocalCallRaces: two pages answer one ringing call at once
// while a third declines it: one of them wins, the others are refused
// (ErrCallState), and every local leg made for the losers is given back.
// Answering an outgoing call, an unknown id or an ended call is refused.
func TestAnswerLocalCallRaces(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AnswerLocalCall(ctx, placed.ID, LocalOffer{SDP: browserLikeOffer(t)}); !errors.Is(err, ErrCallState) {
		t.Errorf("answering an outgoing call: %v, want ErrCallState", err)
	}
	if _, err := b.AnswerLocalCall(ctx, "no-such-call", LocalOffer{SDP: browserLikeOffer(t)}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("answering an unknown call: %v, want ErrUnknownCall", err)
	}
	b.waitCall(t, placed.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
	offers := []string{browserLikeOffer(t), browserLikeOffer(t)}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range offers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.AnswerLocalCall(ctx, placed.ID, LocalOffer{SDP: offers[i]})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[2] = b.DeclineCall(ctx, placed.ID)
	}()
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrCallState) && !errors.Is(err, ErrUnknownCall):
			t.Errorf("contender %d: %v, want ErrCallState", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d contenders won: %v", won, errs)
	}
	a.HangUp(ctx, placed.ID)
	b.waitEnded(t, placed.ID)
	if _, err := b.AnswerLocalCall(ctx, placed.ID, LocalOffer{SDP: browserLikeOffer(t)}); !errors.Is(err, ErrUnknownCall) && !errors.Is(err, ErrCallState) {
		t.Errorf("answering an ended call: %v", err)
	}

	// Two pages answer while the caller hangs up: whoever wins, no local
	// leg is left once the call ended.
	placed, err = a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCall(t, placed.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
	offers = []string{browserLikeOffer(t), browserLikeOffer(t)}
	for i := range offers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.AnswerLocalCall(ctx, placed.ID, LocalOffer{SDP: offers[i]})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[2] = a.HangUp(ctx, placed.ID)
	}()
	wg.Wait()
	for i, err := range errs[:2] {
		if err != nil && !errors.Is(err, ErrCallState) && !errors.Is(err, ErrUnknownCall) {
			t.Errorf("answer %d racing the caller's hang-up: %v", i, err)
		}
	}
	b.waitEnded(t, placed.ID)
	b.calls.wg.Wait() // every call's goroutine is done
	b.calls.mu.Lock()
	n := b.calls.locals
	b.calls.mu.Unlock()
	if n != 0 {
		t.Errorf("%d local legs left after the calls", n)
	}
}
