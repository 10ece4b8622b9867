package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/gateway"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/c2sfront"
)

// DefaultFrontListen is the default address of the gateway-mode front
// (the XMPP client port plus one, on loopback).
const DefaultFrontListen = "127.0.0.1:5223"

// DefaultFrontCredentialName is the credential file's name next to the
// store when [front] credential is not set.
const DefaultFrontCredentialName = "front.credential"

// maxCredentialFile bounds the credential file.
const maxCredentialFile = 4096

// FrontConfig is the [front] table: gateway mode (docs/protocol.md §22),
// a local XMPP listener where the user's own clients log in instead of
// the real server.
type FrontConfig struct {
	// Enabled serves the front; default false.
	Enabled bool `toml:"enabled"`
	// Listen is an IP address and port (default DefaultFrontListen, or
	// none when only Socket is set); port 0 picks a free one. An address
	// that is not loopback needs AllowRemote.
	Listen string `toml:"listen"`
	// Socket is an optional Unix socket path to listen on as well; its
	// file permissions are the access control (mode 0600).
	Socket string `toml:"socket"`
	// AllowRemote permits a listen address other than loopback, and
	// peers from beyond loopback: anyone who reaches the port can then
	// try the local password.
	AllowRemote bool `toml:"allow_remote"`
	// Credential is the file holding the local login's SCRAM-SHA-256
	// credential (`securejingle front passwd` writes it); default
	// DefaultFrontCredentialName next to the store.
	Credential string `toml:"credential"`
	// MaxClients bounds simultaneous local connections (default
	// c2sfront.DefaultMaxConns).
	MaxClients int `toml:"max_clients"`
}

// listen returns the TCP listen address, "" for none.
func (f FrontConfig) listen() string {
	if f.Listen == "" && f.Socket == "" {
		return DefaultFrontListen
	}
	return f.Listen
}

// CredentialPath returns the credential file of the front.
func (c *Config) CredentialPath() string {
	if c.Front.Credential != "" {
		return c.Front.Credential
	}
	return filepath.Join(filepath.Dir(c.Store.Path), DefaultFrontCredentialName)
}

func (c *Config) resolveFrontPaths(dir string) {
	for _, p := range []*string{&c.Front.Credential, &c.Front.Socket} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// validate checks the [front] table.
func (f FrontConfig) validate() []error {
	var errs []error
	if l := f.listen(); l != "" {
		ap, err := netip.ParseAddrPort(l)
		switch {
		case err != nil:
			errs = append(errs, &FieldError{Key: "front.listen", Msg: fmt.Sprintf("%q: want an IP address and port, such as %q", f.Listen, DefaultFrontListen)})
		case !ap.Addr().IsLoopback() && !f.AllowRemote:
			errs = append(errs, &FieldError{Key: "front.listen", Msg: fmt.Sprintf("%q is not a loopback address: anyone who reaches it can try the local password; set allow_remote = true to listen there anyway", f.Listen)})
		}
	}
	if len(f.Socket) >= maxSocketPath {
		errs = append(errs, &FieldError{Key: "front.socket", Msg: fmt.Sprintf("path longer than %d bytes", maxSocketPath-1)})
	}
	if f.MaxClients < 0 || f.MaxClients > 1024 {
		errs = append(errs, &FieldError{Key: "front.max_clients", Msg: "want 0 (default) to 1024"})
	}
	return errs
}

// ReadCredential reads the front's stored credential.
func ReadCredential(path string) (c2sfront.Credential, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return c2sfront.Credential{}, fmt.Errorf("%w: [front] is enabled but %s does not exist: set the local password with `securejingle front passwd`", ErrConfig, path)
	}
	if err != nil {
		return c2sfront.Credential{}, fmt.Errorf("daemon: front credential: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFile))
	if err != nil {
		return c2sfront.Credential{}, fmt.Errorf("daemon: front credential: %w", err)
	}
	cred, err := c2sfront.ParseCredential(string(b))
	if err != nil {
		return c2sfront.Credential{}, fmt.Errorf("%w: %s: %v: set the local password again with `securejingle front passwd`", ErrConfig, path, err)
	}
	return cred, nil
}

// WriteCredential stores cred at path (mode 0600, replaced atomically).
func WriteCredential(path string, cred c2sfront.Credential) error {
	b, err := cred.MarshalText()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// frontServer is a running front: its listener and what the log and the
// tests see of it.
type frontServer struct {
	srv   *c2sfront.Server
	front *gateway.Front
	ls    []net.Listener
	addrs []string
}

// startFront listens on the [front] addresses and serves gw's composer
// there. It logs the certificate fingerprint (to pin in the clients) and
// the addresses.
func startFront(cfg *Config, account jid.JID, gw *gateway.Gateway, log *slog.Logger) (*frontServer, error) {
	cred, err := ReadCredential(cfg.CredentialPath())
	if err != nil {
		return nil, err
	}
	cert, err := frontCertificate(cfg.FrontCertPath(), account.Domainpart(), time.Now(), log)
	if err != nil {
		return nil, err
	}
	srv, err := c2sfront.New(c2sfront.Config{Account: account.Bare(), Credential: cred, Certificate: &cert, AllowNonLoopback: cfg.Front.AllowRemote,
		MaxConns: cfg.Front.MaxClients, Logger: log}, gw.Front().Handle)
	if err != nil {
		return nil, &FieldError{Key: "front", Msg: err.Error()}
	}
	fs := &frontServer{srv: srv, front: gw.Front()}
	fail := func(key string, err error) (*frontServer, error) {
		for _, l := range fs.ls {
			l.Close()
		}
		return nil, &FieldError{Key: key, Msg: err.Error()}
	}
	if l := cfg.Front.listen(); l != "" {
		tl, err := net.Listen("tcp", l)
		if err != nil {
			return fail("front.listen", fmt.Errorf("%v (another daemon's front? set [front] listen to a free port)", err))
		}
		fs.ls = append(fs.ls, tl)
		fs.addrs = append(fs.addrs, tl.Addr().String())
	}
	if p := cfg.Front.Socket; p != "" {
		// As the API socket: in a directory of ours closed to others
		// (no window in which another user could connect), a stale
		// socket replaced, anything else at the path left alone.
		ul, err := api.Listen(p, log)
		if err != nil {
			return fail("front.socket", err)
		}
		fs.ls = append(fs.ls, ul)
		fs.addrs = append(fs.addrs, p)
	}
	for _, l := range fs.ls {
		go srv.Serve(l)
	}
	log.Info("gateway mode: local XMPP front listening; point your client there and pin the certificate",
		"addresses", fs.addrs, "account", account.Bare().String(), "sha256", srv.Fingerprint())
	return fs, nil
}

// close ends the local sessions and stops the listeners.
func (fs *frontServer) close() {
	fs.front.Close()
	fs.srv.Close()
}
