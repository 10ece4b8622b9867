package clienttest

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/integration"
)

// Profanity runs in a tmux server of its own (a private socket in the
// client's temporary directory, a configuration of its own), in one
// window of profWidth x profHeight cells. The harness types into it with
// `tmux send-keys -l` and reads it with `tmux capture-pane -p -J`, which
// is what a user sees, wrapped lines joined.
const (
	profWidth   = 200
	profHeight  = 60
	profHistory = 2000 // lines of scrollback the harness reads back
	// profPoll is how often the screen is read while waiting.
	profPoll = 100 * time.Millisecond
	// profProbe is how often WaitMessage looks into a contact's window
	// without a notice.
	profProbe = 2 * time.Second
	// tmuxLimit bounds one tmux command.
	tmuxLimit = 10 * time.Second
)

// ProfanityResource is the resource Profanity asks to bind.
const ProfanityResource = "profanity"

// profFingerprint is how Profanity 0.13 shows the certificate it could not
// verify ("  Fingerprint         : 00f11b...", SHA-1, lower-case hex).
var profFingerprint = regexp.MustCompile(`Fingerprint\s*:\s*([0-9a-f]{40})`)

// profChat is the console's notice of a chat message in window N:
// "<< chat message: bob@example.test/res (win 2)".
var profChat = regexp.MustCompile(`<< chat message: (\S+) \(win (\d+)\)`)

// Profanity is a running Profanity (Debian's profanity 0.13) logged in to
// an endpoint, driven through tmux. Its certificate check is a pin: the
// harness accepts the endpoint's self-signed certificate with `/tls allow`
// only if the fingerprint Profanity shows is that of Endpoint.Cert, and
// answers `/tls deny` (and fails the test) otherwise.
type Profanity struct {
	t    testing.TB
	tmux string   // the tmux program
	sock string   // the private tmux socket
	env  []string // tmux's environment
	Dir  string   // the client's HOME; logs under .local/share/profanity
	self string   // the account's bare JID, which Profanity shows as "me"
}

