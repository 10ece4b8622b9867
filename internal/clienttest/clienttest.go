package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// Bounds of the harness. They are deadlines that stop a broken client from
// hanging a test, never performance assertions.
const (
	// ProcessLimit bounds the life of every client process; it is killed
	// when it runs out, or at the end of the test, whichever comes first.
	ProcessLimit = 3 * time.Minute
	// WaitLimit bounds one wait for an event (a login, a message).
	WaitLimit = 45 * time.Second
	// stopGrace is how long a client has to exit after it was asked to.
	stopGrace = 5 * time.Second
	// maxLine bounds one line of client output that the harness parses.
	maxLine = 1 << 20
	// maxKept bounds the output kept for failure messages, per stream.
	maxKept = 64 << 10
)

// Endpoint is a client-to-server (c2s) service a client logs in to: a real
// server or a gateway's local front. It is on loopback and offers STARTTLS.
type Endpoint struct {
	// Addr is "IP:PORT" with a loopback IP.
	Addr string
	// JID is the account's bare JID; its domain is the TLS server name.
	JID jid.JID
	// Password is the account's (or the front's local) password.
	Password string
	// Cert is the server's certificate, the only one the client trusts
	// (self-signed in tests). Profanity pins its fingerprint instead.
	Cert *x509.Certificate
}

// checkAddr validates e.Addr and returns its host and port.
func (e Endpoint) checkAddr() (host, port string, err error) {
	host, port, err = net.SplitHostPort(e.Addr)
	if err != nil {
		return "", "", fmt.Errorf("clienttest: endpoint address %q: %w", e.Addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("clienttest: endpoint %q is not a loopback IP address (tests stay on loopback)", e.Addr)
	}
	return host, port, nil
}

// check validates e and returns its host and port.
func (e Endpoint) check() (host, port string, err error) {
	if host, port, err = e.checkAddr(); err != nil {
		return "", "", err
	}
	switch {
	case e.JID.Localpart() == "" || e.JID.Resourcepart() != "":
		return "", "", fmt.Errorf("clienttest: endpoint JID %q must be a bare JID with a localpart", e.JID)
	case e.Password == "":
		return "", "", errors.New("clienttest: endpoint without a password")
	case e.Cert == nil:
		return "", "", errors.New("clienttest: endpoint without a certificate to trust")
	}
	return host, port, nil
}

// writeCA writes e.Cert as PEM into dir and returns the file's path.
func (e Endpoint) writeCA(dir string) (string, error) {
	p := filepath.Join(dir, "server-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Cert.Raw})
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("clienttest: %w", err)
	}
	return p, nil
}

// FingerprintSHA256 is the SHA-256 fingerprint of cert, lower-case hex
// without separators.
func FingerprintSHA256(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(s[:])
}

// fingerprintSHA1 is the SHA-1 fingerprint of cert, lower-case hex; some
// clients show only this one.
func fingerprintSHA1(cert *x509.Certificate) string {
	s := sha1.Sum(cert.Raw)
	return hex.EncodeToString(s[:])
}

// tempDir makes a private temporary directory for one client, removed at
// the end of the test. t.TempDir's names follow the test name and can be
// long; a unix socket path (tmux) must stay under 108 bytes, so the
// directory is made under os.TempDir with a short name.
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sj-"+prefix+"-")
	if err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// tail keeps the last maxKept bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > maxKept {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-maxKept:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// process is one client program run for a test: its own process group,
// a deadline of ProcessLimit, killed (the whole group) when the test ends.
// Its standard output is handed line by line to onLine; both outputs are
// kept (the last maxKept bytes) for failure messages.
type process struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stdout tail
	stderr tail
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // Wait's result, valid after done
}

