package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// TestFrontPasswd: `front passwd -stdin` stores a credential the daemon
// reads and that verifies the password, and only that one; without a
// terminal and without -stdin it refuses.
func TestFrontPasswd(t *testing.T) {
	env := daemontest.New(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old; r.Close() })
	w.WriteString("correct horse\n")
	w.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"front", "passwd", "-config", env.Alice.ConfigPath, "-stdin"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	cfg, err := daemon.Load(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := daemon.ReadCredential(cfg.CredentialPath())
	if err != nil {
		t.Fatal(err)
	}
	if !cred.Verify([]byte("correct horse")) || cred.Verify([]byte("correct horse\n")) {
		t.Error("stored credential does not verify exactly the password given")
	}
	if !strings.Contains(out.String(), "enabled = true") {
		t.Errorf("no note that [front] is off: %q", out.String())
	}
	// The pipe is not a terminal: without -stdin it refuses.
	r2, w2, _ := os.Pipe()
	w2.Close()
	os.Stdin = r2
	defer r2.Close()
	errb.Reset()
	if code := run([]string{"front", "passwd", "-config", env.Alice.ConfigPath}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-stdin") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
}