// StartProfanity starts Profanity against ep with a throwaway HOME holding
// only its account (password in a mode-0600 file) and returns once it
// shows "logged in successfully".
func StartProfanity(t testing.TB, ep Endpoint) *Profanity {
	t.Helper()
	prog := integration.Tool(t, "profanity", "profanity")
	tm := integration.Tool(t, "tmux", "tmux")
	timeout := integration.Tool(t, "timeout", "coreutils")
	host, port, err := ep.check()
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t, "prof")
	p := &Profanity{t: t, tmux: tm, sock: filepath.Join(dir, "tmux.sock"), Dir: dir, self: ep.JID.Bare().String()}
	p.env = append(baseEnv(dir), "TERM=xterm-256color")
	data := filepath.Join(dir, ".local", "share", "profanity")
	conf := filepath.Join(dir, ".config", "profanity")
	for _, d := range []string{data, conf} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("clienttest: %v", err)
		}
	}
	account := ep.JID.String()
	accounts := fmt.Sprintf("[%s]\nenabled=true\njid=%s\nserver=%s\nport=%s\nresource=%s\npassword=%s\ntls.policy=force\n",
		account, account, host, port, ProfanityResource, ep.Password)
	if strings.ContainsAny(ep.Password, "\n\r") {
		t.Fatal("clienttest: a password with a line break cannot go into Profanity's account file")
	}
	if err := os.WriteFile(filepath.Join(data, "accounts"), []byte(accounts), 0o600); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	// No splash, no desktop notifications, no typing notices: less noise on
	// the screen and on the wire; everything else is Profanity's default.
	profrc := "[ui]\nsplash=false\n[notifications]\nmessage=false\nroom=false\ninvite=false\nsub=false\n[chatstates]\nenabled=false\n"
	if err := os.WriteFile(filepath.Join(conf, "profrc"), []byte(profrc), 0o600); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	// timeout(1) bounds Profanity even if the cleanup never runs; the
	// tmux server exits with its only session. --foreground keeps
	// Profanity in the terminal's foreground process group: without it
	// Profanity is stopped (SIGTTIN) when it reads the terminal.
	limit := strconv.Itoa(int(ProcessLimit / time.Second))
	// A tmux configuration of our own: the user's is not read.
	tmuxConf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(tmuxConf, []byte("set -g history-limit "+strconv.Itoa(profHistory)+"\n"), 0o600); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	p.run("-f", tmuxConf, "new-session", "-d", "-s", "sj", "-x", strconv.Itoa(profWidth), "-y", strconv.Itoa(profHeight),
		timeout, "--foreground", "-s", "KILL", limit, prog, "-a", account, "-l", "DEBUG")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clienttest: Profanity's screen at the end:\n%s", p.screenNoFail())
			if b, err := os.ReadFile(filepath.Join(data, "logs", "profanity.log")); err == nil {
				if len(b) > maxKept {
					b = b[len(b)-maxKept:]
				}
				t.Logf("clienttest: tail of Profanity's log:\n%s", b)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), tmuxLimit)
		defer cancel()
		cmd := exec.CommandContext(ctx, p.tmux, "-S", p.sock, "kill-server")
		cmd.Env = p.env
		_ = cmd.Run()
	})

	// The certificate prompt, then the login.
	screen := p.waitScreen("the TLS prompt or a login", func(s string) bool {
		return profFingerprint.MatchString(s) || strings.Contains(s, "logged in successfully") || profLoginFailed(s)
	})
	switch prompted, err := profPin(screen, ep.Cert); {
	case err != nil:
		p.Command("/tls deny")
		t.Fatal(err)
	case prompted:
		p.Command("/tls allow")
	}
	screen = p.waitScreen("a login", func(s string) bool {
		return strings.Contains(s, "logged in successfully") || profLoginFailed(s)
	})
	if !strings.Contains(screen, "logged in successfully") {
		t.Fatalf("clienttest: Profanity did not log in to %s as %s:\n%s", ep.Addr, account, screen)
	}
	return p
}

// profPin decides Profanity's certificate prompt on screen: prompted is
// false when there is none, err is set when the certificate shown is not
// cert (compared by the SHA-1 fingerprint Profanity shows; with more than
// one prompt on the screen, the last counts).
func profPin(screen string, cert *x509.Certificate) (prompted bool, err error) {
	ms := profFingerprint.FindAllStringSubmatch(screen, -1)
	if ms == nil {
		return false, nil
	}
	got, want := ms[len(ms)-1][1], fingerprintSHA1(cert)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return true, fmt.Errorf("clienttest: Profanity was shown certificate %s, not the endpoint's %s: refused", got, want)
	}
	return true, nil
}

// profLoginFailed reports whether the screen shows a failed login.
func profLoginFailed(s string) bool {
	return strings.Contains(s, "Login failed") || strings.Contains(s, "Connection failed") ||
		strings.Contains(s, "Lost connection")
}

