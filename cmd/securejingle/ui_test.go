package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
