package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

var aliceLaptop = jid.MustParse("alice@" + testDomain + "/laptop")

// asked is what bob asks alice for: a file of an earlier offer.
func asked(in TransferInfo, i int, name string) filexfer.File {
	return filexfer.File{Name: name, Size: in.Files[i].Size, HasSize: true}
}

// endedOther waits for the end of a transfer other than id.
func endedOther(id string) func(TransferInfo) bool {
	return func(in TransferInfo) bool { return in.ID != id && in.State.Ended() }
}

// cutSession offers src from alice to bob, cuts the first pipe in the
// fourth chunk and every later one at once (the resumes inside the
// session fail), then ends the session from alice's side (as when her
// device lost it): bob keeps the verified prefix. cut is the pipes'
// wrapper; cutting stops with stop.
type cutSession struct {
	mu      sync.Mutex
	conns   []*faultyConn
	cutting bool
}

func (c *cutSession) stop() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutting = false
	return len(c.conns)
}

func (c *cutSession) conn(i int) *faultyConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.conns) {
		return nil
	}
	return c.conns[i]
}

func cutAndEnd(t *testing.T, a, b *testGateway, reg *memRegistry, src ...string) (*cutSession, TransferInfo) {
	t.Helper()
	ctx := testCtx(t)
	cs := filexfer.SecurityDefaultChunkSize
	c := &cutSession{cutting: true}
	first := int64(filexfer.StreamHeaderLen) + 3*int64(cs+filexfer.StreamTagLen) + 100
	reg.cut = func(conn net.Conn, n int) io.ReadWriteCloser {
		c.mu.Lock()
		defer c.mu.Unlock()
		fc := &faultyConn{Conn: conn, flip: -1}
		switch {
		case len(c.conns) == 0:
			fc.limit = first
		case c.cutting:
			fc.limit = 1
		}
		c.conns = append(c.conns, fc)
		return fc
	}
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), src, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, out.ID, ""); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "failed after the resumes inside the session", inState(TransferFailed))
	a.files.get(out.ID).post(xferMsg{kind: xmAction, action: xferCancel, reason: jingle.ReasonConnectivityError, detail: "test: the session was lost"})
	failed := b.waitTransfer(t, out.ID, "session ended", func(in TransferInfo) bool { return in.State == TransferFailed && strings.Contains(in.Detail, "kept") })
	if failed.Files[0].Done != 3*uint64(cs) {
		t.Fatalf("verified %d bytes, want %d", failed.Files[0].Done, 3*cs)
	}
	a.waitTransfer(t, out.ID, "ended here", func(in TransferInfo) bool { return in.State == TransferFailed && strings.Contains(in.Detail, "test:") })
	leftovers(t, b.cfg.DownloadDir, len(src)) // the kept partial files
	return c, failed
}

