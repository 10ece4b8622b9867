// Package coturntest runs a real coturn TURN server (Debian package
// coturn, program turnserver) on loopback for one test, in the TURN REST
// API mode (use-auth-secret with a static-auth-secret) that Prosody's
// mod_turn_external hands out credentials for, and computes those
// credentials.
//
// The server listens on 127.0.0.1 on a random free port, UDP and TCP,
// without TLS and DTLS, relays on 127.0.0.1 in a random port range, and
// allows loopback peers (coturn refuses relaying to loopback addresses by
// default). It reads no configuration file, opens no CLI or web admin
// port, writes its log, pid file and database into the test's temporary
// directory, and is stopped in t.Cleanup.
//
// Like internal/prosodytest, [Start] skips the test when turnserver is
// missing, and fails it when SECUREJINGLE_INTEGRATION=1 (make check).
// [Server.Args] gives the exact command line.
//
// # coturn 4.6 notes
//
// Written against Debian 12's coturn 4.6.1. Quirks met:
//
//   - Without -n, turnserver reads /etc/turnserver.conf (Debian's sets
//     syslog, among others).
//   - Relaying to 127.0.0.0/8 and ::1 is refused unless
//     --allow-loopback-peers, which logs a CONFIG WARNING.
//   - The CLI listens on 127.0.0.1:5766 unless --no-cli: two servers at
//     once would collide.
//   - The SQLite user database is opened even in REST API mode; --userdb
//     keeps it in the temporary directory instead of /var/lib/turn.
//   - A port that is taken is logged as "Cannot bind ..." and retried
//     forever; [Start] watches the log and starts again on a new port.
//   - "socket: Protocol not supported" on stderr at start-up (no SCTP
//     listener in the container kernel) is harmless.
//   - Binding requests are not logged (--log-binding would), so readiness
//     is the "UDP listener opened on" line plus an answered Binding
//     request of our own.
//   - A wrong password and an expired REST username both show up as
//     "check_stun_auth: Cannot find credentials of user <...>" and a 401.
//   - With --verbose every request is logged as "session N: realm <R>
//     user <U>: incoming packet ALLOCATE processed, success" (and
//     CREATE_PERMISSION, CHANNEL_BIND, REFRESH): [Server.Allocations] and
//     tests read that.
//   - A TURN-over-TCP client shows up as "tcp or tls connected to:
//     <client address>" before its requests; the relayed address is UDP
//     all the same.
//   - The log is flushed line by line, to a file (--log-file with
//     --simple-log) as well as to stdout (--log-file=stdout).
//   - SIGTERM stops it at once.
package coturntest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/integration"
)

// Names of the program and its files.
const (
	prog        = "turnserver"
	debPackage  = "coturn"
	logName     = "turnserver.log"
	consoleName = "turnserver.console.log"
	pidName     = "turnserver.pid"
	dbName      = "turndb"
)

// DefaultRealm is the realm unless [WithRealm] is given.
const DefaultRealm = "example.test"

// Bounds for the readiness probe and the relay ports; those of starting
// and stopping are integration's.
const (
	probeTimeout = 500 * time.Millisecond
	// Relay ports come from a random window of relayPorts ports in
	// [relayLow, relayHigh): coturn picks a free one in the window.
	relayLow   = 40000
	relayHigh  = 60000
	relayPorts = 200
)

// Option configures [Start].
type Option func(*options) error

type options struct {
	secret string
	realm  string
}

// WithSecret sets the static-auth-secret shared with the XMPP server
// (default: 32 random hex digits).
func WithSecret(secret string) Option {
	return func(o *options) error {
		if secret == "" || strings.ContainsAny(secret, "\x00\n\r") {
			return errors.New("coturntest: empty secret, or one with NUL or line breaks")
		}
		o.secret = secret
		return nil
	}
}

// WithRealm sets the realm (default [DefaultRealm]).
func WithRealm(realm string) Option {
	return func(o *options) error {
		if realm == "" || strings.ContainsAny(realm, "\x00\n\r ") {
			return fmt.Errorf("coturntest: bad realm %q", realm)
		}
		o.realm = realm
		return nil
	}
}

// Server is a running coturn owned by one test. It is created by [Start]
// and stopped by the test's cleanup; there is no useful zero value. Its
// methods are safe for concurrent use.
type Server struct {
	dir     string
	logPath string
	port    int
	secret  string
	realm   string
	relayLo int
	relayHi int
	args    []string
}

// Start runs coturn for the duration of t and returns once it answers a
// STUN Binding request on its port. It calls t.Skip (or t.Fatal when
// SECUREJINGLE_INTEGRATION=1) when turnserver is not installed, and
// t.Fatal on any other problem. In t.Cleanup the server gets SIGTERM, then
// SIGKILL after a grace period; if t failed, the end of its log is
// printed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	path := integration.Tool(t, prog, debPackage)
	o := options{realm: DefaultRealm}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.secret == "" {
		var b [16]byte
		rand.Read(b[:])
		o.secret = hex.EncodeToString(b[:])
	}
	dir := t.TempDir()
	var s *Server
	integration.StartServer(t, func(int) (*integration.ServerCmd, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		lo := relayLow + int(randN(relayHigh-relayLow-relayPorts))
		s = &Server{
			dir:     dir,
			logPath: filepath.Join(dir, logName),
			port:    port,
			secret:  o.secret,
			realm:   o.realm,
			relayLo: lo,
			relayHi: lo + relayPorts - 1,
		}
		s.args = s.flags()
		return &integration.ServerCmd{
			Name: prog, Path: path, Args: s.args,
			Dir: dir, Console: consoleName, Log: s.logPath, Addr: s.Addr(),
			Ready: s.ready,
		}, nil
	})
	return s
}

