package gateway

// PoC tests of the second attacker review of the call channel (issue 8).
// Each one shows a weakness of the current code: it fails (or logs the
// bad behaviour) until the weakness is fixed.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// recordSink keeps every alert the notifier hands it.
type recordSink struct {
	mu     sync.Mutex
	alerts []policy.Alert
}

func (s *recordSink) Send(_ context.Context, a policy.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
	return nil
}

func (s *recordSink) rules() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.alerts {
		r := a.Decision.Rule
		if a.Summary {
			r += "(summary)"
		}
		out = append(out, r)
	}
	return out
}

// mitmBob makes bob's leg present another certificate than the one his
// protected answer signals: a man in the middle on the media path.
func mitmBob() func(*Gateway) {
	signaled := must(dtls.NewCertificate())
	return func(g *Gateway) {
		g.callHooks.cert = func() *dtls.Certificate { return must(dtls.NewCertificate()) }
		g.callHooks.mutateOutgoing = func(j *jingle.Jingle) {
			for i := range j.Contents {
				if tr := j.Contents[i].Transport; tr != nil && tr.Fingerprint != nil {
					tr.Fingerprint.Value = signaled.Fingerprint().String()
				}
			}
		}
	}
}

// TestReviewBindingAlertMaskedByForgedCleartext: with the default alert
// de-duplication (60 s per peer, kind and action, whatever the rule or
// severity), a hostile server that forges one cleartext JMI propose "from"
// the peer just before it intercepts the media path (its own TURN relay)
// and one just after makes the critical dtls-binding alert vanish: the
// sinks (user notice, audit log, API event stream) get the benign
// "unprotected Jingle refused" alert, and the window's summary names that
// rule too. The call itself still fails closed (security-error).
func TestReviewBindingAlertMaskedByForgedCleartext(t *testing.T) {
	noLeaks(t)
	sink := &recordSink{}
	srv, a, b := callPairOpts(t, gwOptions{dedup: true, sinks: []policy.Sink{sink}},
		gwOptions{setup: withSetup(mitmBob(), answerWith(CallMedia{Audio: true}))})
	ctx := testCtx(t)
	// The server forges a plain propose from bob: alice refuses it and
	// alerts (rule default-refuse-unprotected-jingle).
	inject(t, srv, plainPropose(b.JID(), a.JID(), "forged-before"))
	a.waitEvent(t, "the forged propose's alert", isCallAlert("default-refuse-unprotected-jingle"))

	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	end := a.waitEnded(t, placed.ID)
	if end.EndReason != "security-error" || end.Binding != BindingFailed {
		t.Fatalf("alice's call %+v", end)
	}
	// One more forged propose: the window's last alert is benign again.
	inject(t, srv, plainPropose(b.JID(), a.JID(), "forged-after"))
	if err := b.SendChat(ctx, aliceJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "barrier", isChat("barrier"))
	poll(t, "the queued alert of the second forged propose was handed to the notifier", func() bool {
		a.alertQ.mu.Lock()
		defer a.alertQ.mu.Unlock()
		return len(a.alertQ.order) == 0 && !a.alertQ.running
	})
	// The window closes (as it does 60 s later, or on shutdown).
	if err := a.notifier.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := sink.rules()
	if !slices.Contains(got, "dtls-binding") && !slices.Contains(got, "dtls-binding(summary)") {
		t.Fatalf("the intercepted call's dtls-binding alert never reached a sink; the sinks got only %v", got)
	}
}

// TestReviewHangUpMediaOutlivesDroppedTerminate: the user hangs up a
// connected call; a hostile server drops the protected session-terminate
// (never answers the IQ). The call's goroutine waits callSendTimeout
// (10 s) for the answer, then sends the JMI finish (which, like every
// message, waits without a deadline when the server stops reading:
// gateway.send), and only then closes the media leg: until then our
// playback keeps streaming to the peer and its media keeps being
// recorded, after the user hung up.
func TestReviewHangUpMediaOutlivesDroppedTerminate(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	aOgg := filepath.Join(dir, "a.ogg")
	writeTestOpus(t, aOgg, 1500) // 30 s
	srv, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true}))
	h := &hostile{}
	srv.SetHook(h.hook)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: connected", func(c CallInfo) bool { return c.State == CallConnected })
	b.waitCall(t, placed.ID, "bob: connected", func(c CallInfo) bool { return c.State == CallConnected })
	var dropped atomic.Int32
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if isProtectedIQSet(st, aliceJID, bobJID) {
			dropped.Add(1)
			return nil
		}
		return []localxmpp.Stanza{st}
	})
	hung := make(chan error, 1)
	go func() { hung <- a.HangUp(context.WithoutCancel(ctx), placed.ID) }()
	poll(t, "the server dropped alice's session-terminate", func() bool { return dropped.Load() > 0 })
	sent0 := mustCall(t, a, placed.ID).PacketsSent
	for {
		c := mustCall(t, a, placed.ID)
		if c.State == CallEnded {
			break // the leg closed at once: what a hang-up should do
		}
		if c.PacketsSent >= sent0+25 {
			t.Errorf("alice hung up, the server dropped her session-terminate: her leg sent %d more packets to bob after the hang-up (state %s)", c.PacketsSent-sent0, c.State)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-hung; err != nil {
		t.Fatal(err)
	}
	h.set(nil)
	b.waitEnded(t, placed.ID)
}

// TestReviewContentRemoveAcknowledgedMediaGoesOn: docs/protocol.md §14.7.1
// says content-* is answered feature-not-implemented, but content-remove
// (and content-accept/-reject, transport-accept/-reject) is answered with
// a result and applied to the jingle.Session only: after bob removes the
// only content, alice's session knows no content, her leg goes on
// sending on it (the peer was told it was removed), and her ICE restart
// of the running call fails (the transport-info names a content the
// session no longer has).
func TestReviewContentRemoveAcknowledgedMediaGoesOn(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	aOgg := filepath.Join(dir, "a.ogg")
	writeTestOpus(t, aOgg, 1500)
	_, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true}))
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: connected", func(c CallInfo) bool { return c.State == CallConnected })
	b.waitCall(t, placed.ID, "bob: connected", func(c CallInfo) bool { return c.State == CallConnected })
	ca, cb := a.calls.get(placed.ID), b.calls.get(placed.ID)
	mids := sdpMids(ca.peerConn().pc.LocalDescription().SDP)
	if len(mids) != 1 {
		t.Fatalf("mids %v", mids)
	}
	rm := &jingle.Jingle{Action: jingle.ActionContentRemove, SID: placed.ID,
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: mids[0]}}}
	_, err = cb.sendJingle(rm)
	ca.mu.Lock()
	_, known := ca.sess.Status(jingle.ContentKey{Creator: jingle.CreatorInitiator, Name: mids[0]})
	ca.mu.Unlock()
	sent0 := mustCall(t, a, placed.ID).PacketsSent
	poll(t, "alice's leg sends on", func() bool { return mustCall(t, a, placed.ID).PacketsSent >= sent0+10 })
	rerr := ca.postWait(ctx, callMsg{kind: msgRestartICE})
	if err == nil {
		t.Errorf("bob's content-remove of the only content was acknowledged (known to alice's session afterwards: %v); alice's call stays %s and her leg sends on; her ICE restart now fails: %v",
			known, mustCall(t, a, placed.ID).State, rerr)
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	b.waitEnded(t, placed.ID)
}