// TestFileResumeAcrossSessions: a transfer is cut, then its session ends;
// bob keeps the verified prefix, and ResumeTransfer asks alice for the
// rest in a new session (a request from the kept offset): nothing before
// it is sent again, and the file is the source.
func TestFileResumeAcrossSessions(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	ctx := testCtx(t)
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 6*cs+123)
	src := writeFile(t, t.TempDir(), "big.bin", data)
	cut, out := cutAndEnd(t, a, b, reg, src)
	if err := b.ResumeTransfer(ctx, out.ID+"-nope"); !errors.Is(err, ErrUnknownTransfer) {
		t.Fatalf("unknown id: %v", err)
	}
	before := cut.stop()

	if err := b.ResumeTransfer(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, "", "resumed transfer", endedOther(out.ID))
	if in.State != TransferCompleted || in.Direction != TransferIncoming || !in.Resumed || in.ResumedFrom != 3*uint64(cs) {
		t.Fatalf("resumed: %s (%s), resumed %v from %d", in.State, in.Detail, in.Resumed, in.ResumedFrom)
	}
	got, err := os.ReadFile(in.Files[0].Path)
	if err != nil || !bytes.Equal(got, data) || in.Files[0].Hash != sha(data) || filepath.Base(in.Files[0].Path) != "big.bin" {
		t.Fatalf("the resumed file differs (%v), hash %s", err, in.Files[0].Hash)
	}
	served := a.waitTransfer(t, in.ID, "served", func(x TransferInfo) bool { return x.State.Ended() })
	if served.State != TransferCompleted || served.Direction != TransferOutgoing || served.ResumedFrom != 3*uint64(cs) {
		t.Fatalf("served: %+v", served)
	}
	// Nothing before the kept offset went over the new session's pipe.
	if cut.conn(before+1) != nil {
		t.Fatal("more than one pipe in the new session")
	}
	p := filexfer.StreamParams{ChunkSize: uint32(cs), Size: uint64(len(data))}
	if w := cut.conn(before).count(); uint64(w) != p.WireSize(3*uint64(cs)) {
		t.Fatalf("the request's stream was %d bytes, want %d", w, p.WireSize(3*uint64(cs)))
	}
	leftovers(t, b.cfg.DownloadDir, 1)
	if old, _ := b.Transfer(out.ID); !strings.Contains(old.Detail, in.ID) {
		t.Fatalf("the old transfer does not name its continuation: %q", old.Detail)
	}
	if err := b.ResumeTransfer(ctx, out.ID); err == nil {
		t.Fatal("resumed twice")
	}
}

// TestFileResumeAcrossSessionsChanged: the source changed in the part
// that was sent before the cut: the resume is declined and the kept
// prefix removed. A cancel removes a kept prefix too.
func TestFileResumeAcrossSessionsChanged(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	ctx := testCtx(t)
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 6*cs+123)
	src := writeFile(t, t.TempDir(), "big.bin", data)
	cut, out := cutAndEnd(t, a, b, reg, src)
	cut.stop()
	fi, _ := os.Stat(src)
	f, err := os.OpenFile(src, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^data[0]}, 0)
	f.Close()
	os.Chtimes(src, fi.ModTime(), fi.ModTime())
	if err := b.ResumeTransfer(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, "", "resume refused", endedOther(out.ID))
	if in.State != TransferDeclined || !strings.Contains(in.Detail, "changed") {
		t.Fatalf("resume of a changed file: %s (%s)", in.State, in.Detail)
	}
	if mine := a.waitTransfer(t, in.ID, "declined here", func(x TransferInfo) bool { return x.State.Ended() }); !strings.Contains(mine.Detail, "hash differently") {
		t.Fatalf("sender: %s (%s)", mine.State, mine.Detail)
	}
	leftovers(t, b.cfg.DownloadDir, 0)
	if err := b.ResumeTransfer(ctx, out.ID); err == nil {
		t.Fatal("a declined resume can be resumed again")
	}

	// Another transfer cut and ended, then cancelled: its prefix goes.
	os.WriteFile(src, data, 0o600)
	_, out2 := cutAndEnd(t, a, b, reg, src)
	if err := b.CancelTransfer(ctx, out2.ID); err != nil {
		t.Fatal(err)
	}
	leftovers(t, b.cfg.DownloadDir, 0)
	if err := b.ResumeTransfer(ctx, out2.ID); err == nil {
		t.Fatal("a cancelled kept transfer was resumed")
	}
}

