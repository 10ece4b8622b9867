package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// TestUI: `securejingle ui` prints one login link of the daemon's web app
// per run, each with its own token.
func TestUI(t *testing.T) {
	env := daemontest.New(t)
	daemontest.Start(t, env.Alice)
	var links []string
	for range 2 {
		var out, errOut bytes.Buffer
		if err := runUI(context.Background(), []string{"-socket", env.Alice.Socket}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		link := strings.TrimSuffix(out.String(), "\n")
		if !strings.HasPrefix(link, "http://") || !strings.Contains(link, ".localhost:") || !strings.Contains(link, "/#token=") || strings.Contains(link, "\n") {
			t.Fatalf("stdout %q", out.String())
		}
		if !strings.Contains(errOut.String(), "works once") {
			t.Errorf("stderr %q", errOut.String())
		}
		links = append(links, link)
	}
	if links[0] == links[1] {
		t.Error("two runs printed the same link")
	}
	if err := runUI(context.Background(), []string{"-socket", env.Alice.Socket, "extra"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("an extra argument was accepted")
	}
}

// TestUIOpenRedirectFile (review rvweb3 F5): `ui -open` gives xdg-open
// the path of a file only the user can read, which sends the browser on
// to the link: xdg-open's command line (readable by every local user in
// /proc) holds no token.
func TestUIOpenRedirectFile(t *testing.T) {
	env := daemontest.New(t)
	daemontest.Start(t, env.Alice)
	bin := t.TempDir()
	argv := filepath.Join(t.TempDir(), "argv")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argv + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	var out, errOut bytes.Buffer
	if err := runUI(context.Background(), []string{"-socket", env.Alice.Socket, "-open"}, &out, &errOut); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	link := strings.TrimSuffix(out.String(), "\n")
	_, tok, ok := strings.Cut(link, "#token=")
	if !ok {
		t.Fatalf("link %q", link)
	}
	b, err := os.ReadFile(argv)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(string(b))
	if len(args) != 1 || strings.Contains(string(b), tok) {
		t.Fatalf("xdg-open got %q: want one path, without the token", b)
	}
	page := args[0]
	if !strings.HasPrefix(page, filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "securejingle")+"/") {
		t.Errorf("page %s is not under $XDG_RUNTIME_DIR/securejingle", page)
	}
	fi, err := os.Stat(page)
	if err != nil {
		t.Fatal(err)
	}
	di, err := os.Stat(filepath.Dir(page))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("page mode %v, directory %v: want 0600 and 0700", fi.Mode(), di.Mode())
	}
	body, _ := os.ReadFile(page)
	if !strings.Contains(string(body), `<meta http-equiv="refresh" content="0;url=`+link+`">`) {
		t.Errorf("page %q does not send the browser on to %s", body, link)
	}

	// Chromium, given the file as xdg-open would, lands on the app
	// logged in.
	br := browsertest.Start(t, nil)
	tab := br.NewTab()
	browsertest.Open(t, tab, "file://"+page)
	// The first evaluations may meet the redirect under way.
	for deadline := time.Now().Add(daemontest.HangGuard); ; time.Sleep(50 * time.Millisecond) {
		ok, err := browsertest.Eval[bool](tab, `!!document.body && document.body.dataset.login === "ok"`, 0)
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			where, _ := browsertest.Eval[string](tab, `location.href`, 0)
			t.Fatalf("the page did not log in (at %s): %v", where, err)
		}
	}
}
