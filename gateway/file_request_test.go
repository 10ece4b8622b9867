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
	// The first pipe is cut in the fourth chunk, the next ones at once
	// (the automatic resumes inside the session fail), until cutting
	// stops.
	var mu sync.Mutex
	var conns []*faultyConn
	cutting := true
	first := int64(filexfer.StreamHeaderLen) + 3*int64(cs+filexfer.StreamTagLen) + 100
	reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
		mu.Lock()
		defer mu.Unlock()
		fc := &faultyConn{Conn: c, flip: -1}
		switch {
		case len(conns) == 0:
			fc.limit = first
		case cutting:
			fc.limit = 1
		}
		conns = append(conns, fc)
		return fc
	}
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, out.ID, ""); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "failed after the resumes inside the session", inState(TransferFailed))
	// The session ends (as when alice's device lost it).
	a.files.get(out.ID).post(xferMsg{kind: xmAction, action: xferCancel, reason: jingle.ReasonConnectivityError, detail: "test: the session was lost"})
	failed := b.waitTransfer(t, out.ID, "session ended", func(in TransferInfo) bool { return in.State == TransferFailed && strings.Contains(in.Detail, "kept") })
	if failed.Files[0].Done != 3*uint64(cs) {
		t.Fatalf("verified %d bytes, want %d", failed.Files[0].Done, 3*cs)
	}
	if err := b.ResumeTransfer(ctx, out.ID+"-nope"); !errors.Is(err, ErrUnknownTransfer) {
		t.Fatalf("unknown id: %v", err)
	}
	leftovers(t, b.cfg.DownloadDir, 1) // the kept partial file
	mu.Lock()
	cutting = false
	before := len(conns)
	mu.Unlock()

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
	mu.Lock()
	if len(conns) != before+1 {
		t.Fatalf("%d pipes in the new session", len(conns)-before)
	}
	p := filexfer.StreamParams{ChunkSize: uint32(cs), Size: uint64(len(data))}
	if w := conns[before].count(); uint64(w) != p.WireSize(3*uint64(cs)) {
		t.Fatalf("the request's stream was %d bytes, want %d", w, p.WireSize(3*uint64(cs)))
	}
	mu.Unlock()
	leftovers(t, b.cfg.DownloadDir, 1)
	if old, _ := b.Transfer(out.ID); !strings.Contains(old.Detail, in.ID) {
		t.Fatalf("the old transfer does not name its continuation: %q", old.Detail)
	}
	if err := b.ResumeTransfer(ctx, out.ID); err == nil {
		t.Fatal("resumed twice")
	}
}

// TestFileRequestServed: a file sent before is asked for again, served
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
