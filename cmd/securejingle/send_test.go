package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/progress"
)

// fileCLIBackend is a hand-written api.Backend with file support whose
// transfers move on when the test says so.
type fileCLIBackend struct {
	*callBackend // the rest of api.Backend, and the event subscribers
	fmu          sync.Mutex
	xfers        map[string]api.TransferInfo
	order        []string
	sent         []api.SendFilesOptions
	sentTo       []string
	accepted     map[string]string
	actions      []string
	err          error // returned by the next SendFiles
	// onCancel, if set, gives the state after a cancel; default
	// cancelled.
	onCancel func(api.TransferInfo) api.TransferInfo
}

func newFileCLIBackend() *fileCLIBackend {
	return &fileCLIBackend{callBackend: newCallBackend(), xfers: map[string]api.TransferInfo{}, accepted: map[string]string{}}
}

// set stores a transfer's new state and publishes it as an event.
func (b *fileCLIBackend) set(t api.TransferInfo) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	b.setLocked(t)
}

func (b *fileCLIBackend) setLocked(t api.TransferInfo) {
	if _, ok := b.xfers[t.ID]; !ok {
		b.order = append(b.order, t.ID)
	}
	t.Files = append([]api.FileInfo(nil), t.Files...)
	b.xfers[t.ID] = t
	tt := t
	b.callBackend.mu.Lock()
	defer b.callBackend.mu.Unlock()
	for _, ch := range b.subs {
		select {
		case ch <- api.Event{Kind: "file", Time: time.Now(), From: t.Peer, File: &tt}:
		default:
		}
	}
}

func (b *fileCLIBackend) get(id string) api.TransferInfo {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	t := b.xfers[id]
	t.Files = append([]api.FileInfo(nil), t.Files...)
	return t
}

func (b *fileCLIBackend) Transfers() ([]api.TransferInfo, error) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	var out []api.TransferInfo
	for _, id := range b.order {
		out = append(out, b.xfers[id])
	}
	return out, nil
}

func (b *fileCLIBackend) Transfer(id string) (api.TransferInfo, error) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	t, ok := b.xfers[id]
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: no transfer %s", api.ErrNotFound, id)
	}
	return t, nil
}

func (b *fileCLIBackend) SendFiles(_ context.Context, to string, o api.SendFilesOptions) (api.TransferInfo, error) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if err := b.err; err != nil {
		b.err = nil
		return api.TransferInfo{}, err
	}
	b.sent, b.sentTo = append(b.sent, o), append(b.sentTo, to)
	t := api.TransferInfo{ID: fmt.Sprintf("xfer%d", len(b.sent)), Direction: api.TransferOutgoing, Peer: to, State: api.TransferOffered,
		Trust: "tofu", Created: time.Now()}
	for _, p := range o.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return api.TransferInfo{}, err
		}
		t.Files = append(t.Files, api.FileInfo{Name: filepath.Base(p), Size: uint64(fi.Size()), Path: p, State: api.TransferOffered,
			Hash: "sha-256:" + strings.Repeat("ab", 32)})
		t.BytesTotal += uint64(fi.Size())
	}
	b.setLocked(t)
	return t, nil
}

func (b *fileCLIBackend) act(what, id, state string) (api.TransferInfo, error) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	t, ok := b.xfers[id]
	if !ok {
		return api.TransferInfo{}, fmt.Errorf("%w: no transfer %s", api.ErrNotFound, id)
	}
	b.actions = append(b.actions, what+" "+id)
	if what == "cancel" && b.onCancel != nil {
		t = b.onCancel(t)
	} else {
		t.State = state
	}
	b.setLocked(t)
	return t, nil
}

func (b *fileCLIBackend) AcceptTransfer(_ context.Context, id, dir string) (api.TransferInfo, error) {
	b.fmu.Lock()
	b.accepted[id] = dir
	b.fmu.Unlock()
	return b.act("accept", id, api.TransferConnecting)
}

func (b *fileCLIBackend) DeclineTransfer(_ context.Context, id string) (api.TransferInfo, error) {
	return b.act("decline", id, api.TransferDeclined)
}

func (b *fileCLIBackend) CancelTransfer(_ context.Context, id string) (api.TransferInfo, error) {
	return b.act("cancel", id, api.TransferCancelled)
}

func (b *fileCLIBackend) ResumeTransfer(_ context.Context, id string) (api.TransferInfo, error) {
	return b.act("resume", id, api.TransferConnecting)
}

func (b *fileCLIBackend) lastAction() string {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if len(b.actions) == 0 {
		return ""
	}
	return b.actions[len(b.actions)-1]
}

