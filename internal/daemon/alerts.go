package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/securejingle/securejingle/policy"
)

// DefaultAuditLogName is the audit log's file name next to the store when
// [alerts] audit_log is not set.
const DefaultAuditLogName = "audit.jsonl"

// commandQueue is the number of alerts queued for a slow command hook;
// more are dropped (and logged) rather than slowing the gateway.
const commandQueue = 256

// PolicyConfig is the [policy] table: the channel policy. Without a file
// the built-in defaults of package policy apply (policy.Default).
type PolicyConfig struct {
	// File is a policy file in the format of policy.ParseConfig, relative
	// to the configuration file's directory.
	File string `toml:"file"`
}

// AlertsConfig is the [alerts] table: where flagged and refused channels
// are reported besides the API event stream. Unset values keep their
// defaults.
type AlertsConfig struct {
	// AuditLog is the append-only JSON-lines audit log; default
	// "audit.jsonl" in the store's directory (see [Config.AuditLogPath]).
	AuditLog string `toml:"audit_log"`
	// AuditMaxSize is the size in bytes at which the log rotates (default
	// policy.DefaultAuditMaxSize); AuditKeep the number of rotated files
	// kept (default policy.DefaultAuditKeep).
	AuditMaxSize *int64 `toml:"audit_max_size"`
	AuditKeep    *int   `toml:"audit_keep"`
	// Window is the de-duplication window as a Go duration ("60s"); "0s"
	// delivers every alert. Empty means policy.DefaultWindow.
	Window string `toml:"window"`
	// NotifyUser sends alerts as messages to the account's own bare JID
	// (default true).
	NotifyUser *bool `toml:"notify_user"`
	// Command is an absolute path to a program run for every alert with
	// the alert as JSON on its standard input, without a shell;
	// CommandArgs are its arguments and CommandTimeout (a Go duration,
	// default policy.DefaultCommandTimeout) bounds one run.
	Command        string   `toml:"command"`
	CommandArgs    []string `toml:"command_args"`
	CommandTimeout string   `toml:"command_timeout"`
}

// PolicyFileError is a policy file that cannot be read or does not
// compile. It wraps [ErrConfig] and the underlying error, which for a bad
// file is a *policy.ConfigError carrying the line.
type PolicyFileError struct {
	Path string
	Err  error
}

// Error names the file and gives the policy error, with its line.
func (e *PolicyFileError) Error() string {
	return "daemon: config: policy.file: " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns [ErrConfig] and the underlying error.
func (e *PolicyFileError) Unwrap() []error { return []error{ErrConfig, e.Err} }

// LoadPolicy reads and compiles the policy file named by [policy] file.
// Without one it returns policy.Default(). Errors are [*PolicyFileError].
func (c *Config) LoadPolicy() (*policy.Policy, error) {
	if c.Policy.File == "" {
		return policy.Default(), nil
	}
	return LoadPolicyFile(c.Policy.File)
}

// LoadPolicyFile reads and compiles the policy file at path; errors are
// [*PolicyFileError].
func LoadPolicyFile(path string) (*policy.Policy, error) {
	_, p, err := ReadPolicyFile(path)
	return p, err
}

// ReadPolicyFile reads, parses and compiles the policy file at path,
// returning both the parsed file (for its user rules) and the compiled
// policy. Errors are [*PolicyFileError].
func ReadPolicyFile(path string) (*policy.Config, *policy.Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, &PolicyFileError{Path: path, Err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, policy.MaxConfigSize+1))
	if err != nil {
		return nil, nil, &PolicyFileError{Path: path, Err: err}
	}
	// ParseConfig rejects an oversized file itself.
	pc, err := policy.ParseConfig(b)
	if err != nil {
		return nil, nil, &PolicyFileError{Path: path, Err: err}
	}
	p, err := policy.Compile(pc)
	if err != nil {
		return nil, nil, &PolicyFileError{Path: path, Err: err}
	}
	return pc, p, nil
}

func (p PolicyConfig) validate() []error {
	if p.File == "" {
		return nil
	}
	if _, err := LoadPolicyFile(p.File); err != nil {
		return []error{err}
	}
	return nil
}

// AuditLogPath returns the audit log path: [alerts] audit_log, or
// audit.jsonl in the store's directory.
func (c *Config) AuditLogPath() string {
	if c.Alerts.AuditLog != "" {
		return c.Alerts.AuditLog
	}
	return filepath.Join(filepath.Dir(c.Store.Path), DefaultAuditLogName)
}

