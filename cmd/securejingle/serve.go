package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
)

func init() {
	register(command{
		name:    "serve",
		summary: "run the gateway daemon with its control API (serve -config FILE)",
		run:     runServe,
	})
}

const serveUsage = `usage:
  securejingle serve [-config FILE]

Runs the gateway for the account in FILE (TOML, see docs/api.md; default
$XDG_CONFIG_HOME/securejingle/daemon.toml) until interrupted, with the
control API on the Unix socket of [api] socket (default
$XDG_RUNTIME_DIR/securejingle/api.sock).
`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file (default $XDG_CONFIG_HOME/securejingle/daemon.toml)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	path := *configPath
	if path == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return err
		}
		path = filepath.Join(dir, "securejingle", "daemon.toml")
	}
	cfg, err := daemon.Load(path)
	if err != nil {
		return err
	}
	logger := daemon.NewLogger(cfg.Log, stderr)
	return daemon.Run(ctx, cfg, logger)
}

// addSocketFlag adds the -socket flag of the API clients.
func addSocketFlag(fs *flag.FlagSet) *string {
	return fs.String("socket", "", "daemon API socket (default "+api.DefaultSocketPath()+")")
}

// dialAPI connects to the daemon's API socket.
func dialAPI(socket string) (*api.Client, error) {
	if socket == "" {
		socket = api.DefaultSocketPath()
	}
	c, err := api.Dial(socket)
	if err != nil {
		return nil, fmt.Errorf("%w (is `securejingle serve` running?)", err)
	}
	return c, nil
}

// parseInterleaved parses args with fs, allowing flags after positional
// arguments (`trust verify JID DEVICE -method sas`), and returns the
// positional arguments. "--" ends flag parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, false, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), false, nil
		}
		args = rest
		pos = append(pos, args[0])
		args = args[1:]
	}
}
