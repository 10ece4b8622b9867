package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e/identity"
)

func init() {
	register(command{
		name:    "agent",
		summary: "run an ssh-agent holding the identity key",
		run:     runAgent,
	})
}

// agentFiles collects repeated -key flags.
type agentFiles []string

func (f *agentFiles) String() string     { return fmt.Sprint(*f) }
func (f *agentFiles) Set(s string) error { *f = append(*f, s); return nil }

// runAgent loads the key files into an in-memory keyring and serves it on a
// Unix socket until ctx is cancelled (SIGINT/SIGTERM in main). It prints the
// SSH_AUTH_SOCK line for the shell on stdout once the socket listens, and
// removes the socket (and the directory it created) on exit.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("agent", flag.ContinueOnError)
	flags.SetOutput(stderr)
	sockPath := flags.String("socket", "", "socket path (default: agent.sock in a new private directory under $TMPDIR)")
	var keyFiles agentFiles
	flags.Var(&keyFiles, "key", "key file to load; repeatable (default $XDG_CONFIG_HOME/securejingle/identity_ed25519)")
	passEnv := flags.String("passphrase-env", "", "read key passphrases from this environment variable instead of the terminal")
	if help, err := parseFlags(flags, args); help || err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	if len(keyFiles) == 0 {
		p, err := defaultIdentityPath()
		if err != nil {
			return err
		}
		keyFiles = append(keyFiles, p)
	}
	keys := agent.NewKeyring()
	for _, f := range keyFiles {
		pub, err := identity.AddFileToAgent(keys, f, keyPassphraseFunc(f, *passEnv, stderr))
		if err != nil {
			return err
		}
		log.Info("key loaded", "file", f, "fingerprint", identity.Fingerprint(pub))
	}

	l, sock, cleanup, err := agentListen(*sockPath)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := fmt.Fprintf(stdout, "SSH_AUTH_SOCK=%s; export SSH_AUTH_SOCK;\n", shellQuote(sock)); err != nil {
		l.Close()
		return err
	}
	log.Info("agent listening", "socket", sock)
	err = identity.Serve(ctx, l, keys)
	log.Info("agent stopped")
	return err
}

// agentListen creates the agent's Unix socket with mode 0600: at path if
// given, else as agent.sock in a new 0700 directory under os.TempDir().
// cleanup removes the socket and the directory it created.
func agentListen(path string) (l net.Listener, sock string, cleanup func(), err error) {
	dir := ""
	if path == "" {
		// MkdirTemp creates the directory with mode 0700, so no other
		// user can reach the socket even before the chmod below.
		dir, err = os.MkdirTemp("", "securejingle-agent-")
		if err != nil {
			return nil, "", nil, err
		}
		path = filepath.Join(dir, "agent.sock")
	}
	cleanup = func() {
		// Closing the listener already unlinks the socket; this is
		// for the paths where it was not closed.
		os.Remove(path)
		if dir != "" {
			os.Remove(dir)
		}
	}
	l, err = net.Listen("unix", path)
	if err != nil {
		if dir != "" {
			os.Remove(dir)
		}
		return nil, "", nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		cleanup()
		return nil, "", nil, err
	}
	return l, path, cleanup, nil
}