// serveFiles serves b on a socket and returns the -socket flag.
func serveFiles(t *testing.T, b *fileCLIBackend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sjf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "run", "api.sock")
	l, err := api.Listen(socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(b, nil, api.WithHeartbeat(20*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.HangGuard)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return "-socket=" + socket
}

// progressLine reports whether l is a plain progress line of a file
// still moving (their number depends on timing).
func progressLine(l string) bool {
	return strings.Contains(l, "% ") && strings.Contains(l, ", ETA ")
}

// steps returns the output without the moving progress lines.
func steps(out string) []string {
	var s []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !progressLine(l) {
			s = append(s, l)
		}
	}
	return s
}

func TestSendCommand(t *testing.T) {
	b := newFileCLIBackend()
	sock := serveFiles(t, b)
	dir := t.TempDir()
	t.Chdir(dir)
	for name, n := range map[string]int{"a.txt": 1000, "b.bin": 3000} {
		if err := os.WriteFile(name, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()

	// Two files that arrive: exit 0, relative paths resolved here.
	bg := runBackground(ctx, t, "send", sock, "bob@example.test", "a.txt", "b.bin", "-transport", "s5b-direct,ibb")
	waitOutput(t, bg, "waiting for bob@example.test to accept")
	want := api.SendFilesOptions{Paths: []string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.bin")},
		Transports: []string{api.TransportS5BDirect, api.TransportIBB}}
	if !reflect.DeepEqual(b.sent[0], want) || b.sentTo[0] != "bob@example.test" {
		t.Fatalf("sent %q %+v, want %+v", b.sentTo[0], b.sent[0], want)
	}
	x := b.get("xfer1")
	x.State, x.PeerFull, x.PeerDevice, x.Transport, x.Suite = api.TransferConnecting, "bob@example.test/phone", 4242, api.TransportS5BDirect, "urn:x-securejingle:1:file:aes-256-gcm"
	x.AccountFingerprint = "SHA256:bobsaccountkey"
	b.set(x)
	x.State, x.Started = api.TransferTransferring, time.Now()
	x.Files[0].Done, x.Files[0].State, x.BytesDone = 500, api.TransferTransferring, 500
	b.set(x)
	x.Files[0].Done, x.Files[0].State = 1000, api.TransferCompleted
	x.Files[1].Done, x.Files[1].State, x.BytesDone = 1500, api.TransferTransferring, 2500
	b.set(x)
	x.State, x.BytesDone, x.Ended = api.TransferCompleted, 4000, x.Started.Add(2*time.Second)
	x.Files[1].Done, x.Files[1].State = 3000, api.TransferCompleted
	b.set(x)
	if err := bg.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, bg.stdout.String())
	}
	hash := "sha-256:" + strings.Repeat("ab", 32)
	wantSteps := []string{
		"offering 2 files (4.0 kB) to bob@example.test, transfer xfer1",
		"waiting for bob@example.test to accept",
		"accepted by bob@example.test/phone (device 4242)",
		"peer:      bob@example.test, account key SHA256:bobsaccountkey, NOT VERIFIED (pinned on first use): compare with `securejingle verify bob@example.test`",
		"transport: s5b-direct, stream cipher urn:x-securejingle:1:file:aes-256-gcm",
	}
	got := steps(bg.stdout.String())
	if len(got) != len(wantSteps)+3 || !reflect.DeepEqual(got[:len(wantSteps)], wantSteps) {
		t.Fatalf("send printed:\n%s\nwant first:\n%s", strings.Join(got, "\n"), strings.Join(wantSteps, "\n"))
	}
	for i, prefix := range []string{"a.txt: 100% 1.0 kB in ", "b.bin: 100% 3.0 kB in "} {
		if l := got[len(wantSteps)+i]; !strings.HasPrefix(l, prefix) || !strings.HasSuffix(l, hash+" verified") {
			t.Errorf("final line %q, want %q... %s verified", l, prefix, hash)
		}
	}
	if l := got[len(got)-1]; l != "completed: 2 files (4.0 kB) to bob@example.test in 2s (2.0 kB/s); the receiver verified every file's hash" {
		t.Errorf("last line %q", l)
	}

	// Refused before it starts: the API's error, exit 1.
	b.fmu.Lock()
	b.err = fmt.Errorf("%w: the policy refuses files to strangers", api.ErrPolicyRefused)
	b.fmu.Unlock()
	if _, _, err := runCommand(t, "send", sock, "bob@example.test", "a.txt"); !errors.Is(err, api.ErrPolicyRefused) {
		t.Fatalf("refused send: %v", err)
	}
	// A bad transport never reaches the daemon.
	if _, _, err := runCommand(t, "send", sock, "-transport", "ftp", "bob@example.test", "a.txt"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("bad transport: %v", err)
	}
	if _, _, err := runCommand(t, "send", sock, "bob@example.test"); err == nil || !strings.Contains(err.Error(), "at least one file") {
		t.Fatalf("no file: %v", err)
	}

	// Declined: exit 1 with the detail.
	bg = runBackground(ctx, t, "send", sock, "bob@example.test", "a.txt")
	waitOutput(t, bg, "transfer xfer2")
	x = b.get("xfer2")
	x.State, x.Detail, x.Ended = api.TransferDeclined, "bob@example.test declined the offer", time.Now()
	b.set(x)
	err := bg.wait(t, "declined send")
	if err == nil || err.Error() != "transfer xfer2 to bob@example.test declined: bob@example.test declined the offer" {
		t.Fatalf("declined send: %v", err)
	}

	// Failed mid-way: exit 1, the detail and how to resume.
	bg = runBackground(ctx, t, "send", sock, "bob@example.test", "b.bin")
	waitOutput(t, bg, "transfer xfer3")
	x = b.get("xfer3")
	x.State, x.Transport = api.TransferTransferring, api.TransportIBB
	x.Files[0].Done, x.BytesDone = 1200, 1200
	b.set(x)
	x.State, x.Detail = api.TransferFailed, "the connection was cut: the receiver kept 1200 verified bytes"
	b.set(x)
	err = bg.wait(t, "failed send")
	if err == nil || !strings.Contains(err.Error(), "failed: the connection was cut") || !strings.Contains(err.Error(), "securejingle files resume xfer3") {
		t.Fatalf("failed send: %v", err)
	}
	if out := bg.stdout.String(); !strings.Contains(out, "b.bin: failed at 40% (1.2 kB of 3.0 kB): failed") {
		t.Fatalf("failed send printed:\n%s", out)
	}

	// Interrupted: the command cancels the transfer and exits 1.
	ictx, interrupt := context.WithCancel(ctx)
	bg = runBackground(ictx, t, "send", sock, "bob@example.test", "a.txt")
	waitOutput(t, bg, "transfer xfer4")
	interrupt()
	err = bg.wait(t, "interrupted send")
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("interrupted send: %v", err)
	}
	if a := b.lastAction(); a != "cancel xfer4" {
		t.Fatalf("last action %q, want cancel xfer4", a)
	}
	if !strings.Contains(bg.stdout.String(), "cancelling the transfer") {
		t.Fatalf("interrupted send printed:\n%s", bg.stdout.String())
	}

	// A cancel that the daemon answers before the end: the command waits
	// for the end event.
	b.fmu.Lock()
	b.onCancel = func(t api.TransferInfo) api.TransferInfo { return t }
	b.fmu.Unlock()
	ictx, interrupt = context.WithCancel(ctx)
	bg = runBackground(ictx, t, "send", sock, "bob@example.test", "a.txt")
	waitOutput(t, bg, "transfer xfer5")
	interrupt()
	daemontest.Poll(t, "cancel xfer5", func() bool { return b.lastAction() == "cancel xfer5" })
	x = b.get("xfer5")
	x.State, x.Detail = api.TransferCancelled, "cancelled by you"
	b.set(x)
	if err := bg.wait(t, "cancelled send"); err == nil || err.Error() != "transfer xfer5 to bob@example.test cancelled: cancelled by you" {
		t.Fatalf("cancelled send: %v", err)
	}
}

