package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/access"
	"github.com/securejingle/securejingle/internal/api"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("daemon: invalid configuration")

// maxConfigSize bounds the configuration file.
const maxConfigSize = 1 << 20

// maxSocketPath is the usable length of a Unix socket path (sun_path).
const maxSocketPath = 104

// FieldError is a bad value in the configuration. It wraps [ErrConfig].
type FieldError struct {
	Key string // dotted key path, e.g. "access.mode"
	Msg string
}

func (e *FieldError) Error() string { return "daemon: config: " + e.Key + ": " + e.Msg }

// Unwrap returns [ErrConfig].
func (e *FieldError) Unwrap() error { return ErrConfig }

// UnknownKeysError lists keys of the file that the daemon does not know
// (typically typos). It wraps [ErrConfig].
type UnknownKeysError struct {
	Keys []string // dotted key paths
}

func (e *UnknownKeysError) Error() string {
	return "daemon: config: unknown keys: " + strings.Join(e.Keys, ", ")
}

// Unwrap returns [ErrConfig].
func (e *UnknownKeysError) Unwrap() error { return ErrConfig }

// Secret is a string that never prints: String, GoString and LogValue
// return a placeholder.
type Secret string

// String returns a placeholder.
func (Secret) String() string { return "[redacted]" }

// GoString returns a placeholder.
func (Secret) GoString() string { return "[redacted]" }

// LogValue implements slog.LogValuer with a placeholder.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText returns a placeholder, so encoders never write the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Config is the daemon configuration, read from TOML by [Load]. A Config
// is a plain value; Run does not modify it. The zero Config is not valid.
type Config struct {
	Account AccountConfig `toml:"account"`
	Keys    KeysConfig    `toml:"keys"`
	Store   StoreConfig   `toml:"store"`
	Access  AccessConfig  `toml:"access"`
	API     APIConfig     `toml:"api"`
	Log     LogConfig     `toml:"log"`
	Policy  PolicyConfig  `toml:"policy"`
	Alerts  AlertsConfig  `toml:"alerts"`
	Trust   TrustConfig   `toml:"trust"`
	Calls   CallsConfig   `toml:"calls"`
	Files   FilesConfig   `toml:"files"`
	Web     WebConfig     `toml:"web"`
	Front   FrontConfig   `toml:"front"`
}

// AccountConfig is the [account] table.
type AccountConfig struct {
	JID string `toml:"jid"` // bare JID, or full JID to choose the resource
	// Password, or PasswordCommand: a program and its arguments, run
	// without a shell, whose first line of output is the password.
	Password        Secret   `toml:"password"`
	PasswordCommand []string `toml:"password_command"`
	// Server is host:port; empty means SRV lookup of the JID's domain.
	Server    string `toml:"server"`
	DirectTLS bool   `toml:"direct_tls"`
	// CAFile holds PEM roots to trust instead of the system roots.
	CAFile string `toml:"ca_file"`
	// PinSHA256 is the hex SHA-256 of the server certificate's
	// SubjectPublicKeyInfo. Without CAFile it replaces chain verification.
	PinSHA256  string `toml:"pin_sha256"`
	AllowPlain bool   `toml:"allow_plain"`
	// AddThisDevice lets this device put itself on the account's existing
	// device list at login, signing through the account key's agent. The
	// first device of an account always founds the list; without this, a
	// further device waits for `securejingle devices add`.
	AddThisDevice bool `toml:"add_this_device"`
}

// KeysConfig is the [keys] table: where the identity key is, and the
// attestations published with it.
type KeysConfig struct {
	Backend string `toml:"backend"` // "file" (default) or "agent"
	// File is the OpenSSH Ed25519 private key; PassphraseEnv names the
	// environment variable holding its passphrase, if it has one.
	File          string `toml:"file"`
	PassphraseEnv string `toml:"passphrase_env"`
	// AgentSocket defaults to $SSH_AUTH_SOCK; AgentKey is the "SHA256:..."
	// fingerprint of the key to use when the agent holds several.
	AgentSocket string `toml:"agent_socket"`
	AgentKey    string `toml:"agent_key"`
	// AgentTimeout bounds each call into the agent, as a Go duration
	// ("10s", the default; at most "5m").
	AgentTimeout string `toml:"agent_timeout"`
	// Attestation lists signatures over the account statement to publish
	// in the bundle ([[keys.attestation]]).
	Attestation []AttestationConfig `toml:"attestation"`
}

// StoreConfig is the [store] table.
type StoreConfig struct {
	Path string `toml:"path"` // bbolt database file
}

