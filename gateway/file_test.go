package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// memTransport stands in for a real transport in tests: an IBB element
// on the wire, an in-memory pipe for the bytes, shared by the two
// gateways of a test through its registry.
type memTransport struct{ reg *memRegistry }

type memRegistry struct {
	mu   sync.Mutex
	ends map[string]chan net.Conn
	cut  func(c net.Conn, n int) io.ReadWriteCloser // wraps the sender's end of the n-th pipe (fault tests)
	// recv wraps the receiver's end of each pipe (fault tests).
	recv  func(c net.Conn) io.ReadWriteCloser
	opens int
	// brokenDC offers a data channel transport that never connects.
	brokenDC bool
}

func newMemRegistry() *memRegistry { return &memRegistry{ends: map[string]chan net.Conn{}} }

func (r *memRegistry) hooks(g *Gateway) {
	g.fileHooks.transport = func(name string) fileTransport {
		switch {
		case name == TransportIBB:
			return memTransport{r}
		case name == TransportDataChannel && r.brokenDC:
			return brokenDC{}
		}
		return nil
	}
}

// brokenDC is a data channel that never connects.
type brokenDC struct{}

func (brokenDC) kind() filexfer.TransportKind { return filexfer.TransportDataChannel }

func (brokenDC) offer(context.Context, *transportEnv) (jingle.Raw, error) {
	return (&filexfer.DataChannelTransport{SCTPPort: 5000}).Raw()
}

func (brokenDC) accept(_ context.Context, _ *transportEnv, theirs jingle.Raw) (jingle.Raw, error) {
	return theirs, nil
}

func (brokenDC) connect(context.Context, *transportEnv, jingle.Raw, jingle.Raw) (io.ReadWriteCloser, error) {
	return nil, filexfer.ErrDataChannelFailed
}

func (memTransport) kind() filexfer.TransportKind { return filexfer.TransportIBB }

func (memTransport) offer(_ context.Context, e *transportEnv) (jingle.Raw, error) {
	t := &filexfer.IBBTransport{SID: newCallID(), BlockSize: 8192}
	return t.Raw()
}

func (memTransport) accept(_ context.Context, e *transportEnv, theirs jingle.Raw) (jingle.Raw, error) {
	t, ok, err := filexfer.ParseIBBTransport(theirs)
	if err != nil || !ok {
		return jingle.Raw{}, fmt.Errorf("not an IBB transport: %v", err)
	}
	return t.Raw()
}

func (m memTransport) connect(ctx context.Context, e *transportEnv, ours, theirs jingle.Raw) (io.ReadWriteCloser, error) {
	t, _, err := filexfer.ParseIBBTransport(ours)
	if err != nil {
		return nil, err
	}
	key := e.sid + "/" + e.content + "/" + t.SID
	m.reg.mu.Lock()
	ch, ok := m.reg.ends[key]
	var mine net.Conn
	if !ok {
		a, b := net.Pipe()
		ch = make(chan net.Conn, 1)
		ch <- b
		m.reg.ends[key] = ch
		mine = a
	}
	m.reg.opens++
	n := m.reg.opens
	cut, recv := m.reg.cut, m.reg.recv
	m.reg.mu.Unlock()
	if mine == nil {
		select {
		case mine = <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if e.sender && cut != nil {
		return cut(mine, n), nil
	}
	if !e.sender && recv != nil {
		return recv(mine), nil
	}
	return mine, nil
}

// filePair starts alice and bob with the memory transport and download
// directories.
func filePair(t *testing.T, aliceSetup, bobSetup func(*Gateway)) (*localxmpp.Server, *testGateway, *testGateway, *memRegistry) {
	t.Helper()
	return filePairWith(t, false, aliceSetup, bobSetup)
}

// filePairWith is filePair with the gateway's real transports (loopback
// only) when real is set.
func filePairWith(t *testing.T, real bool, aliceSetup, bobSetup func(*Gateway)) (*localxmpp.Server, *testGateway, *testGateway, *memRegistry) {
	t.Helper()
	reg := newMemRegistry()
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("bob@"+testDomain)); err != nil {
		t.Fatal(err)
	}
	aDir, bDir := t.TempDir(), t.TempDir()
	hooks := reg.hooks
	if real {
		hooks = func(g *Gateway) { g.cfg.CallLoopbackOnly = true }
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{setup: withSetup(hooks,
		func(g *Gateway) { g.cfg.DownloadDir = aDir }, aliceSetup)})
	b := startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{setup: withSetup(hooks,
		func(g *Gateway) { g.cfg.DownloadDir = bDir }, bobSetup)})
	a.waitDevices(t, "bob@"+testDomain, 1)
	b.waitDevices(t, "alice@"+testDomain, 1)
	waitOnline(t, a, "bob@"+testDomain)
	return srv, a, b, reg
}

