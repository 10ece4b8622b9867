package daemon

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// failingSigner is the account key of an agent that went away after the
// daemon connected.
type failingSigner struct{ identity.Signer }

var errAgentGone = errors.New("agent: client error: EOF")

func (failingSigner) Sign(string, []byte) ([]byte, error) { return nil, errAgentGone }

func putGet(t *testing.T, st store.Store, v string) string {
	t.Helper()
	if v != "" {
		if err := st.Update(func(tx store.Tx) error { return tx.Put("e2e/sessions", "bob@example.net/1", []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	if err := st.View(func(tx store.Tx) (err error) { got, err = tx.Get("e2e/sessions", "bob@example.net/1"); return err }); err != nil {
		t.Fatal(err)
	}
	return string(got)
}

func TestOpenStoreSealedUnderAccountKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	alice, _ := identity.GenerateMemorySigner()
	other, _ := identity.GenerateMemorySigner()
	keys := KeysConfig{Backend: "file"}
	st, err := openStore(path, "alice@example.org", keys, alice)
	if err != nil {
		t.Fatal(err)
	}
	putGet(t, st, "ratchet state")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Another account key, or the same key for another account, does not
	// open it.
	if _, err := openStore(path, "alice@example.org", keys, other); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("other account key: %v, want ErrWrongKey", err)
	}
	if _, err := openStore(path, "mallory@example.org", keys, alice); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("other account JID: %v, want ErrWrongKey", err)
	}
	// A signer that cannot sign leaves it locked, with the agent named.
	_, err = openStore(path, "alice@example.org", KeysConfig{Backend: "agent", AgentSocket: "/run/x/agent.sock"}, failingSigner{alice})
	if !errors.Is(err, store.ErrKeyUnavailable) || !errors.Is(err, errAgentGone) {
		t.Fatalf("signer gone: %v, want ErrKeyUnavailable wrapping the signer's error", err)
	}
	// Each failed open released the file: the right key opens it.
	st, err = openStore(path, "alice@example.org", keys, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := putGet(t, st, ""); got != "ratchet state" {
		t.Fatalf("after reopen: %q", got)
	}
}

func TestOpenStoreRefusesUnsealedStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	old, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	putGet(t, old, "session in clear")
	old.Close()
	alice, _ := identity.GenerateMemorySigner()
	if _, err := openStore(path, "alice@example.org", KeysConfig{}, alice); !errors.Is(err, store.ErrNotSealed) {
		t.Fatalf("unsealed store: %v, want ErrNotSealed", err)
	}
}

func TestAgentUnreachable(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	agentKeys := KeysConfig{Backend: "agent"}
	_, _, err := openSigner(agentKeys)
	if !agentUnreachable(agentKeys, err) {
		t.Fatalf("SSH_AUTH_SOCK unset: %v not taken for an unreachable agent", err)
	}
	missing := KeysConfig{Backend: "agent", AgentSocket: filepath.Join(t.TempDir(), "none.sock")}
	_, _, err = openSigner(missing)
	if !agentUnreachable(missing, err) {
		t.Fatalf("no agent on the socket: %v not taken for an unreachable agent", err)
	}
	if agentUnreachable(missing, nil) || agentUnreachable(KeysConfig{Backend: "file"}, err) {
		t.Fatal("agentUnreachable without an agent error")
	}
	if lerr := lockedError("state.db", missing, err); !errors.Is(lerr, store.ErrKeyUnavailable) || !errors.Is(lerr, err) {
		t.Fatalf("lockedError: %v", lerr)
	}
}
