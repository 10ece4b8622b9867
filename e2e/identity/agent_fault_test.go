package identity

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// hangGuard only stops a hung test; it asserts no speed.
const hangGuard = 30 * time.Second

// shortTimeout is the agent timeout of the fault tests.
const shortTimeout = 200 * time.Millisecond

// frozenAgent is an agent whose signatures wait until release is closed,
// as a stopped agent or one showing a confirmation prompt does.
type frozenAgent struct {
	agent.Agent
	release chan struct{}
}

func (a frozenAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	<-a.release
	return a.Agent.Sign(key, data)
}

// refusingAgent lists its keys but refuses to sign, as ssh-agent does for a
// key added with ssh-add -c when no confirmation can be asked.
type refusingAgent struct{ agent.Agent }

func (refusingAgent) Sign(ssh.PublicKey, []byte) (*ssh.Signature, error) {
	return nil, errors.New("agent: failed to sign challenge")
}

// signWithin signs, failing the test if Sign does not return before the
// hang guard.
func signWithin(t *testing.T, s Signer) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := s.Sign(NamespaceHandshake, []byte("transcript"))
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(hangGuard):
		t.Fatal("Sign hung")
		return nil
	}
}

func wantState(t *testing.T, s Signer, want SignerState, kind error) {
	t.Helper()
	h := Health(s)
	if h.State != want || (kind == nil) != (h.Err == nil) || (kind != nil && !errors.Is(h.Err, kind)) {
		t.Fatalf("health %+v, want state %s with %v", h, want, kind)
	}
}

// Finding 6: a frozen agent made every caller hang. Each call is now
// bounded by the signer's timeout, over a socket and in process, and the
// signer works again once the agent answers.
func TestRegressAgentFrozenSignTimesOut(t *testing.T) {
	_, priv := newEd25519(t)
	for _, via := range []string{"socket", "direct"} {
		t.Run(via, func(t *testing.T) {
			fa := frozenAgent{newKeyring(t, priv), make(chan struct{})}
			opts := AgentOptions{Timeout: shortTimeout}
			if via == "socket" {
				opts.Socket = serveAgent(t, fa)
			} else {
				opts.Agent = fa
			}
			released := false
			release := func() {
				if !released {
					released = true
					close(fa.release)
				}
			}
			t.Cleanup(release) // before the server stops
			s, err := OpenAgent(opts)
			if err != nil {
				t.Fatal(err)
			}
			wantState(t, s, StateOK, nil)
			err = signWithin(t, s)
			var ae *AgentError
			if !errors.Is(err, ErrAgentTimeout) || !errors.As(err, &ae) || ae.Timeout != shortTimeout {
				t.Fatalf("frozen agent: %v, want ErrAgentTimeout after %s", err, shortTimeout)
			}
			wantState(t, s, StateTimedOut, ErrAgentTimeout)
			if h := s.(HealthReporter).CheckHealth(context.Background()); via == "socket" && h.State != StateOK {
				// Listing does not wait for the frozen signature over a
				// socket; in process the earlier call still holds the agent.
				t.Fatalf("listing a live agent: %+v", h)
			}
			release()
			if err := signWithin(t, s); err != nil {
				t.Fatalf("after release: %v", err)
			}
			wantState(t, s, StateOK, nil)
		})
	}
}

