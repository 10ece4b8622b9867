package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/integration"
)

// serveAgent serves kr as an ssh-agent at $SSH_AUTH_SOCK for the test.
func serveAgent(t *testing.T, dir string, kr agent.Agent) {
	t.Helper()
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- identity.Serve(ctx, l, kr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	t.Setenv("SSH_AUTH_SOCK", sock)
}

// addAgentKey adds a new Ed25519 key with comment to kr.
func addAgentKey(t *testing.T, kr agent.Agent, comment string) ed25519.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Add(agent.AddedKey{PrivateKey: priv, Comment: comment}); err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestRegressKeysShowPicksAgentKey is finding 7 of the first review:
// `keys show` could not pick one of several agent keys.
func TestRegressKeysShowPicksAgentKey(t *testing.T) {
	dir := isolate(t)
	kr := agent.NewKeyring()
	work := addAgentKey(t, kr, "work")
	home := addAgentKey(t, kr, "home")
	serveAgent(t, dir, kr)

	for _, c := range []struct {
		args []string
		want ed25519.PublicKey
	}{
		{[]string{"show", "-key", "work"}, work},
		{[]string{"show", "-key", "home"}, home},
		{[]string{"show", "-key", identity.Fingerprint(work)}, work},
		{[]string{"fingerprint", "-key", "home"}, home},
		{[]string{"fingerprint", "-agent", "-key", identity.Fingerprint(home)}, home},
	} {
		out, _, err := runCommand(t, "keys", c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if !strings.Contains(out, identity.Fingerprint(c.want)) {
			t.Errorf("%v printed %q, want %s", c.args, out, identity.Fingerprint(c.want))
		}
	}
	_, _, err := runCommand(t, "keys", "show", "-agent")
	if !errors.Is(err, identity.ErrAmbiguousKey) || !strings.Contains(err.Error(), "-key") ||
		!strings.Contains(err.Error(), identity.Fingerprint(home)) {
		t.Errorf("two keys without -key: %v, want ambiguous, listing the keys and naming -key", err)
	}
	if _, _, err := runCommand(t, "keys", "show", "-key", "office"); !errors.Is(err, identity.ErrNoKey) {
		t.Errorf("unknown comment: %v", err)
	}
}

func TestKeysSignVerify(t *testing.T) {
	dir := isolate(t)
	t.Setenv("SJ_EMPTY", "")
	keyFile := filepath.Join(dir, "k")
	if _, _, err := runCommand(t, "keys", "new", "-out", keyFile, "-passphrase-env", "SJ_EMPTY"); err != nil {
		t.Fatal(err)
	}
	pub, err := identity.PublicKeyFromFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "doc.txt")
	if err := os.WriteFile(doc, []byte("a document\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "keys", "sign", "-file", keyFile, "-namespace", "file@example.org", doc); err != nil {
		t.Fatal(err)
	}
	sig := doc + ".sig"
	gotPub, ns, _, err := identity.ParseArmored(readTestFile(t, sig))
	if err != nil || ns != "file@example.org" || !gotPub.Equal(pub) {
		t.Fatalf("signature: %v, namespace %q", err, ns)
	}
	// No overwrite.
	if _, _, err := runCommand(t, "keys", "sign", "-file", keyFile, "-namespace", "file@example.org", doc); !errors.Is(err, os.ErrExist) {
		t.Errorf("second sign: %v, want ErrExist", err)
	}
	// To standard output, flags after the file.
	out, _, err := runCommand(t, "keys", "sign", doc, "-file", keyFile, "-namespace", "file@example.org", "-out", "-")
	if err != nil || !strings.HasPrefix(out, "-----BEGIN SSH SIGNATURE-----\n") {
		t.Fatalf("sign -out -: %q, %v", out, err)
	}

	verify := func(args ...string) (string, error) {
		out, _, err := runCommand(t, "keys", append([]string{"verify"}, args...)...)
		return out, err
	}
	if out, err := verify("-namespace", "file@example.org", "-signature", sig, doc); err != nil ||
		!strings.Contains(out, identity.Fingerprint(pub)) || !strings.Contains(out, "not checked against an expected key") {
		t.Errorf("verify: %q, %v", out, err)
	}
	for _, signer := range []string{identity.Fingerprint(pub), keyFile + ".pub"} {
		if out, err := verify("-namespace", "file@example.org", "-signature", sig, "-signer", signer, doc); err != nil ||
			strings.Contains(out, "not checked") {
			t.Errorf("verify -signer %s: %q, %v", signer, out, err)
		}
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := verify("-namespace", "file@example.org", "-signature", sig, "-signer", identity.Fingerprint(other), doc); err == nil {
		t.Error("verify accepted another signer")
	}
	if _, err := verify("-namespace", "other@example.org", "-signature", sig, doc); err == nil {
		t.Error("verify accepted another namespace")
	}
	tampered := filepath.Join(dir, "tampered.txt")
	if err := os.WriteFile(tampered, []byte("a document!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verify("-namespace", "file@example.org", "-signature", sig, tampered); !errors.Is(err, identity.ErrBadSignature) {
		t.Errorf("tampered file: %v", err)
	}
	rsa := filepath.Join("..", "..", "e2e", "identity", "testdata", "sshsig-rsa.sig")
	if _, err := verify("-namespace", identity.NamespaceStatement, "-signature", rsa, doc); !errors.Is(err, identity.ErrUnsupportedSignature) {
		t.Errorf("RSA signature: %v", err)
	}
	for _, args := range [][]string{
		{"sign", "-file", keyFile, doc},                                         // no namespace
		{"sign", "-file", keyFile, "-namespace", identity.NamespaceBundle, doc}, // reserved
		{"sign", "-file", keyFile, "-namespace", "x.v9@SecureJingle.org", doc},
		{"sign", "-file", keyFile, "-namespace", "a b", doc},
		{"sign", "-file", keyFile, "-namespace", "ns"},
		{"sign", "-file", keyFile, "-key", "work", "-namespace", "ns", doc},
		{"verify", "-namespace", "ns", doc},
	} {
		if _, _, err := runCommand(t, "keys", args...); err == nil {
			t.Errorf("keys %v succeeded", args)
		}
	}
}

// TestKeysSignAgentKey signs with one of several agent keys.
func TestKeysSignAgentKey(t *testing.T) {
	dir := isolate(t)
	kr := agent.NewKeyring()
	addAgentKey(t, kr, "work")
	home := addAgentKey(t, kr, "home")
	serveAgent(t, dir, kr)
	doc := filepath.Join(dir, "doc.txt")
	if err := os.WriteFile(doc, []byte("a document\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "keys", "sign", "-key", "home", "-namespace", "file@example.org", doc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "keys", "verify", "-namespace", "file@example.org", "-signature", doc+".sig",
		"-signer", identity.Fingerprint(home), doc); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationKeysSignSSHKeygen checks keys sign and keys verify
// against the real ssh-keygen -Y, both ways.
func TestIntegrationKeysSignSSHKeygen(t *testing.T) {
	keygen := integration.Tool(t, "ssh-keygen", "openssh-client")
	dir := isolate(t)
	t.Setenv("SJ_EMPTY", "")
	keyFile := filepath.Join(dir, "k")
	if _, _, err := runCommand(t, "keys", "new", "-out", keyFile, "-passphrase-env", "SJ_EMPTY", "-comment", "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	pub, err := identity.PublicKeyFromFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "doc.txt")
	if err := os.WriteFile(doc, []byte("a document\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCommand(t, "keys", "sign", "-file", keyFile, "-namespace", "file@example.org", doc); err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(allowed, append([]byte("alice@example.org "), ssh.MarshalAuthorizedKey(k)...), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) ([]byte, error) {
		cmd := exec.Command(keygen, args...)
		cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = strings.NewReader(stdin)
		return cmd.CombinedOutput()
	}
	if out, err := run("a document\n", "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", "file@example.org", "-s", doc+".sig"); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	if out, err := run("a document!\n", "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", "file@example.org", "-s", doc+".sig"); err == nil {
		t.Fatalf("ssh-keygen -Y verify accepted a tampered document:\n%s", out)
	}

	// The other way: ssh-keygen signs with the same key file.
	doc2 := filepath.Join(dir, "doc2.txt")
	if err := os.WriteFile(doc2, []byte("another document\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("", "-Y", "sign", "-f", keyFile, "-n", "file@example.org", doc2); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	if _, _, err := runCommand(t, "keys", "verify", "-namespace", "file@example.org", "-signature", doc2+".sig",
		"-signer", keyFile+".pub", doc2); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
