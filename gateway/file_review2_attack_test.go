package gateway

// Attacks on the file channel found in the second review (issue 9), now
// regression tests: each failed on the code it was written against (its
// comment says how) and checks the fixed behaviour.

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/securejingle/securejingle/filexfer"
)

// TestFileReview2TamperKeepsPrefix: anyone on the transport path can put
// bytes into the stream without the key: the hostile server forges IBB
// <data/> from the peer's full JID, a XEP-0065 proxy writes into the
// connection it relays, a host that reaches our SOCKS5 port with the
// DST.ADDR is the connection we take (§14.8.8 "its bytes fail the stream
// AEAD and the transfer resumes"). On the reviewed code one altered
// chunk ended the transfer with security-error, deleted every verified
// byte and was never resumed, so one injected byte cost the whole
// transfer, where a cut costs one chunk: the verified prefix is
// authenticated chunk by chunk under the key of the protected offer and
// stays valid. Expected: a critical alert, then a resume from the last
// verified chunk, which completes with nothing before it sent again.
func TestFileReview2TamperKeepsPrefix(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 4*cs+99)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	var mu sync.Mutex
	var conns []*faultyConn
	reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
		fc := &faultyConn{Conn: c, flip: -1}
		mu.Lock()
		if len(conns) == 0 {
			fc.flip = int64(filexfer.StreamHeaderLen) + 2*int64(cs+filexfer.StreamTagLen) + 7 // in the third chunk
		}
		conns = append(conns, fc)
		mu.Unlock()
		return fc
	}
	alert := alertsOf(t, b)
	out, in := sendAndAccept(t, a, b, []string{src})
	alert("file-integrity")
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("one altered chunk on the transport: receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	got, err := os.ReadFile(in.Files[0].Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed file differs (%v)", err)
	}
	if !in.Resumed || in.ResumedFrom != 2*uint64(cs) {
		t.Fatalf("resumed %v from %d, want from %d", in.Resumed, in.ResumedFrom, 2*cs)
	}
	mu.Lock()
	defer mu.Unlock()
	p := filexfer.StreamParams{ChunkSize: uint32(cs), Size: uint64(len(data))}
	if len(conns) != 2 || uint64(conns[1].count()) != p.WireSize(2*uint64(cs)) {
		t.Fatalf("%d attempts; the resume must send exactly WireSize(offset)", len(conns))
	}
	leftovers(t, b.cfg.DownloadDir, 1)
}

// heldOpen is the receiver's end of a pipe on a transport without read
// deadlines (IBB, the data channel) whose end of stream never arrives:
// the hostile server dropped the sender's IBB <close/>, or the sender
// keeps its channel open. Its Read blocks after the last byte until the
// pipe is closed here.
type heldOpen struct {
	c      net.Conn
	closed chan struct{}
	once   sync.Once
}

func (h *heldOpen) Read(p []byte) (int, error) {
	n, err := h.c.Read(p)
	if err == io.EOF {
		<-h.closed
		return 0, io.ErrClosedPipe
	}
	return n, err
}

func (h *heldOpen) Write(p []byte) (int, error) { return h.c.Write(p) }

func (h *heldOpen) Close() error {
	h.once.Do(func() { close(h.closed) })
	return h.c.Close()
}

// TestFileReview2EndHeldOpen: after the final chunk verified, the
// Receiver waits for the end of the stream, bounded (filexfer.EndWait)
// only on pipes with read deadlines. IBB and the data channel have none:
// a hostile server that drops the sender's IBB <close/> (one IQ) held the
// receiver's pump on a fully verified file until the 2-minute stall cut,
// whose resume then asked for offset = size, which no sender accepts, so
// the file failed. Expected: the gateway bounds the wait on every
// transport and the transfer completes.
func TestFileReview2EndHeldOpen(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	reg.recv = func(c net.Conn) io.ReadWriteCloser { return &heldOpen{c: c, closed: make(chan struct{})} }
	data := randBytes(t, 3*filexfer.SecurityDefaultChunkSize+5)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	out, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("end of stream held open: receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	if got, err := os.ReadFile(in.Files[0].Path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the received file differs (%v)", err)
	}
}

