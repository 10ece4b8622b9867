package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e/identity"
)

// keySource is where a keys subcommand takes the identity key from: a key
// file (-file, the default file if nothing is given), or the ssh-agent at
// $SSH_AUTH_SOCK (-agent for its only Ed25519 key, -key to pick one).
type keySource struct {
	file     *string
	useAgent *bool
	key      *string
}

// addKeySourceFlags adds -file, -agent and -key to fs.
func addKeySourceFlags(fs *flag.FlagSet) *keySource {
	return &keySource{
		file:     fs.String("file", "", "key file (default $XDG_CONFIG_HOME/securejingle/identity_ed25519)"),
		useAgent: fs.Bool("agent", false, "use the only Ed25519 key of the ssh-agent at $SSH_AUTH_SOCK"),
		key:      fs.String("key", "", "use the Ed25519 key of the ssh-agent with this fingerprint (SHA256:..., as ssh-add -l prints it) or comment"),
	}
}

// agent reports whether the key is in the agent, and checks the flags.
func (k *keySource) agent() (bool, error) {
	inAgent := *k.useAgent || *k.key != ""
	if inAgent && *k.file != "" {
		return false, errors.New("-file and -agent/-key are mutually exclusive")
	}
	return inAgent, nil
}

// path returns the key file to use.
func (k *keySource) path() (string, error) {
	if *k.file != "" {
		return *k.file, nil
	}
	return defaultIdentityPath()
}

// publicKey returns the public key, without a passphrase for a file.
func (k *keySource) publicKey() (ed25519.PublicKey, error) {
	inAgent, err := k.agent()
	if err != nil {
		return nil, err
	}
	if inAgent {
		s, closer, err := dialAgentKey(*k.key)
		if err != nil {
			return nil, err
		}
		closer.Close()
		return s.PublicKey(), nil
	}
	path, err := k.path()
	if err != nil {
		return nil, err
	}
	// The public key is stored in the clear: no passphrase needed.
	return identity.PublicKeyFromFile(path)
}

// signer returns a Signer for the key and a Closer to release it; a key
// file's passphrase comes from passEnv or the terminal.
func (k *keySource) signer(passEnv string, stderr io.Writer) (identity.Signer, io.Closer, error) {
	inAgent, err := k.agent()
	if err != nil {
		return nil, nil, err
	}
	if inAgent {
		return dialAgentKey(*k.key)
	}
	path, err := k.path()
	if err != nil {
		return nil, nil, err
	}
	s, err := identity.LoadFile(path, keyPassphraseFunc(path, passEnv, stderr))
	if err != nil {
		return nil, nil, err
	}
	return s, io.NopCloser(nil), nil
}

// dialAgentKey connects to the ssh-agent at $SSH_AUTH_SOCK and returns a
// Signer for the Ed25519 key selector names (identity.SelectAgentKey:
// a fingerprint, a comment, or "" for the only one) and the connection.
func dialAgentKey(selector string) (identity.Signer, io.Closer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, errors.New("SSH_AUTH_SOCK is not set: start an agent (eval $(ssh-agent) and ssh-add, or securejingle agent) or use -file")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the agent at %s: %w", sock, err)
	}
	ag := agent.NewClient(conn)
	pub, err := identity.SelectAgentKey(ag, selector)
	if err == nil {
		var s identity.Signer
		if s, err = identity.NewAgentSigner(ag, pub); err == nil {
			return s, conn, nil
		}
	}
	conn.Close()
	if errors.Is(err, identity.ErrAmbiguousKey) {
		return nil, nil, fmt.Errorf("%w; pick one with -key FINGERPRINT or -key COMMENT", err)
	}
	return nil, nil, err
}
