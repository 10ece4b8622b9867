package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"time"
)

func init() {
	register(command{
		name:    "ui",
		summary: "print (or open) a one-time login link of the web app",
		run:     runUI,
	})
}

const uiUsage = `usage:
  securejingle ui [-socket S] [-open]

Asks the running daemon for a one-time login link of its web app and prints
it. The link logs one browser in, once, within 2 minutes; the token is in
the fragment (after #), which the browser never sends to a server. With
-open the link is also opened with xdg-open, when it is installed (other
local users may see it in the process list for that moment).
`

// openTimeout bounds xdg-open.
const openTimeout = 30 * time.Second

func runUI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, uiUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	open := fs.Bool("open", false, "open the link with xdg-open")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := c.WebLogin(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, l.URL)
	fmt.Fprintf(stderr, "This link works once, until %s.\n", l.Expires.Local().Format(time.TimeOnly))
	if !*open {
		return nil
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return fmt.Errorf("-open: xdg-open is not installed: open the link above in your browser")
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	cmd := exec.CommandContext(octx, path, l.URL)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("-open: xdg-open failed (%v): open the link above in your browser", err)
	}
	return nil
}
