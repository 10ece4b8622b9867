package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e/identity"
)

// runCommand runs a registered command in-process.
func runCommand(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	c, ok := commands[name]
	if !ok {
		t.Fatalf("command %q not registered", name)
	}
	var out, errOut bytes.Buffer
	err = c.run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// isolate points the config directory and HOME at a temporary directory.
func isolate(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("HOME", dir)
	t.Setenv("SSH_AUTH_SOCK", "")
	return dir
}

// parseShow checks `keys show` output: the authorized_keys line, then the
// fingerprint, and returns the key.
func parseShow(t *testing.T, out string) ed25519.PublicKey {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out)
	}
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(lines[0]))
	if err != nil || len(rest) != 0 {
		t.Fatalf("first line %q: %v", lines[0], err)
	}
	if pk.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s", pk.Type())
	}
	pub := pk.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey)
	if want := identity.Fingerprint(pub); lines[1] != want {
		t.Fatalf("fingerprint line %q, key's fingerprint %q", lines[1], want)
	}
	return pub
}

func TestKeysNewShowFingerprint(t *testing.T) {
	dir := isolate(t)
	t.Setenv("SJ_TEST_PASS", "correct horse")

	out, _, err := runCommand(t, "keys", "new", "-comment", "alice@example.org", "-passphrase-env", "SJ_TEST_PASS")
	if err != nil {
		t.Fatal(err)
	}
	newKey := parseShow(t, out)

	path := filepath.Join(dir, "config", "securejingle", "identity_ed25519")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key not at the default path: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %#o", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %#o", di.Mode().Perm())
	}
	s, err := identity.LoadFile(path, func() ([]byte, error) { return []byte("correct horse"), nil })
	if err != nil {
		t.Fatalf("generated key does not load with its passphrase: %v", err)
	}
	fp := identity.Fingerprint(s.PublicKey())
	if identity.Fingerprint(newKey) != fp {
		t.Fatal("keys new printed another key")
	}

	for _, args := range [][]string{{"show"}, {"show", "-file", path}} {
		out, _, err := runCommand(t, "keys", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if pk := parseShow(t, out); identity.Fingerprint(pk) != fp {
			t.Fatalf("%v shows another key", args)
		}
	}
	for _, args := range [][]string{{"fingerprint"}, {"fingerprint", "-file", path}} {
		out, _, err := runCommand(t, "keys", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out != fp+"\n" {
			t.Fatalf("%v printed %q, want %q", args, out, fp)
		}
	}

	// A second `keys new` must not overwrite the key.
	if _, _, err := runCommand(t, "keys", "new", "-passphrase-env", "SJ_TEST_PASS"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second keys new: %v, want fs.ErrExist", err)
	}
	if s2, err := identity.LoadFile(path, func() ([]byte, error) { return []byte("correct horse"), nil }); err != nil || identity.Fingerprint(s2.PublicKey()) != fp {
		t.Fatal("key changed")
	}
}

func TestKeysNewNoPassphrase(t *testing.T) {
	dir := isolate(t)
	t.Setenv("SJ_EMPTY", "")
	path := filepath.Join(dir, "k")
	out, stderr, err := runCommand(t, "keys", "new", "-out", path, "-passphrase-env", "SJ_EMPTY")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "not protected") {
		t.Errorf("no warning about the missing passphrase: %q", stderr)
	}
	s, err := identity.LoadFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pk := parseShow(t, out); identity.Fingerprint(pk) != identity.Fingerprint(s.PublicKey()) {
		t.Fatal("printed key differs from file")
	}
}

