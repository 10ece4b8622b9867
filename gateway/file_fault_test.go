package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// faultyConn is the sender's end of a pipe that counts what is written
// and misbehaves: it closes after limit bytes, or flips a bit at flip.
type faultyConn struct {
	net.Conn
	mu      sync.Mutex
	written int64
	limit   int64 // close after this many bytes (0: never)
	flip    int64 // flip the low bit of this byte (-1: never)
}

func (c *faultyConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit > 0 && c.written+int64(len(p)) > c.limit {
		n := int(c.limit - c.written)
		c.Conn.Write(p[:n])
		c.written += int64(n)
		c.Conn.Close()
		return n, io.ErrClosedPipe
	}
	if c.flip >= c.written && c.flip < c.written+int64(len(p)) {
		q := bytes.Clone(p)
		q[c.flip-c.written] ^= 1
		p = q
	}
	n, err := c.Conn.Write(p)
	c.written += int64(n)
	return n, err
}

func (c *faultyConn) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}

func TestFileCutAndResume(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 5*cs+123)
	src := writeFile(t, t.TempDir(), "big.bin", data)
	var mu sync.Mutex
	var conns []*faultyConn
	// The first pipe is cut in the middle of the fourth chunk.
	cut := int64(filexfer.StreamHeaderLen) + 3*int64(cs+filexfer.StreamTagLen) + 100
	reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
		fc := &faultyConn{Conn: c, flip: -1}
		mu.Lock()
		if len(conns) == 0 {
			fc.limit = cut
		}
		conns = append(conns, fc)
		mu.Unlock()
		return fc
	}
	out, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	got, err := os.ReadFile(in.Files[0].Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed file differs (%v)", err)
	}
	if !in.Resumed || in.ResumedFrom != 3*uint64(cs) || !out.Resumed || out.ResumedFrom != 3*uint64(cs) {
		t.Fatalf("resume: receiver %v from %d, sender %v from %d; want from %d", in.Resumed, in.ResumedFrom, out.Resumed, out.ResumedFrom, 3*cs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 2 {
		t.Fatalf("%d attempts", len(conns))
	}
	// Nothing before the last verified chunk was sent again.
	p := filexfer.StreamParams{ChunkSize: uint32(cs), Size: uint64(len(data))}
	if w := conns[1].count(); uint64(w) != p.WireSize(3*uint64(cs)) {
		t.Fatalf("the resumed attempt sent %d bytes, want %d", w, p.WireSize(3*uint64(cs)))
	}
	leftovers(t, b.cfg.DownloadDir, 1)
}

// TestFileTamperedStream: the bytes of every attempt are altered on the
// transport (in the first chunk after the header). Each is alerted and
// resumed from the last verified chunk, up to the automatic resumes;
// then the transfer fails, resumable, with its verified prefix (here the
// first chunk's boundary, nothing) kept in the hidden temporary file
// and nothing under the file's name.
func TestFileTamperedStream(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	cs := filexfer.SecurityDefaultChunkSize
	data := randBytes(t, 3*cs)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	var attempts atomic.Int32
	reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
		attempts.Add(1)
		return &faultyConn{Conn: c, flip: int64(filexfer.StreamHeaderLen) + 500} // in the attempt's first chunk
	}
	alert := alertsOf(t, b)
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
	if !in.Resumable || !strings.Contains(in.Detail, "altered on the way") {
		t.Fatalf("receiver %s resumable %v (%s)", in.State, in.Resumable, in.Detail)
	}
	if n := attempts.Load(); n != 1+maxAutoResumes {
		t.Fatalf("%d attempts, want %d", n, 1+maxAutoResumes)
	}
	alert("file-integrity")
	leftovers(t, b.cfg.DownloadDir, 1) // the hidden .part, for a resume
}

func TestFileLyingHash(t *testing.T) {
	// The offer names a sha-256 that is not the file's.
	lie := func(g *Gateway) {
		g.fileHooks.mutateOffer = func(j *jingle.Jingle) {
			for m, r := range j.Contents[0].Other {
				if d, ok, _ := filexfer.ParseDescription(r); ok {
					d.File.HashesUsed = nil
					d.File.Hashes = []filexfer.Hash{{Algo: "sha-256", Value: bytes.Repeat([]byte{1}, 32)}}
					j.Contents[0].Other[m], _ = d.Raw()
				}
			}
		}
	}
	_, a, b, _ := filePair(t, lie, nil)
	src := writeFile(t, t.TempDir(), "x.bin", randBytes(t, 1000))
	alert := alertsOf(t, b)
	_, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferFailed || !strings.Contains(in.Detail, "integrity") {
		t.Fatalf("receiver %s (%s)", in.State, in.Detail)
	}
	ev := alert("file-integrity")
	if !strings.Contains(ev.Alert.Decision.Detail, "hash") {
		t.Fatalf("alert detail %q", ev.Alert.Decision.Detail)
	}
	leftovers(t, b.cfg.DownloadDir, 0)
}