// run runs one tmux command on the private server and returns its output.
func (p *Profanity) run(args ...string) string {
	p.t.Helper()
	out, err := p.tmuxOut(args...)
	if err != nil {
		p.t.Fatalf("clienttest: tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *Profanity) tmuxOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tmuxLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.tmux, append([]string{"-S", p.sock}, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Screen returns what the window shows, with the scrollback, wrapped lines
// joined.
func (p *Profanity) Screen() string {
	p.t.Helper()
	return p.run("capture-pane", "-p", "-J", "-S", "-"+strconv.Itoa(profHistory), "-t", "sj")
}

func (p *Profanity) screenNoFail() string {
	out, _ := p.tmuxOut("capture-pane", "-p", "-J", "-S", "-"+strconv.Itoa(profHistory), "-t", "sj")
	return out
}

// Command types line into Profanity and presses Enter.
func (p *Profanity) Command(line string) {
	p.t.Helper()
	if strings.ContainsAny(line, "\r\n") {
		p.t.Fatalf("clienttest: a Profanity command is one line: %q", line)
	}
	p.run("send-keys", "-t", "sj", "-l", line)
	p.run("send-keys", "-t", "sj", "Enter")
}

// waitScreen reads the screen until done accepts it, and returns it; it
// fails the test after WaitLimit, naming what it waited for.
func (p *Profanity) waitScreen(what string, done func(string) bool) string {
	p.t.Helper()
	ctx, cancel := waitCtx(p.t)
	defer cancel()
	tick := time.NewTicker(profPoll)
	defer tick.Stop()
	for {
		s := p.Screen()
		if done(s) {
			return s
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("clienttest: Profanity did not show %s (%v); screen:\n%s", what, ctx.Err(), s)
		case <-tick.C:
		}
	}
}

// WaitText waits until the current window shows sub and returns the screen.
func (p *Profanity) WaitText(sub string) string {
	p.t.Helper()
	return p.waitScreen(strconv.Quote(sub), func(s string) bool { return strings.Contains(s, sub) })
}

// Send sends a chat message with `/msg to body`.
func (p *Profanity) Send(to, body string) {
	p.t.Helper()
	if strings.ContainsAny(to, " \r\n") {
		p.t.Fatalf("clienttest: bad recipient %q", to)
	}
	p.Command("/msg " + to + " " + body)
}

// WaitMessage waits until Profanity shows a chat message from the bare
// JID from with body, on a line "TIME - FROM[/RESOURCE]: BODY", and
// returns the line as shown. A message to a window that is not in front
// only gets a notice in the console ("<< chat message: FULLJID (win N)"),
// so WaitMessage brings the contact's window to the front (`/win FROM`)
// when it sees the notice, and every profProbe in case the message went
// to a window that was in front (no notice); it goes back to the console
// (`/win 1`) once it found the line.
func (p *Profanity) WaitMessage(from, body string) string {
	p.t.Helper()
	return p.WaitMessageMatch(from, strconv.Quote(body), func(b string) bool { return b == body })
}

// WaitMessageMatch is [Profanity.WaitMessage] for a body that match
// accepts (what names it in a failure message), for example an alert
// whose wording the test checks only in part.
func (p *Profanity) WaitMessageMatch(from, what string, match func(body string) bool) string {
	p.t.Helper()
	if strings.ContainsAny(from, " \r\n") {
		p.t.Fatalf("clienttest: bad JID %q", from)
	}
	ctx, cancel := waitCtx(p.t)
	defer cancel()
	tick := time.NewTicker(profPoll)
	defer tick.Stop()
	lastProbe := time.Now()
	for {
		s := p.Screen()
		if line, ok := profMessageLine(s, from, from == p.self, match); ok {
			p.Command("/win 1")
			return line
		}
		if profNotice(s, from) || time.Since(lastProbe) >= profProbe {
			p.Command("/win " + from)
			lastProbe = time.Now()
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("clienttest: Profanity did not show %s from %s (%v); screen:\n%s", what, from, ctx.Err(), s)
		case <-tick.C:
		}
	}
}

// profMessageLine finds a line "TIME - FROM[/RESOURCE]: BODY" from the
// bare JID from whose body match accepts. Profanity shows a message from
// its own account (another resource, such as a gateway's alerts) as
// "TIME - me: BODY"; self says from is that account.
func profMessageLine(screen, from string, self bool, match func(string) bool) (string, bool) {
	for _, l := range strings.Split(screen, "\n") {
		l = strings.TrimRight(l, " ")
		_, rest, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		who, body, ok := strings.Cut(rest, ": ")
		if ok && (who == from || strings.HasPrefix(who, from+"/") || (self && who == "me")) && match(body) {
			return l, true
		}
	}
	return "", false
}

// profNotice reports whether the console shows a chat message notice
// from the bare JID from.
func profNotice(screen, from string) bool {
	for _, m := range profChat.FindAllStringSubmatch(screen, -1) {
		if m[1] == from || bareOf(m[1]) == from {
			return true
		}
	}
	return false
}
