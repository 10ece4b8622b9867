package gateway

// Attacks on the file channel found in review (issue 9), now regression
// tests: each failed on the code it was written against (its comment
// says how) and checks the fixed behaviour.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	if !errors.Is(err, ErrNoSpace) {
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

// TestAttackAutoAcceptFailedWedges: the accepter takes an offer that
// does not fit on the disk; the failed auto-accept must leave the offer
// to the user (accept elsewhere or decline), not wedged with deciding
// set.
func TestAttackAutoAcceptFailedWedges(t *testing.T) {
	_, a, b, _ := filePair(t, nil, func(g *Gateway) {
		g.cfg.MaxFileSize = 1 << 60
		g.cfg.FileAccepter = func(TransferInfo) (string, bool) { return "", true }
	})
	ctx := testCtx(t)
	sid := newTransferID()
	f := filexfer.File{Name: "huge.bin", Size: 1 << 50, HasSize: true, HashesUsed: []string{"sha-256"}}
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOfferFile(t, sid, f, 7), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	// A no-op through the transfer's queue: start (and its auto-accept)
	// ran before it.
	if err := b.files.get(sid).postWait(ctx, xferMsg{kind: xmAction}); err != nil {
		t.Fatal(err)
	}
	if in, _ := b.Transfer(sid); in.State != TransferPending {
		t.Fatalf("the failed auto-accept moved the offer to %s (%s)", in.State, in.Detail)
	}
	if err := b.DeclineTransfer(ctx, sid); err != nil {
		t.Fatalf("after a failed auto-accept the offer cannot be declined: %v", err)
	}
	if in, _ := b.Transfer(sid); in.State != TransferDeclined {
		t.Fatalf("declined offer is %s", in.State)
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
	if in := b.waitTransfer(t, sid, "pending", inState(TransferPending)); b.onRoster(in.Peer) || !in.Stranger {
		t.Fatalf("alice is on bob's roster (stranger %v)", in.Stranger)
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

// rawOffer2 is a session-initiate of two files with their sha-256 in the
// offer, each on IBB (ibb-<content>-<sid>) under key k.
func rawOffer2(t *testing.T, sid string, k []byte, data map[string][]byte) []byte {
	t.Helper()
	var cs []jingle.Content
	for _, name := range []string{"f", "g"} {
		h := sha256.Sum256(data[name])
		dr, _ := (&filexfer.Description{File: filexfer.File{Name: name + ".bin", Size: uint64(len(data[name])), HasSize: true,
			Hashes: []filexfer.Hash{{Algo: "sha-256", Value: h[:]}}}}).Raw()
		tr, _ := (&filexfer.IBBTransport{SID: "ibb-" + name + "-" + sid, BlockSize: 8192}).Raw()
		sr, _ := filexfer.NewSecurity(name, filexfer.CipherAES256GCM, k, 0).Raw()
		cs = append(cs, jingle.Content{Creator: jingle.CreatorInitiator, Name: name, Senders: jingle.SendersInitiator, Other: []jingle.Raw{dr, tr, sr}})
	}
	b, err := (&jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: "alice@" + testDomain + "/laptop", Contents: cs}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttackPumpReportDropped: the pump's reports went through x.post,
// which drops a message when the transfer's queue (64) is full. The
// sender fills the queue with session-info while the receiver's
// goroutine waits for the sender's answer to <received/> of the first
// file (the sender answers when it likes, up to fileSendTimeout); the
// pump meanwhile receives and saves the second file and its reports were
// dropped: the file on disk, complete and verified, but the transfer
// never learnt it (no <received/>, never completed). Now the pump's
// reports have a channel of their own with room for all of them. The
// test is deterministic: the queue is filled while the goroutine is
// known to be blocked, and released once the pump handed over its last
// report.
func TestAttackPumpReportDropped(t *testing.T) {
	sid, key := newTransferID(), bytes.Repeat([]byte{5}, 32)
	lastReported := make(chan struct{})
	var lastOnce sync.Once
	_, a, b, reg := filePair(t, nil, func(g *Gateway) {
		g.fileHooks.pumpReported = func(id string, p pumpReport) {
			if id == sid && p.file == 1 && p.phase == phaseVerified {
				lastOnce.Do(func() { close(lastReported) })
			}
		}
	})
	blocked, release := make(chan struct{}), make(chan struct{})
	var once, relOnce sync.Once
	unblock := func() { relOnce.Do(func() { close(release) }) }
	defer unblock()
	a.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) {
		if bytes.Contains(req.Payload, []byte("received")) {
			once.Do(func() { close(blocked) })
			<-release // the hostile sender answers late
		}
		return nil, nil
	})
	ctx := testCtx(t)
	data := map[string][]byte{"f": randBytes(t, 1000), "g": randBytes(t, 1000)}
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOffer2(t, sid, key, data), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, sid, ""); err != nil {
		t.Fatal(err)
	}
	sendFile := func(name string) {
		tr, _ := (&filexfer.IBBTransport{SID: "ibb-" + name + "-" + sid, BlockSize: 8192}).Raw()
		pipe, err := memTransport{reg}.connect(ctx, &transportEnv{sid: sid, content: name}, tr, tr)
		if err != nil {
			t.Error(err)
			return
		}
		p := filexfer.StreamParams{Key: key, Cipher: filexfer.CipherAES256GCM, ChunkSize: filexfer.SecurityDefaultChunkSize, SID: sid,
			Content: name, Sender: filexfer.SenderInitiator, Size: uint64(len(data[name]))}
		if err := filexfer.SendStream(ctx, pipe, bytes.NewReader(data[name]), p, 0, filexfer.StreamOptions{}); err != nil {
			t.Error(err)
		}
		pipe.Close()
	}
	sendFile("f")
	select {
	case <-blocked: // bob's goroutine waits for the answer to <received/> of f
	case <-ctx.Done():
		t.Fatal("no <received/> of f")
	}
	// Fill bob's queue as a flood of session-info would (the handler
	// posts them the same way).
	x := b.files.get(sid)
	junk := mustJingle(t, mustMarshal(t, &jingle.Jingle{Action: jingle.ActionSessionInfo, SID: sid, Info: []jingle.Raw{mustRaw(t, `<x xmlns="urn:review:junk"/>`)}}))
	for x.post(xferMsg{kind: xmJingle, jingle: junk}) {
	}
	if len(x.q) != cap(x.q) {
		t.Fatalf("queue at %d of %d", len(x.q), cap(x.q))
	}
	sendFile("g")
	select {
	case <-lastReported: // the pump handed over the verification of g
	case <-ctx.Done():
		t.Fatal("the pump never reported g verified")
	}
	unblock()
	in := b.waitTransfer(t, sid, "completed", inState(TransferCompleted))
	if got, _ := os.ReadFile(filepath.Join(b.cfg.DownloadDir, "g.bin")); !bytes.Equal(got, data["g"]) {
		t.Fatal("g.bin differs")
	}
	if in.Files[1].State != TransferCompleted {
		t.Fatalf("g.bin is %s", in.Files[1].State)
	}
}

func mustMarshal(t *testing.T, j *jingle.Jingle) []byte {
	t.Helper()
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRaw(t *testing.T, s string) jingle.Raw {
	t.Helper()
	j, err := jingle.Parse([]byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="x">` + s + `</jingle>`))
	if err != nil || len(j.Info) != 1 {
		t.Fatalf("%v", err)
	}
	return j.Info[0]
}

// TestAttackReplaceFlood: the sender may send transport-replace after
// transport-replace (each answered with transport-accept). On IBB each
// one registered an expected stream with the session's IBBStreams and
// left goroutines waiting up to 2*fileConnectTimeout after the next
// replace stopped the pump; nothing bounded them. Now the peer's
// replaces are capped (maxPeerReplacesPerMinute, maxPeerReplaces; the
// rest are refused with resource-constraint) and a stopped attempt's
// stream is unregistered at once.
func TestAttackReplaceFlood(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	ibbOnly := func(g *Gateway) { g.cfg.FileTransports = []string{TransportIBB} }
	_, a, b, _ := filePairWith(t, true, ibbOnly, func(g *Gateway) {
		ibbOnly(g)
		g.cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	accepted := make(chan struct{}, 1024)
	a.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) {
		if bytes.Contains(req.Payload, []byte("transport-accept")) {
			accepted <- struct{}{}
		}
		return nil, nil
	})
	ctx := testCtx(t)
	sid := newTransferID()
	f := filexfer.File{Name: "x.bin", Size: 1 << 20, HasSize: true, HashesUsed: []string{"sha-256"}}
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOfferFile(t, sid, f, 7), false); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, sid, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, sid, ""); err != nil {
		t.Fatal(err)
	}
	streams, err := b.ibbStreams()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := 0, 0 // replaces sent, accepted
	replace := func() error {
		tr, _ := (&filexfer.IBBTransport{SID: fmt.Sprintf("flood-%d-%s", n, sid), BlockSize: 4096}).Raw()
		n++
		j := &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: sid,
			Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f", Senders: jingle.SendersInitiator, Other: []jingle.Raw{tr}}}}
		if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", mustMarshal(t, j), false); err != nil {
			return err
		}
		ok++
		select {
		case <-accepted: // bob answered: the next replace may go
		case <-ctx.Done():
			t.Fatal("no transport-accept")
		}
		if got := streams.Len(); got != 1 {
			t.Fatalf("after replace %d: %d IBB streams registered, want the current one only", n, got)
		}
		return nil
	}
	refused := func(err error) bool {
		var pe *ProtectedError
		return errors.As(err, &pe) && bytes.Contains(pe.Payload, []byte("resource-constraint"))
	}
	for minute := 0; ; minute++ {
		for k := 0; k < maxPeerReplacesPerMinute; k++ {
			if err := replace(); err != nil {
				if ok == maxPeerReplaces && refused(err) {
					return // the transfer's cap
				}
				t.Fatalf("replace %d (minute %d) refused: %v", n, minute, err)
			}
		}
		if err := replace(); !refused(err) {
			t.Fatalf("replace %d, the %dth in a minute: %v", n, maxPeerReplacesPerMinute+1, err)
		}
		if ok > maxPeerReplaces {
			t.Fatalf("%d replaces and no cap", n)
		}
		clock.Add(int64(time.Minute))
	}
}

// TestAttackContentActionsRefused: content-remove (and every other
// content-* action) of a transfer is refused with feature-not-implemented
// in each state, and changes nothing: the session machine would have
// dropped the content while the transfer still moved its file.
func TestAttackContentActionsRefused(t *testing.T) {
	for _, st := range []reviewState{rsPending, rsConnecting} {
		t.Run(st.String(), func(t *testing.T) {
			s := setupReview(t, st)
			before, _ := s.b.Transfer(s.sid)
			ref := []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f"}}
			for _, a := range []jingle.Action{jingle.ActionContentRemove, jingle.ActionContentReject, jingle.ActionContentAccept} {
				err := s.send(t, &jingle.Jingle{Action: a, SID: s.sid, Contents: ref})
				var pe *ProtectedError
				if !errors.As(err, &pe) || !bytes.Contains(pe.Payload, []byte("feature-not-implemented")) {
					t.Fatalf("%s answered %v", a, err)
				}
			}
			s.b.files.get(s.sid).mu.Lock()
			_, ok := s.b.files.get(s.sid).sess.Status(jingle.ContentKey{Creator: jingle.CreatorInitiator, Name: "f"})
			s.b.files.get(s.sid).mu.Unlock()
			if in, _ := s.b.Transfer(s.sid); !ok || in.State.Ended() || (before.State == TransferPending) != (in.State == TransferPending) {
				t.Fatalf("content f in the session: %v; transfer %s, was %s", ok, in.State, before.State)
			}
		})
	}
}

// TestFileMinFree: Config.FileMinFree is kept free in the receiving
// directory: an accept that would leave less fails with ErrNoSpace and
// the offer stays pending; the offer records that its sender is a
// contact (Stranger false).
func TestFileMinFree(t *testing.T) {
	_, a, b, _ := filePair(t, nil, func(g *Gateway) { g.cfg.FileMinFree = 1 << 60 })
	ctx := testCtx(t)
	sid := newTransferID()
	f := filexfer.File{Name: "small.bin", Size: 10, HasSize: true, HashesUsed: []string{"sha-256"}}
	if _, _, err := a.SendProtectedIQ(ctx, jidOf("bob@"+testDomain+"/phone"), "set", rawOfferFile(t, sid, f, 7), false); err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, sid, "pending", inState(TransferPending))
	if in.Stranger {
		t.Fatal("alice is on bob's roster")
	}
	if err := b.AcceptTransfer(ctx, sid, ""); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("accept with min free 1 EiB: %v", err)
	}
	if in, _ := b.Transfer(sid); in.State != TransferPending {
		t.Fatalf("offer %s", in.State)
	}
}
