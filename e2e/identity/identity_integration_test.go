package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"github.com/securejingle/securejingle/internal/integration"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// needTool returns the path of an OpenSSH tool. A missing tool skips the
// test, or fails it when SECUREJINGLE_INTEGRATION=1 (make check).
func needTool(t *testing.T, name string) string {
	return integration.Tool(t, name, "openssh-client")
}

// sshEnv is an environment for OpenSSH tools that keeps them away from the
// user's ~/.ssh and agent.
func sshEnv(t *testing.T, sock string) []string { return integration.SSHEnv(t, sock) }

// runTool runs a tool and returns its stdout; it fails the test if the tool
// fails.
func runTool(t *testing.T, env []string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := tryTool(t, env, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func tryTool(t *testing.T, env []string, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func authorizedKey(t *testing.T, pub ed25519.PublicKey) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
}

// sshKeygen makes an Ed25519 key with ssh-keygen and returns its path.
func sshKeygen(t *testing.T, passphrase string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "id_ed25519")
	runTool(t, sshEnv(t, ""), nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "alice@example.org", "-f", path)
	return path
}

// (a) A passphrase-protected key from ssh-keygen loads and signs; our own
// key files and fingerprints are what ssh-keygen reads and prints.
func TestIntegrationSSHKeygenKeyFile(t *testing.T) {
	env := sshEnv(t, "")
	path := sshKeygen(t, "pass phrase")
	s, err := LoadFile(path, func() ([]byte, error) { return []byte("pass phrase"), nil })
	if err != nil {
		t.Fatal(err)
	}
	testSigner(t, s)
	if _, err := LoadFile(path, func() ([]byte, error) { return []byte("pass"), nil }); !errors.Is(err, ErrIncorrectPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}

	pubLine, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pubLine), authorizedKey(t, s.PublicKey())+" ") {
		t.Fatalf("loaded key %s, ssh-keygen wrote %s", authorizedKey(t, s.PublicKey()), pubLine)
	}
	if pub, err := PublicKeyFromFile(path); err != nil || !pub.Equal(s.PublicKey()) {
		t.Fatalf("PublicKeyFromFile: %v", err)
	}
	fields := strings.Fields(string(runTool(t, env, nil, "ssh-keygen", "-l", "-f", path+".pub")))
	if len(fields) < 2 || fields[1] != Fingerprint(s.PublicKey()) {
		t.Fatalf("ssh-keygen -l says %v, Fingerprint says %s", fields, Fingerprint(s.PublicKey()))
	}

	// A key from Generate is readable by ssh-keygen with its passphrase.
	ours := filepath.Join(t.TempDir(), "ours")
	g, err := Generate(ours, []byte("pw"), "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	out := runTool(t, env, nil, "ssh-keygen", "-y", "-P", "pw", "-f", ours)
	if !strings.HasPrefix(string(out), authorizedKey(t, g.PublicKey())) {
		t.Fatalf("ssh-keygen -y on our key: %s", out)
	}
	if _, err := tryTool(t, env, nil, "ssh-keygen", "-y", "-P", "wrong", "-f", ours); err == nil {
		t.Fatal("ssh-keygen accepted a wrong passphrase for our key")
	}
}

// startSSHAgent starts a real ssh-agent on a socket in a temporary
// directory and returns the socket path; the agent is killed in t.Cleanup.
func startSSHAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	integration.StartSSHAgent(t, sock)
	return sock
}

