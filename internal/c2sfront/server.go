package c2sfront

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// Bounds.
const (
	// DefaultMaxConns bounds simultaneous local connections.
	DefaultMaxConns = 16
	// maxNegotiationBytes bounds what a client may send before it is bound.
	maxNegotiationBytes = 64 << 10
	// negotiationTimeout bounds STARTTLS + SASL + bind.
	negotiationTimeout = 30 * time.Second
	// maxAuthFailures is the number of failed logins after which the
	// listener refuses new connections for authLockout.
	maxAuthFailures = 5
	authLockout     = time.Minute
)

// Handler receives each bound session; it owns the session until it
// returns, after which the connection is closed. This is the composer's
// per-session (and, inside it, per-stanza) interception point.
type Handler func(s *Session)

// Config configures a Server.
type Config struct {
	// Account is the bare JID the local client logs in as (the real
	// account's JID); only its localpart and domain are accepted.
	Account jid.JID
	// Credential is the local login secret.
	Credential Credential
	// Certificate is the listener's TLS certificate, the one the clients
	// pin (the daemon keeps it across restarts); nil makes a fresh
	// self-signed one. Its leaf must be parsed.
	Certificate *tls.Certificate
	// AllowNonLoopback lets peers outside 127.0.0.0/8 and ::1 connect. Off
	// by default; New logs a warning when it is set.
	AllowNonLoopback bool
	// MaxConns bounds simultaneous connections (DefaultMaxConns if 0).
	MaxConns int
	// Logger receives events; slog.Default() if nil.
	Logger *slog.Logger
}

// Server is the local c2s listener.
type Server struct {
	cfg   Config
	log   *slog.Logger
	cert  tls.Certificate
	pool  *x509.CertPool
	fp    string
	h     Handler
	slots chan struct{}

	mu       sync.Mutex
	failures int
	lockedAt time.Time
	ls       []net.Listener
	conns    map[net.Conn]struct{} // accepted and not yet closed
	// refusedAt and refusedSkipped rate-limit the refusal warnings.
	refusedAt      map[string]time.Time
	refusedSkipped map[string]int
	wg             sync.WaitGroup
	closed         atomic.Bool
}

// New creates a Server with cfg.Certificate or a fresh self-signed one;
// its fingerprint is logged and returned by Fingerprint so the user can pin it.
func New(cfg Config, h Handler) (*Server, error) {
	if cfg.Account.Localpart() == "" || cfg.Account.Resourcepart() != "" {
		return nil, errors.New("c2sfront: [front] account must be a bare JID with a localpart (user@example.org)")
	}
	if err := cfg.Credential.check(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("c2sfront: nil handler")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	s := &Server{cfg: cfg, log: cfg.Logger, h: h, slots: make(chan struct{}, cfg.MaxConns), conns: make(map[net.Conn]struct{}),
		refusedAt: make(map[string]time.Time), refusedSkipped: make(map[string]int)}
	if s.log == nil {
		s.log = slog.Default()
	}
	var cert tls.Certificate
	if cfg.Certificate != nil {
		cert = *cfg.Certificate
		if cert.Leaf == nil {
			return nil, errors.New("c2sfront: the certificate's leaf is not parsed")
		}
	} else {
		var err error
		if cert, err = NewCertificate(cfg.Account.Domainpart()); err != nil {
			return nil, err
		}
	}
	s.cert = cert
	s.pool = x509.NewCertPool()
	s.pool.AddCert(cert.Leaf)
	sum := sha256.Sum256(cert.Leaf.Raw)
	s.fp = fingerprint(sum[:])
	s.log.Info("c2s front certificate", "sha256", s.fp)
	if cfg.AllowNonLoopback {
		s.log.Warn("c2s front accepts non-loopback peers (allow_non_loopback = true): anyone who can reach the port can try the local password; turn it off unless the network is trusted")
	}
	return s, nil
}

// CertificateValidity is how long a certificate of NewCertificate is
// valid.
const CertificateValidity = 365 * 24 * time.Hour

// NewCertificate makes a self-signed certificate for a listener of
// domain's account (ECDSA P-256, valid CertificateValidity, for the
// domain and the loopback addresses).
func NewCertificate(domain string) (tls.Certificate, error) {
	return localxmpp.SelfSignedCert(domain, "securejingle c2s front", CertificateValidity)
}

func fingerprint(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// Fingerprint is the SHA-256 fingerprint of the listener's certificate,
// colon-separated upper-case hex.
func (s *Server) Fingerprint() string { return s.fp }

// ClientTLSConfig is a client TLS configuration that trusts only this
// server's certificate (for tests and local tools).
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: s.cfg.Account.Domainpart(), MinVersion: tls.VersionTLS12}
}

// IsLoopback reports whether addr is a unix socket peer or a TCP peer in
// 127.0.0.0/8 or ::1.
func IsLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

