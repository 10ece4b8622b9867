package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

var (
	// ErrNoKey is returned when an agent holds no usable Ed25519 key, or
	// not the one asked for.
	ErrNoKey = errors.New("identity: no matching Ed25519 key in agent")

	// ErrAmbiguousKey is returned when no key was named and the agent holds
	// several Ed25519 keys; the caller must say which one to use.
	ErrAmbiguousKey = errors.New("identity: several Ed25519 keys in agent; name the one to use")
)

// AgentOptions configures [OpenAgent].
type AgentOptions struct {
	// Socket is the agent's Unix socket; "" means $SSH_AUTH_SOCK. The
	// signer dials it for every call and holds no connection in between,
	// so an agent restarted on the same socket is used at the next call.
	Socket string
	// Agent, if set, is used instead of dialing Socket (an agent in
	// process, or a client on a connection of the caller's). Calls into it
	// are serialised, since an arbitrary agent.Agent need not be safe for
	// concurrent use; one that does not return within the timeout is left
	// running, and later calls wait for it within their own timeout.
	Agent agent.Agent
	// Key is the Ed25519 key to sign with, or Fingerprint its "SHA256:"
	// fingerprint as ssh-add -l prints it. With neither, the agent must
	// hold exactly one Ed25519 key.
	Key         ed25519.PublicKey
	Fingerprint string
	// Timeout bounds every call into the agent; 0 means
	// [DefaultAgentTimeout].
	Timeout time.Duration
}

// agentSigner is a [Signer] whose key lives in an ssh-agent. It is a
// [ContextSigner] and a [HealthReporter], and safe for concurrent use.
type agentSigner struct {
	sock    string        // dialed per call when fixed is nil
	fixed   agent.Agent   // an agent given as a value
	sem     chan struct{} // serialises calls into fixed
	timeout time.Duration
	key     ssh.PublicKey
	pub     ed25519.PublicKey
	fp      string

	mu          sync.Mutex
	closed      bool
	state       SignerState
	lastErr     error
	lastSuccess time.Time
	lastError   time.Time
}

// NewAgentSigner returns a [Signer] that signs with the Ed25519 key want
// held by a. If want is nil, a must hold exactly one Ed25519 key: none gives
// an error wrapping [ErrNoKey], several one wrapping [ErrAmbiguousKey]. Keys
// of other types and certificates are ignored. It is [OpenAgent] with
// [AgentOptions.Agent] set and the default timeout.
//
// Each Sign call asks the agent to sign [SignedData] and checks the answer:
// a signature of the wrong format or one that does not verify under the
// public key gives an error wrapping [ErrBadSignature], so a faulty or
// hostile agent cannot make the caller publish a bad signature.
//
// The Signer is safe for concurrent use; it serialises its calls to a.
func NewAgentSigner(a agent.Agent, want ed25519.PublicKey) (Signer, error) {
	if a == nil {
		return nil, errors.New("identity: nil agent")
	}
	return OpenAgent(AgentOptions{Agent: a, Key: want})
}

// OpenAgent returns a [Signer] for a key of the agent opts describe, after
// listing the agent's keys once to find it (errors as for
// [NewAgentSigner], or an [*AgentError] when the agent does not answer).
//
// The signer is also a [ContextSigner] and a [HealthReporter]. Every call
// into the agent is bounded by the timeout; failures are [*AgentError]s
// that say whether the agent timed out, is gone, lost the key or refused
// to sign, and they set the state [HealthReporter.Health] reports.
func OpenAgent(opts AgentOptions) (Signer, error) {
	if opts.Key != nil && len(opts.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: wanted key has length %d", ErrKeyType, len(opts.Key))
	}
	if opts.Key != nil && opts.Fingerprint != "" {
		return nil, errors.New("identity: name the agent key by Key or by Fingerprint, not both")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("identity: negative agent timeout %s", opts.Timeout)
	}
	s := &agentSigner{fixed: opts.Agent, timeout: opts.Timeout}
	if s.timeout == 0 {
		s.timeout = DefaultAgentTimeout
	}
	if s.fixed != nil {
		s.sem = make(chan struct{}, 1)
	} else {
		s.sock = opts.Socket
		if s.sock == "" {
			if s.sock = os.Getenv("SSH_AUTH_SOCK"); s.sock == "" {
				return nil, errors.New("identity: SSH_AUTH_SOCK is not set: start an ssh-agent or name its socket")
			}
		}
	}
	var keys []*agent.Key
	answered, err := s.do(context.Background(), func(a agent.Agent) (err error) {
		keys, err = a.List()
		return err
	})
	if err != nil {
		if answered {
			return nil, fmt.Errorf("identity: listing agent keys: %w", err)
		}
		return nil, err
	}
	type candidate struct {
		key ssh.PublicKey
		pub ed25519.PublicKey
	}
	var found []candidate
	for _, k := range keys {
		pk, pub, ok := agentEd25519(k)
		if !ok {
			continue
		}
		switch {
		case opts.Key != nil && subtle.ConstantTimeCompare(pub, opts.Key) != 1:
			continue
		case opts.Fingerprint != "" && subtle.ConstantTimeCompare([]byte(Fingerprint(pub)), []byte(opts.Fingerprint)) != 1:
			continue
		}
		found = append(found, candidate{pk, pub})
	}
	named := opts.Key != nil || opts.Fingerprint != ""
	switch {
	case len(found) == 0 && opts.Key != nil:
		return nil, fmt.Errorf("%w: %s not found", ErrNoKey, Fingerprint(opts.Key))
	case len(found) == 0 && opts.Fingerprint != "":
		return nil, fmt.Errorf("%w: %s not found", ErrNoKey, opts.Fingerprint)
	case len(found) == 0:
		return nil, ErrNoKey
	case len(found) > 1 && !named:
		return nil, fmt.Errorf("%w (%d found)", ErrAmbiguousKey, len(found))
	}
	s.key, s.pub = found[0].key, found[0].pub
	s.fp = Fingerprint(s.pub)
	s.record(nil)
	return s, nil
}

