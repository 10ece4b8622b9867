// Package daemontest runs securejingle daemons against an embedded
// loopback XMPP server (internal/localxmpp) for end-to-end tests of the
// daemon, its API and the command line.
//
// [New] starts the server with a certificate of its own, creates the
// accounts alice and bob as mutual contacts, generates their identity
// keys with identity.Generate and writes a daemon configuration for each
// into a temporary directory. Alice's configuration trusts the server by
// ca_file, Bob's by pin_sha256, so both ways are exercised. [NewProsody]
// does the same on a real Prosody (internal/prosodytest).
package daemontest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// Domain is the test server's domain.
const Domain = "example.test"

// HangGuard bounds every wait: it only stops a hung test, it asserts no
// speed.
const HangGuard = 30 * time.Second

// An Env is a running test server with two configured accounts. Its
// methods are not safe for concurrent use.
type Env struct {
	Server     *localxmpp.Server
	Alice, Bob *Account
	// ClientTLS trusts the server's certificate, for plain XMPP clients
	// logging in beside the daemons (the server's own ClientTLSConfig
	// knows only the certificates it generates).
	ClientTLS *tls.Config
}

// An Account is a configured account.
type Account struct {
	Name       string // "alice"
	JID        string // bare JID
	Resource   string
	ConfigPath string
	Socket     string
	KeyFile    string
	// AuditLog is where the daemon's audit log is by default (next to
	// the store).
	AuditLog string
}