// The caller's context bounds a signature too; a cancellation says nothing
// about the agent's health.
func TestAgentSignContext(t *testing.T) {
	_, priv := newEd25519(t)
	fa := frozenAgent{newKeyring(t, priv), make(chan struct{})}
	sock := serveAgent(t, fa)
	t.Cleanup(func() { close(fa.release) })
	s, err := OpenAgent(AgentOptions{Socket: sock, Timeout: hangGuard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
	defer cancel()
	if _, err := SignContext(ctx, s, NamespaceBundle, []byte("m")); !errors.Is(err, ErrAgentTimeout) {
		t.Fatalf("context deadline: %v, want ErrAgentTimeout", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	s2, err := OpenAgent(AgentOptions{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignContext(ctx, s2, NamespaceBundle, []byte("m")); !errors.Is(err, context.Canceled) || errors.Is(err, ErrAgentTimeout) {
		t.Fatalf("cancelled: %v", err)
	}
	wantState(t, s2, StateOK, nil)
	// Memory signers honour the context as well.
	m, err := GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignContext(ctx, m, NamespaceBundle, []byte("m")); !errors.Is(err, context.Canceled) {
		t.Fatalf("memory signer, cancelled: %v", err)
	}
	if h := Health(m); h.State != StateOK || h.Backend != "key" {
		t.Fatalf("memory signer health %+v", h)
	}
}

// Finding 6: a killed agent was never dialled again. The signer dials per
// call: with the agent gone it reports ErrAgentUnreachable, and a new agent
// on the same socket is used at the next call.
func TestRegressAgentRestartReconnects(t *testing.T) {
	_, priv := newEd25519(t)
	sock := filepath.Join(t.TempDir(), "a.sock")
	serve := func() (stop func()) {
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, l, newKeyring(t, priv)) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	}
	stop := serve()
	s, closer, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	testSigner(t, s)
	stop()

	err = signWithin(t, s)
	var ae *AgentError
	if !errors.Is(err, ErrAgentUnreachable) || !errors.As(err, &ae) || ae.Socket != sock {
		t.Fatalf("agent gone: %v, want ErrAgentUnreachable naming the socket", err)
	}
	wantState(t, s, StateUnreachable, ErrAgentUnreachable)
	if h := s.(HealthReporter).CheckHealth(context.Background()); h.State != StateUnreachable || h.LastError.IsZero() {
		t.Fatalf("check with the agent gone: %+v", h)
	}

	stop = serve()
	defer stop()
	if err := signWithin(t, s); err != nil {
		t.Fatalf("new agent on the same socket: %v", err)
	}
	wantState(t, s, StateOK, nil)
	closer.Close()
	if err := signWithin(t, s); err == nil {
		t.Fatal("Sign after Close succeeded")
	}
}

// Finding 6: a removed or expired key gave only "failed to sign
// challenge". It is now ErrKeyRemoved, and a refusal for a key the agent
// still lists is ErrConfirmationRequired.
func TestRegressAgentKeyRemovedOrRefused(t *testing.T) {
	pub, priv := newEd25519(t)
	kr := newKeyring(t, priv)
	for _, via := range []string{"socket", "direct"} {
		opts := AgentOptions{Agent: kr}
		if via == "socket" {
			opts = AgentOptions{Socket: serveAgent(t, kr)}
		}
		if err := kr.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
		s, err := OpenAgent(opts)
		if err != nil {
			t.Fatal(err)
		}
		testSigner(t, s)
		k, _ := ssh.NewPublicKey(pub)
		if err := kr.Remove(k); err != nil {
			t.Fatal(err)
		}
		if err := signWithin(t, s); !errors.Is(err, ErrKeyRemoved) {
			t.Fatalf("%s: removed key: %v, want ErrKeyRemoved", via, err)
		}
		wantState(t, s, StateKeyMissing, ErrKeyRemoved)
	}

	ra := refusingAgent{newKeyring(t, priv)}
	for via, opts := range map[string]AgentOptions{"socket": {Socket: serveAgent(t, ra)}, "direct": {Agent: ra}} {
		s, err := OpenAgent(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := signWithin(t, s); !errors.Is(err, ErrConfirmationRequired) {
			t.Fatalf("%s: refusal: %v, want ErrConfirmationRequired", via, err)
		}
		// A listing cannot clear a refusal.
		if h := s.(HealthReporter).CheckHealth(context.Background()); h.State != StateConfirmationRequired {
			t.Fatalf("%s: check after a refusal: %+v", via, h)
		}
	}
}

func TestOpenAgentOptions(t *testing.T) {
	pub1, priv1 := newEd25519(t)
	_, priv2 := newEd25519(t)
	sock := serveAgent(t, newKeyring(t, priv1, priv2))
	s, err := OpenAgent(AgentOptions{Socket: sock, Fingerprint: Fingerprint(pub1)})
	if err != nil || !s.PublicKey().Equal(pub1) {
		t.Fatalf("by fingerprint: %v", err)
	}
	other, _ := newEd25519(t)
	if _, err := OpenAgent(AgentOptions{Socket: sock, Fingerprint: Fingerprint(other)}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("unknown fingerprint: %v", err)
	}
	if _, err := OpenAgent(AgentOptions{Socket: sock, Key: pub1, Fingerprint: Fingerprint(pub1)}); err == nil {
		t.Fatal("Key and Fingerprint both accepted")
	}
	if _, err := OpenAgent(AgentOptions{Socket: sock, Timeout: -1}); err == nil {
		t.Fatal("negative timeout accepted")
	}
	if _, err := OpenAgent(AgentOptions{Socket: filepath.Join(t.TempDir(), "none")}); !errors.Is(err, ErrAgentUnreachable) {
		t.Fatalf("no agent: %v, want ErrAgentUnreachable", err)
	}
}