// agentEd25519 returns the Ed25519 key of an agent listing entry.
func agentEd25519(k *agent.Key) (ssh.PublicKey, ed25519.PublicKey, bool) {
	if k.Format != ssh.KeyAlgoED25519 {
		return nil, nil, false
	}
	pk, err := ssh.ParsePublicKey(k.Blob)
	if err != nil {
		return nil, nil, false
	}
	pub, err := ed25519PublicKey(pk, "agent key")
	if err != nil {
		return nil, nil, false
	}
	return pk, pub, true
}

// DialAgent returns a [Signer] for the only Ed25519 key of the ssh-agent
// listening on the Unix socket sock, or on $SSH_AUTH_SOCK if sock is "", as
// [OpenAgent] does with the default timeout. The signer holds no
// connection between calls; closing the returned Closer makes later calls
// fail.
func DialAgent(sock string) (Signer, io.Closer, error) {
	return DialAgentKey(sock, nil)
}

// DialAgentKey is like [DialAgent] but picks the key want, as
// [NewAgentSigner] does, for agents holding several Ed25519 keys.
func DialAgentKey(sock string, want ed25519.PublicKey) (Signer, io.Closer, error) {
	s, err := OpenAgent(AgentOptions{Socket: sock, Key: want})
	if err != nil {
		return nil, nil, err
	}
	return s, s.(io.Closer), nil
}

// errSignerClosed is returned by a signer after Close.
var errSignerClosed = fmt.Errorf("identity: agent signer is closed: %w", net.ErrClosed)

// Close makes later calls fail; the signer holds no connection.
func (s *agentSigner) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// transport records the first error of an agent connection, so that a
// failed call can be told apart from a refusal. It has no Close method on
// purpose: agent.NewClient then makes plain serial calls on it, in the
// caller's goroutine, without a background reader.
type transport struct {
	c   net.Conn
	err error
}