// TestReviewRetractRedirectedToWinner: the caller's retract that tells a
// late device "answered elsewhere" is addressed to that device's full JID
// but sealed for every device of the callee's account (the envelope binds
// bare JIDs only). The server hands a copy to the device that won, with
// its own full JID as 'to': that device opens its entry for the first
// time (no replay; the server routes it to the desk instead of the
// phone, whose carbon would otherwise reach the desk first), the proposal machine takes a retract while
// proceeding, and the established, connected call ends as "answered
// elsewhere" on the device that answered it.
func TestReviewRetractRedirectedToWinner(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	srv, h, a, phone, desk, placed, held := ringBothHoldPhone(t)
	if err := phone.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	if err := desk.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed with the desk", func(c CallInfo) bool { return c.Binding == BindingPassed })
	desk.waitCall(t, placed.ID, "desk: connected", func(c CallInfo) bool { return c.State == CallConnected })
	// The phone's late proceed reaches alice now; her retract to the
	// phone is copied to the desk as well.
	toPhone := regexp.MustCompile(`to=['"]` + regexp.QuoteMeta(phone.JID().String()) + `['"]`)
	var redirected atomic.Int32
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && st.From.Equal(a.JID()) && st.To.Equal(phone.JID()) {
			redirected.Add(1)
			cp := restanza(t, toPhone.ReplaceAll(st.Raw, []byte(`to="`+desk.JID().String()+`"`)))
			return []localxmpp.Stanza{cp} // the carbon of the original would use the desk's key first
		}
		return []localxmpp.Stanza{st}
	})
	for len(held) > 0 {
		if err := srv.Inject(<-held); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "alice's retract to the phone was redirected to the desk", func() bool { return redirected.Load() > 0 })
	// A barrier behind the copy on the desk's connection.
	if err := a.SendChat(ctx, bobJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	desk.waitEvent(t, "barrier", isChat("barrier"))
	if err := desk.calls.get(placed.ID).postWait(ctx, callMsg{kind: msgNop}); err != nil && !errors.Is(err, ErrCallState) && !errors.Is(err, ErrUnknownCall) {
		t.Fatal(err)
	}
	if c := mustCall(t, desk, placed.ID); c.State == CallEnded {
		t.Fatalf("the desk's connected call was ended by alice's retract meant for the phone: %s (%s)", c.EndReason, c.Detail)
	}
	h.set(nil)
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	desk.waitEnded(t, placed.ID)
}

// TestReviewLoopbackExceptionAnyTypeAnyPort: with a STUN/TURN server of
// ours on this host (turn:localhost), the exception meant for the peer's
// relay candidate on that server takes any candidate at 127.0.0.1 or ::1:
// a host (not relay) candidate, at any port (here 22 and 6379), so the
// peer makes this host send ICE checks to its own local services — what
// candidateAddrErr refuses loopback for.
func TestReviewLoopbackExceptionAnyTypeAnyPort(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, func(g *Gateway) { g.callHooks.loopback = false })
	c := unstartedCall(t, a, b, "loopback-exception")
	r := &callRun{iceLoopback: iceServerLoopback([]webrtc.ICEServer{{URLs: []string{"turn:localhost:3478"}}})}
	var taken []string
	for _, ip := range []string{"127.0.0.1", "::1"} {
		for _, port := range []uint16{22, 6379} {
			cand := hostCand(ip, port) // typ host
			if c.takeRemoteCandidate(r, "u", cand) {
				taken = append(taken, fmt.Sprintf("%s %s:%d", cand.Type, ip, port))
			}
		}
	}
	if len(taken) > 0 {
		t.Fatalf("loopback candidates the peer chose were taken: %v", taken)
	}
}