func TestKeysErrors(t *testing.T) {
	dir := isolate(t)
	cases := [][]string{
		{},
		{"bogus"},
		{"new", "-passphrase-env", "SJ_SURELY_UNSET_VAR", "-out", filepath.Join(dir, "x")},
		{"new", "-nosuchflag"},
		{"new", "extra-arg", "-out", filepath.Join(dir, "y")},
		{"show", "-file", filepath.Join(dir, "missing")},
		{"show", "-agent", "-file", filepath.Join(dir, "missing")},
		{"show", "-key", "SHA256:x", "-file", filepath.Join(dir, "missing")},
		{"show", "-key", "work"},  // SSH_AUTH_SOCK is empty
		{"fingerprint", "-agent"}, // SSH_AUTH_SOCK is empty
		{"show"},                  // no default key yet
	}
	for _, args := range cases {
		if _, _, err := runCommand(t, "keys", args...); err == nil {
			t.Errorf("keys %v succeeded", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("key written despite missing passphrase variable")
	}
	if _, _, err := runCommand(t, "keys", "new", "-h"); err != nil {
		t.Errorf("-h: %v", err)
	}
}

// TestKeysAgent shows the key of an agent at $SSH_AUTH_SOCK.
func TestKeysAgent(t *testing.T) {
	dir := isolate(t)
	t.Setenv("SJ_EMPTY", "")
	path := filepath.Join(dir, "k")
	if _, _, err := runCommand(t, "keys", "new", "-out", path, "-passphrase-env", "SJ_EMPTY"); err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	pub, err := identity.AddFileToAgent(kr, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "a.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- identity.Serve(ctx, l, kr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)

	out, _, err := runCommand(t, "keys", "fingerprint", "-agent")
	if err != nil {
		t.Fatal(err)
	}
	if out != identity.Fingerprint(pub)+"\n" {
		t.Fatalf("fingerprint -agent printed %q", out)
	}
	out, _, err = runCommand(t, "keys", "show", "-agent")
	if err != nil {
		t.Fatal(err)
	}
	parseShow(t, out)
}

// TestAgentCommand runs `securejingle agent` and signs through it.
func TestAgentCommand(t *testing.T) {
	for _, explicit := range []bool{true, false} {
		dir := isolate(t)
		t.Setenv("TMPDIR", dir)
		t.Setenv("SJ_PASS", "pw")
		path := filepath.Join(dir, "k")
		if _, _, err := runCommand(t, "keys", "new", "-out", path, "-passphrase-env", "SJ_PASS"); err != nil {
			t.Fatal(err)
		}
		want, err := identity.PublicKeyFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-key", path, "-passphrase-env", "SJ_PASS"}
		if explicit {
			args = append(args, "-socket", filepath.Join(dir, "agent.sock"))
		}

		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		var logs bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- commands["agent"].run(ctx, args, pw, &logs)
			pw.Close()
		}()
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err != nil {
			cancel()
			t.Fatalf("no SSH_AUTH_SOCK line: %v (agent: %v)", err, <-done)
		}
		sock, ok := strings.CutPrefix(line, "SSH_AUTH_SOCK=")
		sock, ok2 := strings.CutSuffix(sock, "; export SSH_AUTH_SOCK;\n")
		if !ok || !ok2 {
			cancel()
			t.Fatalf("bad line %q", line)
		}
		if explicit && sock != filepath.Join(dir, "agent.sock") {
			t.Errorf("socket %q", sock)
		}
		if !explicit && !strings.HasPrefix(sock, filepath.Join(dir, "securejingle-agent-")) {
			t.Errorf("default socket %q not under TMPDIR", sock)
		}
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
			t.Errorf("socket: %v, mode %v", err, fi.Mode())
		}
		if !explicit {
			if di, err := os.Stat(filepath.Dir(sock)); err != nil || di.Mode().Perm() != 0o700 {
				t.Errorf("socket directory: %v, mode %v", err, di.Mode())
			}
		}

		s, closer, err := identity.DialAgent(sock)
		if err != nil {
			t.Fatal(err)
		}
		if !s.PublicKey().Equal(want) {
			t.Error("agent serves another key")
		}
		msg := []byte("bundle")
		sig, err := s.Sign(identity.NamespaceBundle, msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := identity.Verify(want, identity.NamespaceBundle, msg, sig); err != nil {
			t.Fatal(err)
		}
		closer.Close()

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("agent: %v\n%s", err, logs.String())
		}
		if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
		if !explicit {
			if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket directory left behind: %v", err)
			}
		}
		if !strings.Contains(logs.String(), identity.Fingerprint(want)) {
			t.Errorf("logs do not name the loaded key:\n%s", logs.String())
		}
	}
}

func TestAgentCommandErrors(t *testing.T) {
	dir := isolate(t)
	t.Setenv("SJ_PASS", "pw")
	t.Setenv("SJ_WRONG", "nope")
	path := filepath.Join(dir, "k")
	if _, _, err := runCommand(t, "keys", "new", "-out", path, "-passphrase-env", "SJ_PASS"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "agent", "-key", path, "-passphrase-env", "SJ_WRONG"); !errors.Is(err, identity.ErrIncorrectPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, _, err := runCommand(t, "agent", "-key", filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "agent", "-key", path, "-passphrase-env", "SJ_PASS"); !errors.Is(err, identity.ErrKeyPermissions) {
		t.Errorf("open key file: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a/agent.sock": "/tmp/a/agent.sock",
		"/tmp/a b":          "'/tmp/a b'",
		"/tmp/it's":         `'/tmp/it'\''s'`,
		"/tmp/$(x)":         "'/tmp/$(x)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
