package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
)

// fakeFiles is an in-memory fileGateway: transfers move when the test
// says so, and every change is published through the backend as the
// gateway's events would be.
type fakeFiles struct {
	b *backend

	mu       sync.Mutex
	xfers    map[string]transfer
	order    []string
	sent     []sendOptions
	sentTo   []string
	accepted map[string]string // id -> dir
	declined chan string       // ids, as DeclineTransfer is called
	err      error             // returned by the next action
}

func newFakeFiles(b *backend) *fakeFiles {
	f := &fakeFiles{b: b, xfers: map[string]transfer{}, accepted: map[string]string{}, declined: make(chan string, 16)}
	b.files = f
	return f
}

func (f *fakeFiles) takeErr() error {
	err := f.err
	f.err = nil
	return err
}

func (f *fakeFiles) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// setLocked stores t and returns it for publishing after the unlock.
func (f *fakeFiles) setLocked(t transfer) transfer {
	if _, ok := f.xfers[t.ID]; !ok {
		f.order = append(f.order, t.ID)
	}
	f.xfers[t.ID] = t
	return t
}

// set stores t and publishes it.
func (f *fakeFiles) set(t transfer) {
	f.mu.Lock()
	t = f.setLocked(t)
	f.mu.Unlock()
	f.b.fileEvent(t)
}

// offer brings in an incoming offer as the gateway would: the accepter
// decides, else it is pending.
func (f *fakeFiles) offer(t transfer, accepter func(transfer) (string, bool)) transfer {
	t.Direction, t.State = api.TransferIncoming, api.TransferPending
	if accepter != nil {
		if dir, ok := accepter(t); ok {
			t.State = api.TransferConnecting
			f.mu.Lock()
			f.accepted[t.ID] = dir
			f.mu.Unlock()
		}
	}
	f.set(t)
	return t
}

func (f *fakeFiles) SendFiles(_ context.Context, to jid.JID, paths []string, o sendOptions) (transfer, error) {
	f.mu.Lock()
	if err := f.takeErr(); err != nil {
		f.mu.Unlock()
		return transfer{}, err
	}
	f.sent, f.sentTo = append(f.sent, o), append(f.sentTo, to.String())
	t := transfer{ID: fmt.Sprintf("out%d", len(f.sent)), Direction: api.TransferOutgoing, Peer: to.Bare().String(),
		State: api.TransferOffered, Created: time.Now()}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			f.mu.Unlock()
			return transfer{}, err
		}
		t.Files = append(t.Files, transferFile{Name: filepath.Base(p), Size: uint64(fi.Size()), Path: p, State: api.TransferOffered})
		t.BytesTotal += uint64(fi.Size())
	}
	t = f.setLocked(t)
	f.mu.Unlock()
	f.b.fileEvent(t)
	return t, nil
}

// act moves transfer id from one of states to next.
func (f *fakeFiles) act(id string, next transferState, states ...transferState) error {
	f.mu.Lock()
	if err := f.takeErr(); err != nil {
		f.mu.Unlock()
		return err
	}
	t, ok := f.xfers[id]
	if !ok {
		f.mu.Unlock()
		return fmt.Errorf("%w: %s", errUnknownTransfer, id)
	}
	ok = false
	for _, s := range states {
		ok = ok || t.State == s
	}
	if !ok {
		f.mu.Unlock()
		return fmt.Errorf("%w: transfer %s is %s", errTransferState, id, t.State)
	}
	t.State = next
	if next == api.TransferConnecting && len(states) == 1 && states[0] == api.TransferFailed {
		t.Resumed, t.ResumedFrom = true, t.BytesDone
	}
	t = f.setLocked(t)
	f.mu.Unlock()
	f.b.fileEvent(t)
	return nil
}

func (f *fakeFiles) AcceptTransfer(_ context.Context, id, dir string) error {
	f.mu.Lock()
	f.accepted[id] = dir
	f.mu.Unlock()
	return f.act(id, api.TransferConnecting, api.TransferPending)
}

func (f *fakeFiles) DeclineTransfer(_ context.Context, id string) error {
	err := f.act(id, api.TransferDeclined, api.TransferPending)
	if err == nil {
		f.declined <- id
	}
	return err
}

func (f *fakeFiles) CancelTransfer(_ context.Context, id string) error {
	return f.act(id, api.TransferCancelled, api.TransferOffered, api.TransferPending, api.TransferConnecting, api.TransferTransferring, api.TransferVerifying)
}

func (f *fakeFiles) ResumeTransfer(_ context.Context, id string) error {
	return f.act(id, api.TransferConnecting, api.TransferFailed)
}

func (f *fakeFiles) Transfers() []transfer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []transfer
	for _, id := range f.order {
		out = append(out, f.xfers[id])
	}
	return out
}