func (t *transport) Read(p []byte) (int, error) {
	n, err := t.c.Read(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

func (t *transport) Write(p []byte) (int, error) {
	n, err := t.c.Write(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// do runs f against the agent within ctx and the signer's timeout. It
// reports whether the agent answered: if so, an error is f's, the agent's
// refusal; if not, it is an [*AgentError] (timed out or unreachable) or,
// when ctx was cancelled, ctx's error.
func (s *agentSigner) do(ctx context.Context, f func(agent.Agent) error) (answered bool, err error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return false, errSignerClosed
	}
	limit := s.timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < limit {
		limit = max(time.Until(d), 0).Round(time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	fail := func(kind, cause error) (bool, error) {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, fmt.Errorf("identity: agent call: %w", ctx.Err())
		}
		return false, &AgentError{Kind: kind, Socket: s.sock, Key: s.fp, Timeout: limit, Err: cause}
	}
	if s.fixed != nil {
		select {
		case s.sem <- struct{}{}:
		case <-cctx.Done():
			return fail(ErrAgentTimeout, errors.New("an earlier call is still waiting for the agent"))
		}
		res := make(chan error, 1)
		go func() {
			res <- f(s.fixed)
			<-s.sem
		}()
		select {
		case err := <-res:
			return true, err
		case <-cctx.Done():
			return fail(ErrAgentTimeout, nil)
		}
	}

	var d net.Dialer
	conn, err := d.DialContext(cctx, "unix", s.sock)
	switch {
	case err == nil:
	case cctx.Err() != nil:
		return fail(ErrAgentTimeout, nil)
	case errors.Is(err, syscall.EAGAIN):
		// The listen queue is full: the agent has stopped accepting.
		return fail(ErrAgentTimeout, errors.New("the agent accepts no more connections"))
	default:
		return fail(ErrAgentUnreachable, err)
	}
	defer conn.Close()
	if dl, ok := cctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(cctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tr := &transport{c: conn}
	err = f(agent.NewClient(tr))
	stop()
	switch {
	case err == nil:
		return true, nil
	case cctx.Err() != nil:
		return fail(ErrAgentTimeout, nil)
	case tr.err != nil:
		var ne net.Error
		if errors.As(tr.err, &ne) && ne.Timeout() {
			return fail(ErrAgentTimeout, nil)
		}
		return fail(ErrAgentUnreachable, tr.err)
	}
	return true, err
}

// hasKey reports whether the agent still lists the signer's key. An agent
// that answers a listing with an error counts as unreachable.
func (s *agentSigner) hasKey(ctx context.Context) (bool, error) {
	var keys []*agent.Key
	answered, err := s.do(ctx, func(a agent.Agent) (err error) {
		keys, err = a.List()
		return err
	})
	if err != nil {
		if answered {
			return false, &AgentError{Kind: ErrAgentUnreachable, Socket: s.sock, Key: s.fp, Err: err}
		}
		return false, err
	}
	for _, k := range keys {
		if _, pub, ok := agentEd25519(k); ok && subtle.ConstantTimeCompare(pub, s.pub) == 1 {
			return true, nil
		}
	}
	return false, nil
}

// record sets the health after a call; cancellations by the caller say
// nothing about the agent.
func (s *agentSigner) record(err error) {
	var ae *AgentError
	if err != nil && !errors.As(err, &ae) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.state, s.lastErr, s.lastSuccess = StateOK, nil, now
		return
	}
	s.state, s.lastErr, s.lastError = stateOf(err), err, now
}

// PublicKey implements [Signer]. The caller may modify the returned slice.
func (s *agentSigner) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.pub...)
}

// Sign implements [Signer]; it is SignContext without a context of its own.
func (s *agentSigner) Sign(namespace string, message []byte) ([]byte, error) {
	return s.SignContext(context.Background(), namespace, message)
}

// SignContext implements [ContextSigner].
func (s *agentSigner) SignContext(ctx context.Context, namespace string, message []byte) ([]byte, error) {
	data := SignedData(namespace, message)
	var sig *ssh.Signature
	answered, err := s.do(ctx, func(a agent.Agent) (err error) {
		sig, err = a.Sign(s.key, data)
		return err
	})
	if err != nil && answered {
		// The agent refused. It does not say why: a key it no longer
		// lists was removed or expired; one it lists needs a
		// confirmation it could not get.
		has, lerr := s.hasKey(ctx)
		switch {
		case lerr != nil:
			err = lerr
		case !has:
			err = &AgentError{Kind: ErrKeyRemoved, Socket: s.sock, Key: s.fp, Err: err}
		default:
			err = &AgentError{Kind: ErrConfirmationRequired, Socket: s.sock, Key: s.fp, Err: err}
		}
	}
	s.record(err)
	if err != nil {
		return nil, err
	}
	if sig == nil || sig.Format != ssh.KeyAlgoED25519 || len(sig.Blob) != ed25519.SignatureSize || len(sig.Rest) != 0 {
		return nil, fmt.Errorf("identity: agent returned a malformed signature: %w", ErrBadSignature)
	}
	if !ed25519.Verify(s.pub, data, sig.Blob) {
		return nil, fmt.Errorf("identity: agent returned an invalid signature: %w", ErrBadSignature)
	}
	return append([]byte(nil), sig.Blob...), nil
}

// Health implements [HealthReporter].
func (s *agentSigner) Health() SignerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SignerStatus{Backend: "agent", Socket: s.sock, State: s.state, Err: s.lastErr,
		LastSuccess: s.lastSuccess, LastError: s.lastError}
}

// CheckHealth implements [HealthReporter].
func (s *agentSigner) CheckHealth(ctx context.Context) SignerStatus {
	has, err := s.hasKey(ctx)
	switch {
	case err != nil:
		s.record(err)
	case !has:
		s.record(&AgentError{Kind: ErrKeyRemoved, Socket: s.sock, Key: s.fp})
	default:
		s.mu.Lock()
		refused := s.state == StateConfirmationRequired
		s.mu.Unlock()
		if !refused {
			s.record(nil)
		}
	}
	return s.Health()
}

// String names the agent key by its fingerprint.
func (s *agentSigner) String() string {
	return "identity.Signer(agent " + s.fp + ")"
}