// (b) The real ssh-agent signs for DialAgent, with keys added by ssh-add
// and by AddFileToAgent.
func TestIntegrationSSHAgent(t *testing.T) {
	sock := startSSHAgent(t)
	env := sshEnv(t, sock)

	keyFile := sshKeygen(t, "")
	runTool(t, env, nil, "ssh-add", keyFile)

	s, closer, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	fileSigner, err := LoadFile(keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.PublicKey().Equal(fileSigner.PublicKey()) {
		t.Fatal("agent key differs from key file")
	}
	testSigner(t, s)

	// A second key, added through our own code over the agent protocol.
	ours := filepath.Join(t.TempDir(), "ours")
	g, err := Generate(ours, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := AddFileToAgent(agent.NewClient(conn), ours, nil); err != nil {
		t.Fatal(err)
	}
	listing := string(runTool(t, env, nil, "ssh-add", "-L"))
	if !strings.Contains(listing, authorizedKey(t, g.PublicKey())) {
		t.Fatalf("ssh-add -L does not list the added key:\n%s", listing)
	}
	if _, _, err := DialAgent(sock); !errors.Is(err, ErrAmbiguousKey) {
		t.Fatalf("two keys: %v, want ErrAmbiguousKey", err)
	}
	s2, closer2, err := DialAgentKey(sock, g.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer closer2.Close()
	testSigner(t, s2)
}

// (c) Our armored signatures pass `ssh-keygen -Y verify` under their
// namespace only.
func TestIntegrationSSHKeygenVerify(t *testing.T) {
	env := sshEnv(t, "")
	dir := t.TempDir()
	s, err := GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(allowed, []byte("alice@example.org "+authorizedKey(t, s.PublicKey())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := []byte("identity statement for alice@example.org\n")
	verify := func(ns string, msg, armored []byte) error {
		sigFile := filepath.Join(dir, "sig")
		if err := os.WriteFile(sigFile, armored, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := tryTool(t, env, msg, "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", ns, "-s", sigFile)
		if err != nil {
			t.Logf("ssh-keygen -Y verify -n %s: %s", ns, out)
		}
		return err
	}
	for _, ns := range []string{NamespaceBundle, NamespacePrekey, NamespacePresence, NamespaceHandshake, NamespaceStatement} {
		sig, err := s.Sign(ns, msg)
		if err != nil {
			t.Fatal(err)
		}
		armored := Armor(s.PublicKey(), ns, sig)
		if err := verify(ns, msg, armored); err != nil {
			t.Errorf("%s: ssh-keygen rejected our signature: %v", ns, err)
		}
		other := NamespaceBundle
		if ns == NamespaceBundle {
			other = NamespacePrekey
		}
		if err := verify(other, msg, armored); err == nil {
			t.Errorf("%s: ssh-keygen accepted it under %s", ns, other)
		}
		if err := verify(ns, append([]byte("x"), msg...), armored); err == nil {
			t.Errorf("%s: ssh-keygen accepted it for another message", ns)
		}
	}
	sig, err := s.Sign(NamespaceBundle, msg)
	if err != nil {
		t.Fatal(err)
	}
	sig[5] ^= 1
	if err := verify(NamespaceBundle, msg, Armor(s.PublicKey(), NamespaceBundle, sig)); err == nil {
		t.Error("ssh-keygen accepted a tampered signature")
	}
}

// (d) Signatures from `ssh-keygen -Y sign` parse and verify, and Armor
// reproduces them byte for byte.
func TestIntegrationSSHKeygenSign(t *testing.T) {
	env := sshEnv(t, "")
	keyFile := sshKeygen(t, "")
	want, err := PublicKeyFromFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	msgFile := filepath.Join(t.TempDir(), "msg")
	msg := []byte("a handshake transcript\x00\xff")
	if err := os.WriteFile(msgFile, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, env, nil, "ssh-keygen", "-q", "-Y", "sign", "-f", keyFile, "-n", NamespaceHandshake, msgFile)
	armored, err := os.ReadFile(msgFile + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	pub, ns, sig, err := ParseArmored(armored)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(want) || ns != NamespaceHandshake {
		t.Fatalf("parsed key/namespace %x %q", pub, ns)
	}
	if err := Verify(pub, ns, msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, NamespaceBundle, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other namespace: %v", err)
	}
	if !bytes.Equal(Armor(pub, ns, sig), armored) {
		t.Fatal("Armor does not reproduce ssh-keygen's output")
	}
}

// (e) Our agent server works for ssh-add and for ssh-keygen signing through
// the agent.
func TestIntegrationServeWithOpenSSH(t *testing.T) {
	pub, priv := newEd25519(t)
	kr := newKeyring(t, priv)
	sock := serveAgent(t, kr)
	env := sshEnv(t, sock)

	listing := string(runTool(t, env, nil, "ssh-add", "-L"))
	if !strings.Contains(listing, authorizedKey(t, pub)) {
		t.Fatalf("ssh-add -L does not list our key:\n%s", listing)
	}

	dir := t.TempDir()
	pubFile := filepath.Join(dir, "id.pub")
	if err := os.WriteFile(pubFile, []byte(authorizedKey(t, pub)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	msgFile := filepath.Join(dir, "msg")
	msg := []byte("signed through securejingle's agent")
	if err := os.WriteFile(msgFile, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, env, nil, "ssh-keygen", "-q", "-Y", "sign", "-f", pubFile, "-n", NamespacePresence, msgFile)
	armored, err := os.ReadFile(msgFile + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	gotPub, ns, sig, err := ParseArmored(armored)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(pub) || ns != NamespacePresence {
		t.Fatal("wrong key or namespace")
	}
	if err := Verify(pub, NamespacePresence, msg, sig); err != nil {
		t.Fatal(err)
	}

	// ssh-add can load a key file into our agent.
	keyFile := sshKeygen(t, "")
	runTool(t, env, nil, "ssh-add", keyFile)
	want, err := PublicKeyFromFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, closer, err := DialAgentKey(sock, want)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	testSigner(t, s)
}
