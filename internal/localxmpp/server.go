package localxmpp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// Errors returned by the server.
var (
	// ErrClosed is returned by Serve and Listen after Close.
	ErrClosed = errors.New("localxmpp: server closed")
	// ErrUserExists is returned by AddUser for an existing account.
	ErrUserExists = errors.New("localxmpp: user exists")
	// ErrNoUser is returned for operations on an unknown account.
	ErrNoUser = errors.New("localxmpp: no such user")
)

// Option configures a Server.
type Option func(*Server) error

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) error {
		if l == nil {
			return errors.New("localxmpp: nil logger")
		}
		s.log = l
		return nil
	}
}

// WithTLSConfig replaces the generated self-signed certificate with cfg,
// which must hold at least one certificate. [Server.CertPool] then returns
// nil unless the caller also trusts the certificate some other way.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(s *Server) error {
		if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil) {
			return errors.New("localxmpp: TLS config without certificate")
		}
		s.tlsConfig = cfg.Clone()
		s.pool = nil
		return nil
	}
}

// Server is an in-memory XMPP server for one domain.
//
// Create it with [New]; the zero value is not usable. All methods are safe
// for concurrent use.
type Server struct {
	domain    jid.JID
	log       *slog.Logger
	tlsConfig *tls.Config
	pool      *x509.CertPool

	hook atomic.Pointer[Hook]

	routed   atomic.Uint64
	accepted atomic.Uint64

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	users     map[string]*user // by localpart
	addr      net.Addr

	wg sync.WaitGroup
}

// user is an account. Guarded by Server.mu.
type user struct {
	bare     jid.JID
	pwHash   [32]byte
	roster   map[string]*rosterItem // by bare JID string
	order    []string               // roster insertion order
	sessions map[string]*session    // by resource
	offline  []Stanza
	pep      map[string]*pepNode
}

type rosterItem struct {
	jid          jid.JID
	subscription string
}

