package api

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ErrSocketInUse is returned by [Listen] when another process answers on
// the socket: a second daemon must not take over the first one's API.
var ErrSocketInUse = errors.New("api: another daemon is listening on the socket")

// DefaultSocketPath returns the default API socket:
// $XDG_RUNTIME_DIR/securejingle/api.sock, or
// os.TempDir()/securejingle-<uid>/api.sock when XDG_RUNTIME_DIR is unset.
func DefaultSocketPath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "securejingle", "api.sock")
	}
	return filepath.Join(os.TempDir(), "securejingle-"+strconv.Itoa(os.Getuid()), "api.sock")
}

// Listen creates the Unix socket at path for [Server.Serve]: its directory
// is created with mode 0700 if missing and must otherwise belong to us and
// be closed to group and others; the socket is made 0600. A stale socket
// left by a dead daemon is replaced; a live one is an error. The listener
// drops connections whose peer is neither our user nor root (on Linux,
// where peer credentials are available) and removes the socket when closed.
func Listen(path string, logger *slog.Logger) (net.Listener, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := PrivateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("api: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: removing stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	return &credListener{Listener: l, log: logger}, nil
}

// PrivateDir creates dir with mode 0700 if missing and requires it to be
// a directory (not a symlink) closed to group and others and, where
// ownership is known, owned by us: the socket's directory, and that of
// other files only the user may read (the login pages of `ui -open`).
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("api: creating socket directory: %w", err)
	}
	return checkDir(dir)
}

// checkDir requires dir to be a directory (not a symlink) closed to group
// and others and, where ownership is known, owned by us.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("api: socket directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("api: socket directory %s has mode %#o, want 0700", dir, perm)
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("api: socket directory %s belongs to uid %d, not us", dir, uid)
	}
	return nil
}

// credListener drops connections from other users.
type credListener struct {
	net.Listener
	log *slog.Logger
}

func (l *credListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if peerAllowed(c) {
			return c, nil
		}
		l.log.Warn("api: refused a connection from another user")
		c.Close()
	}
}
