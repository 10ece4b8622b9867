package identity

import (
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

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

// agentSigner is a [Signer] whose key lives in an ssh-agent. It is safe for
// concurrent use: mu serialises calls into the agent, because an arbitrary
// agent.Agent, such as a client over one connection, need not be.
type agentSigner struct {
	mu  sync.Mutex
	a   agent.Agent
	key ssh.PublicKey
	pub ed25519.PublicKey
}

// NewAgentSigner returns a [Signer] that signs with the Ed25519 key want
// held by a. If want is nil, a must hold exactly one Ed25519 key: none gives
// an error wrapping [ErrNoKey], several one wrapping [ErrAmbiguousKey]. Keys
// of other types and certificates are ignored.
//
// Each Sign call asks the agent to sign [SignedData] and checks the answer:
// a signature of the wrong format or one that does not verify under the
// public key gives an error wrapping [ErrBadSignature], so a faulty or
// hostile agent cannot make the caller publish a bad signature.
//
// The Signer is safe for concurrent use; it serialises its calls to a.
func NewAgentSigner(a agent.Agent, want ed25519.PublicKey) (Signer, error) {
	if want != nil && len(want) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: wanted key has length %d", ErrKeyType, len(want))
	}
	keys, err := a.List()
	if err != nil {
		return nil, fmt.Errorf("identity: listing agent keys: %w", err)
	}
	var found []*agentSigner
	for _, k := range keys {
		if k.Format != ssh.KeyAlgoED25519 {
			continue
		}
		pk, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue
		}
		pub, err := ed25519PublicKey(pk, "agent key")
		if err != nil {
			continue
		}
		if want != nil && subtle.ConstantTimeCompare(pub, want) != 1 {
			continue
		}
		found = append(found, &agentSigner{a: a, key: pk, pub: pub})
	}
	switch {
	case len(found) == 0 && want != nil:
		return nil, fmt.Errorf("%w: %s not found", ErrNoKey, Fingerprint(want))
	case len(found) == 0:
		return nil, ErrNoKey
	case len(found) > 1 && want == nil:
		return nil, fmt.Errorf("%w (%d found)", ErrAmbiguousKey, len(found))
	}
	return found[0], nil
}

// DialAgent connects to the ssh-agent listening on the Unix socket sock, or
// on $SSH_AUTH_SOCK if sock is "", and returns a [Signer] for its only
// Ed25519 key, as [NewAgentSigner] with a nil key would. The caller must
// close the returned Closer when done with the Signer.
func DialAgent(sock string) (Signer, io.Closer, error) {
	return DialAgentKey(sock, nil)
}

// DialAgentKey is like [DialAgent] but picks the key want, as
// [NewAgentSigner] does, for agents holding several Ed25519 keys.
func DialAgentKey(sock string, want ed25519.PublicKey) (Signer, io.Closer, error) {
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, nil, errors.New("identity: SSH_AUTH_SOCK is not set")
		}
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: connecting to agent: %w", err)
	}
	s, err := NewAgentSigner(agent.NewClient(conn), want)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return s, conn, nil
}

// PublicKey implements [Signer]. The caller may modify the returned slice.
func (s *agentSigner) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.pub...)
}

// Sign implements [Signer].
func (s *agentSigner) Sign(namespace string, message []byte) ([]byte, error) {
	data := SignedData(namespace, message)
	s.mu.Lock()
	sig, err := s.a.Sign(s.key, data)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("identity: agent signing: %w", err)
	}
	if sig == nil || sig.Format != ssh.KeyAlgoED25519 || len(sig.Blob) != ed25519.SignatureSize || len(sig.Rest) != 0 {
		return nil, fmt.Errorf("identity: agent returned a malformed signature: %w", ErrBadSignature)
	}
	if !ed25519.Verify(s.pub, data, sig.Blob) {
		return nil, fmt.Errorf("identity: agent returned an invalid signature: %w", ErrBadSignature)
	}
	return append([]byte(nil), sig.Blob...), nil
}

// String names the agent key by its fingerprint.
func (s *agentSigner) String() string {
	return "identity.Signer(agent " + Fingerprint(s.pub) + ")"
}