// waitOnline waits until tg sees a securejingle resource of bare.
func waitOnline(t *testing.T, tg *testGateway, bare string) {
	t.Helper()
	for i := 0; ; i++ {
		for _, d := range tg.Contacts(bare) {
			if d != 0 {
				return
			}
		}
		if i > 1500 {
			t.Fatalf("%s never saw %s online", tg.bare(), bare)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTransfer waits for an EventFile of id matching ok.
func (tg *testGateway) waitTransfer(t testing.TB, id, what string, ok func(TransferInfo) bool) TransferInfo {
	t.Helper()
	ev := tg.waitEvent(t, what, func(ev Event) bool {
		return ev.Kind == EventFile && ev.File != nil && (id == "" || ev.File.ID == id) && ok(*ev.File)
	})
	return *ev.File
}

func inState(st TransferState) func(TransferInfo) bool {
	return func(in TransferInfo) bool { return in.State == st }
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileOfferMetadata(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "notes.txt", []byte("hello"))
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{Desc: "my notes"})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != TransferOffered || out.Direction != TransferOutgoing || out.PeerFull != "bob@"+testDomain+"/phone" || out.BytesTotal != 5 {
		t.Fatalf("offered: %+v", out)
	}
	in := b.waitTransfer(t, out.ID, "pending offer", inState(TransferPending))
	if in.Direction != TransferIncoming || len(in.Files) != 1 || in.Files[0].Name != "notes.txt" || in.Files[0].Size != 5 ||
		in.Files[0].Desc != "my notes" || in.Files[0].MediaType != "text/plain" || in.PeerFull != "alice@"+testDomain+"/laptop" {
		t.Fatalf("pending: %+v", in)
	}
}

func TestFileDecline(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "a.bin", []byte("x"))
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "pending", inState(TransferPending))
	if err := a.AcceptTransfer(ctx, out.ID, ""); !errors.Is(err, ErrTransferState) {
		t.Fatalf("the sender accepted its own offer: %v", err)
	}
	if err := b.DeclineTransfer(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	got := a.waitTransfer(t, out.ID, "declined", inState(TransferDeclined))
	if !strings.Contains(got.Detail, "declined") {
		t.Fatalf("detail %q", got.Detail)
	}
	if in, _ := b.Transfer(out.ID); in.State != TransferDeclined {
		t.Fatalf("receiver: %s", in.State)
	}
	if err := b.DeclineTransfer(ctx, out.ID); !errors.Is(err, ErrTransferState) {
		t.Fatalf("declined twice: %v", err)
	}
	if err := b.AcceptTransfer(ctx, "nope", ""); !errors.Is(err, ErrUnknownTransfer) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestFileCancelPendingBySender(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "a.bin", []byte("x"))
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "pending", inState(TransferPending))
	if err := a.CancelTransfer(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out.ID, "cancelled", inState(TransferCancelled))
	if got, _ := a.Transfer(out.ID); got.State != TransferCancelled {
		t.Fatalf("sender: %s", got.State)
	}
}

func TestFileLimits(t *testing.T) {
	_, a, b, _ := filePair(t, func(g *Gateway) { g.cfg.MaxFileSize = 4 }, func(g *Gateway) { g.cfg.MaxFileSize = 2 })
	ctx := testCtx(t)
	dir := t.TempDir()
	big := writeFile(t, dir, "big", []byte("12345"))
	if _, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{big}, SendOptions{}); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("over the sender's limit: %v", err)
	}
	mid := writeFile(t, dir, "mid", []byte("123"))
	out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{mid}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := a.waitTransfer(t, out.ID, "declined for size", inState(TransferDeclined))
	in := b.waitTransfer(t, out.ID, "declined here", inState(TransferDeclined))
	if !strings.Contains(in.Detail, "max_file_size") {
		t.Fatalf("receiver's detail %q does not name the fix", in.Detail)
	}
	_ = got
	if _, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), nil, SendOptions{}); !errors.Is(err, ErrTransferState) {
		t.Fatalf("no files: %v", err)
	}
	if _, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{mid}, SendOptions{Transports: []string{"carrier-pigeon"}}); !errors.Is(err, ErrTransferState) {
		t.Fatalf("unknown transport: %v", err)
	}
	if _, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{dir}, SendOptions{}); !errors.Is(err, ErrTransferState) {
		t.Fatalf("a directory: %v", err)
	}
}

