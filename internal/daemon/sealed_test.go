package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/integration"
)

// stateBuckets are buckets of the engine and trust store that hold secrets
// or name contacts (docs/protocol.md §17.1).
func stateBuckets(peer string) []string {
	return []string{"e2e/self", "e2e/prekeys", "e2e/own-bundles", "e2e/peers", "e2e/sessions", "e2e/shadows", "e2e/replay", "trust/dev/" + peer}
}

// TestRegressStateAtRestInClear checks the finding that prekey private keys
// and session state sat in the clear in the daemon's store: after a chat,
// no value, bucket name or JID of the store appears in the file's bytes,
// and the store opens only under the account key.
func TestRegressStateAtRestInClear(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	if err := alice.Client.SendChat(ctx, env.Bob.JID, "hello bob"); err != nil {
		t.Fatal(err)
	}
	alice.Stop(t)
	bob.Stop(t)

	cfg, err := daemon.Load(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := store.OpenBolt(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	signer, err := identity.LoadFile(env.Alice.KeyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Sealed(inner, identity.StoreKeyFunc(signer, env.Alice.JID))
	if errors.Is(err, store.ErrNotSealed) {
		t.Fatal("the daemon's store is not sealed: prekeys and sessions are in the clear")
	}
	if err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{[]byte(env.Alice.JID), []byte(env.Bob.JID)}
	count := map[string]int{}
	err = st.View(func(tx store.Tx) error {
		for _, b := range stateBuckets(env.Bob.JID) {
			needles = append(needles, []byte(b))
			err := tx.ForEach(b, func(k string, v []byte) error {
				count[b]++
				if len(k) >= 8 {
					needles = append(needles, []byte(k))
				}
				if len(v) >= 16 {
					needles = append(needles, bytes.Clone(v))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count["e2e/prekeys"] == 0 || count["e2e/self"] == 0 {
		t.Fatalf("no prekeys or no self record found (%v): the test checks nothing", count)
	}
	t.Logf("records checked: %v (%d needles)", count, len(needles))
	for _, n := range needles {
		if bytes.Contains(raw, n) {
			t.Errorf("the store file contains %d bytes of state in the clear (%.24q)", len(n), n)
		}
	}
}

// TestRunLockedWithoutAgent checks that a daemon whose account key is in an
// agent that is not running fails at once with the locked message.
func TestRunLockedWithoutAgent(t *testing.T) {
	env := daemontest.New(t)
	cfg, err := daemon.Load(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Keys = daemon.KeysConfig{Backend: "agent", AgentSocket: filepath.Join(t.TempDir(), "no-agent.sock")}
	err = daemon.Run(context.Background(), cfg, daemontest.Logger())
	if !errors.Is(err, store.ErrKeyUnavailable) {
		t.Fatalf("Run without the agent: %v, want ErrKeyUnavailable", err)
	}
	t.Logf("Run without the agent: %v", err)
	if _, err := os.Stat(env.Alice.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after a failed start: %v", err)
	}
}

// sshAgent is a real ssh-agent on a socket of its own.
type sshAgent struct {
	sock string
	cmd  *exec.Cmd
}

// startSSHAgent starts ssh-agent on sock and waits until it listens; it
// is killed at the end of the test.
func startSSHAgent(t *testing.T, sock string) *sshAgent {
	t.Helper()
	cmd := exec.Command(integration.Tool(t, "ssh-agent", "openssh-client"), "-D", "-a", sock)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &sshAgent{sock: sock, cmd: cmd}
	t.Cleanup(a.stop)
	// ssh-agent prints its environment once the socket is listening.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH_AUTH_SOCK="+sock+";") {
		t.Fatalf("ssh-agent said %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return a
}

func (a *sshAgent) stop() {
	if a.cmd != nil {
		a.cmd.Process.Kill()
		a.cmd.Wait()
		os.Remove(a.sock)
		a.cmd = nil
	}
}

func (a *sshAgent) add(t *testing.T, keyFile string) {
	t.Helper()
	cmd := exec.Command(integration.Tool(t, "ssh-add", "openssh-client"), keyFile)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "SSH_AUTH_SOCK=" + a.sock}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
}

// TestIntegrationSealedStoreSSHAgent runs the daemon with its account key
// in the real ssh-agent: the store is sealed under it, a restart without
// the agent fails with the locked message, and with the agent back the
// state (same device id) comes back. A store sealed through the agent also
// opens with the same key loaded from its file: the derivation is the
// same for every Ed25519 backend.
func TestIntegrationSealedStoreSSHAgent(t *testing.T) {
	env := daemontest.New(t)
	dir, err := os.MkdirTemp("", "sjsa")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	ag := startSSHAgent(t, sock)
	ag.add(t, env.Alice.KeyFile)
	conf, err := os.ReadFile(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	fileKeys := "backend = \"file\"\nfile = \"identity_ed25519\"\n"
	if !bytes.Contains(conf, []byte(fileKeys)) {
		t.Fatal("daemontest configuration changed: [keys] not found")
	}
	conf = bytes.Replace(conf, []byte(fileKeys), []byte("backend = \"agent\"\nagent_socket = \""+sock+"\"\n"), 1)
	if err := os.WriteFile(env.Alice.ConfigPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}

	alice := daemontest.Start(t, env.Alice)
	st := daemontest.WaitConnected(t, alice.Client)
	alice.Stop(t)

	ag.stop()
	cfg, err := daemon.Load(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Run(context.Background(), cfg, daemontest.Logger()); !errors.Is(err, store.ErrKeyUnavailable) {
		t.Fatalf("Run with the agent stopped: %v, want ErrKeyUnavailable", err)
	}

	// The key file's signer derives the same store key as the agent.
	inner, err := store.OpenBolt(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	fileSigner, err := identity.LoadFile(env.Alice.KeyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := store.Sealed(inner, identity.StoreKeyFunc(fileSigner, env.Alice.JID))
	if err != nil {
		inner.Close()
		t.Fatalf("store sealed through ssh-agent, opened with the key file: %v", err)
	}
	sealed.Close()

	ag = startSSHAgent(t, sock)
	ag.add(t, env.Alice.KeyFile)
	alice = daemontest.Start(t, env.Alice)
	st2 := daemontest.WaitConnected(t, alice.Client)
	if st2.Device != st.Device {
		t.Fatalf("device id %d after restart, was %d: state lost", st2.Device, st.Device)
	}
}