// AccessConfig is the [access] table: who may fetch our bundle and start
// a session. Unset values keep the defaults of [access.DefaultConfig].
type AccessConfig struct {
	Mode       string   `toml:"mode"` // roster (default), domains, anyone
	Domains    []string `toml:"domains"`
	Rate       *float64 `toml:"rate"`  // requests per second per requester
	Burst      *int     `toml:"burst"` // burst per requester
	MaxPending *int     `toml:"max_pending"`
}

// APIConfig is the [api] table.
type APIConfig struct {
	Socket string `toml:"socket"` // default api.DefaultSocketPath()
}

// LogConfig is the [log] table.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info (default), warn, error
	Format string `toml:"format"` // text (default) or json
}

// Load reads and validates the configuration file at path. Keys the daemon
// does not know are an error ([*UnknownKeysError]); so is every bad value
// ([*FieldError]). Relative paths in the file are relative to its
// directory.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrConfig, path, maxConfigSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return Parse(b, filepath.Dir(abs))
}

// Parse decodes and validates a configuration; relative paths are resolved
// against dir.
func Parse(b []byte, dir string) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var unknown []string
	for _, k := range md.Undecoded() {
		unknown = append(unknown, k.String())
	}
	if len(unknown) > 0 {
		return nil, &UnknownKeysError{Keys: unknown}
	}
	for _, p := range []*string{&c.Keys.File, &c.Store.Path, &c.Account.CAFile, &c.API.Socket, &c.Keys.AgentSocket,
		&c.Policy.File, &c.Alerts.AuditLog} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c.resolveAttestationPaths(dir)
	c.resolveCallPaths(dir)
	c.resolveFilePaths(dir)
	c.resolveFrontPaths(dir)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// HasPolicy reports whether the configuration names a policy file; without
// one the built-in default policy applies.
func (c *Config) HasPolicy() bool { return c.Policy.File != "" }

// Validate checks every value and reports all the problems found, each a
// [*FieldError].
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	a := c.Account
	if a.JID == "" {
		bad("account.jid", "is required")
	} else if j, err := jid.Parse(a.JID); err != nil || j.Localpart() == "" {
		bad("account.jid", "%q is not an account JID (local@domain)", a.JID)
	}
	switch {
	case a.Password != "" && len(a.PasswordCommand) > 0:
		bad("account.password", "give password or password_command, not both")
	case a.Password == "" && len(a.PasswordCommand) == 0:
		bad("account.password", "password or password_command is required")
	case len(a.PasswordCommand) > 0 && a.PasswordCommand[0] == "":
		bad("account.password_command", "the program name is empty")
	}
	if a.Server != "" {
		host, port, err := net.SplitHostPort(a.Server)
		p, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || host == "" || perr != nil || p == 0 {
			bad("account.server", "%q is not host:port", a.Server)
		}
	}
	if a.CAFile != "" {
		if _, err := loadRoots(a.CAFile); err != nil {
			bad("account.ca_file", "%v", err)
		}
	}
	if a.PinSHA256 != "" {
		if _, err := parsePin(a.PinSHA256); err != nil {
			bad("account.pin_sha256", "%v", err)
		}
	}

	k := c.Keys
	switch k.Backend {
	case "", "file":
		if k.File == "" {
			bad("keys.file", "is required with the file backend")
		}
		if k.AgentSocket != "" || k.AgentKey != "" || k.AgentTimeout != "" {
			bad("keys.backend", "agent_socket, agent_key and agent_timeout need backend = \"agent\"")
		}
	case "agent":
		if k.File != "" || k.PassphraseEnv != "" {
			bad("keys.backend", "file and passphrase_env need backend = \"file\"")
		}
		if k.AgentKey != "" {
			if _, err := parseFingerprint(k.AgentKey); err != nil {
				bad("keys.agent_key", "%v", err)
			}
		}
		if _, err := k.agentTimeout(); err != nil {
			bad("keys.agent_timeout", "%v", err)
		}
	default:
		bad("keys.backend", "%q: want \"file\" or \"agent\"", k.Backend)
	}

	if c.Store.Path == "" {
		bad("store.path", "is required")
	}

	if _, err := c.Access.config(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			errs = append(errs, fe)
		} else {
			bad("access", "%v", err)
		}
	}

	if s := c.socket(); len(s) >= maxSocketPath {
		bad("api.socket", "path longer than %d bytes", maxSocketPath-1)
	}

	errs = append(errs, c.Policy.validate()...)
	errs = append(errs, c.Alerts.validate()...)
	errs = append(errs, c.validateAttestations()...)
	errs = append(errs, c.Calls.validate()...)
	errs = append(errs, c.Files.validate()...)
	errs = append(errs, c.Web.validate()...)
	errs = append(errs, c.Front.validate()...)

	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// socket returns the API socket path.
