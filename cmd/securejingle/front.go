package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/daemon"
)

func init() {
	register(command{
		name:    "front",
		summary: "gateway mode: set the local password your XMPP clients log in with (front passwd)",
		run:     runFront,
	})
}

const frontUsage = `usage:
  securejingle front passwd [-config FILE] [-stdin]

Sets the password your own XMPP clients use to log in to the daemon's
local front ([front] in FILE, default $XDG_CONFIG_HOME/securejingle/daemon.toml).
Only its SCRAM-SHA-256 keys are stored, in [front] credential (default
front.credential next to the store), never the password. The password is
typed twice on the terminal, or read as one line from standard input with
-stdin; it is never taken from the command line. Restart the daemon to
use it.
`

// frontIterations is the PBKDF2 iteration count of new credentials.
const frontIterations = 65536

func runFront(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "passwd" {
		fmt.Fprint(stderr, frontUsage)
		return errors.New("want: front passwd")
	}
	fs := flag.NewFlagSet("front passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, frontUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file (default $XDG_CONFIG_HOME/securejingle/daemon.toml)")
	fromStdin := fs.Bool("stdin", false, "read the password as one line from standard input")
	if help, err := parseFlags(fs, args[1:]); help || err != nil {
		return err
	}
	path := *configPath
	if path == "" {
		var err error
		if path, err = defaultConfigPath(); err != nil {
			return err
		}
	}
	cfg, err := daemon.Load(path)
	if err != nil {
		return err
	}
	pw, err := readNewPassword(os.Stdin, *fromStdin, stderr)
	if err != nil {
		return err
	}
	cred, err := c2sfront.NewCredential(string(pw), frontIterations)
	clear(pw)
	if err != nil {
		return err
	}
	dst := cfg.CredentialPath()
	if err := daemon.WriteCredential(dst, cred); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "local password set (%s); restart the daemon to use it\n", dst)
	if !cfg.Front.Enabled {
		fmt.Fprintln(stdout, "note: [front] enabled = true is not set in "+path+": the daemon does not serve the front yet")
	}
	return nil
}

// readNewPassword reads the new local password: one line of in when
// fromStdin, else typed twice on the terminal.
func readNewPassword(in *os.File, fromStdin bool, stderr io.Writer) ([]byte, error) {
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return nil, errors.New("empty password on standard input")
		}
		return []byte(line), nil
	}
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("no terminal to read the password from; use -stdin")
	}
	p, err := readTwice(fd, stderr, "Local password for your XMPP clients: ", "Same password again: ", "passwords do not match")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty password")
	}
	return p, nil
}