// New returns a server for domain (for example "localhost" or
// "example.test"). Without [WithTLSConfig] it generates an in-memory
// self-signed ECDSA P-256 certificate valid for domain, 127.0.0.1 and ::1.
func New(domain string, opts ...Option) (*Server, error) {
	d, err := jid.New("", domain, "")
	if err != nil {
		return nil, fmt.Errorf("localxmpp: bad domain: %w", err)
	}
	s := &Server{
		domain:    d,
		log:       slog.New(slog.DiscardHandler),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
		users:     make(map[string]*user),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.tlsConfig == nil {
		cert, pool, err := selfSigned(d.String())
		if err != nil {
			return nil, err
		}
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.pool = pool
	}
	if s.tlsConfig.MinVersion < tls.VersionTLS12 {
		s.tlsConfig.MinVersion = tls.VersionTLS12
	}
	return s, nil
}

func selfSigned(domain string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := SelfSignedCert(domain, "securejingle localxmpp", 7*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool, nil
}

// SelfSignedCert makes a self-signed P-256 server certificate for domain
// (SANs: domain, 127.0.0.1, ::1) valid from an hour ago for validity, with
// Leaf set. It is shared with internal/c2sfront.
func SelfSignedCert(domain, org string, validity time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("localxmpp: generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("localxmpp: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{org}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{domain},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("localxmpp: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("localxmpp: parsing certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Domain returns the server's domain JID.
func (s *Server) Domain() jid.JID { return s.domain }

// CertPool returns a pool holding the generated self-signed certificate, for
// clients' tls.Config.RootCAs. It returns nil when [WithTLSConfig] was used.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// ClientTLSConfig returns a TLS configuration that trusts the server's
// generated certificate and expects its domain; a convenience for clients
// (mellium's xmpp.StartTLS takes it directly).
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{
		RootCAs:    s.pool,
		ServerName: s.domain.String(),
		MinVersion: tls.VersionTLS12,
	}
}

// Listen listens on the TCP address addr (normally "127.0.0.1:0") and serves
// in a background goroutine. It returns once the listener is ready; see
// [Server.Addr].
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("localxmpp: %w", err)
	}
	if err := s.track(l); err != nil {
		l.Close()
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.serve(l); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error("accept loop ended", "err", err)
		}
	}()
	return nil
}

// Serve accepts connections on l until l fails or the server is closed, and
// returns the error (ErrClosed after Close). Close also closes l.
func (s *Server) Serve(l net.Listener) error {
	if err := s.track(l); err != nil {
		l.Close()
		return err
	}
	s.wg.Add(1)
	defer s.wg.Done()
	return s.serve(l)
}

func (s *Server) track(l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.listeners[l] = struct{}{}
	if s.addr == nil {
		s.addr = l.Addr()
	}
	return nil
}

func (s *Server) serve(l net.Listener) error {
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("localxmpp: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Addr returns the address of the first listener, or nil before Listen or
// Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops all listeners, closes every client connection and waits for
// all of the server's goroutines to finish. It is safe to call more than
// once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// AddUser creates the account local@domain with the given password.
func (s *Server) AddUser(local, password string) error {
	j, err := jid.New(local, s.domain.String(), "")
	if err != nil {
		return fmt.Errorf("localxmpp: bad localpart: %w", err)
	}
	if local == "" || password == "" {
		return errors.New("localxmpp: empty localpart or password")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[j.Localpart()]; ok {
		return ErrUserExists
	}
	s.users[j.Localpart()] = &user{
		bare:     j,
		pwHash:   sha256.Sum256([]byte(password)),
		roster:   make(map[string]*rosterItem),
		sessions: make(map[string]*session),
		pep:      make(map[string]*pepNode),
	}
	return nil
}

// checkPassword reports whether password is right for local. The
// comparison is constant-time over SHA-256 digests.
func (s *Server) checkPassword(local string, password []byte) bool {
	h := sha256.Sum256(password)
	s.mu.Lock()
	u, ok := s.users[local]
	var want [32]byte
	if ok {
		want = u.pwHash
	}
	s.mu.Unlock()
	return subtle.ConstantTimeCompare(h[:], want[:]) == 1 && ok
}

// Subscription values for roster items (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// AddRosterItem adds or updates contact in owner's roster with the given
// subscription ("none", "to", "from" or "both"). owner must be a local
// account; contact's resource is ignored. Resources of owner that have
// fetched the roster receive a roster push. Presence already exchanged is
// not revised: set rosters up before clients announce presence.
func (s *Server) AddRosterItem(owner, contact jid.JID, subscription string) error {
	switch subscription {
	case SubNone, SubTo, SubFrom, SubBoth:
	default:
		return fmt.Errorf("localxmpp: bad subscription %q", subscription)
	}
	s.mu.Lock()
	u := s.localUser(owner)
	if u == nil {
		s.mu.Unlock()
		return ErrNoUser
	}
	cb := contact.Bare()
	key := cb.String()
	if it, ok := u.roster[key]; ok {
		it.subscription = subscription
	} else {
		u.roster[key] = &rosterItem{jid: cb, subscription: subscription}
		u.order = append(u.order, key)
	}
	var pushes []Stanza
	for _, sess := range u.sessions {
		if sess.rosterRequested {
			q := el(nsRoster, "query").add(el(nsRoster, "item", "jid", key, "subscription", subscription))
			iq := el(nsClient, "iq", "type", "set", "id", randomID(), "to", sess.jid.String()).add(q)
			pushes = append(pushes, mustStanza(iq))
		}
	}
	s.mu.Unlock()
	for _, p := range pushes {
		s.dispatchGenerated(p)
	}
	return nil
}

// Subscribe makes a and b mutual contacts with subscription "both" in both
// rosters. Both must be local accounts.
func (s *Server) Subscribe(a, b jid.JID) error {
	if err := s.AddRosterItem(a, b, SubBoth); err != nil {
		return err
	}
	return s.AddRosterItem(b, a, SubBoth)
}

// localUser returns the account for j if j is a local bare or full JID.
// Caller holds s.mu.
func (s *Server) localUser(j jid.JID) *user {
	if j.Domainpart() != s.domain.Domainpart() || j.Localpart() == "" {
		return nil
	}
	return s.users[j.Localpart()]
}

// Stats is a snapshot of server counters, for tests.
type Stats struct {
	// Sessions is the number of bound client sessions.
	Sessions int
	// Connections is the number of open TCP connections, bound or not.
	Connections int
	// Accepted is the number of TCP connections accepted so far.
	Accepted uint64
	// Routed is the number of stanzas routed so far (one per stanza taken
	// from a client, generated by the server or injected).
	Routed uint64
}

// Stats returns current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Connections: len(s.conns), Accepted: s.accepted.Load(), Routed: s.routed.Load()}
	for _, u := range s.users {
		st.Sessions += len(u.sessions)
	}
	return st
}