// TestFileRequestChangedSource: a file sent before is asked for again, served
// from the start, unchanged; one that changed since is refused.
func TestFileRequestChangedSource(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	data := randBytes(t, 3*filexfer.SecurityDefaultChunkSize+5)
	src := writeFile(t, t.TempDir(), "notes.bin", data)
	_, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted {
		t.Fatalf("first transfer %s (%s)", in.State, in.Detail)
	}
	// Unchanged: served again, saved under a new name.
	f := asked(in, 0, "notes.bin")
	again, err := b.RequestFile(ctx, aliceLaptop, f, "")
	if err != nil {
		t.Fatal(err)
	}
	got := b.waitTransfer(t, again.ID, "requested", func(x TransferInfo) bool { return x.State.Ended() })
	if got.State != TransferCompleted || got.Files[0].Hash != sha(data) || filepath.Base(got.Files[0].Path) != "notes (1).bin" {
		t.Fatalf("request: %s (%s) %+v", got.State, got.Detail, got.Files)
	}
	// Changed in place, same size and modification time: the re-hash
	// refuses it.
	fi, _ := os.Stat(src)
	changed := bytes.Clone(data)
	changed[len(changed)-1] ^= 1
	if err := os.WriteFile(src, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(src, fi.ModTime(), fi.ModTime())
	n := len(a.Transfers())
	req, err := b.RequestFile(ctx, aliceLaptop, f, "")
	if err != nil {
		t.Fatal(err)
	}
	got = b.waitTransfer(t, req.ID, "refused", func(x TransferInfo) bool { return x.State.Ended() })
	if got.State != TransferDeclined || !strings.Contains(got.Detail, "changed") {
		t.Fatalf("changed source: %s (%s)", got.State, got.Detail)
	}
	mine := a.waitTransfer(t, req.ID, "declined here", inState(TransferDeclined))
	if !strings.Contains(mine.Detail, "hash differently") || len(a.Transfers()) != n+1 {
		t.Fatalf("sender: %q", mine.Detail)
	}
	leftovers(t, b.cfg.DownloadDir, 2)
}

// TestFileRequestNotOffered: a file never offered, one of another size,
// one offered too long ago, and one offered to bob asked for by carol are
// each declined, and leave no state with alice.
func TestFileRequestNotOffered(t *testing.T) {
	var clock atomic.Int64
	srv, a, b, _ := filePair(t, func(g *Gateway) {
		g.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
	}, nil)
	ctx := testCtx(t)
	data := randBytes(t, 1000)
	src := writeFile(t, t.TempDir(), "report.pdf", data)
	_, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted {
		t.Fatalf("first transfer %s (%s)", in.State, in.Detail)
	}
	n := len(a.Transfers())
	declined := func(who *testGateway, f filexfer.File, what string) {
		files, _ := os.ReadDir(who.cfg.DownloadDir)
		t.Helper()
		req, err := who.RequestFile(ctx, aliceLaptop, f, "")
		if err == nil || !strings.Contains(err.Error(), "does not serve") || req.ID == "" {
			t.Fatalf("%s: %v", what, err)
		}
		x, _ := who.Transfer(req.ID)
		if x.State != TransferDeclined || !strings.Contains(x.Detail, "no such file was offered to you") {
			t.Fatalf("%s: %s (%s)", what, x.State, x.Detail)
		}
		if len(a.Transfers()) != n {
			t.Fatalf("%s: the declined request left state with alice", what)
		}
		leftovers(t, who.cfg.DownloadDir, len(files)) // nothing left of the request
	}
	declined(b, filexfer.File{Name: "secret.txt", Size: 1000, HasSize: true}, "never offered")
	declined(b, filexfer.File{Name: "report.pdf", Size: 999, HasSize: true}, "another size")
	lie := asked(in, 0, "report.pdf")
	lie.Hashes = []filexfer.Hash{{Algo: "sha-256", Value: bytes.Repeat([]byte{1}, 32)}}
	declined(b, lie, "another hash")

	// carol, a contact of alice too, asks for bob's file.
	if err := srv.AddUser("carol", "carol-password"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("carol@"+testDomain)); err != nil {
		t.Fatal(err)
	}
	c := startGateway(t, srv, "carol@"+testDomain+"/tablet", "carol-password", gwOptions{setup: withSetup(func(g *Gateway) {
		g.cfg.DownloadDir = t.TempDir()
	}, func(g *Gateway) { g.fileHooks = b.fileHooks })})
	c.waitDevices(t, "alice@"+testDomain, 1)
	waitOnline(t, c, "alice@"+testDomain)
	declined(c, asked(in, 0, "report.pdf"), "offered to another account")

	// Offered more than seven days ago.
	clock.Store(int64(sentHistoryKeep + time.Hour))
	declined(b, asked(in, 0, "report.pdf"), "offered too long ago")
}

// TestFileRequestCleartextRefused: a request without our security element
// is refused as cleartext with an alert, and leaves no state.
func TestFileRequestCleartextRefused(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "x", []byte("x"))
	_, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted {
		t.Fatalf("first transfer %s", in.State)
	}
	if err := b.SendChat(ctx, jid.MustParse("alice@"+testDomain), "hi"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "chat", isChat("hi"))
	n := len(a.Transfers())
	alert := alertsOf(t, a)
	for _, ours := range []bool{false, true} {
		sid := newTransferID()
		_, _, err := b.SendProtectedIQ(ctx, aliceLaptop, "set", rawRequest(t, sid, ours), false)
		if !ours {
			var pe *ProtectedError
			if !errors.As(err, &pe) {
				t.Fatalf("a plain IBB request was not refused: %v", err)
			}
			if jc, ok := jingle.ParseErrorCondition(pe.Payload); !ok || jc != jingle.ErrSecurityRequired {
				t.Fatalf("refusal %s", pe.Payload)
			}
			ev := alert("default-refuse-cleartext-files")
			if ev.Alert.Facts.Protection != policy.ProtectionCleartext || !strings.Contains(ev.Alert.Decision.Detail, "file request") {
				t.Fatalf("alert: %+v", ev.Alert)
			}
			if len(a.Transfers()) != n {
				t.Fatal("a refused request left state")
			}
			continue
		}
		// The same request with our key is served (policy allows it);
		// bob's gateway knows nothing of it, so it ends there.
		if err != nil {
			t.Fatalf("our request: %v", err)
		}
		if x := a.waitTransfer(t, sid, "served", func(x TransferInfo) bool { return x.State.Ended() }); x.Direction != TransferOutgoing {
			t.Fatalf("served: %+v", x)
		}
	}
}

