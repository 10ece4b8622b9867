package gateway

// Review rvfileup: the attacker review of the front's file upgrade
// (front_files_up.go, front_files_down.go). Each test failed on the
// reviewed code (two of them crashed the daemon).

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

// Review PoCs (h/rvfileup) of the gateway's upgrade of a client's plain
// file offer (front_files_up.go).

// rvUpload returns the one upgrade of the front of u.
func rvUpload(t *testing.T, u *upTest) *frontUpload {
	t.Helper()
	f := u.a.Front()
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	for _, x := range f.up.byJingle {
		return x
	}
	t.Fatal("no upgrade in the table")
	return nil
}

// TestFrontUploadCloseRacesIdleFail: the client's IBB <close/> is being
// handled (its result waits in forward: the client's queue is full, a
// client that reads slowly) when the upgrade fails (the idle timer, or
// the client disconnecting, in run). onIBB then sets the phase back to
// checksum without looking at it again and, the offer having a hash,
// calls complete on the ended upgrade: Sync on the nil spool file fails,
// abort runs a second time, close(u.done) panics (close of closed
// channel) in the client's reader goroutine and the whole daemon dies;
// dropUpload also subtracts the file's size from reserved a second time
// (an underflow). The test binary crashes on the unfixed code.
func TestFrontUploadCloseRacesIdleFail(t *testing.T) {
	data := []byte("hello, race")
	sum := sha256.Sum256(data)
	u := startUpTestIdle(t, false, 300*time.Millisecond, nil)
	s, ans := u.start(t, "rv-race", "race.txt", len(data), sum[:])
	if ans.Type != "result" {
		t.Fatalf("offer answered %s", stanzaText(ans))
	}
	if st := s.open(); st.Type != "result" {
		t.Fatalf("open: %s", stanzaText(st))
	}
	if st := s.data(data); st.Type != "result" {
		t.Fatalf("data: %s", stanzaText(st))
	}
	up := rvUpload(t, u)
	c := up.c
	// The client's queue is full: forward waits for the writer.
	c.queued.Add(frontQueueBytes)
	s.c.send(t, `<iq type="set" id="rv-close" to="`+s.to+`"><close xmlns="http://jabber.org/protocol/ibb" sid="`+s.ibb+`"/></iq>`)
	// The idle timer fails the upgrade while the reader waits.
	deadline := time.Now().Add(10 * time.Second)
	for {
		up.mu.Lock()
		ended := up.phase == upEnded
		up.mu.Unlock()
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upgrade did not time out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The client reads again.
	c.queued.Add(-frontQueueBytes)
	select {
	case c.space <- struct{}{}:
	default:
	}
	u.ac.wait(t, "the result of the close", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "rv-close" })
	// Whatever the outcome, the accounting is whole and the daemon alive.
	time.Sleep(200 * time.Millisecond)
	f := u.a.Front()
	f.up.mu.Lock()
	reserved, total := f.up.reserved, f.up.total
	f.up.mu.Unlock()
	if reserved != 0 || total != 0 {
		t.Errorf("after the upgrade ended: reserved %d bytes, %d receiving; want 0, 0", reserved, total)
	}
	u.spoolEmpty(t)
}

// TestFrontDownloadFloodsIQMarks: every IQ an offer of a received file
// sends a client (one per IBB block) adds a mark to the front-wide set
// of the front's own IQ ids (ours), which the answer never removes
// (downloadAnswer consumes it first). One download of 4096 blocks (the
// client picks the block size: here 16 bytes) leaves the set full of
// stale marks for 10 minutes, and each add evicts a random mark: those
// of other clients' upgrades (session-accept, transport-accept,
// session-terminate) awaiting their answer too. An answer whose mark
// was evicted is no longer consumed and goes upstream to the contact
// (with whatever the client echoes in an error, the offer's file
// description included).
func TestFrontDownloadFloodsIQMarks(t *testing.T) {
	a, b, bc := startDownTest(t)
	data := make([]byte, 64<<10)
	src := writeFile(t, t.TempDir(), "blocks.bin", data)
	f := b.Front()
	// An upgrade's IQ to another client, its answer still to come.
	other := &frontClient{}
	victim := upKey{c: other, id: "victim"}.mark("iq")
	f.up.ours.add(victim, maxUploadMarks, uploadMarkTTL, b.now())
	if _, err := a.SendFiles(testCtx(t), jid.MustParse(bobPhone), []string{src}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	st, j, fc := offerTo(t, bc)
	tr, _ := (&filexfer.IBBTransport{SID: fc.IBB.SID, BlockSize: 16}).Raw()
	acc, _ := (&jingle.Jingle{Action: jingle.ActionSessionAccept, SID: j.SID, Responder: "bob@" + testDomain + "/client",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: j.Contents[0].Name, Senders: jingle.SendersInitiator, Other: []jingle.Raw{tr}}}}).Marshal()
	bc.send(t, `<iq type="set" id="acc1" to="`+st.From.String()+`">`+string(acc)+`</iq>`)
	bc.wait(t, "the accept's result", func(s *Stanza) bool { return s.ID == "acc1" && s.Type == "result" })
	for done := false; !done; {
		s := bc.wait(t, "IBB", func(s *Stanza) bool {
			return s.Kind == "iq" && s.Type == "set" && s.From.String() == st.From.String() &&
				(s.Child(filexfer.IBBNamespace, "open") != nil || s.Child(filexfer.IBBNamespace, "data") != nil || s.Child(filexfer.IBBNamespace, "close") != nil)
		})
		done = s.Child(filexfer.IBBNamespace, "close") != nil
		bc.send(t, `<iq type="result" id="`+s.ID+`" to="`+s.From.String()+`"/>`)
	}
	f.up.ours.mu.Lock()
	n := len(f.up.ours.m)
	f.up.ours.mu.Unlock()
	// Answered IQs need no mark: at most the victim and the terminate's.
	if n > 2 {
		t.Errorf("after the download the front remembers %d ids of its IQs (the bound is %d); want only those still unanswered", n, maxUploadMarks)
	}
	if !f.up.ours.has(victim, b.now()) {
		t.Errorf("another client's upgrade lost the mark of its pending IQ to the download's blocks: its answer would go upstream")
	}
}