// TestFileReview2VerifiedNotSaved: every chunk of a file verified but it
// could not be saved (here every one of the 1000 names it may take
// exists; a failed sync is another cause). The receiver went on as after a
// cut: a transport-replace with <range offset/> = size, which the sender
// refuses (not a chunk boundary below the final chunk), and
// ResumeTransfer did the same, so a fully verified file could never be
// completed. Expected: the transfer fails resumable, and once a name is
// free ResumeTransfer finishes it without a transport.
func TestFileReview2VerifiedNotSaved(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	dir := b.cfg.DownloadDir
	for k := 0; k < 1000; k++ {
		name := "x.bin"
		if k > 0 {
			name = "x (" + itoa(k) + ").bin"
		}
		writeFile(t, dir, name, nil)
	}
	data := randBytes(t, 2*filexfer.SecurityDefaultChunkSize+3)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	ctx := testCtx(t)
	o, err := a.SendFiles(ctx, jidOf("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, o.ID, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, o.ID, "failed", inState(TransferFailed))
	t.Logf("not saved: %s", in.Detail)
	if err := os.Remove(filepath.Join(dir, "x (500).bin")); err != nil {
		t.Fatal(err)
	}
	if err := b.ResumeTransfer(ctx, o.ID); err != nil {
		t.Fatalf("resume of a verified file that could not be saved: %v", err)
	}
	in = b.waitTransferEnd(t, o.ID, "resumed")
	if in.State != TransferCompleted || filepath.Base(in.Files[0].Path) != "x (500).bin" {
		t.Fatalf("after the resume: %s %q (%s)", in.State, in.Files[0].Path, in.Detail)
	}
	if got, err := os.ReadFile(in.Files[0].Path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the saved file differs (%v)", err)
	}
}

// TestFileReview2KeptIDReused: a failed transfer's verified prefixes are
// kept under its id (the peer's sid) after it leaves Transfers(), and
// CancelTransfer and ResumeTransfer look at the kept ones first. The
// peer can push the ended transfer out of the table (64 offers without a
// size, each declined at once) and offer again under the same sid: on
// the reviewed code that offer was taken, and the user's CancelTransfer of
// it only dropped the kept files, leaving the new offer pending (or
// going on, when accepted) while the cancel reported success. Expected:
// an offer under an id the gateway still answers to is refused.
func TestFileReview2KeptIDReused(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "big.bin", randBytes(t, 6*filexfer.SecurityDefaultChunkSize))
	cut, kept := cutAndEnd(t, a, b, reg, src)
	cut.stop()
	bob := jidOf("bob@" + testDomain + "/phone")
	for i := 0; i <= maxTransferHistory; i++ {
		sid := newTransferID()
		if _, _, err := a.SendProtectedIQ(ctx, bob, "set", rawOfferFile(t, sid, filexfer.File{Name: "n", HashesUsed: []string{"sha-256"}}, 1), false); err != nil {
			t.Fatal(err)
		}
		b.waitTransfer(t, sid, "declined", inState(TransferDeclined))
	}
	if _, ok := b.Transfer(kept.ID); ok {
		t.Fatal("the kept transfer is still listed: the flood did not push it out")
	}
	_, _, err := a.SendProtectedIQ(ctx, bob, "set", rawOffer(t, kept.ID, true), false)
	if err == nil {
		b.waitTransfer(t, kept.ID, "pending", inState(TransferPending))
		cerr := b.CancelTransfer(ctx, kept.ID)
		in, _ := b.Transfer(kept.ID)
		t.Fatalf("an offer reusing the id of a kept transfer was taken; CancelTransfer: %v, and the offer is still %s", cerr, in.State)
	}
	t.Logf("refused: %v", err)
	if !b.files.kept.has(kept.ID) {
		t.Fatal("the kept prefixes are gone")
	}
}

// TestFileReview2UnaddressableSID: a transfer's id is the peer's sid,
// which Jingle takes as any run of non-space characters (up to 256
// bytes). The local API names a transfer in its path (/v1/files/{id}/…)
// and takes only printable ASCII without '/'; on the reviewed code an
// offer under a sid with '/', a bidirectional override or a line
// separator was taken, and the user could neither accept, decline nor
// cancel it (it held a pending slot until the accept timeout), and the
// id could reorder or break the line it is printed on. Expected: such an
// offer is refused bad-request and leaves no state.
func TestFileReview2UnaddressableSID(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	bob := jidOf("bob@" + testDomain + "/phone")
	for _, sid := range []string{"a/b", "abc\u202etxt.exe", "line\u2028break", "caf\u00e9"} {
		_, _, err := a.SendProtectedIQ(ctx, bob, "set", rawOffer(t, sid, true), false)
		if err == nil {
			t.Errorf("an offer under sid %q was taken", sid)
		}
		if _, ok := b.Transfer(sid); ok {
			t.Errorf("an offer under sid %q left a transfer", sid)
		}
	}
	if !validTransferID(newTransferID()) {
		t.Fatal("our own ids must be valid")
	}
}
