package integration

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// GnuPG runs the real gpg in a throw-away GNUPGHOME with its own agent,
// killed when the test ends. Its zero value is not usable: use [NewGnuPG].
type GnuPG struct {
	t    testing.TB
	gpg  string
	Home string
}

// NewGnuPG finds gpg (see [Tool]) and makes a fresh home for it.
func NewGnuPG(t testing.TB) *GnuPG {
	t.Helper()
	gpg := Tool(t, "gpg", "gnupg")
	// gpg-agent puts its socket in GNUPGHOME when /run/user is missing;
	// unix socket paths are limited to about 108 bytes, so keep it short.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	g := &GnuPG{t: t, gpg: gpg, Home: home}
	t.Cleanup(func() {
		if gc, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(gc, "--kill", "gpg-agent")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			_ = cmd.Run()
		}
	})
	return g
}

// Run runs gpg in batch mode with an empty passphrase and returns its
// standard output; a failure fails the test with gpg's standard error.
func (g *GnuPG) Run(args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command(g.gpg, append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.Home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// GenKey creates a signing-only key for uid with algorithm algo (e.g.
// "ed25519", "rsa3072") and returns its fingerprint.
func (g *GnuPG) GenKey(uid, algo string) string {
	g.t.Helper()
	g.Run("--quick-gen-key", uid, algo, "sign", "never")
	for _, line := range strings.Split(string(g.Run("--with-colons", "--list-keys", uid)), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %s", uid)
	return ""
}