func TestFileCancelDuringTransfer(t *testing.T) {
	_, a, b, reg := filePair(t, nil, nil)
	data := randBytes(t, 4*filexfer.SecurityDefaultChunkSize)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	started := make(chan struct{})
	var once sync.Once
	reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
		return &blockingConn{Conn: c, after: 2 * filexfer.SecurityDefaultChunkSize, started: func() { once.Do(func() { close(started) }) }, closed: make(chan struct{})}
	}
	ctx := testCtx(t)
	o, err := a.SendFiles(ctx, jidOf("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, o.ID, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := b.CancelTransfer(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	a.waitTransfer(t, o.ID, "cancelled", inState(TransferCancelled))
	in, _ := b.Transfer(o.ID)
	if in.State != TransferCancelled {
		t.Fatalf("receiver %s", in.State)
	}
	leftovers(t, b.cfg.DownloadDir, 0)
	if err := b.ResumeTransfer(ctx, o.ID); !errors.Is(err, ErrTransferState) {
		t.Fatalf("resumed a cancelled transfer: %v", err)
	}
}

// blockingConn stalls the sender after some bytes until the pipe is
// closed, so that a test can act in the middle of a transfer.
type blockingConn struct {
	net.Conn
	after   int
	n       int
	started func()
	once    sync.Once
	closed  chan struct{}
}

func (c *blockingConn) Write(p []byte) (int, error) {
	if c.n+len(p) > c.after {
		c.started()
		<-c.closed
		return 0, io.ErrClosedPipe
	}
	c.n += len(p)
	return c.Conn.Write(p)
}

func (c *blockingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// alertsOf subscribes to tg's events: the returned function waits for an
// alert of the file channel with rule ("" for any rule).
func alertsOf(t *testing.T, tg *testGateway) func(rule string) Event {
	ch, stop := tg.Subscribe(1024)
	t.Cleanup(stop)
	return func(rule string) Event {
		t.Helper()
		ok := isFileAlert(rule)
		if rule == "" {
			ok = func(ev Event) bool {
				return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Facts.Kind == policy.KindFileTransfer
			}
		}
		deadline := time.After(15 * time.Second)
		for {
			select {
			case ev := <-ch:
				if ok(ev) {
					return ev
				}
			case <-deadline:
				t.Fatalf("no %s alert", rule)
			}
		}
	}
}

// TestFileFallback: the data channel does not come up; the receiver
// replaces it with the next transport (IBB here), the file arrives, and
// the replace kept the offer's security.
func TestFileFallback(t *testing.T) {
	both := func(g *Gateway) { g.cfg.FileTransports = []string{TransportDataChannel, TransportIBB} }
	var reg *memRegistry
	_, a, b, reg := filePair(t, both, both)
	reg.brokenDC = true
	data := randBytes(t, 3*filexfer.SecurityDefaultChunkSize+5)
	src := writeFile(t, t.TempDir(), "x.bin", data)
	out, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	if in.Transport != TransportIBB || out.Transport != TransportIBB || in.Resumed {
		t.Fatalf("transport %s/%s resumed %v", in.Transport, out.Transport, in.Resumed)
	}
	if got, _ := os.ReadFile(in.Files[0].Path); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

// TestFileReplaceChangesKey: a transport-replace that carries another
// security element is refused and ends the transfer with an alert.
func TestFileReplaceChangesKey(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "x.bin", []byte("x"))
	o, err := a.SendFiles(ctx, jidOf("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, o.ID, "pending", inState(TransferPending))
	alert := alertsOf(t, a)
	// Bob's side, played by hand: a session-accept with another key.
	sr, _ := filexfer.NewSecurity("file-0", filexfer.CipherAES256GCM, bytes.Repeat([]byte{9}, 32), 0).Raw()
	tr, _ := (&filexfer.IBBTransport{SID: "s", BlockSize: 4096}).Raw()
	dr, _ := (&filexfer.Description{File: filexfer.File{Name: "x.bin", Size: 1, HasSize: true}}).Raw()
	j := &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: o.ID, Responder: "bob@" + testDomain + "/phone",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "file-0", Senders: jingle.SendersInitiator, Other: []jingle.Raw{dr, sr, tr}}}}
	raw, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.SendProtectedIQ(ctx, jidOf("alice@"+testDomain+"/laptop"), "set", raw, false)
	var pe *ProtectedError
	if !errors.As(err, &pe) {
		t.Fatalf("a changed key was taken: %v", err)
	}
	if jc, ok := jingle.ParseErrorCondition(pe.Payload); !ok || jc != jingle.ErrSecurityRequired {
		t.Fatalf("refusal %s", pe.Payload)
	}
	if ev := alert(""); ev.Alert.Facts.Protection != policy.ProtectionCleartext || ev.Alert.Decision.Action != policy.ActionRefuse ||
		!strings.Contains(ev.Alert.Decision.Detail, "another security element") {
		t.Fatalf("alert facts %+v", ev.Alert.Facts)
	}
	got := a.waitTransfer(t, o.ID, "ended", func(in TransferInfo) bool { return in.State.Ended() })
	if got.State != TransferFailed || !strings.Contains(got.Detail, "security") {
		t.Fatalf("sender %s (%s)", got.State, got.Detail)
	}
}