func (f *fakeFiles) Transfer(id string) (transfer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.xfers[id]
	return t, ok
}

// fileBackend is an offline backend with a fake file gateway and
// settings s.
func fileBackend(t *testing.T, s fileSettings) (*backend, *fakeFiles) {
	t.Helper()
	b, _ := offlineBackend(t)
	if s.download == "" {
		s.download = t.TempDir()
	}
	if s.maxFileSize == 0 {
		s.maxFileSize = DefaultMaxFileSize
	}
	if s.transports == nil {
		s.transports = api.Transports()
	}
	b.fileCfg = s
	t.Cleanup(b.fs.stop)
	return b, newFakeFiles(b)
}

// pinPeers pins keys for the test peers: bob verified, carol on first
// use, dave changed, erin distrusted (frank stays unknown).
func pinPeers(t *testing.T, b *backend) {
	t.Helper()
	bob := newKey(t)
	for _, j := range []string{"bob@example.test", "carol@example.test", "dave@example.test", "erin@example.test"} {
		k := bob
		if j != "bob@example.test" {
			k = newKey(t)
		}
		if _, _, err := b.trust.Observe(j, ed25519.PublicKey(k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.trust.Verify("bob@example.test", bob, "sas"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.trust.Observe("dave@example.test", newKey(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.trust.Distrust("erin@example.test"); err != nil {
		t.Fatal(err)
	}
}

func offerOf(id, peer string, sizes ...uint64) transfer {
	t := transfer{ID: id, Peer: peer, PeerFull: peer + "/phone", Created: time.Now()}
	for i, n := range sizes {
		t.Files = append(t.Files, transferFile{Name: fmt.Sprintf("f%d", i), Size: n})
		t.BytesTotal += n
	}
	return t
}

// TestFileAccepter: the first rule whose pattern, minimum trust and
// max_size fit accepts into its directory, if the size limit and quota
// allow; otherwise the offer waits.
func TestFileAccepter(t *testing.T) {
	download, fromBob := t.TempDir(), t.TempDir()
	b, _ := fileBackend(t, fileSettings{download: download, maxFileSize: 10_000, quota: 20_000})
	if b.accepter() != nil {
		t.Fatal("an accepter without rules")
	}
	pinPeers(t, b)
	b.fileCfg.rules = []autoAccept{
		{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", dir: fromBob},
		{peer: mustPattern(t, "*@example.test"), minTrust: "tofu", dir: download, maxSize: 100},
	}
	accept := b.accepter()
	for _, tc := range []struct {
		name    string
		offer   transfer
		wantDir string // "" waits
	}{
		{"verified bob", offerOf("t1", "bob@example.test", 5000, 4000), fromBob},
		{"tofu carol, small", offerOf("t2", "carol@example.test", 60, 40), download},
		{"tofu carol, over the rule's max_size", offerOf("t3", "carol@example.test", 101), ""},
		{"changed key", offerOf("t4", "dave@example.test", 1), ""},
		{"distrusted", offerOf("t5", "erin@example.test", 1), ""},
		{"unknown", offerOf("t6", "frank@example.test", 1), ""},
		{"other domain", offerOf("t7", "mallory@evil.test", 1), ""},
		{"bob, a file over max_file_size", offerOf("t8", "bob@example.test", 10_001), ""},
		// t1 (9000 bytes) is under way into fromBob: 9000 + 12000 > 20000.
		{"bob, over the quota with t1 in flight", offerOf("t9", "bob@example.test", 6000, 6000), ""},
	} {
		dir, ok := accept(tc.offer)
		if ok != (tc.wantDir != "") || dir != tc.wantDir {
			t.Errorf("%s: accepted %v into %q, want %q", tc.name, ok, dir, tc.wantDir)
		}
	}
	// Once t1 is done its bytes are on disk; with them the quota still
	// refuses, without them it takes the offer.
	if err := os.WriteFile(filepath.Join(fromBob, "f0"), make([]byte, 9000), 0o600); err != nil {
		t.Fatal(err)
	}
	b.fileEvent(transfer{ID: "t1", Peer: "bob@example.test", State: api.TransferCompleted})
	if _, ok := accept(offerOf("t10", "bob@example.test", 6000, 6000)); ok {
		t.Error("accepted over the quota with the files on disk")
	}
	if err := os.Remove(filepath.Join(fromBob, "f0")); err != nil {
		t.Fatal(err)
	}
	if dir, ok := accept(offerOf("t11", "bob@example.test", 6000, 6000)); !ok || dir != fromBob {
		t.Errorf("after freeing space: %v %q", ok, dir)
	}
}

// TestFileActions: the backend's actions reach the gateway with the
// configured defaults, and come back as the API shows them.
func TestFileActions(t *testing.T) {
	b, f := fileBackend(t, fileSettings{transports: []string{api.TransportIBB}, maxFileSize: 100})
	ctx := context.Background()
	src := t.TempDir()
	small, big := filepath.Join(src, "small.txt"), filepath.Join(src, "big.bin")
	for p, n := range map[string]int{small: 10, big: 101} {
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	info, err := b.SendFiles(ctx, "bob@example.test", api.SendFilesOptions{Paths: []string{small}, Desc: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "out1" || info.State != api.TransferOffered || len(info.Files) != 1 || info.Files[0].Size != 10 || info.Direction != api.TransferOutgoing {
		t.Fatalf("sent %+v", info)
	}
	if want := (sendOptions{Transports: []string{api.TransportIBB}, Desc: "d"}); !reflect.DeepEqual(f.sent[0], want) {
		t.Fatalf("send options %+v, want the configured transports %+v", f.sent[0], want)
	}
	// The request's order wins over the configured one.
	if _, err := b.SendFiles(ctx, "bob@example.test", api.SendFilesOptions{Paths: []string{small}, Transports: []string{api.TransportS5BProxy}}); err != nil {
		t.Fatal(err)
	}
	if got := f.sent[1].Transports; !reflect.DeepEqual(got, []string{api.TransportS5BProxy}) {
		t.Fatalf("transports %v", got)
	}
	// Over max_file_size: 413, before the gateway.
	if _, err := b.SendFiles(ctx, "bob@example.test", api.SendFilesOptions{Paths: []string{small, big}}); !errors.Is(err, api.ErrTooLarge) {
		t.Fatalf("send of a file over max_file_size: %v", err)
	}
	if len(f.sent) != 2 {
		t.Fatalf("an oversized send reached the gateway")
	}

	// Gateway errors get their API class.
	for _, tc := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("%w: plain IBB during a secured session", errTransferRefused), api.ErrPolicyRefused},
		{fmt.Errorf("%w (bob)", gateway.ErrPeerNotCertified), api.ErrConflict},
		{gateway.ErrOffline, api.ErrUnavailable},
		{fmt.Errorf("%w: 3 GB", errFileTooLarge), api.ErrTooLarge},
		{fmt.Errorf("%w: full", errQuota), api.ErrQuota},
	} {
		f.setErr(tc.err)
		if _, err := b.SendFiles(ctx, "bob@example.test", api.SendFilesOptions{Paths: []string{small}}); !errors.Is(err, tc.want) {
			t.Errorf("gateway error %v: got %v, want %v", tc.err, err, tc.want)
		}
	}

	// Incoming: accept into the download directory or another one.
	f.offer(offerOf("in1", "bob@example.test", 5), nil)
	f.offer(offerOf("in2", "bob@example.test", 5), nil)
	other := t.TempDir()
	if info, err := b.AcceptTransfer(ctx, "in1", ""); err != nil || info.State != api.TransferConnecting {
		t.Fatalf("accept: %+v %v", info, err)
	}
	if _, err := b.AcceptTransfer(ctx, "in2", other); err != nil {
		t.Fatal(err)
	}
	if f.accepted["in1"] != b.fileCfg.download || f.accepted["in2"] != other {
		t.Fatalf("accepted into %v", f.accepted)
	}
	// A second accept is a state conflict; unknown ids are 404.
	if _, err := b.AcceptTransfer(ctx, "in1", ""); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second accept: %v", err)
	}
	for name, act := range map[string]func(string) error{
		"get":     func(id string) error { _, err := b.Transfer(id); return err },
		"accept":  func(id string) error { _, err := b.AcceptTransfer(ctx, id, ""); return err },
		"decline": func(id string) error { _, err := b.DeclineTransfer(ctx, id); return err },
		"cancel":  func(id string) error { _, err := b.CancelTransfer(ctx, id); return err },
		"resume":  func(id string) error { _, err := b.ResumeTransfer(ctx, id); return err },
	} {
		if err := act("nope"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("%s of an unknown transfer: %v", name, err)
		}
	}
	// Cancel, then acting on the ended transfer is a conflict.
	if info, err := b.CancelTransfer(ctx, "in1"); err != nil || info.State != api.TransferCancelled {
		t.Fatalf("cancel: %+v %v", info, err)
	}
	if _, err := b.CancelTransfer(ctx, "in1"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("cancel twice: %v", err)
	}
	f.setErr(fmt.Errorf("%w: in1", errUnknownTransfer))
	if _, err := b.CancelTransfer(ctx, "in1"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("cancel of an ended transfer the gateway forgot: %v", err)
	}
	// Resume a failed transfer.
	fail := offerOf("out9", "bob@example.test", 100)
	fail.Direction, fail.State, fail.BytesDone, fail.Detail = api.TransferOutgoing, api.TransferFailed, 64, "the connection was cut"
	f.set(fail)
	if info, err := b.ResumeTransfer(ctx, "out9"); err != nil || !info.Resumed || info.ResumedFrom != 64 {
		t.Fatalf("resume: %+v %v", info, err)
	}

	list, err := b.Transfers()
	if err != nil || len(list) != 5 {
		t.Fatalf("transfers: %d %v", len(list), err)
	}
	if list[0].Trust != "" && list[0].Files == nil {
		t.Fatalf("list %+v", list[0])
	}
}

// TestAcceptQuota: accepting an offer over the quota of the receiving
// directory is 413 quota and does not reach the gateway; over
// max_file_size 413 too large.
func TestAcceptQuota(t *testing.T) {
	b, f := fileBackend(t, fileSettings{quota: 1000, maxFileSize: 800})
	ctx := context.Background()
	f.offer(offerOf("a", "bob@example.test", 600), nil)
	f.offer(offerOf("b", "bob@example.test", 500), nil)
	f.offer(offerOf("c", "bob@example.test", 801), nil)
	if _, err := b.AcceptTransfer(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	_, err := b.AcceptTransfer(ctx, "b", "")
	var se error = err
	if !errors.Is(se, api.ErrQuota) || !errors.Is(se, api.ErrTooLarge) {
		t.Fatalf("accept over the quota: %v", err)
	}
	if _, err := b.AcceptTransfer(ctx, "c", ""); !errors.Is(err, api.ErrTooLarge) || errors.Is(err, api.ErrQuota) {
		t.Fatalf("accept over max_file_size: %v", err)
	}
	if _, ok := f.accepted["b"]; ok {
		t.Fatal("an accept over the quota reached the gateway")
	}
	// Into another directory the quota is that directory's.
	if _, err := b.AcceptTransfer(ctx, "b", t.TempDir()); err != nil {
		t.Fatalf("accept into an empty directory: %v", err)
	}
}

// TestFileEvents: every change is a "file" event carrying the transfer,
// and an offer nobody decides on is declined after accept_timeout.
func TestFileEvents(t *testing.T) {
	b, f := fileBackend(t, fileSettings{acceptTimeout: time.Millisecond})
	_, ch, stop := b.hub.subscribe(64, "")
	defer stop()
	f.offer(offerOf("in1", "bob@example.test", 5), nil)
	ev := <-ch
	if ev.Kind != "file" || ev.File == nil || ev.File.ID != "in1" || ev.File.State != api.TransferPending || ev.From != "bob@example.test/phone" {
		t.Fatalf("offer event %+v", ev)
	}
	select {
	case id := <-f.declined:
		if id != "in1" {
			t.Fatalf("declined %s", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the offer was not declined after accept_timeout")
	}
	ev = <-ch
	if ev.File == nil || ev.File.State != api.TransferDeclined {
		t.Fatalf("decline event %+v", ev)
	}
	// A progress event carries the counters.
	x := offerOf("in2", "bob@example.test", 100)
	x.Direction, x.State, x.BytesDone, x.Rate, x.Transport = api.TransferIncoming, api.TransferTransferring, 40, 1e6, api.TransportS5BDirect
	f.set(x)
	ev = <-ch
	if ev.File == nil || ev.File.BytesDone != 40 || ev.File.Rate != 1e6 || ev.File.Transport != api.TransportS5BDirect {
		t.Fatalf("progress event %+v", ev.File)
	}
}

// TestAcceptStopsTimeout: an offer accepted in time is not declined.
func TestAcceptStopsTimeout(t *testing.T) {
	b, f := fileBackend(t, fileSettings{acceptTimeout: time.Hour})
	f.offer(offerOf("in1", "bob@example.test", 5), nil)
	if _, err := b.AcceptTransfer(context.Background(), "in1", ""); err != nil {
		t.Fatal(err)
	}
	b.fs.mu.Lock()
	n := len(b.fs.timers)
	b.fs.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d accept timers left after the accept", n)
	}
}

// TestNoFileGateway: without file support every file endpoint is 503.
func TestNoFileGateway(t *testing.T) {
	b, _ := offlineBackend(t)
	srv := api.NewServer(b, nil)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/files", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /v1/files without file support: %d %s", rec.Code, rec.Body)
	}
	if _, err := b.AcceptTransfer(context.Background(), "x", ""); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("accept without file support: %v", err)
	}
}

// TestFilesThroughAPI: the backend serves the file endpoints.
func TestFilesThroughAPI(t *testing.T) {
	b, f := fileBackend(t, fileSettings{})
	pinPeers(t, b)
	f.offer(offerOf("in1", "bob@example.test", 5), nil)
	srv := api.NewServer(b, nil)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/files/in1", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/files/in1: %d %s", rec.Code, rec.Body)
	}
	var info api.TransferInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if info.ID != "in1" || info.State != api.TransferPending || info.AccountFingerprint == "" || len(info.Files) != 1 {
		t.Fatalf("transfer %+v", info)
	}
}
