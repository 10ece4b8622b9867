package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// openStore opens the bbolt store at path, creating it and its directory
// if needed, sealed under the account key: every value is encrypted with a
// key derived from signer's signature of the store's challenge for the
// bare JID account (identity.StoreKey), which never touches the disk.
//
// An unsealed store (from a build without encryption at rest) is refused
// with an error wrapping [store.ErrNotSealed], another account key with
// [store.ErrWrongKey], and a signer that cannot sign (the agent is gone)
// with the locked message of [lockedError].
func openStore(path, account string, k KeysConfig, signer identity.Signer) (store.Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("daemon: store directory: %w", err)
	}
	inner, err := store.OpenBolt(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: opening store: %w", err)
	}
	st, err := store.Sealed(inner, identity.StoreKeyFunc(signer, account))
	if err != nil {
		inner.Close()
		if errors.Is(err, store.ErrKeyUnavailable) && k.Backend == "agent" {
			return nil, lockedError(path, k, err)
		}
		return nil, fmt.Errorf("daemon: opening store %s: %w", path, err)
	}
	return st, nil
}

// agentUnreachable reports whether err from openSigner means that the
// agent could not be reached or does not hold the key: the store cannot be
// unlocked until the agent is started and the key added.
func agentUnreachable(k KeysConfig, err error) bool {
	if err == nil || k.Backend != "agent" {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, identity.ErrNoKey) ||
		(k.AgentSocket == "" && os.Getenv("SSH_AUTH_SOCK") == "")
}

// lockedError explains that the store at path stays locked because the
// account key's agent cannot sign; it wraps [store.ErrKeyUnavailable] and
// the cause.
func lockedError(path string, k KeysConfig, cause error) error {
	sock := k.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if !errors.Is(cause, store.ErrKeyUnavailable) {
		cause = fmt.Errorf("%w: %w", store.ErrKeyUnavailable, cause)
	}
	return fmt.Errorf("daemon: store %s is locked: the account key's agent is not reachable (SSH_AUTH_SOCK=%s): start the agent and add the key (ssh-add), or set keys.agent_socket: %w", path, sock, cause)
}
