package e2e

import (
	"bufio"
	"github.com/securejingle/securejingle/internal/integration"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// tool returns the path of a program; missing programs skip the test, or
// fail it under make check (SECUREJINGLE_INTEGRATION=1).
func tool(t *testing.T, name string) string {
	pkg := map[string]string{"ssh-keygen": "openssh-client", "ssh-agent": "openssh-client", "ssh-add": "openssh-client"}[name]
	return integration.Tool(t, name, pkg)
}

func runIn(t *testing.T, env []string, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestIntegrationRealSSHAgent runs the engine with its identity key in the
// real OpenSSH ssh-agent (loaded with ssh-add), and checks the bundle
// signature it made with `ssh-keygen -Y verify`.
func TestIntegrationRealSSHAgent(t *testing.T) {
	dir, err := os.MkdirTemp("", "sj-agent") // short path: unix socket limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	env := []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	key := filepath.Join(dir, "id_ed25519")
	runIn(t, env, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@example.org", "-f", key)
	sock := filepath.Join(dir, "agent.sock")
	agentCmd := exec.Command(tool(t, "ssh-agent"), "-D", "-a", sock)
	agentCmd.Env = env
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentCmd.Process.Kill(); agentCmd.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("ssh-agent did not create its socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	env = append(env, "SSH_AUTH_SOCK="+sock)
	runIn(t, env, "", "ssh-add", "-q", key)

	signer, closer, err := identity.DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	clk := newClock()
	e, err := newCertified(t, Config{JID: "alice@example.org", Signer: signer, Store: store.NewMemory(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	a := &testEngine{e, nil}
	b := newTestEngine(t, "bob@example.net", clk)
	introduce(t, a, b)
	// A full session: alice's handshake signature comes from the agent.
	recv(t, a, b, send(t, a, b, "signed through ssh-agent"), "signed through ssh-agent")
	recv(t, b, a, send(t, b, a, "verified"), "verified")
	recv(t, a, b, send(t, a, b, "and on"), "and on")

	// ssh-keygen -Y verify accepts the bundle signature under the bundle
	// namespace, and refuses it under another namespace.
	bu := a.Bundle()
	sig := filepath.Join(dir, "bundle.sig")
	allowed := filepath.Join(dir, "allowed_signers")
	pk, err := ssh.NewPublicKey(bu.Identity)
	if err != nil {
		t.Fatal(err)
	}
	line := "alice@example.org " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + "\n"
	for _, f := range []struct {
		name string
		data []byte
	}{{sig, identity.Armor(bu.Identity, identity.NamespaceBundle, bu.Signature)}, {allowed, []byte(line)}} {
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := runIn(t, env, string(bu.body()), "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", identity.NamespaceBundle, "-s", sig)
	if !strings.Contains(out, "Good") {
		t.Fatalf("ssh-keygen -Y verify: %s", out)
	}
	cmd := exec.Command(tool(t, "ssh-keygen"), "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", identity.NamespacePrekey, "-s", sig)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(string(bu.body()))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ssh-keygen accepted the bundle signature under another namespace: %s", out)
	}
	// And every prekey signature, under the prekey namespace.
	for _, p := range bu.Prekeys {
		psig := identity.Armor(bu.Identity, identity.NamespacePrekey, p.Signature)
		if err := os.WriteFile(sig, psig, 0o600); err != nil {
			t.Fatal(err)
		}
		out := runIn(t, env, string(p.signedBytes(bu.JID, bu.Device)), "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", identity.NamespacePrekey, "-s", sig)
		sc := bufio.NewScanner(strings.NewReader(out))
		if !sc.Scan() || !strings.Contains(sc.Text(), "Good") {
			t.Fatalf("prekey %d: %s", p.ID, out)
		}
	}
}
