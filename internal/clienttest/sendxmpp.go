package clienttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/securejingle/securejingle/internal/integration"
)

// go-sendxmpp (Debian's go-sendxmpp 0.5.6) has no option for a CA file; it
// verifies with Go's crypto/tls against the system roots, which Go reads
// from SSL_CERT_FILE when that is set. The harness points it at a file
// holding only the endpoint's certificate, so nothing else is trusted.
// The account (JID, server, port, password) is in a mode-0600 config file
// (-f), so the password is not on the command line.

// sendxmppLine is how `go-sendxmpp -l` prints a received message:
// "2026-12-03T13:27:48Z alice@example.test: hi from alice".
var sendxmppLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT[0-9:.]+Z) (\S+): (.*)$`)

// The start tag of a presence in the -d output, its from and its type
// (either quote style: Prosody writes ', mellium-based servers ").
var (
	sendxmppPresence = regexp.MustCompile(`<presence\b([^>]*)>`)
	sendxmppFrom     = regexp.MustCompile(`\sfrom=['"]([^'"]+)['"]`)
	sendxmppType     = regexp.MustCompile(`\stype=`)
)

// sendxmppBound finds the bound JID in the -d debug output.
var sendxmppBound = regexp.MustCompile(`<jid>([^<]+)</jid>`)

// sendxmppEnv returns the directory, environment and config file for one
// go-sendxmpp run against ep.
func sendxmppEnv(t testing.TB, ep Endpoint) (dir string, env []string, cfg string) {
	t.Helper()
	host, port, err := ep.check()
	if err != nil {
		t.Fatal(err)
	}
	dir = tempDir(t, "sendxmpp")
	ca, err := ep.writeCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "sendxmpprc")
	text := fmt.Sprintf("username: %s\njserver: %s\nport: %s\npassword: %s\n", ep.JID, host, port, ep.Password)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	return dir, append(baseEnv(dir), "SSL_CERT_FILE="+ca, "SSL_CERT_DIR="+dir), cfg
}

// SendxmppSend runs `go-sendxmpp -f CONFIG TO` once with body on its
// standard input, which logs in to ep, sends one chat message and logs
// out. It fails the test if go-sendxmpp fails or outlives WaitLimit.
func SendxmppSend(t testing.TB, ep Endpoint, to, body string) {
	t.Helper()
	if err := TrySendxmppSend(t, ep, to, body); err != nil {
		t.Fatal(err)
	}
}

// TrySendxmppSend is [SendxmppSend] returning go-sendxmpp's failure (with
// its output) instead of failing the test.
func TrySendxmppSend(t testing.TB, ep Endpoint, to, body string) error {
	t.Helper()
	prog := integration.Tool(t, "go-sendxmpp", "go-sendxmpp")
	if strings.ContainsAny(to, " \n") || strings.HasPrefix(to, "-") {
		t.Fatalf("clienttest: bad recipient %q", to)
	}
	dir, env, cfg := sendxmppEnv(t, ep)
	ctx, cancel := waitCtx(t)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, "-f", cfg, to)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopGrace
	cmd.Stdin = strings.NewReader(body + "\n")
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("clienttest: go-sendxmpp sending to %s as %s: %w (%v)\n%s", to, ep.JID, err, context.Cause(ctx), out.String())
	}
	return nil
}

// SendxmppListener is a running `go-sendxmpp -l` logged in to an endpoint,
// printing every message it receives.
type SendxmppListener struct {
	t     testing.TB
	proc  *process
	ev    *events[sendxmppEvent]
	Bound string // the full JID the server bound
	stop  func() error
}

type sendxmppEvent struct {
	bound    string // the bound JID, from the debug output
	presence string // an available presence's from, from the debug output
	msg      *Message
}

// StartSendxmppListener runs `go-sendxmpp -d -l` as ep's account and returns
// once the server has its initial presence (the server's reflection of it
// shows in the debug output), so that messages sent afterwards reach it.
func StartSendxmppListener(t testing.TB, ep Endpoint) *SendxmppListener {
	t.Helper()
	prog := integration.Tool(t, "go-sendxmpp", "go-sendxmpp")
	dir, env, cfg := sendxmppEnv(t, ep)
	l := &SendxmppListener{t: t, ev: newEvents[sendxmppEvent]()}
	onMessage := func(line string) {
		if m := sendxmppLine.FindStringSubmatch(line); m != nil {
			l.ev.add(sendxmppEvent{msg: &Message{From: m[2], To: ep.JID.String(), Type: "chat", Body: m[3]}})
		}
	}
	// -d writes what the server sent to standard error.
	onDebug := func(line string) {
		if m := sendxmppBound.FindStringSubmatch(line); m != nil {
			l.ev.add(sendxmppEvent{bound: m[1]})
		}
		for _, m := range sendxmppPresence.FindAllStringSubmatch(line, -1) {
			if f := sendxmppFrom.FindStringSubmatch(m[1]); f != nil && !sendxmppType.MatchString(m[1]) {
				l.ev.add(sendxmppEvent{presence: f[1]})
			}
		}
	}
	l.proc, _, l.stop = startProcess(t, "go-sendxmpp -l "+ep.JID.String(), prog, []string{"-d", "-f", cfg, "-l"}, dir, env, false, onMessage, onDebug)
	go func() { <-l.proc.done; l.ev.close() }()
	ctx, cancel := waitCtx(t)
	defer cancel()
	b, err := l.ev.wait(ctx, func(e sendxmppEvent) bool { return e.bound != "" })
	if err != nil {
		t.Fatalf("clienttest: go-sendxmpp -l %s did not log in: %v", ep.JID, err)
	}
	l.Bound = b.bound
	if _, err := l.ev.wait(ctx, func(e sendxmppEvent) bool { return e.presence == l.Bound }); err != nil {
		t.Fatalf("clienttest: go-sendxmpp -l %s: its presence did not come back: %v", ep.JID, err)
	}
	return l
}

// WaitMessage waits for a printed message that match accepts (every one
// since the start counts) and returns it. go-sendxmpp prints the sender's
// bare JID and the body, so only From and Body are set.
func (l *SendxmppListener) WaitMessage(match func(Message) bool) Message {
	l.t.Helper()
	ctx, cancel := waitCtx(l.t)
	defer cancel()
	e, err := l.ev.wait(ctx, func(e sendxmppEvent) bool { return e.msg != nil && match(*e.msg) })
	if err != nil {
		l.t.Fatalf("clienttest: go-sendxmpp -l: no matching message: %v; received: %v", err, l.Messages())
	}
	return *e.msg
}

// Messages returns every message printed so far.
func (l *SendxmppListener) Messages() []Message {
	list, _, _ := l.ev.snapshot()
	var ms []Message
	for _, e := range list {
		if e.msg != nil {
			ms = append(ms, *e.msg)
		}
	}
	return ms
}

// Close stops the listener (SIGTERM, then SIGKILL after a grace period;
// go-sendxmpp -l has no quit command).
func (l *SendxmppListener) Close() { l.proc.stop(l.stop) }