// flags returns the command line (see the package documentation).
func (s *Server) flags() []string {
	return []string{
		"-n", // no configuration file: /etc/turnserver.conf is not read
		"--listening-ip=127.0.0.1",
		"--listening-port=" + strconv.Itoa(s.port),
		"--relay-ip=127.0.0.1",
		"--min-port=" + strconv.Itoa(s.relayLo),
		"--max-port=" + strconv.Itoa(s.relayHi),
		"--use-auth-secret",
		"--static-auth-secret=" + s.secret,
		"--realm=" + s.realm,
		"--fingerprint",
		"--allow-loopback-peers", // peers are 127.0.0.1 too
		"--no-multicast-peers",
		"--no-tls", "--no-dtls",
		"--no-cli",
		"--no-rfc5780", // no alternate port (port+1) is bound
		"--no-stun-backward-compatibility",
		"--no-software-attribute",
		"--userdb=" + filepath.Join(s.dir, dbName),
		"--pidfile=" + filepath.Join(s.dir, pidName),
		"--log-file=" + s.logPath,
		"--simple-log", // exactly that file name, no rollover
		"--no-stdout-log",
		"--verbose", // sessions, allocations and permissions in the log
	}
}

// Args returns turnserver's command line, without the program name.
func (s *Server) Args() []string { return append([]string(nil), s.args...) }

// Host returns the address the server listens on, "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port returns the UDP and TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.port)) }

// Secret returns the static-auth-secret.
func (s *Server) Secret() string { return s.secret }

// Realm returns the realm.
func (s *Server) Realm() string { return s.realm }

// RelayPorts returns the range relayed addresses are allocated from
// (inclusive): every relay candidate is 127.0.0.1 with a port in it.
func (s *Server) RelayPorts() (lo, hi int) { return s.relayLo, s.relayHi }

// LogPath returns the path of the server's log.
func (s *Server) LogPath() string { return s.logPath }

// Log returns the server's log so far.
func (s *Server) Log() ([]byte, error) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return nil, fmt.Errorf("coturntest: %w", err)
	}
	return b, nil
}

// ICEServer returns a TURN-over-UDP ICE server for this server with
// credentials for user valid for ttl (see [Credentials]).
func (s *Server) ICEServer(user string, ttl time.Duration) webrtc.ICEServer {
	u, p := Credentials(s.secret, user, ttl)
	return webrtc.ICEServer{
		URLs:           []string{"turn:" + s.Addr() + "?transport=udp"},
		Username:       u,
		Credential:     p,
		CredentialType: webrtc.ICECredentialTypePassword,
	}
}

// Credentials returns TURN REST API credentials (draft-uberti-behave-
// turn-rest-00 §2.2, as coturn's use-auth-secret and Prosody's
// mod_turn_external implement it) for user, expiring ttl from now:
// username "EXPIRY:user" (EXPIRY in Unix seconds; just "EXPIRY" when user
// is empty) and password base64(HMAC-SHA1(secret, username)).
func Credentials(secret, user string, ttl time.Duration) (username, password string) {
	return CredentialsAt(secret, user, time.Now().Add(ttl))
}

// CredentialsAt is [Credentials] for an absolute expiry, truncated to
// whole seconds.
func CredentialsAt(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10)
	if user != "" {
		username += ":" + user
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func randN(n int) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err)
	}
	return v.Int64()
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1. coturn
// cannot inherit listeners, so the port is released before it binds it;
// Start retries with a new port if another process takes it in between.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("coturntest: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if uerr == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("coturntest: no port free for both UDP and TCP")
}

// ready checks once that the log says the UDP listener is open and the
// port answers a STUN Binding request (see [integration.ServerCmd]).
func (s *Server) ready(context.Context) error {
	b, _ := os.ReadFile(s.logPath)
	if bytes.Contains(b, []byte("Cannot bind")) {
		return integration.ErrPortInUse
	}
	if !bytes.Contains(b, []byte("UDP listener opened on: "+s.Addr())) {
		return fmt.Errorf("%w: UDP listener not open yet", integration.ErrNotReady)
	}
	if err := stunPing(s.Addr()); err != nil {
		return fmt.Errorf("%w: %w", integration.ErrNotReady, err)
	}
	return nil
}

// STUN (RFC 8489 §5, §6) constants for the readiness probe.
const (
	stunBindingRequest  = 0x0001
	stunBindingResponse = 0x0101
	stunMagicCookie     = 0x2112A442
	stunHeaderLen       = 20
)

// stunPing sends one STUN Binding request to addr over UDP and checks
// that a Binding success response with the same transaction id comes
// back.
func stunPing(addr string) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	req := make([]byte, stunHeaderLen)
	req[0], req[1] = stunBindingRequest>>8, stunBindingRequest&0xff
	// Message length 0: no attributes.
	req[4], req[5], req[6], req[7] = stunMagicCookie>>24, stunMagicCookie>>16&0xff, stunMagicCookie>>8&0xff, stunMagicCookie&0xff
	rand.Read(req[8:20])
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp := make([]byte, 1500)
	n, err := c.Read(resp)
	if err != nil {
		return err
	}
	if n < stunHeaderLen || int(resp[0])<<8|int(resp[1]) != stunBindingResponse || !bytes.Equal(resp[4:20], req[4:20]) {
		return fmt.Errorf("not a STUN Binding success response for our request: % x", resp[:min(n, stunHeaderLen)])
	}
	return nil
}

// Allocations returns the number of successful TURN allocations the
// server has logged so far.
func (s *Server) Allocations() int {
	b, _ := os.ReadFile(s.logPath)
	return bytes.Count(b, []byte("ALLOCATE processed, success"))
}
