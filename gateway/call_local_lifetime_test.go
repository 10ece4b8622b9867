package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/localpeer"
)

// TestLocalCallLifetimeDoneBeforePlace (review rvweb5): a call placed
// with a Lifetime (its web session) that has already ended is either
// refused or hung up at once; it never stays up.
func TestLocalCallLifetimeDoneBeforePlace(t *testing.T) {
	noLeaks(t)
	_, a, _ := callPair(t, nil, nil)
	ctx := testCtx(t)
	life, end := context.WithCancel(context.Background())
	end()
	certA := sessionCert(t)
	sa := localpeer.New(t, "alice", certA)
	t0 := time.Now()
	info, answer, err := a.PlaceLocalCall(ctx, bobJID, LocalOffer{SDP: sa.Offer(t), Certificate: certA, Lifetime: life})
	if err != nil {
		t.Logf("place refused: %v", err)
		return
	}
	sa.Answered(t, answer, localpeer.Pinned(certA))
	in := a.waitEnded(t, info.ID)
	t.Logf("alice ended after %v: %s (%s) local leg %q", time.Since(t0), in.EndReason, in.Detail, in.LocalLeg)
}

// TestLocalCallLifetimeDoneBeforeAnswer: the same for an answer made with
// a Lifetime that has already ended: both sides see the call end.
func TestLocalCallLifetimeDoneBeforeAnswer(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	life, end := context.WithCancel(context.Background())
	end()
	certA, certB := sessionCert(t), sessionCert(t)
	sa, sb := localpeer.New(t, "alice", certA), localpeer.New(t, "bob", certB)
	info, answer, err := a.PlaceLocalCall(ctx, bobJID, LocalOffer{SDP: sa.Offer(t), Certificate: certA})
	if err != nil {
		t.Fatal(err)
	}
	sa.Answered(t, answer, localpeer.Pinned(certA))
	b.waitCall(t, info.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
	t0 := time.Now()
	answer, err = b.AnswerLocalCall(ctx, info.ID, LocalOffer{SDP: sb.Offer(t), Certificate: certB, Lifetime: life})
	if err != nil {
		t.Logf("answer refused: %v", err)
		return
	}
	sb.Answered(t, answer, localpeer.Pinned(certB))
	in := b.waitEnded(t, info.ID)
	t.Logf("bob ended after %v: %s (%s) local leg %q", time.Since(t0), in.EndReason, in.Detail, in.LocalLeg)
	in = a.waitEnded(t, info.ID)
	t.Logf("alice: %s (%s)", in.EndReason, in.Detail)
}
