package identity

import (
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// maxListedKeys bounds how many agent keys an error message lists.
const maxListedKeys = 16

// fingerprintPrefix starts an OpenSSH SHA256 fingerprint (see [Fingerprint]).
const fingerprintPrefix = "SHA256:"

// An AgentKey is an Ed25519 key held by an ssh-agent, with the comment
// the agent lists it with.
type AgentKey struct {
	Key     ed25519.PublicKey
	Comment string
}

// AgentKeys returns the Ed25519 keys a holds, in the agent's order. Keys
// of other types and certificates are left out, as [NewAgentSigner] does.
func AgentKeys(a agent.Agent) ([]AgentKey, error) {
	keys, err := a.List()
	if err != nil {
		return nil, fmt.Errorf("identity: listing agent keys: %w", err)
	}
	var out []AgentKey
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
		out = append(out, AgentKey{Key: pub, Comment: k.Comment})
	}
	return out, nil
}

// SelectAgentKey returns the Ed25519 key of a that selector names: an
// OpenSSH fingerprint ("SHA256:…", as `ssh-add -l` and [Fingerprint]
// print it), or else the key's comment, compared exactly. An empty
// selector names the agent's only Ed25519 key. No match gives an error
// wrapping [ErrNoKey]; several keys (no selector, or a comment several
// keys share) one wrapping [ErrAmbiguousKey]. Both errors list the
// agent's Ed25519 keys, fingerprint and quoted comment, to choose from.
func SelectAgentKey(a agent.Agent, selector string) (ed25519.PublicKey, error) {
	keys, err := AgentKeys(a)
	if err != nil {
		return nil, err
	}
	var found []AgentKey
	byFingerprint := strings.HasPrefix(selector, fingerprintPrefix)
	for _, k := range keys {
		switch {
		case selector == "":
		case byFingerprint:
			if subtle.ConstantTimeCompare([]byte(Fingerprint(k.Key)), []byte(selector)) != 1 {
				continue
			}
		case k.Comment != selector:
			continue
		}
		found = append(found, k)
	}
	switch {
	case len(found) == 1:
		return append(ed25519.PublicKey(nil), found[0].Key...), nil
	case len(found) == 0 && selector == "":
		return nil, fmt.Errorf("%w: the agent holds no Ed25519 key (ssh-add adds one)", ErrNoKey)
	case len(found) == 0 && byFingerprint:
		return nil, fmt.Errorf("%w: no Ed25519 key with fingerprint %s; %s", ErrNoKey, selector, listKeys(keys))
	case len(found) == 0:
		return nil, fmt.Errorf("%w: no Ed25519 key with comment %q; %s", ErrNoKey, selector, listKeys(keys))
	}
	return nil, fmt.Errorf("%w; %s", ErrAmbiguousKey, listKeys(found))
}

// listKeys describes keys for an error message.
func listKeys(keys []AgentKey) string {
	if len(keys) == 0 {
		return "the agent holds no Ed25519 key"
	}
	var b strings.Builder
	b.WriteString("the agent holds " + strconv.Itoa(len(keys)) + ":")
	for i, k := range keys {
		if i == maxListedKeys {
			b.WriteString(" …")
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %q", Fingerprint(k.Key), k.Comment)
	}
	return b.String()
}
