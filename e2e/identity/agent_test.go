package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// serveAgent runs Serve with keys on a Unix socket in a temporary directory
// and returns the socket path. The server is stopped, and Serve's result
// checked, in t.Cleanup.
func serveAgent(t testing.TB, keys agent.Agent) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "a.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, keys) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

func newKeyring(t testing.TB, keys ...any) agent.Agent {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	return kr
}

func newEd25519(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestServeAndAgentSigner(t *testing.T) {
	pub, priv := newEd25519(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The ECDSA key is there to be ignored.
	sock := serveAgent(t, newKeyring(t, ec, priv))

	s, closer, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if !s.PublicKey().Equal(pub) {
		t.Fatal("agent signer has the wrong key")
	}
	testSigner(t, s)

	// Through $SSH_AUTH_SOCK and with a named key.
	t.Setenv("SSH_AUTH_SOCK", sock)
	s2, closer2, err := DialAgentKey("", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer closer2.Close()
	testSigner(t, s2)
}

func TestDialAgentWithoutSocket(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, _, err := DialAgent(""); err == nil {
		t.Fatal("DialAgent without SSH_AUTH_SOCK succeeded")
	}
	if _, _, err := DialAgent(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("DialAgent to a missing socket succeeded")
	}
}

func TestNewAgentSignerKeySelection(t *testing.T) {
	pub1, priv1 := newEd25519(t)
	pub2, priv2 := newEd25519(t)
	pub3, _ := newEd25519(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := NewAgentSigner(newKeyring(t), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("empty agent: %v, want ErrNoKey", err)
	}
	if _, err := NewAgentSigner(newKeyring(t, ec), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("ECDSA-only agent: %v, want ErrNoKey", err)
	}
	two := newKeyring(t, priv1, priv2)
	if _, err := NewAgentSigner(two, nil); !errors.Is(err, ErrAmbiguousKey) {
		t.Errorf("two keys, none named: %v, want ErrAmbiguousKey", err)
	}
	if _, err := NewAgentSigner(two, pub3); !errors.Is(err, ErrNoKey) {
		t.Errorf("absent key named: %v, want ErrNoKey", err)
	}
	if _, err := NewAgentSigner(two, pub3[:31]); !errors.Is(err, ErrKeyType) {
		t.Errorf("short key named: %v, want ErrKeyType", err)
	}
	for _, want := range []ed25519.PublicKey{pub1, pub2} {
		s, err := NewAgentSigner(two, want)
		if err != nil {
			t.Fatal(err)
		}
		if !s.PublicKey().Equal(want) {
			t.Fatal("named key not chosen")
		}
		testSigner(t, s)
	}
}

// lyingAgent is an agent that tampers with the signatures it returns.
type lyingAgent struct {
	agent.Agent
	tamper func(*ssh.Signature)
}

func (a lyingAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	sig, err := a.Agent.Sign(key, data)
	if err == nil {
		a.tamper(sig)
	}
	return sig, err
}

func TestAgentSignerRejectsBadSignatures(t *testing.T) {
	_, priv := newEd25519(t)
	_, other := newEd25519(t)
	cases := map[string]func(*ssh.Signature){
		"flipped bit":  func(s *ssh.Signature) { s.Blob[10] ^= 1 },
		"wrong format": func(s *ssh.Signature) { s.Format = ssh.KeyAlgoRSA },
		"short":        func(s *ssh.Signature) { s.Blob = s.Blob[:63] },
		"long":         func(s *ssh.Signature) { s.Blob = append(s.Blob, 0) },
		"zero":         func(s *ssh.Signature) { clear(s.Blob) },
		"sk rest":      func(s *ssh.Signature) { s.Rest = []byte{1, 0, 0, 0, 1} },
		"other data":   func(s *ssh.Signature) { s.Blob = ed25519.Sign(priv, []byte("other")) },
		"other key": func(s *ssh.Signature) {
			s.Blob = ed25519.Sign(other, SignedData(NamespaceBundle, []byte("a device bundle")))
		},
		"fresh sig blob": func(s *ssh.Signature) { *s = ssh.Signature{Format: ssh.KeyAlgoED25519, Blob: make([]byte, 64)} },
	}
	for name, tamper := range cases {
		// Both directly and across a real agent connection.
		direct := lyingAgent{newKeyring(t, priv), tamper}
		conn, err := net.Dial("unix", serveAgent(t, direct))
		if err != nil {
			t.Fatal(err)
		}
		for via, a := range map[string]agent.Agent{"direct": direct, "socket": agent.NewClient(conn)} {
			s, err := NewAgentSigner(a, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Sign(NamespaceBundle, []byte("a device bundle")); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s (%s): Sign = %v, want ErrBadSignature", name, via, err)
			}
		}
		conn.Close()
	}
}

// TestAgentSignerConcurrent signs from many goroutines over one connection;
// run with -race.
func TestAgentSignerConcurrent(t *testing.T) {
	_, priv := newEd25519(t)
	sock := serveAgent(t, newKeyring(t, priv))
	s, closer, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				msg := []byte{byte(g), byte(i)}
				sig, err := s.Sign(NamespaceHandshake, msg)
				if err == nil {
					err = Verify(s.PublicKey(), NamespaceHandshake, msg, sig)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	_, priv := newEd25519(t)
	sock := filepath.Join(t.TempDir(), "a.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, newKeyring(t, priv)) }()

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := agent.NewClient(conn)
	if _, err := client.List(); err != nil {
		t.Fatal(err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	// The open connection was closed and nothing listens any more.
	if _, err := client.List(); err == nil {
		t.Error("connection still served after cancel")
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Error("socket still accepting after cancel")
	}
}

func TestServeReturnsListenerError(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := Serve(context.Background(), l, agent.NewKeyring()); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

func TestAddFileToAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	g, err := Generate(path, []byte("pw"), "")
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	pub, err := AddFileToAgent(kr, path, func() ([]byte, error) { return []byte("pw"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(g.PublicKey()) {
		t.Fatal("AddFileToAgent returned another key")
	}
	s, err := NewAgentSigner(kr, pub)
	if err != nil {
		t.Fatal(err)
	}
	testSigner(t, s)
	if _, err := AddFileToAgent(kr, path, func() ([]byte, error) { return []byte("no"), nil }); !errors.Is(err, ErrIncorrectPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}
