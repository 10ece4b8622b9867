package identity

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/integration"
)

// pollTool runs an OpenSSH tool until cond holds for its output, failing
// the test after the hang guard.
func pollTool(t *testing.T, what string, env []string, cond func(out string, err error) bool, name string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		out, err := tryTool(t, env, nil, name, args...)
		if cond(string(out), err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s (last output %q, %v)", what, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentWithKey starts a real ssh-agent on sock with a new key added by
// ssh-add with args, and returns the agent and the key file.
func agentWithKey(t *testing.T, sock string, agentEnv []string, addArgs ...string) (*integration.SSHAgent, string) {
	t.Helper()
	a := integration.StartSSHAgent(t, sock, agentEnv...)
	keyFile := sshKeygen(t, "")
	a.Add(append(addArgs, keyFile)...)
	return a, keyFile
}

// Finding 6 with the real ssh-agent: a stopped agent (SIGSTOP, as when it
// shows a confirmation prompt) gives ErrAgentTimeout within the timeout
// instead of a hang, health says timed-out, and after SIGCONT it signs.
func TestIntegrationRegressAgentStopped(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	proc, _ := agentWithKey(t, sock, nil)
	s, err := OpenAgent(AgentOptions{Socket: sock, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testSigner(t, s)
	proc.Stop()
	err = signWithin(t, s)
	var ae *AgentError
	if !errors.Is(err, ErrAgentTimeout) || !errors.As(err, &ae) || ae.Timeout != time.Second || !strings.Contains(ae.Socket, sock) {
		t.Fatalf("stopped agent: %v, want ErrAgentTimeout", err)
	}
	wantState(t, s, StateTimedOut, ErrAgentTimeout)
	if h := s.(HealthReporter).CheckHealth(context.Background()); h.State != StateTimedOut {
		t.Fatalf("check on a stopped agent: %+v", h)
	}
	proc.Continue()
	if err := signWithin(t, s); err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
	wantState(t, s, StateOK, nil)
}

// Finding 6 with the real ssh-agent: after the agent is killed, Sign says
// the agent is gone; a new agent started on the same socket with the key is
// used by the same signer, without a restart.
func TestIntegrationRegressAgentRestarted(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	proc, keyFile := agentWithKey(t, sock, nil)
	s, err := OpenAgent(AgentOptions{Socket: sock, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testSigner(t, s)
	proc.Kill()
	if err := signWithin(t, s); !errors.Is(err, ErrAgentUnreachable) {
		t.Fatalf("killed agent: %v, want ErrAgentUnreachable", err)
	}
	wantState(t, s, StateUnreachable, ErrAgentUnreachable)

	integration.StartSSHAgent(t, sock).Add(keyFile)
	if err := signWithin(t, s); err != nil {
		t.Fatalf("new agent on the same socket: %v", err)
	}
	wantState(t, s, StateOK, nil)
}

// Finding 6 with the real ssh-agent: a key added with ssh-add -c, when the
// agent cannot ask for confirmation (its SSH_ASKPASS fails), gives
// ErrConfirmationRequired rather than "failed to sign challenge".
func TestIntegrationRegressAgentConfirmRequired(t *testing.T) {
	for name, agentEnv := range map[string][]string{
		"askpass unset":   nil,
		"askpass failing": {"SSH_ASKPASS=/bin/false", "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"},
	} {
		t.Run(name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s")
			agentWithKey(t, sock, agentEnv, "-c")
			s, err := OpenAgent(AgentOptions{Socket: sock, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := signWithin(t, s); !errors.Is(err, ErrConfirmationRequired) {
				t.Fatalf("ssh-add -c: %v, want ErrConfirmationRequired", err)
			}
			wantState(t, s, StateConfirmationRequired, ErrConfirmationRequired)
		})
	}
}

// Finding 6 with the real ssh-agent: once the lifetime of a key added with
// ssh-add -t has run out (OpenSSH counts whole seconds, so 3 is more
// than 2), Sign gives ErrKeyRemoved.
func TestIntegrationRegressAgentKeyExpired(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	_, keyFile := agentWithKey(t, sock, nil, "-t", "3")
	pub, err := PublicKeyFromFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenAgent(AgentOptions{Socket: sock, Key: pub, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the agent to drop the key: ssh-add -l exits 1 with no keys.
	fp := Fingerprint(pub)
	pollTool(t, "the key to expire", sshEnv(t, sock), func(out string, err error) bool {
		return !strings.Contains(out, fp)
	}, "ssh-add", "-l")
	if err := signWithin(t, s); !errors.Is(err, ErrKeyRemoved) {
		t.Fatalf("expired key: %v, want ErrKeyRemoved", err)
	}
	wantState(t, s, StateKeyMissing, ErrKeyRemoved)
}
