// Regression tests from the independent review of 2026-11-25: each one
// failed against the code it reviewed and pins the fix.

package e2e

import (
	"errors"
	"fmt"
	"testing"
)

// R1: the tie-break loser's first message, delivered to the winner only
// after the winner's session is established, replaces that session with a
// responder session. Both sides are then responders; the session is dead.
func TestRegressionLateLoserFirstMessageKillsSession(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk) // wins the tie (alice < bob)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	b1 := send(t, b, a, "bob first (delayed by the server)")
	a1 := send(t, a, b, "alice first")
	recv(t, a, b, a1, "alice first")               // bob was pending and loses: becomes responder
	recv(t, b, a, send(t, b, a, "reply"), "reply") // alice completes
	recv(t, a, b, send(t, a, b, "ok"), "ok")
	recv(t, b, a, send(t, b, a, "ok2"), "ok2")
	// Now the server delivers bob's withheld first message.
	_, _, err := a.OpenChat(chatCtx(b, a), b1)
	t.Logf("late loser first message at alice: err=%v", err)
	ia, _ := a.Session(dev(b))
	ib, _ := b.Session(dev(a))
	t.Logf("alice initiator=%v, bob initiator=%v", ia.Initiator, ib.Initiator)
	el := send(t, a, b, "after")
	if _, _, err := b.OpenChat(chatCtx(a, b), el); err != nil {
		t.Errorf("alice->bob after late delivery: %v", err)
	}
	el = send(t, b, a, "after2")
	if _, _, err := a.OpenChat(chatCtx(b, a), el); err != nil {
		t.Errorf("bob->alice after late delivery: %v", err)
	}
	// Does it ever recover?
	for i := 0; i < 3; i++ {
		_, _, e1 := b.OpenChat(chatCtx(a, b), send(t, a, b, fmt.Sprint(i)))
		_, _, e2 := a.OpenChat(chatCtx(b, a), send(t, b, a, fmt.Sprint(i)))
		if e1 != nil || e2 != nil {
			t.Logf("round %d: a->b %v, b->a %v", i, e1, e2)
		}
	}
}

// R2: a second first message of the loser still in flight when the winner's
// session completes is lost: the shadow is deleted at establishment and
// the replay cache refuses it.
func TestRegressionLoserSecondFirstMessageLost(t *testing.T) {
	clk := newClock()
	a := newTestEngine(t, "alice@example.org", clk)
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	b1, b2 := send(t, b, a, "bob 1"), send(t, b, a, "bob 2")
	a1 := send(t, a, b, "alice 1")
	recv(t, b, a, b1, "bob 1")                     // alice pending, wins: shadow
	recv(t, a, b, a1, "alice 1")                   // bob loses, becomes responder
	recv(t, b, a, send(t, b, a, "reply"), "reply") // alice established, shadow deleted
	if _, _, err := a.OpenChat(chatCtx(b, a), b2); err != nil {
		t.Errorf("bob's second first message, delivered late: %v (message lost)", err)
	}
	_ = errors.Is
}
