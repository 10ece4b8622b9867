package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/api"
)

// maxAgentTimeout bounds keys.agent_timeout.
const maxAgentTimeout = 5 * time.Minute

// Signer health checks behind GET /v1/status.
const (
	// healthMaxAge: a status within this time of the last check reuses it.
	healthMaxAge = time.Second
	// healthWait bounds a check, and so GET /v1/status, when the agent
	// does not answer.
	healthWait = 2 * time.Second
)

// agentTimeout returns keys.agent_timeout, or the default.
func (k KeysConfig) agentTimeout() (time.Duration, error) {
	if k.AgentTimeout == "" {
		return identity.DefaultAgentTimeout, nil
	}
	d, err := parseDuration(k.AgentTimeout)
	switch {
	case err != nil:
		return 0, err
	case d == 0:
		return 0, errors.New("must be positive")
	case d > maxAgentTimeout:
		return 0, fmt.Errorf("%q is more than %s", k.AgentTimeout, maxAgentTimeout)
	}
	return d, nil
}

// openSigner returns the identity key backend the configuration names and
// a Closer for it.
func openSigner(k KeysConfig) (identity.Signer, io.Closer, error) {
	switch k.Backend {
	case "", "file":
		var pass func() ([]byte, error)
		if k.PassphraseEnv != "" {
			env := k.PassphraseEnv
			pass = func() ([]byte, error) {
				v, ok := os.LookupEnv(env)
				if !ok {
					return nil, fmt.Errorf("daemon: the key is passphrase-protected and $%s is not set", env)
				}
				return []byte(v), nil
			}
		}
		s, err := identity.LoadFile(k.File, pass)
		if err != nil {
			return nil, nil, err
		}
		return s, io.NopCloser(nil), nil
	case "agent":
		timeout, err := k.agentTimeout()
		if err != nil {
			return nil, nil, &FieldError{Key: "keys.agent_timeout", Msg: err.Error()}
		}
		if k.AgentKey != "" {
			if _, err := parseFingerprint(k.AgentKey); err != nil {
				return nil, nil, &FieldError{Key: "keys.agent_key", Msg: err.Error()}
			}
		}
		if k.AgentSocket == "" && os.Getenv("SSH_AUTH_SOCK") == "" {
			return nil, nil, errors.New("daemon: SSH_AUTH_SOCK is not set and keys.agent_socket is empty")
		}
		s, err := identity.OpenAgent(identity.AgentOptions{Socket: k.AgentSocket, Fingerprint: k.AgentKey, Timeout: timeout})
		if err != nil {
			return nil, nil, fmt.Errorf("daemon: keys: %w", err)
		}
		c, _ := s.(io.Closer)
		if c == nil {
			c = io.NopCloser(nil)
		}
		return s, c, nil
	}
	return nil, nil, fmt.Errorf("%w: keys.backend %q", ErrConfig, k.Backend)
}

// signerHealth reports the identity key backend's health for
// GET /v1/status. It checks the backend at most once per healthMaxAge,
// one check at a time, and never waits longer than healthWait. It is safe
// for concurrent use.
type signerHealth struct {
	s       identity.Signer
	backend string // the configured backend: file or agent

	mu      sync.Mutex
	checked time.Time
	running chan struct{} // closed when the check in progress ends
}

func newSignerHealth(s identity.Signer, backend string) *signerHealth {
	if backend == "" {
		backend = "file"
	}
	return &signerHealth{s: s, backend: backend}
}

// status checks the backend if the last check is stale and returns the
// health as of then.
func (h *signerHealth) status() api.SignerStatus {
	if hr, ok := h.s.(identity.HealthReporter); ok {
		h.mu.Lock()
		if h.running == nil && time.Since(h.checked) >= healthMaxAge {
			done := make(chan struct{})
			h.running = done
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), healthWait)
				hr.CheckHealth(ctx)
				cancel()
				h.mu.Lock()
				h.checked, h.running = time.Now(), nil
				h.mu.Unlock()
				close(done)
			}()
		}
		running := h.running
		h.mu.Unlock()
		if running != nil {
			t := time.NewTimer(healthWait)
			select {
			case <-running:
			case <-t.C:
			}
			t.Stop()
		}
	}
	st := identity.Health(h.s)
	out := api.SignerStatus{Backend: h.backend, State: string(st.State), Socket: st.Socket,
		LastSuccess: st.LastSuccess, LastError: st.LastError}
	if st.Err != nil {
		out.Error = st.Err.Error()
	}
	return out
}

// signerError gives an identity key failure its API class: a timed-out
// agent is 504, one that is gone, lost the key or refused is 503. It
// returns nil for other errors.
func signerError(err error) error {
	switch {
	case errors.Is(err, identity.ErrAgentTimeout):
		return fmt.Errorf("%w: %w", api.ErrSignerTimeout, err)
	case errors.Is(err, identity.ErrAgentUnreachable), errors.Is(err, identity.ErrKeyRemoved),
		errors.Is(err, identity.ErrConfirmationRequired):
		return fmt.Errorf("%w: %w", api.ErrSignerUnavailable, err)
	}
	return nil
}
