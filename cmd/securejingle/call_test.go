package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// callBackend is a hand-written api.Backend with call support whose calls
// move on when the test says so.
type callBackend struct {
	mu      sync.Mutex
	calls   map[string]api.CallInfo
	order   []string
	subs    map[int]chan api.Event
	next    int
	placeTo []string
	placed  []api.CallOptions
	actions []string
	err     error // returned by the next PlaceCall
	// onHangUp, if set, gives the call's state after a hangup; default
	// ended with success.
	onHangUp func(api.CallInfo) api.CallInfo
}

func newCallBackend() *callBackend {
	return &callBackend{calls: map[string]api.CallInfo{}, subs: map[int]chan api.Event{}}
}

func (b *callBackend) Status() api.Status {
	return api.Status{Account: "alice@example.test", Connected: true}
}
func (b *callBackend) Peers() ([]api.Peer, error)           { return nil, nil }
func (b *callBackend) Messages() ([]api.SentMessage, error) { return nil, nil }
func (b *callBackend) SendChat(context.Context, string, string) (api.SentMessage, error) {
	return api.SentMessage{}, errors.New("no chat here")
}
func (b *callBackend) SendIQ(context.Context, api.IQRequest) (api.IQResponse, error) {
	return api.IQResponse{}, errors.New("no iq here")
}
func (b *callBackend) Verify(string) (api.VerifyInfo, error) {
	return api.VerifyInfo{}, api.ErrNotFound
}
func (b *callBackend) Devices() (api.DevicesInfo, error)               { return api.DevicesInfo{}, nil }
func (b *callBackend) Trust(api.TrustRequest) (api.TrustResult, error) { return api.TrustResult{}, nil }
func (b *callBackend) ChangeDevices(context.Context, api.DevicesRequest) (api.DevicesInfo, error) {
	return api.DevicesInfo{}, nil
}

func (b *callBackend) Subscribe(n int, _ string) ([]api.Event, <-chan api.Event, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	c := make(chan api.Event, n)
	b.subs[id] = c
	var once sync.Once
	return nil, c, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, id)
			b.mu.Unlock()
			close(c)
		})
	}
}

// set stores a call's new state and publishes it as an event.
func (b *callBackend) set(c api.CallInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(c)
}

func (b *callBackend) setLocked(c api.CallInfo) {
	if _, ok := b.calls[c.ID]; !ok {
		b.order = append(b.order, c.ID)
	}
	b.calls[c.ID] = c
	cc := c
	for _, ch := range b.subs {
		select {
		case ch <- api.Event{Kind: "call", Time: time.Now(), From: c.Peer, Call: &cc}:
		default:
		}
	}
}

func (b *callBackend) get(id string) api.CallInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[id]
}

func (b *callBackend) Calls() ([]api.CallInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.CallInfo
	for _, id := range b.order {
		out = append(out, b.calls[id])
	}
	return out, nil
}

func (b *callBackend) Call(id string) (api.CallInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.calls[id]
	if !ok {
		return api.CallInfo{}, fmt.Errorf("%w: no call %s", api.ErrNotFound, id)
	}
	return c, nil
}

func (b *callBackend) PlaceCall(_ context.Context, to string, o api.CallOptions) (api.CallInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.err; err != nil {
		b.err = nil
		return api.CallInfo{}, err
	}
	b.placeTo, b.placed = append(b.placeTo, to), append(b.placed, o)
	c := api.CallInfo{ID: fmt.Sprintf("call%d", len(b.placed)), Direction: api.CallOutgoing, Peer: to, State: api.CallProposed,
		Media: []string{"audio"}, Trust: "tofu", Binding: api.BindingPending, Created: time.Now()}
	b.setLocked(c)
	return c, nil
}

func (b *callBackend) AnswerCall(_ context.Context, id string, o api.CallOptions) (api.CallInfo, error) {
	return b.act("answer", id, api.CallConnecting, "")
}

func (b *callBackend) DeclineCall(_ context.Context, id string) (api.CallInfo, error) {
	return b.act("decline", id, api.CallEnded, "decline")
}