// parseDuration parses a non-negative Go duration.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write e.g. \"60s\" or \"2m\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// alertWindow returns the gateway's AlertWindow: 0 for the default,
// negative for no de-duplication.
func (a AlertsConfig) alertWindow() (time.Duration, error) {
	if a.Window == "" {
		return 0, nil
	}
	d, err := parseDuration(a.Window)
	if err != nil {
		return 0, err
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

func (a AlertsConfig) commandTimeout() (time.Duration, error) {
	if a.CommandTimeout == "" {
		return policy.DefaultCommandTimeout, nil
	}
	d, err := parseDuration(a.CommandTimeout)
	if err == nil && d == 0 {
		err = errors.New("must be positive")
	}
	return d, err
}

func (a AlertsConfig) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if a.AuditMaxSize != nil && *a.AuditMaxSize < 1 {
		bad("alerts.audit_max_size", "must be a positive number of bytes")
	}
	if a.AuditKeep != nil && *a.AuditKeep < 0 {
		bad("alerts.audit_keep", "must be 0 or more")
	}
	if _, err := a.alertWindow(); err != nil {
		bad("alerts.window", "%v", err)
	}
	if a.Command == "" {
		if len(a.CommandArgs) > 0 {
			bad("alerts.command_args", "needs alerts.command")
		}
		if a.CommandTimeout != "" {
			bad("alerts.command_timeout", "needs alerts.command")
		}
		return errs
	}
	if !filepath.IsAbs(a.Command) {
		bad("alerts.command", "%q: must be an absolute path (it runs without a shell or $PATH lookup)", a.Command)
	} else if st, err := os.Stat(a.Command); err != nil {
		bad("alerts.command", "%v", err)
	} else if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		bad("alerts.command", "%s is not an executable file", a.Command)
	}
	if _, err := a.commandTimeout(); err != nil {
		bad("alerts.command_timeout", "%v", err)
	}
	return errs
}

// alertSinks opens the configured alert sinks: the audit log, the metrics
// counter on reg and, if configured, the command hook behind an
// [policy.AsyncSink]. The returned close function closes them, waiting at
// most until ctx is done for queued command runs; call it after the
// gateway has stopped.
func (c *Config) alertSinks(reg prometheus.Registerer, logger *slog.Logger) ([]policy.Sink, func(ctx context.Context) error, error) {
	a := c.Alerts
	var opts []policy.AuditOption
	if a.AuditMaxSize != nil {
		opts = append(opts, policy.WithMaxSize(*a.AuditMaxSize))
	}
	if a.AuditKeep != nil {
		opts = append(opts, policy.WithKeep(*a.AuditKeep))
	}
	path := c.AuditLogPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("daemon: audit log directory: %w", err)
	}
	audit, err := policy.OpenAuditLog(path, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: %w", err)
	}
	metrics, err := policy.NewMetricsSink(reg)
	if err != nil {
		audit.Close()
		return nil, nil, fmt.Errorf("daemon: %w", err)
	}
	sinks := []policy.Sink{audit, metrics}
	var hook *policy.AsyncSink
	if a.Command != "" {
		timeout, err := a.commandTimeout()
		if err != nil {
			audit.Close()
			return nil, nil, &FieldError{Key: "alerts.command_timeout", Msg: err.Error()}
		}
		cs, err := policy.NewCommandSink(a.Command, a.CommandArgs, timeout)
		if err != nil {
			audit.Close()
			return nil, nil, fmt.Errorf("daemon: %w", err)
		}
		hook = policy.NewAsyncSink(cs, commandQueue, func(err error) {
			logger.Warn("alert command hook failed", "err", err)
		})
		sinks = append(sinks, hook)
	}
	closeAll := func(ctx context.Context) error {
		var errs []error
		if hook != nil {
			if err := hook.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("daemon: alert command hook: %w", err))
			}
			if n := hook.Dropped(); n > 0 {
				logger.Warn("alert command hook dropped alerts", "count", n)
			}
		}
		if err := audit.Close(); err != nil {
			errs = append(errs, fmt.Errorf("daemon: closing audit log: %w", err))
		}
		return errors.Join(errs...)
	}
	logger.Info("alerts", "audit_log", path, "command", a.Command)
	return sinks, closeAll, nil
}
