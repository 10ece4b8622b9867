package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/policy"
)

// refuseCleartextPolicy refuses cleartext chat; its rule header is on
// line 2.
const refuseCleartextPolicy = `# test policy
[[rule]]
name = "refuse-cleartext-chat"
kind = "chat"
protection = "cleartext"
action = "refuse"
`

// writeExecutable writes a small script and returns its path.
func writeExecutable(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\ncat >/dev/null\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyAlertsConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(refuseCleartextPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := writeExecutable(t, dir)
	src := minimal + `
[policy]
file = "policy.toml"

[alerts]
audit_log = "logs/audit.jsonl"
audit_max_size = 1048576
audit_keep = 3
window = "90s"
notify_user = false
command = "` + hook + `"
command_args = ["--alert", "x"]
command_timeout = "2s"
`
	cfgPath := filepath.Join(dir, "daemon.toml")
	if err := os.WriteFile(cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.File != filepath.Join(dir, "policy.toml") || !c.HasPolicy() {
		t.Fatalf("policy.file %q not resolved against the config's directory", c.Policy.File)
	}
	if got := c.AuditLogPath(); got != filepath.Join(dir, "logs", "audit.jsonl") {
		t.Fatalf("audit log %q", got)
	}
	a := c.Alerts
	if *a.AuditMaxSize != 1<<20 || *a.AuditKeep != 3 || *a.NotifyUser || a.Command != hook ||
		len(a.CommandArgs) != 2 || a.CommandArgs[0] != "--alert" {
		t.Fatalf("alerts %+v", a)
	}
	if w, err := a.alertWindow(); err != nil || w != 90*time.Second {
		t.Fatalf("window %v %v", w, err)
	}
	if d, err := a.commandTimeout(); err != nil || d != 2*time.Second {
		t.Fatalf("command timeout %v %v", d, err)
	}
	p, err := c.LoadPolicy()
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(policy.Facts{Kind: policy.KindChat, Protection: policy.ProtectionCleartext, SecuredSession: true})
	if d.Action != policy.ActionRefuse || d.Rule != "refuse-cleartext-chat" {
		t.Fatalf("decision %+v", d)
	}
}

func TestPolicyAlertsDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "/")
	if err != nil {
		t.Fatal(err)
	}
	if c.HasPolicy() {
		t.Fatal("HasPolicy without a file")
	}
	if p, err := c.LoadPolicy(); err != nil || p != policy.Default() {
		t.Fatalf("no policy file: %v %v", p, err)
	}
	if got := c.AuditLogPath(); got != "/audit.jsonl" {
		t.Fatalf("default audit log %q, want next to /s.db", got)
	}
	if w, err := c.Alerts.alertWindow(); err != nil || w != 0 {
		t.Fatalf("default window %v %v", w, err)
	}
	if d, err := c.Alerts.commandTimeout(); err != nil || d != policy.DefaultCommandTimeout {
		t.Fatalf("default command timeout %v %v", d, err)
	}
	// "0s" turns de-duplication off, which the gateway spells negative.
	c, err = Parse([]byte(minimal+"[alerts]\nwindow = \"0s\"\n"), "/")
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := c.Alerts.alertWindow(); w >= 0 {
		t.Fatalf("window 0s gives %v, want negative", w)
	}
	// A relative audit_log is relative to the file, not the store.
	c, err = Parse([]byte(minimal+"[alerts]\naudit_log = \"a.jsonl\"\n"), "/etc/sj")
	if err != nil || c.AuditLogPath() != "/etc/sj/a.jsonl" {
		t.Fatalf("relative audit_log: %v %v", c, err)
	}
}

func TestPolicyAlertsBadValues(t *testing.T) {
	dir := t.TempDir()
	hook := writeExecutable(t, dir)
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ extra, key string }{
		{`window = "60 seconds"`, "alerts.window"},
		{`window = "-5s"`, "alerts.window"},
		{`window = "60"`, "alerts.window"},
		{`audit_max_size = 0`, "alerts.audit_max_size"},
		{`audit_keep = -1`, "alerts.audit_keep"},
		{`command = "hook"`, "alerts.command"},
		{`command = "` + filepath.Join(dir, "missing") + `"`, "alerts.command"},
		{`command = "` + notExec + `"`, "alerts.command"},
		{`command = "` + dir + `"`, "alerts.command"},
		{`command_args = ["x"]`, "alerts.command_args"},
		{`command_timeout = "5s"`, "alerts.command_timeout"},
		{"command = \"" + hook + "\"\ncommand_timeout = \"0s\"", "alerts.command_timeout"},
		{"command = \"" + hook + "\"\ncommand_timeout = \"soon\"", "alerts.command_timeout"},
	} {
		_, err := Parse([]byte(minimal+"[alerts]\n"+tc.extra+"\n"), dir)
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: want a FieldError, got %v", tc.extra, err)
			continue
		}
		if fe.Key != tc.key {
			t.Errorf("%s: error %v names %s, want %s", tc.extra, err, fe.Key, tc.key)
		}
	}
}

func TestPolicyFileErrors(t *testing.T) {
	dir := t.TempDir()
	// An unknown action on line 4 of the policy file.
	bad := "[[rule]]\nname = \"x\"\nkind = \"chat\"\naction = \"drop\"\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.toml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(minimal+"[policy]\nfile = \"bad.toml\"\n"), dir)
	var pe *PolicyFileError
	var ce *policy.ConfigError
	if !errors.As(err, &pe) || !errors.As(err, &ce) || !errors.Is(err, ErrConfig) || !errors.Is(err, policy.ErrInvalidValue) {
		t.Fatalf("bad policy file: %v", err)
	}
	if pe.Path != filepath.Join(dir, "bad.toml") || ce.Line != 4 || ce.Key != "action" {
		t.Fatalf("error names %q line %d key %q: %v", pe.Path, ce.Line, ce.Key, err)
	}
	if !strings.Contains(err.Error(), pe.Path) {
		t.Fatalf("message does not name the file: %v", err)
	}

	// A syntax error keeps its line too.
	if err := os.WriteFile(filepath.Join(dir, "syntax.toml"), []byte("[[rule]]\naction = \"flag\"\nkind = [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Parse([]byte(minimal+"[policy]\nfile = \"syntax.toml\"\n"), dir)
	if !errors.As(err, &ce) || ce.Line == 0 {
		t.Fatalf("syntax error: %v", err)
	}

	_, err = Parse([]byte(minimal+"[policy]\nfile = \"missing.toml\"\n"), dir)
	if !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrConfig) {
		t.Fatalf("missing policy file: %v", err)
	}
}
