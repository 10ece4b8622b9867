package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// background runs a command in a goroutine until ctx is cancelled.
type background struct {
	stdout, stderr syncBuffer
	done           chan struct{} // closed when the command returned
	err            error
}

func runBackground(ctx context.Context, t *testing.T, name string, args ...string) *background {
	t.Helper()
	c, ok := commands[name]
	if !ok {
		t.Fatalf("command %q not registered", name)
	}
	b := &background{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.err = c.run(ctx, args, &b.stdout, &b.stderr)
	}()
	return b
}

func (b *background) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case <-b.done:
		return b.err
	case <-time.After(daemontest.HangGuard):
		t.Fatalf("%s did not finish; stdout %q stderr %q", what, b.stdout.String(), b.stderr.String())
		return nil
	}
}

func TestCLIAgainstDaemons(t *testing.T) {
	env := daemontest.New(t)
	// Alice runs through `serve`, Bob through daemon.Run.
	serveCtx, stopServe := context.WithCancel(context.Background())
	serve := runBackground(serveCtx, t, "serve", "-config", env.Alice.ConfigPath)
	t.Cleanup(func() {
		stopServe()
		serve.wait(t, "serve")
	})
	var alice *api.Client
	daemontest.Poll(t, "alice's API socket", func() bool {
		select {
		case <-serve.done:
			t.Fatalf("serve exited: %v; stderr %s", serve.err, serve.stderr.String())
		default:
		}
		c, err := api.Dial(env.Alice.Socket)
		if err != nil {
			return false
		}
		alice = c
		return true
	})
	defer alice.Close()
	bob := daemontest.Start(t, env.Bob)
	aliceSt := daemontest.WaitConnected(t, alice)
	bobSt := daemontest.WaitConnected(t, bob.Client)
	bobDev := daemontest.WaitPeerDevice(t, alice, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	aSock, bSock := "-socket="+env.Alice.Socket, "-socket="+env.Bob.Socket

	// chat -listen on bob's side, chat on alice's.
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	listen := runBackground(ctx, t, "chat", "-listen", "-n", "1", bSock)
	daemontest.Poll(t, "chat -listen subscribed", func() bool {
		select {
		case <-listen.done:
			t.Fatalf("chat -listen exited: %v", listen.err)
		default:
		}
		return strings.Contains(listen.stderr.String(), "listening")
	})
	out, errOut, err := runCommand(t, "chat", aSock, env.Bob.JID, "hello", "from", "the", "cli")
	if err != nil || out != "sent to "+env.Bob.JID+"\n" {
		t.Fatalf("chat: %q %q %v", out, errOut, err)
	}
	if err := listen.wait(t, "chat -listen -n 1"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s (encrypted, device %d", env.Alice.JID, aliceSt.Device)
	if got := listen.stdout.String(); !strings.Contains(got, want) || !strings.Contains(got, "): hello from the cli\n") {
		t.Fatalf("chat -listen printed %q, want %q ... hello from the cli", got, want)
	}
	// Finding 7: the pin of alice's account key, made before chat -listen
	// started, is shown from the daemon's backlog, without a device.
	if got, pin := listen.stdout.String(), fmt.Sprintf("] * TRUST %s: first contact", env.Alice.JID); !strings.Contains(got, pin) {
		t.Fatalf("chat -listen printed %q, want the earlier pin %q", got, pin)
	}
	// A reply, so that both sides hold the same established session.
	aliceEvents, err := alice.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	if _, _, err := runCommand(t, "chat", bSock, env.Alice.JID, "hi"); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := aliceEvents.Next()
		if err != nil {
			t.Fatalf("waiting for bob's reply: %v", err)
		}
		if ev.Kind == "chat" && ev.Body == "hi" {
			break
		}
	}

	// peers.
	out, _, err = runCommand(t, "peers", aSock)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{env.Bob.JID, fmt.Sprintf("device %d", bobDev), "tofu", bobSt.Fingerprint, "phone"} {
		if !strings.Contains(out, w) {
			t.Fatalf("peers output lacks %q:\n%s", w, out)
		}
	}

	// verify on both sides: same SAS, the other's fingerprint, a QR code.
	sasRe := regexp.MustCompile(`SAS: +(\d{5}(?: \d{5}){5})\n`) // 6 groups, docs/protocol.md §9.7
	outA, _, err := runCommand(t, "verify", aSock, env.Bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	outB, _, err := runCommand(t, "verify", env.Alice.JID, bSock) // alice's account key, her devices under it
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := sasRe.FindStringSubmatch(outA), sasRe.FindStringSubmatch(outB)
	if ma == nil || mb == nil || ma[1] != mb[1] {
		t.Fatalf("SAS lines differ or are missing:\n%s\n---\n%s", outA, outB)
	}
	if !strings.Contains(outA, bobSt.FingerprintBlocks) || !strings.Contains(outB, aliceSt.FingerprintBlocks) || !strings.Contains(outA, "█") {
		t.Fatalf("verify output:\n%s\n---\n%s", outA, outB)
	}
	out, _, err = runCommand(t, "verify", aSock, "-no-qr", env.Alice.JID) // our own device
	if err != nil || !strings.Contains(out, aliceSt.FingerprintBlocks) || strings.Contains(out, "█") {
		t.Fatalf("own verify: %q %v", out, err)
	}

	if strings.Count(outA, bobSt.FingerprintBlocks) != 1 || strings.Count(outA, "SAS:") != 1 ||
		!strings.Contains(outA, fmt.Sprintf("device %d: session confirmed", bobDev)) {
		t.Fatalf("verify shows the account fingerprint once and the devices under it:\n%s", outA)
	}
	// Trust and verification are per account: a device argument is refused.
	for _, args := range [][]string{{"trust", "distrust", aSock, env.Bob.JID, fmt.Sprint(bobDev)}, {"verify", aSock, env.Bob.JID, fmt.Sprint(bobDev)}} {
		if _, _, err := runCommand(t, args[0], args[1:]...); err == nil {
			t.Fatalf("%v: a device argument was accepted", args)
		}
	}

	// trust: a wrong fingerprint is refused before anything is recorded.
	wrongBlocks := strings.Repeat("00000000 ", 7) + "00000000"
	if _, _, err := runCommand(t, "trust", "verify", env.Bob.JID, aSock, "-method", "sas", "-fingerprint", wrongBlocks); err == nil {
		t.Fatal("wrong fingerprint accepted")
	}
	out, _, err = runCommand(t, "trust", "verify", env.Bob.JID, aSock, "-method", "sas",
		"-fingerprint", strings.ToLower(bobSt.FingerprintBlocks))
	if err != nil || !strings.Contains(out, "verified by sas") {
		t.Fatalf("trust verify: %q %v", out, err)
	}
	out, _, err = runCommand(t, "trust", "distrust", aSock, env.Bob.JID)
	if err != nil || !strings.Contains(out, "distrusted") {
		t.Fatalf("trust distrust: %q %v", out, err)
	}
	out, _, err = runCommand(t, "trust", "accept", env.Bob.JID, aSock)
	if err != nil || !strings.Contains(out, ": tofu") {
		t.Fatalf("trust accept: %q %v", out, err)
	}
	v, err := alice.Verify(ctx, env.Bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = runCommand(t, "trust", "verify", env.Bob.JID, aSock, "-uri", v.QR)
	if err != nil || !strings.Contains(out, "verified by qr") {
		t.Fatalf("trust verify -uri: %q %v", out, err)
	}

	// serve stops cleanly on cancellation.
	stopServe()
	if err := serve.wait(t, "serve"); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestCLIWithoutDaemon(t *testing.T) {
	sock := "-socket=" + t.TempDir() + "/none.sock"
	for _, args := range [][]string{
		{"chat", sock, "bob@example.test", "hi"},
		{"chat", sock, "-listen"},
		{"peers", sock},
		{"verify", sock, "bob@example.test"},
		{"trust", "distrust", "bob@example.test", sock},
	} {
		if _, _, err := runCommand(t, args[0], args[1:]...); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: want a missing socket error, got %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"chat", sock, "bob@example.test"},            // no message
		{"chat", sock, "-listen", "bob@example.test"}, // listen takes no recipient
		{"chat", sock, "-n", "2", "bob@example.test", "hi"},
		{"verify", sock},
		{"verify", sock, "bob@example.test", "0"},
		{"trust", "verify", "bob@example.test", sock},
		{"trust", "promote", "bob@example.test", "1", sock},
		{"trust", "accept", "bob@example.test", "1", sock, "-method", "sas"},
		{"trust", "verify", "bob@example.test", "1", sock, "-key", "x", "-uri", "y"},
		{"serve", "-config", t.TempDir() + "/missing.toml"},
	} {
		if _, _, err := runCommand(t, args[0], args[1:]...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	m := fs.String("method", "", "")
	pos, help, err := parseInterleaved(fs, []string{"a", "-method", "sas", "b", "--", "-c", "d"})
	if err != nil || help || *m != "sas" || strings.Join(pos, ",") != "a,b,-c,d" {
		t.Fatalf("pos %q method %q help %v err %v", pos, *m, help, err)
	}
	if _, _, err := parseInterleaved(fs, []string{"a", "-nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if _, help, _ := parseInterleaved(fs, []string{"-h"}); !help {
		t.Fatal("-h is help")
	}
}

func TestFormatEventSanitizes(t *testing.T) {
	ev := api.Event{Kind: "chat", From: "eve@example.test\x1b[2J", Body: "hi\x1b]0;pwned\x07\nthere\u009b", Encrypted: false}
	line := formatEvent(ev)
	if strings.ContainsAny(line, "\x1b\x07\n\u009b") {
		t.Fatalf("control characters reach the terminal: %q", line)
	}
	if !strings.Contains(line, "UNENCRYPTED") {
		t.Fatalf("cleartext not flagged: %q", line)
	}
	if formatEvent(api.Event{Kind: "stanza", Payload: "<x/>"}) != "" {
		t.Fatal("stanza events are not chat output")
	}
	if !strings.Contains(formatEvent(api.Event{Kind: "alert", From: "x@y", Detail: "d"}), "ALERT") {
		t.Fatal("alerts must stand out")
	}
}

// Finding 7: chat -listen printed refused messages as ordinary lines and
// never showed trust events. Refused and unencrypted messages are marked,
// trust, device and connection events get lines of their own, and events
// from the backlog are marked earlier.
func TestRegressChatListenMarksRefusedAndTrust(t *testing.T) {
	at := time.Unix(1700000000, 0)
	normal := formatEvent(api.Event{Kind: "chat", Time: at, From: "bob@example.test", Device: 9, Body: "hi", Encrypted: true, Established: true})
	if !strings.HasPrefix(normal, "[") || strings.Contains(normal, "!") {
		t.Fatalf("ordinary message %q", normal)
	}
	for _, c := range []struct {
		ev   api.Event
		want string
	}{
		{api.Event{Kind: "chat", Time: at, From: "mallory@example.test", Body: "click here", Refused: true}, "] ! REFUSED unencrypted message from mallory@example.test"},
		{api.Event{Kind: "chat", Time: at, From: "bob@example.test", Body: "hi", Encrypted: false}, "] ! UNENCRYPTED message from bob@example.test"},
		{api.Event{Kind: "trust", Time: at, From: "bob@example.test", Device: 9, Detail: "first contact with bob@example.test: account key pinned"}, "] * TRUST bob@example.test: first contact with bob@example.test: account key pinned"},
		{api.Event{Kind: "trust", Time: at, From: "bob@example.test", Device: 9, Detail: "verify: verified", Replayed: true}, "earlier "},
		{api.Event{Kind: "peer", Time: at, From: "bob@example.test", Detail: "device 9"}, "] * DEVICE bob@example.test: device 9"},
		{api.Event{Kind: "key-changed", Time: at, From: "bob@example.test", Detail: "device 9"}, "] ! KEY CHANGED bob@example.test"},
		{api.Event{Kind: "disconnected", Time: at, Detail: "EOF"}, "] ! DISCONNECTED: EOF"},
	} {
		got := formatEvent(c.ev)
		if !strings.Contains(got, c.want) {
			t.Errorf("%s event: %q, want %q", c.ev.Kind, got, c.want)
		}
		if c.ev.Kind == "chat" && strings.HasPrefix(strings.SplitN(got, "] ", 2)[1], c.ev.From) {
			t.Errorf("%q reads like an ordinary message", got)
		}
	}
}
