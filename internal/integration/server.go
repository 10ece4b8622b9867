package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds for starting and stopping a [ServerCmd]. The poll interval grows
// from ReadyPollMin to ReadyPollMax; ReadyAttempts bounds the number of
// readiness checks.
const (
	ReadyAttempts = 80
	ReadyPollMin  = 10 * time.Millisecond
	ReadyPollMax  = 250 * time.Millisecond
	// StopGrace is how long a server has to exit after SIGTERM before it
	// is killed.
	StopGrace = 10 * time.Second
	// StartTries bounds the tries of [StartServer] (a new port each).
	StartTries = 3
	// LogTailBytes is how much of each log a failed test prints.
	LogTailBytes = 16 << 10
)

// Errors of a readiness check (see [ServerCmd.Ready]).
var (
	// ErrNotReady: not ready yet, check again. Wrap the cause in it.
	ErrNotReady = errors.New("integration: not ready yet")
	// ErrPortInUse: the server logged that it could not bind its port,
	// which another process took after the test chose it; [StartServer]
	// tries again with a new port.
	ErrPortInUse = errors.New("integration: port already in use")
	// ErrExited: the server exited before it was ready.
	ErrExited = errors.New("integration: server exited")
)

// A ServerCmd describes one try at running a server program that the
// test cannot hand a listener to: it binds a port chosen beforehand,
// logs to files in its own directory and is ready once Ready says so.
// It is not changed by [ServerCmd.Start]; the zero value is not usable.
type ServerCmd struct {
	// Name names the server in messages ("turnserver", "prosody").
	Name string
	// Path and Args are the program and its arguments.
	Path string
	Args []string
	// Env is added to the test's environment.
	Env []string
	// Dir is the working directory; Console, a file name in it, gets the
	// program's standard output and error (appended to across tries).
	Dir, Console string
	// Log is the server's own log file, removed before the next try of
	// [StartServer]; "" if there is none.
	Log string
	// Addr is what the server listens on, for messages.
	Addr string
	// Ready checks once whether the server is ready: nil when it is, an
	// error wrapping [ErrNotReady] to check again later, any other error
	// (such as [ErrPortInUse]) to give up. ctx ends when the server
	// exits. Ready may be called from another goroutine than the test's.
	Ready func(ctx context.Context) error
}

// Process is a running server started by [ServerCmd.Start]. Its methods
// are safe for concurrent use; the zero value is not usable.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returns
	err  error         // cmd.Wait's result, valid after done
}

// Exited is closed once the server has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop sends SIGTERM, waits up to [StopGrace], then kills the server. It
// returns once the server has exited, is idempotent and accepts nil.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(StopGrace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Start runs the server once, registers its stop with t.Cleanup (printing
// the logs' tails if t failed) and waits until it is ready. On an error
// the process, if one was started, is returned too: stop it before trying
// again.
func (c *ServerCmd) Start(t testing.TB) (*Process, error) {
	console, err := os.OpenFile(filepath.Join(c.Dir, c.Console), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("integration: %w", err)
	}
	defer console.Close()
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Stdout = console
	cmd.Stderr = console
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("integration: %w", err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			c.DumpLogs(t)
		}
	})
	return p, c.waitReady(p)
}

// waitReady calls c.Ready, at most [ReadyAttempts] times, until it
// returns something other than [ErrNotReady] or the process exits.
func (c *ServerCmd) waitReady(p *Process) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := ReadyPollMin
	var lastErr error
	for range ReadyAttempts {
		lastErr = c.Ready(ctx)
		if !errors.Is(lastErr, ErrNotReady) {
			return lastErr
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s: %v", ErrExited, c.Name, p.err)
		case <-time.After(wait):
		}
		wait = min(2*wait, ReadyPollMax)
	}
	return fmt.Errorf("integration: %s on %s not ready after %d attempts: %w", c.Name, c.Addr, ReadyAttempts, lastErr)
}

// DumpLogs prints the command line and the tails of the console output
// and of the log.
func (c *ServerCmd) DumpLogs(t testing.TB) {
	t.Helper()
	t.Logf("integration: %s %s", c.Path, strings.Join(c.Args, " "))
	names := []string{filepath.Join(c.Dir, c.Console)}
	if c.Log != "" {
		names = append(names, c.Log)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Logf("integration: %v", err)
			continue
		}
		if len(b) > LogTailBytes {
			b = b[len(b)-LogTailBytes:]
		}
		t.Logf("integration: tail of %s:\n%s", name, b)
	}
}

// StartServer starts a server for the duration of t. Each try (1 to
// [StartTries]) gets its command from next, which chooses a fresh port;
// a try whose Ready reports [ErrPortInUse] is stopped and followed by
// the next. Any other failure, or a setup error from next, fails the test
// with the logs' tails. It returns the running server and the command
// that started it.
func StartServer(t testing.TB, next func(try int) (*ServerCmd, error)) (*Process, *ServerCmd) {
	t.Helper()
	for try := 1; ; try++ {
		c, err := next(try)
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Start(t)
		if err == nil {
			return p, c
		}
		p.Stop()
		if errors.Is(err, ErrPortInUse) && try < StartTries {
			t.Logf("integration: %s: %s taken before %s could bind it; retrying", c.Name, c.Addr, c.Name)
			if c.Log != "" {
				_ = os.Remove(c.Log)
			}
			continue
		}
		c.DumpLogs(t)
		t.Fatalf("integration: starting %s: %v", c.Name, err)
	}
}