// startProcess starts path with args in dir with exactly env, with a pipe
// to its standard input if stdin is set, and registers its cleanup. It
// returns the process, the input (nil without stdin) and the function
// that asks the program to stop (closing its input, or SIGTERM).
func startProcess(t testing.TB, name string, path string, args []string, dir string, env []string, stdin bool, onLine, onErrLine func(string)) (*process, *bufio.Writer, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessLimit)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopGrace
	p := &process{name: name, cmd: cmd, cancel: cancel, done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("clienttest: %s: %v", name, err)
	}
	var errPipe io.Reader
	if onErrLine == nil {
		cmd.Stderr = &p.stderr
	} else if errPipe, err = cmd.StderrPipe(); err != nil {
		cancel()
		t.Fatalf("clienttest: %s: %v", name, err)
	}
	var w *bufio.Writer
	var closeIn func() error = func() error { return nil }
	if stdin {
		in, err := cmd.StdinPipe()
		if err != nil {
			cancel()
			t.Fatalf("clienttest: %s: %v", name, err)
		}
		w, closeIn = bufio.NewWriter(in), in.Close
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("clienttest: starting %s: %v", name, err)
	}
	if !stdin {
		// Without an input to close, stopping starts with SIGTERM.
		closeIn = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() { defer readers.Done(); scanLines(out, &p.stdout, onLine) }()
	if errPipe != nil {
		readers.Add(1)
		go func() { defer readers.Done(); scanLines(errPipe, &p.stderr, onErrLine) }()
	}
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(closeIn)
		if t.Failed() {
			t.Logf("clienttest: %s exited (%v); stdout tail:\n%s\nstderr tail:\n%s", name, p.err, p.stdout.String(), p.stderr.String())
		}
	})
	return p, w, closeIn
}

// scanLines copies r line by line to keep and hands each line to onLine
// (if not nil). A line longer than maxLine ends the scan; the rest of r
// is drained so the program never blocks on a full pipe.
func scanLines(r io.Reader, keep *tail, onLine func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		line := sc.Text()
		keep.Write([]byte(line + "\n"))
		if onLine != nil {
			onLine(line)
		}
	}
	_, _ = io.Copy(keep, r)
}

// stop closes the client's input, gives it stopGrace to exit and then
// kills its process group.
func (p *process) stop(closeIn func() error) {
	_ = closeIn()
	select {
	case <-p.done:
	case <-time.After(stopGrace):
	}
	p.cancel()
	<-p.done
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// events is an append-only log of what a client reported, which waits
// can scan from the start: a test that waits for something after it
// happened still finds it.
type events[E any] struct {
	mu     sync.Mutex
	list   []E
	notify chan struct{} // closed and replaced on every append
	closed bool
}

func newEvents[E any]() *events[E] { return &events[E]{notify: make(chan struct{})} }

// maxEvents bounds the log; a client flooding it fails the wait.
const maxEvents = 10000

func (l *events[E]) add(e E) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.list) < maxEvents {
		l.list = append(l.list, e)
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// close marks the log as final (the client exited).
func (l *events[E]) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.notify)
	}
}

// snapshot returns the events so far, whether the log is final, and a
// channel closed on the next change.
func (l *events[E]) snapshot() ([]E, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.list, l.closed, l.notify
}

// errGone: the client exited before the event came.
var errGone = errors.New("client exited")

// wait returns the first event (from the start of the log) that match
// accepts, or an error when ctx ends or the client exited.
func (l *events[E]) wait(ctx context.Context, match func(E) bool) (E, error) {
	var zero E
	for {
		list, closed, ch := l.snapshot()
		for _, e := range list {
			if match(e) {
				return e, nil
			}
		}
		if closed {
			return zero, errGone
		}
		if len(list) >= maxEvents {
			return zero, fmt.Errorf("more than %d events without a match", maxEvents)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// Message is a chat message as a client reported it.
type Message struct {
	From, To, Type, Body string
	// XML is the stanza as the client library serialised it, when it
	// exposes it ("" for go-sendxmpp and Profanity).
	XML string
}

// baseEnv is the environment every client runs with: a private HOME and
// XDG directories under dir, no proxies, a C locale with UTF-8.
func baseEnv(dir string) []string {
	env := []string{
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, ".local", "share"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, ".cache"),
		"XDG_RUNTIME_DIR=" + dir,
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
	}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

// waitCtx is the context of one wait, bounded by WaitLimit and the test's
// own deadline.
func waitCtx(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			c2, cancel2 := context.WithDeadline(ctx, dl.Add(-5*time.Second))
			return c2, func() { cancel2(); cancel() }
		}
	}
	return ctx, cancel
}

// containsFold reports whether s contains sub, ignoring ASCII case.
func containsFold(s, sub string) bool {
	return bytes.Contains(bytes.ToLower([]byte(s)), bytes.ToLower([]byte(sub)))
}

// bareOf returns the bare JID part of a JID string ("" if it does not parse).
func bareOf(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// randomID returns 8 random bytes in hex, for stanza ids and unique bodies.
func randomID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}