// TestFrontUploadHeldTransferEvicted: a held upgrade waits for its
// encrypted transfer in send, which loops while g.Transfer does not find
// it (!ok: continue). The table keeps at most maxTransferHistory (64)
// ended transfers: a burst of other transfers ending (a contact's
// offers declined at once) evicts this one before send looks it up (its
// event lost to the full subscriber buffer, or handled after the
// eviction). send then polls forever: the spool file, the held slot
// (maxFrontHeld) and the goroutine stay until the gateway stops, and the
// client is never told. Here the eviction is done directly.
func TestFrontUploadHeldTransferEvicted(t *testing.T) {
	u := startUpTestWith(t, false, 0, nil, false)
	data := []byte("a file whose transfer leaves the table")
	sum := sha256.Sum256(data)
	s, _ := u.start(t, "evict", "evicted.txt", len(data), sum[:])
	s.send(data)
	if term := s.jingleFrom(jingle.ActionSessionTerminate); term.Reason == nil || term.Reason.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminate %+v", term.Reason)
	}
	u.ac.wait(t, "the held notice", isNotice("offered it to bob@"+testDomain))
	in := u.b.waitTransfer(t, "", "bob's pending offer", inState(TransferPending))
	var id string
	for _, x := range u.a.Transfers() {
		if x.Direction == TransferOutgoing {
			id = x.ID
		}
	}
	if id == "" {
		t.Fatal("no outgoing transfer at alice")
	}
	u.a.files.remove(id) // evicted from the history
	if err := u.b.DeclineTransfer(testCtx(t), in.ID); err != nil {
		t.Fatal(err)
	}
	u.spoolEmpty(t)
	f := u.a.Front()
	f.up.mu.Lock()
	held := f.up.held
	f.up.mu.Unlock()
	if held != 0 {
		t.Errorf("%d spooled files still held", held)
	}
}

// TestFrontUploadTrickleHoldsEveryClient: an upgrade is bounded by its
// idle timeout per stanza, not in total or in rate: a block of one byte
// just inside each idle period keeps it receiving for as long as the
// offered size allows (at the default 30 s and max_file_size, for
// years). Two clients (one program logged in twice) hold the front's
// maxFrontUploads (4) upgrades that way, and no other client can send a
// file through the front meanwhile.
func TestFrontUploadTrickleEnded(t *testing.T) {
	const idle = 400 * time.Millisecond
	u := startUpTestIdle(t, false, idle, nil)
	c2 := u.fa.login(t, "alice@"+testDomain+"/client2")
	var trickle []*ibbSender
	for i, c := range []*plainClient{u.ac, u.ac, c2, c2} {
		sid := "slow" + strconv.Itoa(i)
		s := &ibbSender{t: t, c: c, to: bobPhone, sid: sid, ibb: "ibb-" + sid, block: 4096}
		if ans := s.offer("slow.bin", 1<<20, nil); ans.Type != "result" {
			t.Fatalf("offer %d answered %s", i, stanzaText(ans))
		}
		s.jingleFrom(jingle.ActionSessionAccept)
		if st := s.open(); st.Type != "result" {
			t.Fatalf("open: %s", stanzaText(st))
		}
		trickle = append(trickle, s)
	}
	// One byte per upgrade, well inside each idle period, for 5 of them:
	// below the least rate once the grace period passed, each upgrade
	// is ended (its next byte is answered item-not-found).
	ended := map[int]bool{}
	for end := time.Now().Add(5 * idle); time.Now().Before(end); time.Sleep(idle / 4) {
		for i, s := range trickle {
			if !ended[i] && s.data([]byte{'x'}).Type != "result" {
				ended[i] = true
			}
		}
	}
	if len(ended) != len(trickle) {
		t.Errorf("%d of %d trickling upgrades were ended", len(ended), len(trickle))
	}
	c3 := u.fa.login(t, "alice@"+testDomain+"/client3")
	s := &ibbSender{t: t, c: c3, to: bobPhone, sid: "honest", ibb: "ibb-honest", block: 4096}
	if ans := s.offer("honest.txt", 5, nil); ans.Type != "result" {
		t.Errorf("another client's offer, after the trickling upgrades ran 5 idle timeouts at 1 byte each: %s", stanzaText(ans))
	}
}

