package gateway

// Attacks on the file channel found in review (issue 9). Each test shows
// the bad behaviour on the code it was written against; see the comment
// of each for the expected (fixed) behaviour.

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// rawReplace builds a transport-replace of content name of session sid
// to IBB, as the initiator (the sender of the bytes) sends it.
func rawReplace(t *testing.T, sid, name string) []byte {
	t.Helper()
	tr, err := (&filexfer.IBBTransport{SID: "ibb2-" + sid, BlockSize: 4096}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	j := &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: sid,
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: name, Senders: jingle.SendersInitiator, Other: []jingle.Raw{tr}}}}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttackReplaceWhilePending: a contact offers a file and, before the
// user decides, sends a transport-replace of its content. The session
// machine takes a transport-replace in the pending state; the transfer's
// goroutine then reads xf.recv (nil until accept) in onTransportReplace
// and starts the pump of a transfer nobody accepted. On the reviewed code
// the process dies with a nil pointer dereference. Expected: the replace
// is refused (out-of-order or transport-reject) while pending, and the
// transfer stays pending.
func TestAttackReplaceWhilePending(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	sid := newTransferID()
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOffer(t, sid, true), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	_, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawReplace(t, sid, "f"), false)
	t.Logf("transport-replace while pending answered: %v", err)
	// Give the transfer's goroutine the message (a ping behind it on the
	// same queue is answered only once the replace was handled).
	ping, _ := (&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: sid}).Marshal()
	a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", ping, false)
	in, _ := b.Transfer(sid)
	if in.State != TransferPending {
		t.Fatalf("a transport-replace before the accept moved the transfer to %s (%s)", in.State, in.Detail)
	}
}

// rawOfferFile builds a session-initiate of one file f carried by IBB
// under our security element (key k, chunk size 0: the default).
func rawOfferFile(t *testing.T, sid string, f filexfer.File, key byte) []byte {
	t.Helper()
	dr, err := (&filexfer.Description{File: f}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := (&filexfer.IBBTransport{SID: "ibb-" + sid, BlockSize: 8192}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	sr, err := filexfer.NewSecurity("f", filexfer.CipherAES256GCM, bytes.Repeat([]byte{key}, 32), 0).Raw()
	if err != nil {
		t.Fatal(err)
	}
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: "alice@" + testDomain + "/laptop",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f", Senders: jingle.SendersInitiator, Other: []jingle.Raw{dr, tr, sr}}}}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttackAcceptNoSpaceWedges: an offer larger than the free space of
// the download directory (but under max_file_size) makes the accept fail
// with ErrQuota "free space ..., or accept into another directory". The
// gateway keeps x.deciding set after that error, so the transfer stays
// pending and can be neither accepted elsewhere nor declined (nor by the
// daemon's accept_timeout, which declines); it holds a pending slot and
// a per-peer slot until filePendingTimeout (24h). The same happens to a
// failed auto-accept (start sets deciding and never clears it). Expected:
// a second accept into another directory, or a decline, works.
func TestAttackAcceptNoSpaceWedges(t *testing.T) {
	_, a, b, _ := filePair(t, nil, func(g *Gateway) { g.cfg.MaxFileSize = 1 << 60 })
	ctx := testCtx(t)
	sid := newTransferID()
	f := filexfer.File{Name: "huge.bin", Size: 1 << 50, HasSize: true, HashesUsed: []string{"sha-256"}}
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOfferFile(t, sid, f, 7), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	err := b.AcceptTransfer(ctx, sid, "")
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("accept of a file larger than the disk: %v", err)
	}
	t.Logf("accept: %v", err)
	errAgain := b.AcceptTransfer(ctx, sid, t.TempDir())
	errDecline := b.DeclineTransfer(ctx, sid)
	in, _ := b.Transfer(sid)
	if errDecline != nil || in.State == TransferPending {
		t.Fatalf("after a failed accept the offer is wedged: accept elsewhere: %v; decline: %v; state %s", errAgain, errDecline, in.State)
	}
}

// TestAttackReplaceWhilePendingStranger: the same crash from an account
// that is not on the receiver's roster: an offer of ours from a stranger
// is allowed to wait (maxStrangerOffers), so anyone with a certified
// device can kill the receiver's daemon.
func TestAttackReplaceWhilePendingStranger(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	b.mu.Lock()
	delete(b.roster, "alice@"+testDomain) // alice becomes a stranger to bob
	b.mu.Unlock()
	ctx := testCtx(t)
	sid := newTransferID()
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOffer(t, sid, true), false); err != nil {
		t.Fatal(err)
	}
	if in := b.waitTransfer(t, sid, "pending", inState(TransferPending)); b.onRoster(in.Peer) {
		t.Fatal("alice is on bob's roster")
	}
	a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawReplace(t, sid, "f"), false)
	ping, _ := (&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: sid}).Marshal()
	a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", ping, false)
	if in, _ := b.Transfer(sid); in.State != TransferPending {
		t.Fatalf("a stranger's transport-replace before the accept moved the transfer to %s (%s)", in.State, in.Detail)
	}
}

// TestAttackResumeAfterRefusedReplace: the receiver's automatic resume
// sends a transport-replace; the peer (or its server, or a timeout)
// answers with an error. sendJingleCtx applied the replace to the session
// machine before sending, so the session still counts our replace as
// pending, and every later transport-replace of ours for that content is
// refused locally as out-of-order: ResumeTransfer can never work again
// (the same after one lost IQ). Expected: a replace whose IQ failed is
// not pending; the user's resume goes out.
func TestAttackResumeAfterRefusedReplace(t *testing.T) {
	s := setupReview(t, rsFailed) // alice refused bob's automatic resume
	// Alice is back and would take the resume now.
	var got atomic.Int32
	s.a.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) {
		if bytes.Contains(req.Payload, []byte("transport-replace")) {
			got.Add(1)
		}
		return nil, nil
	})
	err := s.b.ResumeTransfer(testCtx(t), s.sid)
	if err != nil || got.Load() == 0 {
		t.Fatalf("resume after one refused transport-replace: %v (%d replaces reached the peer)", err, got.Load())
	}
}