// AppendConfig appends text (TOML tables) to the account's configuration
// file, for tests that configure [policy] or [alerts].
func (a *Account) AppendConfig(t testing.TB, text string) {
	t.Helper()
	f, err := os.OpenFile(a.ConfigPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n" + text + "\n"); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// UseAgent rewrites the account's [keys] table to sign through the
// ssh-agent listening on sock, with each call bounded by timeout. The key
// in KeyFile is the one to add to that agent.
func (a *Account) UseAgent(t testing.TB, sock string, timeout time.Duration) {
	t.Helper()
	b, err := os.ReadFile(a.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	const fileKeys = "backend = \"file\"\nfile = \"identity_ed25519\"\n"
	if !bytes.Contains(b, []byte(fileKeys)) {
		t.Fatalf("%s: no file backend to replace", a.ConfigPath)
	}
	agentKeys := fmt.Sprintf("backend = \"agent\"\nagent_socket = %q\nagent_timeout = %q\n", sock, timeout.String())
	b = bytes.Replace(b, []byte(fileKeys), []byte(agentKeys), 1)
	if err := os.WriteFile(a.ConfigPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Logger returns a logger for tests: silent unless SJ_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("SJ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// New starts the server and writes both accounts' keys and configurations.
func New(t testing.TB) *Env {
	t.Helper()
	cert := serverCert(t)
	srv, err := localxmpp.New(Domain, localxmpp.WithLogger(Logger().With("server", Domain)),
		localxmpp.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	e := &Env{Server: srv, ClientTLS: &tls.Config{RootCAs: pool, ServerName: Domain, MinVersion: tls.VersionTLS12}}
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(jid.MustParse("alice@"+Domain), jid.MustParse("bob@"+Domain)); err != nil {
		t.Fatal(err)
	}
	e.writeAccounts(t, srv.Addr().String(), cert.Leaf)
	return e
}

// writeAccounts generates the keys of alice and bob and writes their
// daemon configurations for the server at addr, whose certificate is
// cert: Alice trusts it by ca_file, Bob by pin_sha256.
func (e *Env) writeAccounts(t testing.TB, addr string, cert *x509.Certificate) {
	t.Helper()
	// Socket paths must stay short (sun_path): a directory of its own
	// under the system temporary directory rather than t.TempDir.
	sockDir, err := os.MkdirTemp("", "sjd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	trustLine := map[string]string{
		"alice": fmt.Sprintf("ca_file = %q", caFile),
		"bob":   fmt.Sprintf("pin_sha256 = %q", hex.EncodeToString(spki[:])),
	}
	resources := map[string]string{"alice": "laptop", "bob": "phone"}
	for _, u := range []string{"alice", "bob"} {
		udir := filepath.Join(dir, u)
		if err := os.MkdirAll(udir, 0o700); err != nil {
			t.Fatal(err)
		}
		a := &Account{Name: u, JID: u + "@" + Domain, Resource: resources[u],
			ConfigPath: filepath.Join(udir, "daemon.toml"),
			Socket:     filepath.Join(sockDir, u, "api.sock"),
			KeyFile:    filepath.Join(udir, "identity_ed25519"),
			AuditLog:   filepath.Join(udir, "audit.jsonl")}
		if _, err := identity.Generate(a.KeyFile, nil, u); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`# written by daemontest
[account]
jid = "%s/%s"
password = "%s-password"
server = %q
%s
allow_plain = true

[keys]
backend = "file"
file = "identity_ed25519"

[store]
path = "state.db"

[access]
mode = "roster"

[api]
socket = %q

[web]
listen = "127.0.0.1:0"

[log]
level = "debug"
format = "json"
`, a.JID, a.Resource, u, addr, trustLine[u], a.Socket)
		if err := os.WriteFile(a.ConfigPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if u == "alice" {
			e.Alice = a
		} else {
			e.Bob = a
		}
	}
}

// serverCert makes a self-signed server certificate for Domain and
// 127.0.0.1.
func serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: Domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{Domain},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// A Daemon is a daemon running in the test process.
type Daemon struct {
	Account *Account
	Client  *api.Client
	stop    context.CancelFunc
	done    chan error
}

// Start runs daemon.Run for a in the background, waits until its API
// answers, and stops it at the end of the test (failing the test if Run
// returned an error).
func Start(t testing.TB, a *Account) *Daemon {
	t.Helper()
	return StartWith(t, a)
}

// StartWith is [Start] with further options for daemon.Run (after the
// test defaults: short reconnect backoff and heartbeat).
func StartWith(t testing.TB, a *Account, opts ...daemon.Option) *Daemon {
	t.Helper()
	cfg, err := daemon.Load(a.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Account: a, stop: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	all := append([]daemon.Option{
		daemon.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		daemon.WithHeartbeat(50 * time.Millisecond),
		daemon.WithReady(func(string) { close(ready) }),
	}, opts...)
	go func() { d.done <- daemon.Run(ctx, cfg, Logger().With("daemon", a.Name), all...) }()
	select {
	case <-ready:
	case err := <-d.done:
		cancel()
		t.Fatalf("%s: daemon exited: %v", a.Name, err)
	case <-time.After(HangGuard):
		cancel()
		t.Fatalf("%s: daemon API never came up", a.Name)
	}
	if d.Client, err = api.Dial(a.Socket); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(t) })
	return d
}

// Stop stops the daemon and waits for Run to return; it may be called
// more than once.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.done == nil {
		return
	}
	d.Client.Close()
	d.stop()
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("%s: daemon.Run: %v", d.Account.Name, err)
		}
	case <-time.After(HangGuard):
		t.Errorf("%s: daemon did not stop", d.Account.Name)
	}
	d.done = nil
}

// Poll calls cond until it returns true, failing the test after
// [HangGuard].
func Poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(HangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitPeerDevice waits until c's daemon holds a bundle for a device of
// peer with an available resource, and returns the device id.
func WaitPeerDevice(t testing.TB, c *api.Client, peer string) uint32 {
	t.Helper()
	var id uint32
	Poll(t, "a device of "+peer, func() bool {
		ps, err := c.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.JID != peer {
				continue
			}
			for _, d := range p.Devices {
				if d.Bundle {
					id = d.ID
					return true
				}
			}
		}
		return false
	})
	return id
}

// WaitConnected waits until c's daemon is logged in and returns its status.
func WaitConnected(t testing.TB, c *api.Client) api.Status {
	t.Helper()
	var st api.Status
	Poll(t, "connected", func() bool {
		var err error
		if st, err = c.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st.Connected
	})
	return st
}

// OtherDevice configures another device of a's account: the same account
// key file (as if the user copied it into that device's agent), its own
// resource, store and API socket. It is not started.
func (e *Env) OtherDevice(t testing.TB, a *Account, resource string) *Account {
	t.Helper()
	dir := filepath.Join(filepath.Dir(a.ConfigPath), "..", a.Name+"-"+resource)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(a.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	o := &Account{Name: a.Name + "-" + resource, JID: a.JID, Resource: resource,
		ConfigPath: filepath.Join(dir, "daemon.toml"),
		Socket:     filepath.Join(filepath.Dir(filepath.Dir(a.Socket)), a.Name+"-"+resource, "api.sock"),
		KeyFile:    filepath.Join(dir, "identity_ed25519"),
		AuditLog:   filepath.Join(dir, "audit.jsonl")}
	if err := os.WriteFile(o.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(a.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(a.JID+"/"+a.Resource), []byte(a.JID+"/"+resource), 1)
	cfg = bytes.Replace(cfg, []byte(fmt.Sprintf("socket = %q", a.Socket)), []byte(fmt.Sprintf("socket = %q", o.Socket)), 1)
	if err := os.WriteFile(o.ConfigPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}