// TestFrontDownloadLookupTwice: uploadStanza looks the client's Jingle
// request up among the offers of received files twice (front_files_up.go
// "case t.download(...) != nil: t.download(...).onJingle"); the offer's
// own goroutine dropping it between the two (it ended: success, the
// client's error answer, a timeout) makes the second nil, and onJingle
// on a nil *frontDownload panics in the client's reader goroutine: the
// daemon dies. Here one goroutine ends and re-registers an offer in a
// loop while the client's session-info for it is handled; the unfixed
// code panics within a few thousand rounds.
func TestFrontDownloadLookupTwice(t *testing.T) {
	_, a, _ := pairWith(t, nil)
	f := a.Front()
	c := &frontClient{f: f, jid: jid.MustParse("alice@" + testDomain + "/client"),
		out: make(chan []byte, frontQueue), space: make(chan struct{}, 1), done: make(chan struct{})}
	stop := make(chan struct{})
	drained := make(chan struct{})
	go func() { // the client's writer
		defer close(drained)
		for {
			select {
			case b := <-c.out:
				c.queued.Add(-int64(len(b)))
				select {
				case c.space <- struct{}{}:
				default:
				}
			case <-stop:
				return
			}
		}
	}()
	peer := jid.MustParse("bob@" + testDomain + "/phone")
	d := &frontDownload{c: c, peer: peer, sid: "down-sid", ibb: "down-ibb", ev: make(chan downEvent, 8)}
	churned := make(chan struct{})
	go func() { // the offer's goroutine: ends, and another offer of the same sid
		defer close(churned)
		for {
			select {
			case <-stop:
				return
			default:
			}
			f.reserveDownload(d)
			f.dropDownload(d)
		}
	}()
	raw := []byte(`<iq xmlns="jabber:client" type="set" id="i1" to="` + peer.String() + `"><jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="down-sid"/></iq>`)
	m, err := parseStanzaIn(raw, nsClient)
	if err != nil {
		t.Fatal(err)
	}
	for range 20000 {
		c.uploadStanza(m)
	}
	close(stop)
	<-churned
	<-drained
}

// TestFrontUploadOverPeerLimitRefused: the offer-time checks do not
// ask the file table whether one more outgoing transfer to the contact
// fits (maxTransfersPerPeer, maxLiveTransfers), nor do they bound held
// files by it: with 4 transfers to bob waiting for his decision, a
// client's fifth file is taken, spooled and acknowledged with success,
// and only then does SendFiles fail (ErrTooManyTransfers); the client
// that shows "sent" was told success for a file that went nowhere.
func TestFrontUploadOverPeerLimitRefused(t *testing.T) {
	u := startUpTestWith(t, false, 0, nil, false)
	for i := range maxTransfersPerPeer + 1 {
		data := []byte("file number " + strconv.Itoa(i))
		sum := sha256.Sum256(data)
		name := "n" + strconv.Itoa(i) + ".txt"
		s, ans := u.start(t, "lim"+strconv.Itoa(i), name, len(data), sum[:])
		if ans.Type != "result" {
			if i == maxTransfersPerPeer {
				return // refused before the file was taken: what we want
			}
			t.Fatalf("offer %d answered %s", i, stanzaText(ans))
		}
		s.send(data)
		term := s.jingleFrom(jingle.ActionSessionTerminate)
		if i < maxTransfersPerPeer {
			u.ac.wait(t, "the held notice", isNotice("offered it to bob@"+testDomain))
			continue
		}
		if term.Reason != nil && term.Reason.Condition == jingle.ReasonSuccess {
			st := u.ac.wait(t, "the outcome", isNotice(name))
			t.Errorf("file %d: the client was told success, then: %s", i, stanzaText(st))
		}
	}
}
