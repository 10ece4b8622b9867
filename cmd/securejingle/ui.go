package main

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/webapp"
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
-open the link is also opened with xdg-open, when it is installed: through
a file only you can read (in the directory of the default socket,
$XDG_RUNTIME_DIR/securejingle) that sends the browser on to the link, so that the
process list shows the file's name, not the link.
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
	page, err := redirectFile(l.URL)
	if err != nil {
		return fmt.Errorf("-open: %v: open the link above in your browser", err)
	}
	cmd := exec.CommandContext(octx, path, page)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("-open: xdg-open failed (%v): open the link above in your browser", err)
	}
	return nil
}

// redirectFile writes a page that sends the browser on to link, readable
// by the user only, and returns its path: xdg-open's command line (which
// every local user can read in /proc) then holds the path, not the
// token. Pages older than the links' lifetime are removed; the newest
// stays until the next run (its link works once, for 2 minutes).
func redirectFile(link string) (string, error) {
	if !strings.HasPrefix(link, "http://") && !strings.HasPrefix(link, "https://") {
		return "", fmt.Errorf("the daemon gave a link that is not http: %q", link)
	}
	// The directory of the default socket: private to the user.
	dir := filepath.Dir(api.DefaultSocketPath())
	if err := api.PrivateDir(dir); err != nil {
		return "", err
	}
	if old, err := filepath.Glob(filepath.Join(dir, "login-*.html")); err == nil {
		for _, p := range old {
			if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > webapp.TokenTTL {
				os.Remove(p)
			}
		}
	}
	f, err := os.CreateTemp(dir, "login-*.html")
	if err != nil {
		return "", err
	}
	u := html.EscapeString(link)
	_, err = fmt.Fprintf(f, `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">`+
		`<meta http-equiv="refresh" content="0;url=%s"><title>securejingle</title><p><a href="%s">Open the securejingle web app</a></p>`+"\n", u, u)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
