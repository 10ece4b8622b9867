package daemon

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e/identity"
)

// openSigner returns the identity key backend the configuration names and
// a Closer for it (the agent connection; a no-op for key files).
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
		if k.AgentKey == "" {
			return identity.DialAgent(k.AgentSocket)
		}
		want, err := parseFingerprint(k.AgentKey)
		if err != nil {
			return nil, nil, err
		}
		sock := k.AgentSocket
		if sock == "" {
			if sock = os.Getenv("SSH_AUTH_SOCK"); sock == "" {
				return nil, nil, errors.New("daemon: SSH_AUTH_SOCK is not set and keys.agent_socket is empty")
			}
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, fmt.Errorf("daemon: connecting to agent: %w", err)
		}
		ag := agent.NewClient(conn)
		pub, err := agentKeyByFingerprint(ag, want)
		if err == nil {
			var s identity.Signer
			if s, err = identity.NewAgentSigner(ag, pub); err == nil {
				return s, conn, nil
			}
		}
		conn.Close()
		return nil, nil, err
	}
	return nil, nil, fmt.Errorf("%w: keys.backend %q", ErrConfig, k.Backend)
}

// agentKeyByFingerprint finds the Ed25519 key of the agent whose SHA-256
// fingerprint is want.
func agentKeyByFingerprint(ag agent.Agent, want []byte) (ed25519.PublicKey, error) {
	keys, err := ag.List()
	if err != nil {
		return nil, fmt.Errorf("daemon: listing agent keys: %w", err)
	}
	for _, k := range keys {
		if k.Format != ssh.KeyAlgoED25519 {
			continue
		}
		h := sha256.Sum256(k.Blob)
		if subtle.ConstantTimeCompare(h[:], want) != 1 {
			continue
		}
		pk, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			return nil, fmt.Errorf("daemon: agent key: %w", err)
		}
		cpk, ok := pk.(ssh.CryptoPublicKey)
		if !ok {
			continue
		}
		if pub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey); ok {
			return pub, nil
		}
	}
	return nil, errors.New("daemon: the agent holds no Ed25519 key with fingerprint keys.agent_key")
}