// Serve accepts connections on l until it or the server is closed; it
// returns the error that ended it (net.ErrClosed after a close).
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.ls = append(s.ls, l)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			// Only the listener's close ends Serve: a failed accept
			// (EMFILE under other load) is retried after a growing pause,
			// as net/http does, instead of stopping the listener for good.
			if errors.Is(err, net.ErrClosed) || s.closed.Load() {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("c2s front accept failed, retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.cfg.AllowNonLoopback && !IsLoopback(c.RemoteAddr()) {
			s.refused("refused non-loopback peer", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		if s.lockedOut() {
			s.refused("refused connection: too many failed logins, wait a minute", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.refused("refused connection: connection limit reached", "max", s.cfg.MaxConns)
			c.Close()
			continue
		}
		if !s.track(c) {
			<-s.slots
			c.Close()
			return net.ErrClosed
		}
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer s.untrack(c)
			s.handleConn(c)
		}()
	}
}

// refusalLogEvery is the least time between two warnings of one kind of
// refused connection: a local user can open connections as fast as the
// machine allows, and each must not cost a log line.
const refusalLogEvery = 10 * time.Second

// refused logs a refused connection, at most once per refusalLogEvery for
// each msg, with the number of refusals not logged before it.
func (s *Server) refused(msg string, args ...any) {
	s.mu.Lock()
	now := time.Now()
	if t, ok := s.refusedAt[msg]; ok && now.Sub(t) < refusalLogEvery {
		s.refusedSkipped[msg]++
		s.mu.Unlock()
		return
	}
	n := s.refusedSkipped[msg]
	s.refusedAt[msg] = now
	s.refusedSkipped[msg] = 0
	s.mu.Unlock()
	s.log.Warn(msg, append(args, "not_logged_before", n)...)
}

// track records an accepted connection for Close and counts it in wg; it
// reports false once the server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops the listeners, closes every connection (negotiating or
// bound: a bound session's Next then returns ErrClosed) and waits for the
// handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	for _, l := range s.ls {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) lockedOut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lockedOutLocked()
}

func (s *Server) lockedOutLocked() bool {
	if s.failures >= maxAuthFailures {
		if time.Since(s.lockedAt) < authLockout {
			return true
		}
		s.failures = 0
	}
	return false
}

// beginAttempt counts a login attempt as failed until attemptSucceeded
// undoes it; it reports false (nothing counted) while locked out. Counting
// before the check bounds the attempts checked per lockout period to
// maxAuthFailures however many connections send theirs at once.
func (s *Server) beginAttempt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockedOutLocked() {
		return false
	}
	s.failures++
	if s.failures == maxAuthFailures {
		s.lockedAt = time.Now()
	}
	return true
}

// attemptSucceeded undoes beginAttempt's count for a successful login.
func (s *Server) attemptSucceeded() {
	s.mu.Lock()
	if s.failures > 0 {
		s.failures--
	}
	s.mu.Unlock()
}

// budgetConn refuses reads past a byte budget.
type budgetConn struct {
	net.Conn
	left atomic.Int64
}

var errBudget = errors.New("c2sfront: negotiation size limit exceeded")

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.left.Load() <= 0 {
		return 0, errBudget
	}
	n, err := c.Conn.Read(p)
	c.left.Add(-int64(n))
	return n, err
}

func (s *Server) handleConn(c net.Conn) {
	bc := &budgetConn{Conn: c}
	bc.left.Store(maxNegotiationBytes)
	defer c.Close()
	acct := s.cfg.Account
	var authed, bound bool
	var boundJID jid.JID
	bind := func(_ jid.JID, res string) (jid.JID, error) {
		if !authed {
			return jid.JID{}, stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}
		}
		if res == "" {
			var b [8]byte
			rand.Read(b[:])
			res = hex.EncodeToString(b[:])
		}
		j, err := jid.New(acct.Localpart(), acct.Domainpart(), res)
		if err != nil {
			return jid.JID{}, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		bound = true
		boundJID = j
		return j, nil
	}
	// Whitespace between negotiation elements is dropped before mellium
	// sees it (whitespace.go); off once the client is bound.
	plain := newWSFilter()
	current := plain
	features := []xmpp.StreamFeature{
		startTLSFiltered(&tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}, plain, &current),
		s.saslFeature(func() { authed = true }),
		xmpp.BindCustom(bind),
		smFeature(),
	}
	neg := xmpp.NewNegotiator(func(x *xmpp.Session, _ *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	})
	// A deadline rather than a context (see internal/localxmpp/session.go).
	bc.SetDeadline(time.Now().Add(negotiationTimeout))
	xs, err := xmpp.ReceiveSession(context.Background(), &wsConn{Conn: bc, f: plain}, 0, neg)
	current.on.Store(false)
	if err != nil || !bound || xs.LocalAddr().Domainpart() != acct.Domainpart() {
		s.log.Debug("local negotiation failed", "err", err)
		if xs != nil {
			closeSession(xs, bc)
		}
		return
	}
	bc.SetDeadline(time.Time{})
	s.log.Info("local client bound", "jid", boundJID.String())
	r := xs.TokenReader()
	defer r.Close()
	sess := newSession(xs, bc, boundJID, r)
	// Bind needs TLS, so the session writes to a wsTLSConn; nothing
	// writes to it concurrently yet.
	if tc, ok := xs.Conn().(*wsTLSConn); ok {
		tc.out = newStanzaCounter(&sess.sm)
	} else {
		sess.sm.uncounted = true
	}
	s.h(sess)
	sess.smStop()
	closeSession(xs, bc)
	if n, ok := sess.Unacked(); ok && n > 0 {
		s.log.Info("local client's stream ended with stanzas it did not acknowledge (XEP-0198)", "jid", boundJID.String(), "unacked", n)
	}
}

// closeSession writes the closing stream tag with a bounded wait: a client
// that stopped reading must not keep the connection's goroutine (and its
// slot, and Close) forever. The deadline also ends a write still under way.
func closeSession(xs *xmpp.Session, c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	xs.Close()
}
