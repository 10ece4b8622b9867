package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/securejingle/securejingle/e2e/identity"
)

func TestFileSignerPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	want, err := identity.Generate(path, []byte("correct horse"), "test")
	if err != nil {
		t.Fatal(err)
	}
	k := KeysConfig{Backend: "file", File: path, PassphraseEnv: "SJ_TEST_PASSPHRASE"}
	os.Unsetenv("SJ_TEST_PASSPHRASE")
	if _, _, err := openSigner(k); err == nil {
		t.Fatal("opened an encrypted key without its passphrase")
	}
	t.Setenv("SJ_TEST_PASSPHRASE", "wrong")
	if _, _, err := openSigner(k); err == nil {
		t.Fatal("opened with a wrong passphrase")
	}
	t.Setenv("SJ_TEST_PASSPHRASE", "correct horse")
	s, c, err := openSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !bytes.Equal(s.PublicKey(), want.PublicKey()) {
		t.Fatal("other key loaded")
	}
}

func TestAgentSignerByFingerprint(t *testing.T) {
	keyring := agent.NewKeyring()
	var pubs []ed25519.PublicKey
	for i := 0; i < 2; i++ {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
	}
	dir, err := os.MkdirTemp("", "sjag")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- identity.Serve(ctx, l, keyring) }()
	defer func() { cancel(); <-done }()

	// Two keys: without agent_key the choice is ambiguous.
	if _, _, err := openSigner(KeysConfig{Backend: "agent", AgentSocket: sock}); err == nil {
		t.Fatal("ambiguous agent key accepted")
	}
	fp := identity.Fingerprint(pubs[1])
	s, c, err := openSigner(KeysConfig{Backend: "agent", AgentSocket: sock, AgentKey: fp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !bytes.Equal(s.PublicKey(), pubs[1]) {
		t.Fatal("agent_key picked another key")
	}
	sig, err := s.Sign(identity.NamespaceBundle, []byte("m"))
	if err != nil || identity.Verify(pubs[1], identity.NamespaceBundle, []byte("m"), sig) != nil {
		t.Fatalf("agent signature: %v", err)
	}
	// A fingerprint the agent does not hold.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, _, err := openSigner(KeysConfig{Backend: "agent", AgentSocket: sock, AgentKey: identity.Fingerprint(other)}); err == nil {
		t.Fatal("unknown agent key accepted")
	}
	// parseFingerprint reads what identity.Fingerprint writes.
	b, err := parseFingerprint(fp)
	k, _ := ssh.NewPublicKey(pubs[1])
	h := sha256.Sum256(k.Marshal())
	if err != nil || !bytes.Equal(b, h[:]) {
		t.Fatalf("fingerprint round trip: %v", err)
	}
	if _, err := parseFingerprint("SHA256:" + base64.RawStdEncoding.EncodeToString(h[:31])); err == nil {
		t.Fatal("short fingerprint accepted")
	}
}
