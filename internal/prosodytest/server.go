package prosodytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/integration"
)

// Names of the programs and of the files in the server's directory.
const (
	prosodyProg    = "prosody"
	prosodyctlProg = "prosodyctl"
	cfgName        = "prosody.cfg.lua"
	logName        = "prosody.log"
	consoleName    = "prosody.console.log"
	pidName        = "prosody.pid"
)

// DefaultDomain is the VirtualHost used unless [WithDomain] is given. ".test"
// is reserved (RFC 2606), so it can never resolve to a real host.
const DefaultDomain = "example.test"

// readyProbeTimeout bounds one readiness probe (connect, STARTTLS, TLS
// handshake, stream restart); the other bounds of starting and stopping
// the server are integration's.
const readyProbeTimeout = 2 * time.Second

// Option configures [Start].
type Option func(*options) error

type options struct {
	domain    string
	modules   []string
	hostile   bool
	turn      *turnConfig // WithTURN
	proxy65   bool        // WithProxy65
	firstPort int         // tests only: c2s port for the first try, 0 for random
}

// WithDomain sets the VirtualHost domain (default [DefaultDomain]). The name
// needs no DNS entry: clients dial [Server.Addr]. It must be a valid JID
// domainpart without a localpart or resource.
func WithDomain(domain string) Option {
	return func(o *options) error {
		j, err := jid.New("", domain, "")
		if err != nil {
			return fmt.Errorf("prosodytest: bad domain %q: %w", domain, err)
		}
		if j.Domainpart() != domain {
			return fmt.Errorf("prosodytest: domain %q is not in canonical form %q", domain, j.Domainpart())
		}
		o.domain = domain
		return nil
	}
}

// WithModules loads extra Prosody modules (names without the "mod_" prefix,
// for example "mam" or "smacks") on top of the defaults listed in the
// package documentation.
func WithModules(names ...string) Option {
	return func(o *options) error {
		for _, n := range names {
			if n == "" {
				return errors.New("prosodytest: empty module name")
			}
			for _, c := range []byte(n) {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
					return fmt.Errorf("prosodytest: bad module name %q", n)
				}
			}
			if !slices.Contains(o.modules, n) {
				o.modules = append(o.modules, n)
			}
		}
		return nil
	}
}

// Server is a running Prosody instance owned by one test. It is created by
// [Start] and stopped by the test's cleanup; there is no useful zero value.
// Its methods are safe for concurrent use.
type Server struct {
	dir     string
	cfgPath string
	logPath string
	domain  string
	addr    string
	cert    *x509.Certificate
	ctl     string

	mu        sync.Mutex
	passwords map[string]string // localpart -> password, for Subscribe

	hostile *Hostile // nil unless started WithHostile

	proxy65JID, proxy65Addr string // WithProxy65
}

// Start runs a Prosody server for the duration of t and returns once its c2s
// port completes STARTTLS with the generated certificate and offers
// SCRAM-SHA-1 and PLAIN. It calls t.Skip (or t.Fatal when
// SECUREJINGLE_INTEGRATION=1) when Prosody is not installed, and t.Fatal on
// any other problem. The server is stopped (SIGTERM, then SIGKILL after a
// grace period) in t.Cleanup; if t failed, the end of its log is printed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	prog, ctl := lookPrograms(t)
	o := options{domain: DefaultDomain, modules: slices.Clone(defaultModules)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	s := &Server{
		dir:     dir,
		cfgPath: filepath.Join(dir, cfgName),
		logPath: filepath.Join(dir, logName),
		domain:  o.domain,
		ctl:     ctl,

		passwords: make(map[string]string),
	}
	cert, err := writeCert(o.domain, filepath.Join(dir, o.domain+".crt"), filepath.Join(dir, o.domain+".key"))
	if err != nil {
		t.Fatal(err)
	}
	s.cert = cert

	var pluginDir string
	if o.hostile {
		if pluginDir, err = writeHostileModule(dir); err != nil {
			t.Fatal(err)
		}
	}
	var cfg config
	integration.StartServer(t, func(try int) (*integration.ServerCmd, error) {
		port := o.firstPort
		if try > 1 || port == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cfg = config{
			Dir:      dir,
			PidFile:  filepath.Join(dir, pidName),
			LogFile:  s.logPath,
			CertFile: filepath.Join(dir, o.domain+".crt"),
			KeyFile:  filepath.Join(dir, o.domain+".key"),
			Domain:   o.domain,
			C2SPort:  port,
			Modules:  o.modules,
		}
		if o.proxy65 {
			pport, err := freePort()
			if err != nil {
				return nil, err
			}
			s.proxy65JID = proxy65Sub + "." + o.domain
			s.proxy65Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(pport))
			cfg.Proxy65JID, cfg.Proxy65Port = s.proxy65JID, pport
		}
		if o.turn != nil {
			cfg.TURN = o.turn
			cfg.Modules = append(slices.Clone(cfg.Modules), turnModule)
		}
		if o.hostile {
			cfg.PluginDir = pluginDir
			cfg.Modules = append(slices.Clone(cfg.Modules), hostileModule)
			cfg.HostileControl = HostileControl
			cfg.HostileLog = filepath.Join(dir, hostileLogName)
		}
		var buf bytes.Buffer
		if err := cfg.write(&buf); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.cfgPath, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		return &integration.ServerCmd{
			Name: prosodyProg, Path: prog, Args: []string{"-F", "--config", s.cfgPath},
			Env: []string{"PROSODY_CONFIG=" + s.cfgPath},
			Dir: dir, Console: consoleName, Log: s.logPath, Addr: s.addr,
			Ready: s.ready,
		}, nil
	})
	if o.hostile {
		s.startHostile(t, cfg.HostileLog)
	}
	return s
}

