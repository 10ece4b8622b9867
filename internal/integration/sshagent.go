package integration

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// SSHEnv returns an environment for OpenSSH programs that keeps them away
// from the user's ~/.ssh, agent and askpass program, with SSH_AUTH_SOCK set
// to sock unless it is "".
func SSHEnv(t testing.TB, sock string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "SSH_AGENT_PID=") && !strings.HasPrefix(kv, "DISPLAY=") &&
			!strings.HasPrefix(kv, "SSH_ASKPASS") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+t.TempDir())
	if sock != "" {
		env = append(env, "SSH_AUTH_SOCK="+sock)
	}
	return env
}

// An SSHAgent is the real OpenSSH ssh-agent, run in the foreground on a
// socket of the test's choosing and killed when the test ends.
type SSHAgent struct {
	t      testing.TB
	Socket string
	cmd    *exec.Cmd
}

// StartSSHAgent starts ssh-agent (see [Tool]) listening on sock, with
// extraEnv added to its environment, and returns once it listens.
func StartSSHAgent(t testing.TB, sock string, extraEnv ...string) *SSHAgent {
	t.Helper()
	cmd := exec.Command(Tool(t, "ssh-agent", "openssh-client"), "-D", "-a", sock)
	cmd.Env = append(SSHEnv(t, ""), extraEnv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &SSHAgent{t: t, Socket: sock, cmd: cmd}
	t.Cleanup(a.Kill)
	// ssh-agent prints its environment once the socket is listening.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH_AUTH_SOCK="+sock+";") {
		t.Fatalf("ssh-agent said %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return a
}

// Add runs ssh-add with args against the agent; a failure fails the test.
func (a *SSHAgent) Add(args ...string) {
	a.t.Helper()
	cmd := exec.Command(Tool(a.t, "ssh-add", "openssh-client"), args...)
	cmd.Env = SSHEnv(a.t, a.Socket)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		a.t.Fatalf("ssh-add %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// Stop stops the agent with SIGSTOP, as a pending confirmation prompt or
// a stuck token would freeze it; Continue resumes it.
func (a *SSHAgent) Stop() { a.signal(syscall.SIGSTOP) }

// Continue resumes an agent stopped by [SSHAgent.Stop].
func (a *SSHAgent) Continue() { a.signal(syscall.SIGCONT) }

func (a *SSHAgent) signal(sig os.Signal) {
	a.t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		a.t.Fatalf("ssh-agent: %v: %v", sig, err)
	}
}

// Kill kills the agent, waits for it and removes its socket, so that a
// new agent can listen there; it may be called more than once.
func (a *SSHAgent) Kill() {
	if a.cmd.ProcessState != nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGCONT)
	a.cmd.Process.Kill()
	a.cmd.Wait()
	os.Remove(a.Socket)
}