func (b *callBackend) HangUp(_ context.Context, id string) (api.CallInfo, error) {
	b.mu.Lock()
	f := b.onHangUp
	b.mu.Unlock()
	if f == nil {
		return b.act("hangup", id, api.CallEnded, "success")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.calls[id]
	if !ok {
		return api.CallInfo{}, fmt.Errorf("%w: no call %s", api.ErrNotFound, id)
	}
	b.actions = append(b.actions, "hangup "+id)
	c = f(c)
	b.setLocked(c)
	return c, nil
}

func (b *callBackend) act(what, id, state, reason string) (api.CallInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.calls[id]
	if !ok {
		return api.CallInfo{}, fmt.Errorf("%w: no call %s", api.ErrNotFound, id)
	}
	b.actions = append(b.actions, what+" "+id)
	c.State, c.EndReason = state, reason
	if state == api.CallEnded {
		c.Ended = time.Now()
	}
	b.setLocked(c)
	return c, nil
}

func (b *callBackend) lastAction() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.actions) == 0 {
		return ""
	}
	return b.actions[len(b.actions)-1]
}

// serveCalls serves b on a socket and returns the -socket flag.
func serveCalls(t *testing.T, b *callBackend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sjc")
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

// waitOutput waits until the command's output holds s.
func waitOutput(t *testing.T, bg *background, s string) {
	t.Helper()
	daemontest.Poll(t, "output "+s, func() bool {
		select {
		case <-bg.done:
			if !strings.Contains(bg.stdout.String(), s) {
				t.Fatalf("command ended (%v) without printing %q; stdout:\n%s\nstderr:\n%s", bg.err, s, bg.stdout.String(), bg.stderr.String())
			}
		default:
		}
		return strings.Contains(bg.stdout.String(), s)
	})
}

// connect moves call id through ringing and connecting to connected
// with the binding check passed.
func connect(b *callBackend, id string) {
	c := b.get(id)
	c.State = api.CallRinging
	b.set(c)
	c.State, c.PeerFull, c.PeerDevice = api.CallConnecting, "bob@example.test/phone", 4242
	b.set(c)
	c.State, c.Connected, c.SRTPProfile = api.CallConnected, time.Now(), "SRTP_AEAD_AES_256_GCM"
	c.AccountFingerprint = "SHA256:bobsaccountkey"
	b.set(c)
	c.Binding, c.PeerFingerprint = api.BindingPassed, "AB:CD"
	c.BytesSent, c.PacketsSent, c.BytesReceived, c.PacketsReceived = 48000, 300, 47000, 299
	b.set(c)
}

func TestCallCommand(t *testing.T) {
	b := newCallBackend()
	sock := serveCalls(t, b)
	dir := t.TempDir()
	t.Chdir(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()

	// A call that connects, then ends when the peer hangs up: exit 0.
	bg := runBackground(ctx, t, "call", sock, "bob@example.test", "-duration", "30s")
	waitOutput(t, bg, "calling bob@example.test (audio), call call1")
	if o := b.placed[0]; o.AudioFile != "" || !o.Audio || o.Duration != 30*time.Second {
		t.Fatalf("options %+v", o)
	}
	connect(b, "call1")
	waitOutput(t, bg, "binding: passed")
	c := b.get("call1")
	c.State, c.EndReason, c.Ended, c.Recordings = api.CallEnded, "success", c.Connected.Add(30*time.Second), []string{dir + "/call1-audio.ogg"}
	b.set(c)
	if err := bg.wait(t, "call"); err != nil {
		t.Fatalf("call: %v\n%s", err, bg.stdout.String())
	}
	// Progress lines come with the polls, however many there were.
	var steps []string
	for _, l := range strings.SplitAfter(bg.stdout.String(), "\n") {
		if !strings.HasPrefix(l, "sent ") {
			steps = append(steps, l)
		}
	}
	out := strings.Join(steps, "")
	want := []string{
		"calling bob@example.test (audio), call call1\n",
		"ringing bob@example.test\n",
		"answered by bob@example.test/phone (device 4242): connecting\n",
		"connected\n",
		"peer:    bob@example.test, account key SHA256:bobsaccountkey, NOT VERIFIED (pinned on first use): compare with `securejingle verify bob@example.test`\n",
		"SRTP:    SRTP_AEAD_AES_256_GCM\n",
		"binding: passed: the peer's DTLS certificate matches the fingerprint its certified device sent inside the protected channel (AB:CD)\n",
		"ended: hung up after 30s; sent 48.0 kB (300 packets), received 47.0 kB (299 packets)\n",
		"recorded: " + dir + "/call1-audio.ogg\n",
	}
	if got := strings.Join(want, ""); out != got {
		t.Fatalf("call printed:\n%s\nwant:\n%s", out, got)
	}

	// Relative paths are resolved in the client's directory.
	if err := os.Mkdir("rec", 0o700); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.err = fmt.Errorf("%w: bob@example.test has no certified device: ask them to run securejingle", api.ErrConflict)
	b.mu.Unlock()
	_, _, err := runCommand(t, "call", sock, "bob@example.test", "-record", "rec")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "no certified device") {
		t.Fatalf("refused call: %v", err)
	}

	// Declined: exit status 1 with the reason.
	bg = runBackground(ctx, t, "call", sock, "bob@example.test", "-record", "rec")
	waitOutput(t, bg, "call call2")
	if o := b.placed[1]; o.RecordDir != filepath.Join(dir, "rec") {
		t.Fatalf("record dir %q, want it resolved against %s", o.RecordDir, dir)
	}
	c = b.get("call2")
	c.State = api.CallRinging
	b.set(c)
	c.State, c.EndReason, c.Ended = api.CallEnded, "decline", time.Now()
	b.set(c)
	err = bg.wait(t, "declined call")
	if err == nil || err.Error() != "call to bob@example.test declined" {
		t.Fatalf("declined call: %v", err)
	}

	// Interrupted: the command hangs up and exits 0.
	ictx, interrupt := context.WithCancel(ctx)
	bg = runBackground(ictx, t, "call", sock, "bob@example.test")
	waitOutput(t, bg, "call call3")
	connect(b, "call3")
	waitOutput(t, bg, "binding: passed")
	interrupt()
	if err := bg.wait(t, "interrupted call"); err != nil {
		t.Fatalf("interrupted call: %v", err)
	}
	if b.lastAction() != "hangup call3" || !strings.Contains(bg.stdout.String(), "hanging up\nended: hung up") {
		t.Fatalf("interrupt: last action %q, output:\n%s", b.lastAction(), bg.stdout.String())
	}

	// A failed binding check is a failure, whatever the reason says.
	bg = runBackground(ctx, t, "call", sock, "bob@example.test")
	waitOutput(t, bg, "call call4")
	c = b.get("call4")
	c.State, c.Binding, c.EndReason, c.Ended = api.CallEnded, api.BindingFailed, "security-error", time.Now()
	c.Detail = "the DTLS certificate of bob@example.test/phone does not match its protected answer"
	b.set(c)
	err = bg.wait(t, "binding failure")
	if err == nil || !strings.Contains(err.Error(), "security-error") || !strings.Contains(err.Error(), "does not match") ||
		!strings.Contains(bg.stdout.String(), "binding: FAILED") {
		t.Fatalf("binding failure: %v\n%s", err, bg.stdout.String())
	}

	// Bad flags never reach the daemon.
	for _, args := range [][]string{
		{"call", sock},
		{"call", sock, "bob@example.test", "carol@example.test"},
		{"call", sock, "bob@example.test", "-duration", "soon"},
		{"call", sock, "bob@example.test", "-no-audio", "-audio", "x.ogg"},
	} {
		if _, _, err := runCommand(t, args[0], args[1:]...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if len(b.placed) != 4 {
		t.Fatalf("%d calls placed, want 4", len(b.placed))
	}
}

func TestCallsCommand(t *testing.T) {
	b := newCallBackend()
	sock := serveCalls(t, b)
	out, _, err := runCommand(t, "calls", sock)
	if err != nil || out != "no calls\n" {
		t.Fatalf("empty list: %q %v", out, err)
	}
	b.set(api.CallInfo{ID: "in1", Direction: api.CallIncoming, Peer: "bob@example.test", State: api.CallRinging,
		Media: []string{"audio", "video"}, Trust: "verified", Verified: true, Binding: api.BindingPending})
	b.set(api.CallInfo{ID: "out1", Direction: api.CallOutgoing, Peer: "carol@example.test", State: api.CallEnded, EndReason: "busy",
		Media: []string{"audio"}, Trust: "tofu", Binding: api.BindingPending, Detail: "carol@example.test is in another call"})
	out, _, err = runCommand(t, "calls", sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"ID    DIRECTION  PEER",
		"in1   incoming   bob@example.test    ringing  audio + video  verified  pending",
		"out1  outgoing   carol@example.test  busy",
		"busy",
		"bob@example.test is ringing: securejingle calls answer in1 (or decline in1)\n",
		"out1: carol@example.test is in another call\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("calls output lacks %q:\n%s", w, out)
		}
	}
	out, _, err = runCommand(t, "calls", sock, "-json")
	if err != nil || !strings.Contains(out, `"id": "in1"`) {
		t.Fatalf("calls -json: %q %v", out, err)
	}

	out, _, err = runCommand(t, "calls", "answer", "in1", sock)
	if err != nil || out != "call in1 with bob@example.test: connecting\n" || b.lastAction() != "answer in1" {
		t.Fatalf("answer: %q %v (last action %q)", out, err, b.lastAction())
	}
	out, _, err = runCommand(t, "calls", "hangup", sock, "in1")
	if err != nil || out != "call in1 with bob@example.test: hung up\n" {
		t.Fatalf("hangup: %q %v", out, err)
	}
	b.set(api.CallInfo{ID: "in2", Direction: api.CallIncoming, Peer: "bob@example.test", State: api.CallRinging, Media: []string{"audio"}})
	out, _, err = runCommand(t, "calls", "decline", "in2", sock)
	if err != nil || out != "call in2 with bob@example.test: declined\n" {
		t.Fatalf("decline: %q %v", out, err)
	}
	if _, _, err := runCommand(t, "calls", "hangup", "nope", sock); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown call: %v", err)
	}
	for _, args := range [][]string{
		{"calls", "answer", sock},
		{"calls", "ring", "in1", sock},
		{"calls", sock, "in1"},
		{"calls", "decline", "in1", "-audio", "x.ogg", sock},
	} {
		if _, _, err := runCommand(t, args[0], args[1:]...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestCallViewProgress: on a terminal the counters line is redrawn in
// place and cleared before the next step; elsewhere a plain line comes
// every few polls.
func TestCallViewProgress(t *testing.T) {
	info := api.CallInfo{ID: "c", Peer: "bob@example.test", State: api.CallConnected, Media: []string{"audio"},
		BytesSent: 1500, PacketsSent: 10, BytesReceived: 999, PacketsReceived: 9}
	var tty bytes.Buffer
	v := newCallView(&tty, true)
	v.shown["placed"], v.shown["connected"], v.shown["identity"] = true, true, true
	v.progress(info)
	v.progress(info)
	v.note("hanging up")
	want := "\r\x1b[Ksent 1.5 kB (10 packets), received 999 B (9 packets)" +
		"\r\x1b[Ksent 1.5 kB (10 packets), received 999 B (9 packets)" +
		"\r\x1b[Khanging up\n"
	if tty.String() != want {
		t.Fatalf("terminal output %q, want %q", tty.String(), want)
	}
	var plain bytes.Buffer
	v = newCallView(&plain, false)
	for range 2 * callPlainEvery {
		v.progress(info)
	}
	if want := strings.Repeat("sent 1.5 kB (10 packets), received 999 B (9 packets)\n", 2); plain.String() != want {
		t.Fatalf("plain output %q, want %q", plain.String(), want)
	}
	if strings.Contains(plain.String(), "\x1b") || strings.Contains(plain.String(), "\r") {
		t.Fatal("escape sequences in plain output")
	}
}

func TestCallEventLine(t *testing.T) {
	for _, tc := range []struct {
		c    api.CallInfo
		want string
	}{
		{api.CallInfo{ID: "c1", Direction: api.CallIncoming, Peer: "bob@example.test", State: api.CallRinging, Media: []string{"audio"}, Trust: "tofu"},
			"* CALL c1 from bob@example.test ringing (audio, not verified: tofu): securejingle calls answer c1"},
		{api.CallInfo{ID: "c1", Peer: "bob@example.test\x1b[2J", State: api.CallEnded, EndReason: "timeout"},
			"* CALL c1 with bob@example.test\ufffd[2J not answered in time"},
		{api.CallInfo{ID: "c1", Peer: "bob@example.test", State: api.CallEnded, Binding: api.BindingFailed, EndReason: "security-error"},
			"! CALL c1 with bob@example.test: FAILED"},
	} {
		if got := formatEvent(api.Event{Kind: "call", Call: &tc.c}); !strings.Contains(got, tc.want) {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

// TestCallCLIAgainstDaemons: `securejingle call` through alice's daemon to
// bob's, which answers by its auto-answer rule; the call connects, the
// binding check passes, -duration hangs up, and the command exits 0.
func TestCallCLIAgainstDaemons(t *testing.T) {
	env := daemontest.New(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ogg")
	daemontest.Media(t, in, "", mediagen.Options{Duration: 2 * time.Second, Seed: 1})
	env.Bob.AppendConfig(t, fmt.Sprintf("[calls]\nuse_server_services = false\n[[calls.auto_answer]]\npeer = %q\nmin_trust = \"tofu\"\naudio_file = %q\n", env.Alice.JID, in))
	nets := daemontest.CallNets(t, 2)
	alice := daemontest.StartWith(t, env.Alice, daemon.WithCallNet(nets[0]))
	bob := daemontest.StartWith(t, env.Bob, daemon.WithCallNet(nets[1]))
	daemontest.WaitConnected(t, alice.Client)
	bobSt := daemontest.WaitConnected(t, bob.Client)
	bobDev := daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	t.Chdir(dir)
	if err := os.Mkdir("rec", 0o700); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCommand(t, "call", "-socket="+env.Alice.Socket, env.Bob.JID, "-audio", "in.ogg", "-record", "rec", "-duration", "1s")
	if err != nil {
		t.Fatalf("call: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, w := range []string{
		"calling " + env.Bob.JID + " (audio), call ",
		fmt.Sprintf("answered by %s/phone (device %d): connecting\n", env.Bob.JID, bobDev),
		"connected\n",
		fmt.Sprintf("peer:    %s, account key %s, NOT VERIFIED (pinned on first use)", env.Bob.JID, bobSt.Fingerprint),
		"SRTP:    SRTP_AEAD_AES_256_GCM\n",
		"binding: passed: ",
		"ended: hung up after ",
		"recorded: " + filepath.Join(dir, "rec") + "/",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("call output lacks %q:\n%s", w, out)
		}
	}
	// calls lists it, ended.
	out, _, err = runCommand(t, "calls", "-socket="+env.Alice.Socket)
	if err != nil || !strings.Contains(out, "outgoing   "+env.Bob.JID) || !strings.Contains(out, "hung up") || !strings.Contains(out, "passed") {
		t.Fatalf("calls: %v\n%s", err, out)
	}
}

func TestCallViewReconnecting(t *testing.T) {
	var out strings.Builder
	v := newCallView(&out, false)
	info := api.CallInfo{ID: "c1", Peer: "bob@example.test", PeerFull: "bob@example.test/phone", State: api.CallConnected, Connected: time.Now()}
	for _, s := range []string{api.CallConnected, api.CallReconnecting, api.CallReconnecting, api.CallConnected, api.CallConnected} {
		info.State = s
		v.show(info)
	}
	got := out.String()
	if strings.Count(got, "reconnecting:") != 1 || strings.Count(got, "reconnected:") != 1 ||
		strings.Index(got, "reconnecting:") > strings.Index(got, "reconnected:") {
		t.Fatalf("output:\n%s", got)
	}
}