// rawRequest builds a request for the 1-byte file "x" on IBB; ours adds
// our security element (the requester's key).
func rawRequest(t *testing.T, sid string, ours bool) []byte {
	t.Helper()
	d := &filexfer.Description{File: filexfer.File{Name: "x", Size: 1, HasSize: true}}
	dr, err := d.Raw()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := (&filexfer.IBBTransport{SID: "ibb-" + sid, BlockSize: 8192}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	other := []jingle.Raw{dr, tr}
	if ours {
		sr, err := filexfer.NewSecurity("f", filexfer.CipherAES256GCM, bytes.Repeat([]byte{7}, 32), 0).Raw()
		if err != nil {
			t.Fatal(err)
		}
		other = append(other, sr)
	}
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: "bob@" + testDomain + "/phone",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f", Senders: jingle.SendersResponder, Other: other}}}
	raw, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestFileRequestRealTransports: a request on each real transport (the
// requester, which receives, offers it; the responder sends).
func TestFileRequestRealTransports(t *testing.T) {
	for _, tr := range []string{TransportIBB, TransportDataChannel, TransportS5BDirect} {
		t.Run(tr, func(t *testing.T) {
			only := func(g *Gateway) { g.cfg.FileTransports = []string{tr} }
			_, a, b, _ := filePairWith(t, true, only, only)
			ctx := testCtx(t)
			data := randBytes(t, 2*filexfer.SecurityDefaultChunkSize+9)
			src := writeFile(t, t.TempDir(), "r.bin", data)
			_, in := sendAndAccept(t, a, b, []string{src})
			if in.State != TransferCompleted {
				t.Fatalf("offer: %s (%s)", in.State, in.Detail)
			}
			req, err := b.RequestFile(ctx, aliceLaptop, asked(in, 0, "r.bin"), "")
			if err != nil {
				t.Fatal(err)
			}
			got := b.waitTransfer(t, req.ID, "requested", func(x TransferInfo) bool { return x.State.Ended() })
			if got.State != TransferCompleted || got.Transport != tr || got.Files[0].Hash != sha(data) {
				t.Fatalf("request on %s: %s (%s) over %s", tr, got.State, got.Detail, got.Transport)
			}
			a.waitTransfer(t, req.ID, "served", inState(TransferCompleted))
		})
	}
}

// TestFileKeptBounds: at most maxKeptTransfers prefixes are kept (the
// oldest goes, its file removed), each until its time, none after
// shutdown.
func TestFileKeptBounds(t *testing.T) {
	dir := t.TempDir()
	kept := func(id string, until time.Time) *keptTransfer {
		p := filexfer.StreamParams{Key: make([]byte, filexfer.SecurityKeyLen), Cipher: filexfer.CipherAES256GCM,
			ChunkSize: filexfer.SecurityDefaultChunkSize, SID: id, Content: "c", Sender: filexfer.SenderInitiator, Size: 10}
		r, err := filexfer.NewReceiver(p, dir, "f", filexfer.ReceiverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return &keptTransfer{ids: []string{id}, until: until, files: []*wantedFile{{prev: r}}}
	}
	exists := func(k *keptTransfer) bool {
		_, err := os.Stat(k.files[0].prev.TempPath())
		return err == nil
	}
	var tab keptTable
	later := time.Now().Add(time.Hour)
	var ks []*keptTransfer
	for i := 0; i <= maxKeptTransfers; i++ {
		k := kept(newTransferID(), later)
		ks = append(ks, k)
		tab.add(k)
	}
	if tab.has(ks[0].ids[0]) || exists(ks[0]) {
		t.Fatal("the oldest kept transfer stayed past the bound")
	}
	for _, k := range ks[1:] {
		if !tab.has(k.ids[0]) || !exists(k) {
			t.Fatal("a kept transfer within the bound went")
		}
	}
	// One whose time is up goes (its timer fires).
	soon := kept(newTransferID(), time.Now())
	tab.add(soon)
	for i := 0; tab.has(soon.ids[0]) || exists(soon); i++ {
		if i > 1000 {
			t.Fatal("an expired kept transfer stayed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tab.clear()
	for _, k := range ks[1:] {
		if exists(k) {
			t.Fatal("a kept file stayed after shutdown")
		}
	}
	late := kept(newTransferID(), later)
	tab.add(late)
	if tab.has(late.ids[0]) || exists(late) {
		t.Fatal("kept after shutdown")
	}
}

// TestFileResumeAcrossSessionsTwoFiles: both unfinished files of a
// transfer (one cut, one not begun) are asked for in one request.
func TestFileResumeAcrossSessionsTwoFiles(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	ctx := testCtx(t)
	cs := filexfer.SecurityDefaultChunkSize
	dir := t.TempDir()
	d0, d1 := randBytes(t, 5*cs), randBytes(t, 2*cs+1)
	cut, out := cutAndEnd(t, a, b, reg, writeFile(t, dir, "one.bin", d0), writeFile(t, dir, "two.bin", d1))
	cut.stop()
	if err := b.ResumeTransfer(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, "", "resumed transfer", endedOther(out.ID))
	if in.State != TransferCompleted || len(in.Files) != 2 || in.ResumedFrom != 3*uint64(cs) {
		t.Fatalf("resumed: %s (%s) %+v", in.State, in.Detail, in.Files)
	}
	for i, d := range [][]byte{d0, d1} {
		if got, err := os.ReadFile(in.Files[i].Path); err != nil || !bytes.Equal(got, d) {
			t.Fatalf("file %d differs (%v)", i, err)
		}
	}
	a.waitTransfer(t, in.ID, "served", inState(TransferCompleted))
	leftovers(t, b.cfg.DownloadDir, 2)
}