func TestFileQuota(t *testing.T) {
	_, a, b, _ := filePair(t, nil, func(g *Gateway) { g.cfg.FileQuota = 6 })
	ctx := testCtx(t)
	dir := t.TempDir()
	f1 := writeFile(t, dir, "one", []byte("1234"))
	out1, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{f1}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, out1.ID, "first pending", inState(TransferPending))
	out2, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{f1}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, out2.ID, "second declined", inState(TransferDeclined))
	if !strings.Contains(in.Detail, "quota") {
		t.Fatalf("detail %q", in.Detail)
	}
	if got, _ := b.Transfer(out1.ID); got.State != TransferPending {
		t.Fatalf("first: %s", got.State)
	}
}

func TestFileBoundsPerPeer(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	src := writeFile(t, t.TempDir(), "a", []byte("x"))
	for i := 0; i < maxTransfersPerPeer; i++ {
		out, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{})
		if err != nil {
			t.Fatal(i, err)
		}
		b.waitTransfer(t, out.ID, "pending", inState(TransferPending))
	}
	if _, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{}); !errors.Is(err, ErrTooManyTransfers) {
		t.Fatalf("over the bound: %v", err)
	}
	// Bob's bound holds against a sender that ignores its own: an offer
	// past it is refused without state.
	n := len(b.Transfers())
	j := rawOffer(t, newTransferID(), true)
	if _, _, err := a.SendProtectedIQ(ctx, jid.MustParse("bob@"+testDomain+"/phone"), "set", j, false); err == nil {
		t.Fatal("an offer past the bound was taken")
	}
	if len(b.Transfers()) != n {
		t.Fatal("a refused offer left state")
	}
}

// rawOffer builds a session-initiate of one 1-byte file; ours adds our
// security element, else the IBB transport carries the file in clear.
func rawOffer(t *testing.T, sid string, ours bool) []byte {
	t.Helper()
	d := &filexfer.Description{File: filexfer.File{Name: "x", Size: 1, HasSize: true, HashesUsed: []string{"sha-256"}}}
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
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: sid, Initiator: "alice@" + testDomain + "/laptop",
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f", Senders: jingle.SendersInitiator, Other: other}}}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isFileAlert(rule string) func(Event) bool {
	return func(ev Event) bool {
		return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == rule && ev.Alert.Facts.Kind == policy.KindFileTransfer
	}
}

func TestFileCleartextOfferRefused(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	// A secured session exists (chat), so the downgrade rule applies.
	if err := a.SendChat(ctx, jid.MustParse("bob@"+testDomain), "hi"); err != nil {
		t.Fatal(err)
	}
	b.waitEvent(t, "chat", isChat("hi"))
	_, _, err := a.SendProtectedIQ(ctx, jid.MustParse("bob@"+testDomain+"/phone"), "set", rawOffer(t, newTransferID(), false), false)
	var pe *ProtectedError
	if !errors.As(err, &pe) {
		t.Fatalf("a plain IBB offer was not refused: %v", err)
	}
	if jc, ok := jingle.ParseErrorCondition(pe.Payload); !ok || jc != jingle.ErrSecurityRequired {
		t.Fatalf("refusal %s", pe.Payload)
	}
	ev := b.waitEvent(t, "cleartext file alert", isFileAlert("default-refuse-cleartext-files"))
	if ev.Alert.Facts.Protection != policy.ProtectionCleartext || !strings.Contains(ev.Alert.Decision.Detail, "in-band") {
		t.Fatalf("alert: %+v", ev.Alert)
	}
	if len(b.Transfers()) != 0 {
		t.Fatal("a refused offer left state")
	}
	// Ours passes.
	if _, _, err := a.SendProtectedIQ(ctx, jid.MustParse("bob@"+testDomain+"/phone"), "set", rawOffer(t, newTransferID(), true), false); err != nil {
		t.Fatalf("our offer: %v", err)
	}
}

func TestFileUnprotectedOfferRefused(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	ctx := testCtx(t)
	raw := rawOffer(t, newTransferID(), true) // our key, in clear: the server read it
	_, err := a.sendIQ(ctx, build("iq", map[string]string{"type": "set", "id": randomID(), "to": "bob@" + testDomain + "/phone"}, raw))
	var iqe *IQError
	if !errors.As(err, &iqe) || iqe.Condition() != "not-acceptable" {
		t.Fatalf("unprotected offer: %v", err)
	}
	ev := b.waitEvent(t, "unprotected file alert", func(ev Event) bool {
		return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Facts.Kind == policy.KindFileTransfer && ev.Alert.Facts.Signaling == policy.SignalingUnprotected
	})
	if ev.Alert.Facts.Protection != policy.ProtectionCleartext || !strings.Contains(ev.Alert.Decision.Detail, "key in clear") {
		t.Fatalf("alert: %+v / %s", ev.Alert.Facts, ev.Alert.Decision.Detail)
	}
}

func sha(b []byte) string { h := sha256.Sum256(b); return fmt.Sprintf("sha-256:%x", h[:]) }

func jidOf(s string) jid.JID { return jid.MustParse(s) }
