package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
)

// Finding 6: signer faults became undocumented 500s ("identity: agent
// signing: agent: client error: EOF"). They map to 504 (timed out) and 503
// (agent gone, key removed or expired, confirmation refused), through the
// engine's wrapping; a tampered IQ response (finding 7) maps to 502.
func TestRegressSignerFaultStatuses(t *testing.T) {
	for _, c := range []struct {
		kind, want error
	}{
		{identity.ErrAgentTimeout, api.ErrSignerTimeout},
		{identity.ErrAgentUnreachable, api.ErrSignerUnavailable},
		{identity.ErrKeyRemoved, api.ErrSignerUnavailable},
		{identity.ErrConfirmationRequired, api.ErrSignerUnavailable},
	} {
		err := fmt.Errorf("e2e: signing handshake: %w", &identity.AgentError{Kind: c.kind, Socket: "/run/a.sock"})
		got := mapErr(err)
		if !errors.Is(got, c.want) || !errors.Is(got, c.kind) {
			t.Errorf("%v: mapped to %v, want %v", c.kind, got, c.want)
		}
	}
	if got := mapErr(fmt.Errorf("%w: %w", gateway.ErrBadResponse, errors.New("e2e: message authentication failed"))); !errors.Is(got, api.ErrIntegrity) {
		t.Errorf("bad IQ response: mapped to %v, want ErrIntegrity", got)
	}
}

func TestAgentTimeoutConfig(t *testing.T) {
	for s, ok := range map[string]bool{"": true, "10s": true, "250ms": true, "5m": true, "0s": false, "-1s": false, "6m": false, "soon": false} {
		_, err := KeysConfig{Backend: "agent", AgentTimeout: s}.agentTimeout()
		if (err == nil) != ok {
			t.Errorf("agent_timeout %q: %v", s, err)
		}
	}
	// names lists the keys of the field errors of a Validate result.
	names := func(err error) map[string]bool {
		out := map[string]bool{}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				var fe *FieldError
				if errors.As(e, &fe) {
					out[fe.Key] = true
				}
			}
		}
		return out
	}
	c := Config{Keys: KeysConfig{Backend: "file", File: "k", AgentTimeout: "1s"}}
	if err := c.Validate(); !names(err)["keys.backend"] {
		t.Fatalf("agent_timeout with the file backend: %v", err)
	}
	c = Config{Keys: KeysConfig{Backend: "agent", AgentTimeout: "0s"}}
	if err := c.Validate(); !names(err)["keys.agent_timeout"] {
		t.Fatalf("agent_timeout 0s: %v", err)
	}
}
