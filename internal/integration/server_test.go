package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/securejingle/securejingle/internal/integration"
)

// fakeEnv makes the test binary a fake server (see fakeServer).
const fakeEnv = "INTEGRATION_FAKE_SERVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeServer(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeServer behaves like coturn: "serve ADDR LOG" listens on ADDR and
// logs that it does, or logs "Cannot bind" and stays up when ADDR is
// taken, until SIGTERM; "exit" says boom and exits 3.
func fakeServer(mode string, args []string) int {
	if mode != "serve" || len(args) != 2 {
		fmt.Fprintln(os.Stderr, "boom")
		return 3
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("fake server starting")
	l, err := net.Listen("tcp4", args[0])
	msg := "listening on " + args[0] + "\n"
	if err != nil {
		msg = "Cannot bind " + args[0] + "\n"
	} else {
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	if err := os.WriteFile(args[1], []byte(msg), 0o644); err != nil {
		return 4
	}
	<-term
	return 0
}

// fakeCmd is a ServerCmd for the fake server in mode on addr.
func fakeCmd(t *testing.T, dir, mode, addr string) *integration.ServerCmd {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "fake.log")
	return &integration.ServerCmd{
		Name: "fake", Path: self, Args: []string{addr, log},
		Env: []string{fakeEnv + "=" + mode},
		Dir: dir, Console: "fake.console.log", Log: log, Addr: addr,
		Ready: func(ctx context.Context) error {
			b, _ := os.ReadFile(log)
			switch {
			case bytes.Contains(b, []byte("Cannot bind")):
				return integration.ErrPortInUse
			case !bytes.Contains(b, []byte("listening on")):
				return fmt.Errorf("%w: not listening yet", integration.ErrNotReady)
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp4", addr)
			if err != nil {
				return fmt.Errorf("%w: %w", integration.ErrNotReady, err)
			}
			return c.Close()
		},
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l := listen(t)
	defer l.Close()
	return l.Addr().String()
}

// TestStartServerRetriesTakenPort: a try whose port is taken is stopped
// and followed by one on a new port, with a fresh log; Stop ends it.
func TestStartServerRetriesTakenPort(t *testing.T) {
	taken := listen(t)
	defer taken.Close()
	dir := t.TempDir()
	tries := 0
	p, c := integration.StartServer(t, func(try int) (*integration.ServerCmd, error) {
		tries = try
		if try == 1 {
			return fakeCmd(t, dir, "serve", taken.Addr().String()), nil
		}
		return fakeCmd(t, dir, "serve", freeAddr(t)), nil
	})
	if tries != 2 || c.Addr == taken.Addr().String() {
		t.Fatalf("started on %s after %d tries, want a new port on try 2", c.Addr, tries)
	}
	if b, err := os.ReadFile(c.Log); err != nil || bytes.Contains(b, []byte("Cannot bind")) {
		t.Fatalf("log of the running server: %q, %v; want the first try's log removed", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, c.Console)); bytes.Count(b, []byte("fake server starting")) != 2 {
		t.Fatalf("console log %q: want both tries' output", b)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the server exited")
	}
	p.Stop() // idempotent
	var nilProcess *integration.Process
	nilProcess.Stop()
}

// TestStartExited: a server that exits before it is ready is ErrExited.
func TestStartExited(t *testing.T) {
	dir := t.TempDir()
	c := fakeCmd(t, dir, "exit", freeAddr(t))
	p, err := c.Start(t)
	if !errors.Is(err, integration.ErrExited) {
		t.Fatalf("Start = %v, want ErrExited", err)
	}
	p.Stop()
	if b, _ := os.ReadFile(filepath.Join(dir, c.Console)); !bytes.Contains(b, []byte("boom")) {
		t.Fatalf("console log %q: want the server's standard error", b)
	}
}

// TestStartGivesUp: an error from Ready that is not ErrNotReady ends the
// wait with that error.
func TestStartGivesUp(t *testing.T) {
	refused := errors.New("no PLAIN")
	c := fakeCmd(t, t.TempDir(), "serve", freeAddr(t))
	ready := c.Ready
	c.Ready = func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		return refused
	}
	p, err := c.Start(t)
	if !errors.Is(err, refused) {
		t.Fatalf("Start = %v, want %v", err, refused)
	}
	p.Stop()
}
