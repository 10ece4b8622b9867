package identity

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors of an agent-backed [Signer], each carried by an [*AgentError]
// whose message names the cause and the fix. Callers branch on them with
// errors.Is.
var (
	// ErrAgentTimeout: the agent did not answer within the signer's
	// timeout. It is stopped (SIGSTOP), busy, or waiting for the user: a
	// confirmation prompt (ssh-add -c) or a hardware token.
	ErrAgentTimeout = errors.New("identity: the agent did not answer in time")

	// ErrAgentUnreachable: no agent answers on the socket (nothing
	// listens, the connection was refused, or the agent hung up). The
	// signer dials again on every call, so a new agent on the same socket
	// is used as soon as it holds the key.
	ErrAgentUnreachable = errors.New("identity: the agent is not reachable")

	// ErrKeyRemoved: the agent answers but no longer holds the key: it was
	// deleted (ssh-add -d, -D) or its lifetime ran out (ssh-add -t).
	ErrKeyRemoved = errors.New("identity: the agent no longer holds the key")

	// ErrConfirmationRequired: the agent holds the key but refused to sign.
	// The ssh-agent protocol does not say why; for an Ed25519 key the cause
	// is a key added with confirmation (ssh-add -c) whose prompt could not
	// be shown (no SSH_ASKPASS or no display for the agent) or was
	// declined.
	ErrConfirmationRequired = errors.New("identity: the agent refused to sign (confirmation required)")
)

// DefaultAgentTimeout bounds one call into an agent unless
// [AgentOptions.Timeout] says otherwise.
const DefaultAgentTimeout = 10 * time.Second

// An AgentError is a failure of an agent-backed [Signer]. It unwraps to its
// Kind (one of [ErrAgentTimeout], [ErrAgentUnreachable], [ErrKeyRemoved],
// [ErrConfirmationRequired]) and to the underlying error, if any.
type AgentError struct {
	Kind    error         // the sentinel
	Socket  string        // the agent's socket; "" for an agent given as a value
	Key     string        // fingerprint of the signer's key
	Timeout time.Duration // the timeout that ran out (ErrAgentTimeout)
	Err     error         // what the transport or agent said; may be nil
}

func (e *AgentError) where() string {
	if e.Socket == "" {
		return "the agent"
	}
	return "the agent at " + e.Socket
}

func (e *AgentError) key() string {
	if e.Key == "" {
		return "the key"
	}
	return "key " + e.Key
}

func (e *AgentError) within() string {
	if e.Timeout <= 0 {
		return "in time"
	}
	return "within " + e.Timeout.String()
}

func (e *AgentError) cause() string {
	if e.Err == nil {
		return ""
	}
	return " (" + e.Err.Error() + ")"
}

// Error names the cause and what to do about it.
func (e *AgentError) Error() string {
	switch e.Kind {
	case ErrAgentTimeout:
		return fmt.Sprintf("identity: %s did not answer %s%s: it may be stopped, busy, or waiting for a confirmation (ssh-add -c) or a hardware token; answer the prompt or resume the agent, or add the key without -c",
			e.where(), e.within(), e.cause())
	case ErrAgentUnreachable:
		return fmt.Sprintf("identity: %s is gone%s: start an agent on that socket and add %s with ssh-add; the next signature reconnects by itself",
			e.where(), e.cause(), e.key())
	case ErrKeyRemoved:
		return fmt.Sprintf("identity: %s no longer holds %s: it was removed (ssh-add -d) or its lifetime ran out (ssh-add -t); add it again with ssh-add",
			e.where(), e.key())
	case ErrConfirmationRequired:
		return fmt.Sprintf("identity: %s refused to sign with %s: the key needs a confirmation (ssh-add -c) that could not be asked or was declined; give the agent a working SSH_ASKPASS and display, or add the key again without -c",
			e.where(), e.key())
	}
	return fmt.Sprintf("identity: %s failed%s", e.where(), e.cause())
}

// Unwrap returns Kind and Err.
func (e *AgentError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// A SignerState is the health of a signer's backend as last observed.
type SignerState string

// Signer states.
const (
	StateOK                   SignerState = "ok"
	StateUnreachable          SignerState = "unreachable"           // [ErrAgentUnreachable]
	StateTimedOut             SignerState = "timed-out"             // [ErrAgentTimeout]
	StateKeyMissing           SignerState = "key-missing"           // [ErrKeyRemoved]
	StateConfirmationRequired SignerState = "confirmation-required" // [ErrConfirmationRequired]
)

// stateOf returns the state an error of an agent signer puts it in.
func stateOf(err error) SignerState {
	switch {
	case err == nil:
		return StateOK
	case errors.Is(err, ErrAgentTimeout):
		return StateTimedOut
	case errors.Is(err, ErrKeyRemoved):
		return StateKeyMissing
	case errors.Is(err, ErrConfirmationRequired):
		return StateConfirmationRequired
	}
	return StateUnreachable
}

// SignerStatus is the health of a signer's backend.
type SignerStatus struct {
	Backend string      // "agent" or "key" (a key in process memory or loaded from a file)
	Socket  string      // the agent socket, if any
	State   SignerState // as of the last call or check
	// Err is the error that put the signer in State; nil when State is
	// [StateOK].
	Err error
	// LastSuccess is when the backend last answered as it should (a
	// signature or a health check); LastError when it last failed. Zero
	// when it never did.
	LastSuccess, LastError time.Time
}

// A HealthReporter is a [Signer] that can report on its backend. Agent
// signers are; signers holding their key in memory are always healthy and
// need not be.
type HealthReporter interface {
	// Health returns the status as of the last call or check. It never
	// blocks on the backend.
	Health() SignerStatus
	// CheckHealth asks the backend (for an agent: lists its keys, which
	// prompts for nothing) within ctx and the signer's timeout, records
	// the outcome and returns the new status. A key that is listed but
	// refused for signing keeps [StateConfirmationRequired] until a
	// signature succeeds, since a listing cannot tell.
	CheckHealth(ctx context.Context) SignerStatus
}

// A ContextSigner is a [Signer] whose signatures ctx can bound or cancel,
// on top of the signer's own timeout.
type ContextSigner interface {
	Signer
	SignContext(ctx context.Context, namespace string, message []byte) ([]byte, error)
}

// SignContext signs with s under ctx: through [ContextSigner.SignContext]
// when s has it, else with [Signer.Sign] after checking ctx.
func SignContext(ctx context.Context, s Signer, namespace string, message []byte) ([]byte, error) {
	if cs, ok := s.(ContextSigner); ok {
		return cs.SignContext(ctx, namespace, message)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Sign(namespace, message)
}

// Health returns the health of s: [HealthReporter.Health] when s reports
// it, else a healthy status for a key held in memory.
func Health(s Signer) SignerStatus {
	if h, ok := s.(HealthReporter); ok {
		return h.Health()
	}
	return SignerStatus{Backend: "key", State: StateOK}
}

// CheckHealth is like [Health] but asks the backend, as
// [HealthReporter.CheckHealth] does.
func CheckHealth(ctx context.Context, s Signer) SignerStatus {
	if h, ok := s.(HealthReporter); ok {
		return h.CheckHealth(ctx)
	}
	return Health(s)
}