// TestSendView: lines of several files on a terminal are redrawn in
// place; a peer's name cannot inject escapes.
func TestSendViewHostileNames(t *testing.T) {
	var out syncBuffer
	v := newSendView(&out, sendViewTerminal())
	v.show(api.TransferInfo{ID: "x\x1b[2J", Peer: "bob@example.test", State: api.TransferTransferring,
		Files: []api.FileInfo{{Name: "evil\x1b]0;title\x07.txt", Size: 10, Done: 5}}})
	if s := out.String(); strings.Contains(s, "\x1b[2J") || strings.Contains(s, "\x1b]0") || strings.Contains(s, "\x07") {
		t.Fatalf("escape sequences from the peer reached the terminal: %q", s)
	}
}

func TestFilesCommand(t *testing.T) {
	b := newFileCLIBackend()
	sock := serveFiles(t, b)
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("in", 0o700); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCommand(t, "files", sock)
	if err != nil || out != "no transfers\n" {
		t.Fatalf("empty list: %q %v", out, err)
	}
	b.set(api.TransferInfo{ID: "in1", Direction: api.TransferIncoming, Peer: "carol@example.test", State: api.TransferPending, Trust: "tofu",
		Files: []api.FileInfo{{Name: "photo.jpg", Size: 2_000_000}, {Name: "notes.txt", Size: 500}}, BytesTotal: 2_000_500})
	b.set(api.TransferInfo{ID: "out1", Direction: api.TransferOutgoing, Peer: "bob@example.test", State: api.TransferTransferring, Trust: "verified", Verified: true,
		Files: []api.FileInfo{{Name: "movie.mkv", Size: 10_000_000, Done: 2_500_000}}, Transport: api.TransportDataChannel,
		BytesDone: 2_500_000, BytesTotal: 10_000_000, Rate: 1_250_000})
	b.set(api.TransferInfo{ID: "out2", Direction: api.TransferOutgoing, Peer: "bob@example.test", State: api.TransferFailed,
		Files: []api.FileInfo{{Name: "x.iso", Size: 1000, Done: 300}}, Transport: api.TransportIBB, BytesDone: 300, BytesTotal: 1000,
		Detail: "the connection was cut: resume with securejingle files resume out2"})
	out, _, err = runCommand(t, "files", sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ID    DIRECTION  PEER                STATE         FILES         SIZE              TRANSPORT           RATE\n",
		"in1   incoming   carol@example.test  pending       photo.jpg +1  0 B / 2.0 MB      -                   -\n",
		"out1  outgoing   bob@example.test    transferring  movie.mkv     2.5 MB / 10.0 MB  webrtc-datachannel  1.2 MB/s\n",
		"out2  outgoing   bob@example.test    failed        x.iso         300 B / 1.0 kB    ibb                 -\n",
		"carol@example.test offers 2 files (2.0 MB) (not verified: tofu): securejingle files accept in1 (or decline in1)\n",
		"out2: the connection was cut: resume with securejingle files resume out2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	// accept -dir is resolved here.
	out, _, err = runCommand(t, "files", "accept", "in1", "-dir", "in", sock)
	if err != nil || out != "transfer in1 from carol@example.test: connecting\n" {
		t.Fatalf("accept: %q %v", out, err)
	}
	if d := b.accepted["in1"]; d != filepath.Join(dir, "in") {
		t.Fatalf("accepted into %q", d)
	}
	for _, tc := range []struct{ action, id, want string }{
		{"resume", "out2", "transfer out2 to bob@example.test: connecting\n"},
		{"cancel", "out1", "transfer out1 to bob@example.test: cancelled\n"},
	} {
		out, _, err := runCommand(t, "files", tc.action, tc.id, sock)
		if err != nil || out != tc.want {
			t.Errorf("%s %s: %q %v", tc.action, tc.id, out, err)
		}
	}
	if _, _, err := runCommand(t, "files", "decline", "nope", sock); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("decline of an unknown transfer: %v", err)
	}
	if _, _, err := runCommand(t, "files", "accept", sock); err == nil || !strings.Contains(err.Error(), "needs the transfer ID") {
		t.Errorf("accept without an id: %v", err)
	}
	if _, _, err := runCommand(t, "files", "open", "in1", sock); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("unknown action: %v", err)
	}
	out, _, err = runCommand(t, "files", sock, "-json")
	if err != nil || !strings.Contains(out, `"id": "in1"`) {
		t.Fatalf("json: %q %v", out, err)
	}
}

func TestFileEventLine(t *testing.T) {
	base := api.TransferInfo{ID: "f1", Peer: "bob@example.test", Direction: api.TransferIncoming, Trust: "verified", Verified: true,
		Files: []api.FileInfo{{Name: "a.txt", Size: 10}}}
	for state, want := range map[string]string{
		api.TransferPending:      "* FILES f1 from bob@example.test: a.txt (10 B) (verified): securejingle files accept f1",
		api.TransferCompleted:    "* FILES f1 from bob@example.test completed: a.txt (10 B), hashes verified",
		api.TransferFailed:       "! FILES f1 from bob@example.test failed: disk full",
		api.TransferDeclined:     "* FILES f1 from bob@example.test declined: disk full",
		api.TransferTransferring: "",
	} {
		x := base
		x.State = state
		if state != api.TransferPending && state != api.TransferCompleted {
			x.Detail = "disk full"
		}
		if got := fileEventLine(x); got != want {
			t.Errorf("%s: %q, want %q", state, got, want)
		}
	}
}

func sendViewTerminal() progress.Options { return progress.Options{Terminal: true, Width: 80} }