func (c *Config) socket() string {
	if c.API.Socket != "" {
		return c.API.Socket
	}
	return api.DefaultSocketPath()
}

// SocketPath returns the API socket the daemon listens on.
func (c *Config) SocketPath() string { return c.socket() }

// config builds the access controller configuration.
func (a AccessConfig) config() (access.Config, error) {
	ac := access.DefaultConfig()
	switch a.Mode {
	case "", "roster":
		ac.Mode = access.RosterOnly
	case "domains":
		ac.Mode = access.AllowedDomains
		if len(a.Domains) == 0 {
			return ac, &FieldError{"access.domains", "mode \"domains\" needs at least one domain"}
		}
	case "anyone":
		ac.Mode = access.Anyone
	default:
		return ac, &FieldError{"access.mode", fmt.Sprintf("%q: want roster, domains or anyone", a.Mode)}
	}
	if len(a.Domains) > 0 && ac.Mode != access.AllowedDomains {
		return ac, &FieldError{"access.domains", "applies to mode \"domains\" only"}
	}
	ac.Domains = a.Domains
	if a.Rate != nil {
		ac.Rate = *a.Rate
	}
	if a.Burst != nil {
		ac.Burst = *a.Burst
	}
	if a.MaxPending != nil {
		ac.MaxPending = *a.MaxPending
	}
	switch {
	case a.Rate != nil && !(ac.Rate > 0 && ac.Rate <= 1e6):
		return ac, &FieldError{"access.rate", "must be a positive number of requests per second (at most 1e6)"}
	case a.Burst != nil && ac.Burst < 1:
		return ac, &FieldError{"access.burst", "must be at least 1"}
	case a.MaxPending != nil && ac.MaxPending < 1:
		return ac, &FieldError{"access.max_pending", "must be at least 1"}
	}
	if err := ac.Validate(); err != nil {
		return ac, &FieldError{"access.domains", err.Error()}
	}
	return ac, nil
}

// loadRoots reads PEM certificates from path.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// parsePin decodes a hex SHA-256 pin.
func parsePin(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, errors.New("want 64 hex digits (SHA-256 of the certificate's SubjectPublicKeyInfo)")
	}
	return b, nil
}

// parseFingerprint decodes an OpenSSH "SHA256:<base64>" fingerprint.
func parseFingerprint(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, "SHA256:")
	b, err := base64.RawStdEncoding.Strict().DecodeString(rest)
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%q is not an OpenSSH SHA256 fingerprint (as ssh-add -l prints)", s)
	}
	return b, nil
}

// tlsConfig builds the client TLS configuration of the account.
func (a AccountConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.CAFile != "" {
		pool, err := loadRoots(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("daemon: ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	if a.PinSHA256 != "" {
		pin, err := parsePin(a.PinSHA256)
		if err != nil {
			return nil, fmt.Errorf("daemon: pin_sha256: %w", err)
		}
		if a.CAFile == "" {
			// The pin replaces chain and name verification: it names the
			// one key the server may use, as for a self-signed server.
			cfg.InsecureSkipVerify = true
		}
		cfg.VerifyConnection = pinVerifier(pin)
	}
	return cfg, nil
}

// errPinMismatch is returned through the TLS handshake when the server key
// is not the pinned one.
var errPinMismatch = errors.New("daemon: server certificate does not match pin_sha256")

func pinVerifier(pin []byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errPinMismatch
		}
		h := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
		if subtle.ConstantTimeCompare(h[:], pin) != 1 {
			return errPinMismatch
		}
		return nil
	}
}

// passwordTimeout bounds password_command.
const passwordTimeout = time.Minute

// password returns the account password, running password_command if set.
func (a AccountConfig) password(ctx context.Context) (string, error) {
	if len(a.PasswordCommand) == 0 {
		return string(a.Password), nil
	}
	ctx, cancel := context.WithTimeout(ctx, passwordTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.PasswordCommand[0], a.PasswordCommand[1:]...)
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr // prompts and diagnostics reach the user
	var out bytes.Buffer
	cmd.Stdout = &limitedBuffer{b: &out, n: 64 << 10}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("daemon: password_command: %w", err)
	}
	line, err := bufio.NewReader(&out).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("daemon: password_command: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("daemon: password_command printed no password")
	}
	return line, nil
}

// limitedBuffer keeps the first n bytes written and discards the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// NewLogger returns the logger the configuration asks for, writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
