package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/integration"
)

// attestDir copies the e2e/attest vectors (real gpg and openssl output
// over testdata/statement.txt) into a new directory with a daemon
// configuration trusting their keys, and returns the directory.
func attestDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"statement.txt", "openpgp-ed25519.sig.asc", "openpgp-ed25519.pub.asc", "cms-ec.der", "cms-ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, n), readTestFile(t, filepath.Join("..", "..", "e2e", "attest", "testdata", n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, "daemon.toml", "[account]\njid = \"alice@example.org\"\npassword = \"x\"\n[keys]\nfile = \"k\"\n[store]\npath = \"state.db\"\n"+
		"[trust]\nopenpgp_keys = [\"openpgp-ed25519.pub.asc\"]\nx509_roots = \"cms-ca.pem\"\n")
	return dir
}

// fields parses the "key: value" lines of attest check.
func fields(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func TestAttestCheck(t *testing.T) {
	isolate(t)
	dir := attestDir(t)
	st := filepath.Join(dir, "statement.txt")
	cfg := filepath.Join(dir, "daemon.toml")
	for _, name := range []string{"openpgp-ed25519.sig.asc", "cms-ec.der"} {
		out, _, err := runCommand(t, "attest", "check", "-config", cfg, "-statement", st, filepath.Join(dir, name))
		f := fields(out)
		if err != nil || f["status"] != "verified" || !strings.HasPrefix(f["JID"], "named by the signer") ||
			f["names"] != "alice@example.org" || f["expires"] == "" || f["signer"] == "" {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	// Without a configuration nothing is trusted: untrusted, exit status 1.
	out, _, err := runCommand(t, "attest", "check", "-statement", st, filepath.Join(dir, "cms-ec.der"))
	if f := fields(out); !errors.Is(err, errNotVerified) || f["status"] != "untrusted" || !strings.HasPrefix(f["trust"], "none") ||
		f["fix"] == "" || f["names"] != "alice@example.org" {
		t.Errorf("no configuration: %v\n%s", err, out)
	}
	out, _, err = runCommand(t, "attest", "check", "-statement", st, filepath.Join(dir, "openpgp-ed25519.sig.asc"))
	if f := fields(out); !errors.Is(err, errNotVerified) || f["status"] != "untrusted" || !strings.HasPrefix(f["JID"], "not checked") {
		t.Errorf("openpgp, no configuration: %v\n%s", err, out)
	}
	// A file that is no signature of the statement.
	out, _, err = runCommand(t, "attest", "check", "-config", cfg, "-statement", st, "-type", "openpgp", cfg)
	if f := fields(out); !errors.Is(err, errNotVerified) || f["status"] != "failed" || f["signer"] != "" {
		t.Errorf("garbage: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{},
		{"check"},
		{"check", "-statement", st},
		{"check", "-statement", st, "-type", "self", filepath.Join(dir, "cms-ec.der")},
		{"check", "-statement", cfg, filepath.Join(dir, "cms-ec.der")},                                            // not a statement
		{"check", "-config", filepath.Join(dir, "none.toml"), "-statement", st, filepath.Join(dir, "cms-ec.der")}, // named config missing
		{"check", "-socket", filepath.Join(dir, "none.sock"), filepath.Join(dir, "cms-ec.der")},                   // no daemon
		{"bogus"},
	} {
		if _, _, err := runCommand(t, "attest", args...); err == nil {
			t.Errorf("attest %v succeeded", args)
		}
	}
}

// TestAttestCheckDaemonStatement takes the statement from the running
// daemon: the vector signs another statement, so it fails.
func TestAttestCheckDaemonStatement(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	daemontest.WaitConnected(t, alice.Client)
	dir := attestDir(t)
	out, _, err := runCommand(t, "attest", "check", "-config", filepath.Join(dir, "daemon.toml"), "-socket", env.Alice.Socket,
		filepath.Join(dir, "cms-ec.der"))
	if f := fields(out); !errors.Is(err, errNotVerified) || f["status"] != "failed" ||
		f["statement"] != "for "+env.Alice.JID+" (from the running daemon)" {
		t.Errorf("%v\n%s", err, out)
	}
}

// TestIntegrationAttestCheck checks real gpg signatures by a key naming
// another identity and by an expired key.
func TestIntegrationAttestCheck(t *testing.T) {
	isolate(t)
	g := integration.NewGnuPG(t)
	dir := attestDir(t)
	st := filepath.Join(dir, "statement.txt") // for alice@example.org
	carol := g.GenKey("Carol <carol@example.org>", "ed25519")
	g.Run("--armor", "--local-user", carol, "--detach-sign", "--output", st+".carol.asc", st)
	// A key made and used in 2020 that expired after a day.
	old := "Alice Old <alice@example.org>"
	g.Run("--faked-system-time", "20200101T000000", "--quick-gen-key", old, "ed25519", "sign", "1d")
	g.Run("--faked-system-time", "20200101T000100", "--armor", "--local-user", old, "--detach-sign", "--output", st+".old.asc", st)
	keys := filepath.Join(dir, "keys.asc")
	if err := os.WriteFile(keys, g.Run("--armor", "--export"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "gpg.toml", "[account]\njid = \"alice@example.org\"\npassword = \"x\"\n[keys]\nfile = \"k\"\n[store]\npath = \"state.db\"\n"+
		"[trust]\nopenpgp_keys = [\"keys.asc\"]\n")
	cfg := filepath.Join(dir, "gpg.toml")

	out, _, err := runCommand(t, "attest", "check", "-config", cfg, "-statement", st, st+".carol.asc")
	t.Logf("carol:\n%s", out)
	if f := fields(out); !errors.Is(err, errNotVerified) || f["status"] != "mismatch" || !strings.HasPrefix(f["JID"], "NOT named") ||
		f["names"] != "carol@example.org" || !strings.Contains(f["detail"], "for carol@example.org, not alice@example.org") {
		t.Errorf("carol's key: %v\n%s", err, out)
	}
	out, _, err = runCommand(t, "attest", "check", "-config", cfg, "-statement", st, st+".old.asc")
	t.Logf("expired:\n%s", out)
	if f := fields(out); !errors.Is(err, errNotVerified) || f["status"] != "expired" || !strings.HasPrefix(f["expires"], "2020-01-02") ||
		!strings.Contains(f["detail"], "expired on 2020-01-02") {
		t.Errorf("expired key: %v\n%s", err, out)
	}
}