// lookPrograms finds prosody and prosodyctl or skips/fails the test.
func lookPrograms(t testing.TB) (prog, ctl string) {
	t.Helper()
	return integration.Tool(t, prosodyProg, "prosody"), integration.Tool(t, prosodyctlProg, "prosody")
}

// freePort asks the kernel for a free loopback port. Prosody cannot inherit
// a listener, so the port is released before Prosody binds it; Start retries
// with a new port if another process takes it in between.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("prosodytest: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("prosodytest: %w", err)
	}
	return port, nil
}

// ready checks once that the c2s port completes a STARTTLS probe and
// offers SCRAM-SHA-1 and PLAIN (see [integration.ServerCmd]).
func (s *Server) ready(ctx context.Context) error {
	if s.logContains("Failed to open server port") {
		return integration.ErrPortInUse
	}
	// A short per-attempt bound: whatever holds a stolen port may accept
	// the connection and never answer.
	ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
	defer cancel()
	pr, f, err := dialProbe(ctx, s.addr, s.domain, s.TLSConfig())
	if err != nil {
		return fmt.Errorf("%w: %w", integration.ErrNotReady, err)
	}
	pr.close()
	if s.proxy65Addr != "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", s.proxy65Addr)
		if err != nil {
			return fmt.Errorf("%w: proxy65: %w", integration.ErrNotReady, err)
		}
		c.Close()
	}
	for _, m := range []string{"SCRAM-SHA-1", "PLAIN"} {
		if !slices.Contains(f.Mechanisms, m) {
			return fmt.Errorf("prosodytest: server does not offer SASL %s (offers %v)", m, f.Mechanisms)
		}
	}
	return nil
}

func (s *Server) logContains(sub string) bool {
	b, err := os.ReadFile(s.logPath)
	return err == nil && bytes.Contains(b, []byte(sub))
}

// AddUser creates (or overwrites) the account local@Domain() with the given
// password by running `prosodyctl register`. It works while the server runs.
func (s *Server) AddUser(t testing.TB, local, password string) {
	t.Helper()
	j, err := jid.New(local, s.domain, "")
	if err != nil {
		t.Fatalf("prosodytest: bad localpart %q: %v", local, err)
	}
	if j.Localpart() != local {
		t.Fatalf("prosodytest: localpart %q is not in canonical form %q", local, j.Localpart())
	}
	if password == "" {
		t.Fatal("prosodytest: empty password")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.ctl, "--config", s.cfgPath, "register", local, s.domain, password)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "PROSODY_CONFIG="+s.cfgPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("prosodytest: prosodyctl register %s: %v\n%s", j, err, out)
	}
	s.mu.Lock()
	s.passwords[local] = password
	s.mu.Unlock()
}

// CheckPassword logs in as local@Domain() with SASL PLAIN over a fresh
// STARTTLS connection, independently of mellium, and returns nil on success,
// [ErrNotAuthorized] if the server rejected the credentials, or another error
// for transport problems. ctx bounds the whole exchange.
func (s *Server) CheckPassword(ctx context.Context, local, password string) error {
	p, _, err := dialProbe(ctx, s.addr, s.domain, s.TLSConfig())
	if err != nil {
		return err
	}
	defer p.close()
	return p.authPlain(local, password)
}

// Addr returns the c2s address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// Domain returns the VirtualHost domain (the domainpart of every account).
func (s *Server) Domain() string { return s.domain }

// CertPool returns a new pool holding only the server's self-signed
// certificate.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.cert)
	return pool
}

// Certificate returns the server's self-signed certificate.
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// TLSConfig returns a new client TLS configuration that verifies the server
// against [Server.CertPool] for [Server.Domain].
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		ServerName: s.domain,
		RootCAs:    s.CertPool(),
		MinVersion: tls.VersionTLS12,
	}
}

// LogPath returns the path of the server's debug log.
func (s *Server) LogPath() string { return s.logPath }

// ConfigPath returns the path of the generated prosody.cfg.lua.
func (s *Server) ConfigPath() string { return s.cfgPath }
