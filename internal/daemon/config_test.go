package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/access"
)

// exampleConfig returns the example configuration of docs/api.md, so the
// documentation cannot drift from what Load accepts.
func exampleConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```toml\n")
	if !ok {
		t.Fatal("docs/api.md has no toml example")
	}
	ex, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated toml example")
	}
	return ex
}

// examplePolicy returns the example policy file of docs/api.md (the toml
// block that starts with "# policy.toml").
func examplePolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```toml\n# policy.toml\n")
	if !ok {
		t.Fatal("docs/api.md has no policy example")
	}
	ex, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated policy example")
	}
	return ex
}

func TestExampleConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(examplePolicy(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "daemon.toml")
	if err := os.WriteFile(path, []byte(exampleConfig(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Account.JID != "alice@example.org/laptop" || c.Account.Server != "xmpp.example.org:5222" ||
		len(c.Account.PasswordCommand) != 3 || c.Account.PasswordCommand[0] != "pass" {
		t.Fatalf("account %+v", c.Account)
	}
	if c.Keys.File != filepath.Join(dir, "identity_ed25519") || c.Store.Path != filepath.Join(dir, "state.db") {
		t.Fatalf("relative paths not resolved against the file: %q %q", c.Keys.File, c.Store.Path)
	}
	if c.SocketPath() != "/run/user/1000/securejingle/api.sock" {
		t.Fatalf("socket %q", c.SocketPath())
	}
	ac, err := c.Access.config()
	if err != nil || ac.Mode != access.RosterOnly || ac.Rate != 0.2 || ac.Burst != 5 || ac.MaxPending != 64 {
		t.Fatalf("access %+v %v", ac, err)
	}
	if !c.HasPolicy() || c.Policy.File != filepath.Join(dir, "policy.toml") {
		t.Fatalf("[policy] file %q", c.Policy.File)
	}
	p, err := c.LoadPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if rs := p.Rules(); len(rs) < 3 || rs[0].Name != "no-cleartext-from-work" || rs[1].Name != "quiet-calls-from-verified" {
		t.Fatalf("example policy rules %+v", rs)
	}
	if c.AuditLogPath() != filepath.Join(dir, "audit.jsonl") || *c.Alerts.AuditKeep != 5 || !*c.Alerts.NotifyUser {
		t.Fatalf("alerts %+v", c.Alerts)
	}
	if w, err := c.Alerts.alertWindow(); err != nil || w != time.Minute {
		t.Fatalf("window %v %v", w, err)
	}
}

const minimal = `
[account]
jid = "alice@example.test"
password = "s3cret"
[keys]
file = "/k"
[store]
path = "/s.db"
`

func TestMinimalDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "/")
	if err != nil {
		t.Fatal(err)
	}
	ac, err := c.Access.config()
	if err != nil || !reflect.DeepEqual(ac, defaultAccess()) {
		t.Fatalf("access defaults %+v %v", ac, err)
	}
	if c.HasPolicy() {
		t.Fatal("no [policy] table, but HasPolicy")
	}
	pw, err := c.Account.password(context.Background())
	if err != nil || pw != "s3cret" {
		t.Fatalf("password: %v", err)
	}
}

func defaultAccess() access.Config {
	ac := access.DefaultConfig()
	ac.Mode = access.RosterOnly
	return ac
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		extra string
		key   string
	}{
		{"[account]\npasword = \"x\"", "account.pasword"},
		{"[acount]\njid = \"x\"", "acount"},
		{"[access]\nmode = \"roster\"\nburts = 3", "access.burts"},
		{"[api]\nsocket = \"/x\"\nport = 8080", "api.port"},
		{"verbose = true", "verbose"},
	} {
		src := minimal + tc.extra
		if !strings.HasPrefix(tc.extra, "[") {
			src = tc.extra + "\n" + minimal
		}
		if strings.HasPrefix(tc.extra, "[account]") {
			src = strings.Replace(minimal, "[account]", tc.extra, 1)
		}
		_, err := Parse([]byte(src), "/")
		var uk *UnknownKeysError
		if !errors.As(err, &uk) || !errors.Is(err, ErrConfig) {
			t.Errorf("%q: want UnknownKeysError, got %v", tc.extra, err)
			continue
		}
		found := false
		for _, k := range uk.Keys {
			found = found || k == tc.key || strings.HasPrefix(k, tc.key+".")
		}
		if !found {
			t.Errorf("%q: error names %v, want %s", tc.extra, uk.Keys, tc.key)
		}
	}
	// [policy] and [alerts] are as strict as the rest.
	for _, tc := range []struct{ extra, key string }{
		{"[policy]\nreserved = true\n", "policy.reserved"},
		{"[policy]\nfile = \"p.toml\"\n[policy.rules]\nx = 1\n", "policy.rules"},
		{"[alerts]\nwindow = \"5s\"\nwindwo = \"5s\"\n", "alerts.windwo"},
		{"[alerts]\naudit = \"x\"\n", "alerts.audit"},
	} {
		_, err := Parse([]byte(minimal+tc.extra), "/")
		var uk *UnknownKeysError
		if !errors.As(err, &uk) || !slices.ContainsFunc(uk.Keys, func(k string) bool { return k == tc.key || strings.HasPrefix(k, tc.key+".") }) {
			t.Errorf("%q: want unknown key %s, got %v", tc.extra, tc.key, err)
		}
	}
}

func TestBadValues(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(minimal, old, new, 1) }
	for _, tc := range []struct {
		src string
		key string
	}{
		{replace(`jid = "alice@example.test"`, `jid = "example.test"`), "account.jid"},
		{replace(`jid = "alice@example.test"`, `jid = "a@@b"`), "account.jid"},
		{replace(`password = "s3cret"`, ``), "account.password"},
		{replace(`password = "s3cret"`, "password = \"x\"\npassword_command = [\"echo\"]"), "account.password"},
		{replace(`password = "s3cret"`, `password_command = [""]`), "account.password_command"},
		{minimal + "\n[account.x]\n", ""}, // unknown: covered above
		{replace(`password = "s3cret"`, "password = \"x\"\nserver = \"localhost\""), "account.server"},
		{replace(`password = "s3cret"`, "password = \"x\"\nserver = \"localhost:0\""), "account.server"},
		{replace(`password = "s3cret"`, "password = \"x\"\nserver = \"localhost:99999\""), "account.server"},
		{replace(`password = "s3cret"`, "password = \"x\"\npin_sha256 = \"abcd\""), "account.pin_sha256"},
		{replace(`password = "s3cret"`, "password = \"x\"\nca_file = \"/nonexistent/ca.pem\""), "account.ca_file"},
		{replace(`file = "/k"`, `backend = "gpg"`), "keys.backend"},
		{replace(`file = "/k"`, `backend = "file"`), "keys.file"},
		{replace(`file = "/k"`, "backend = \"agent\"\nagent_key = \"MD5:xx\""), "keys.agent_key"},
		{replace(`file = "/k"`, "backend = \"agent\"\nfile = \"/k\""), "keys.backend"},
		{replace("[store]\npath = \"/s.db\"", ""), "store.path"},
		{minimal + "[access]\nmode = \"everyone\"\n", "access.mode"},
		{minimal + "[access]\nmode = \"domains\"\n", "access.domains"},
		{minimal + "[access]\ndomains = [\"example.org\"]\n", "access.domains"},
		{minimal + "[access]\nmode = \"domains\"\ndomains = [\"*.\"]\n", "access.domains"},
		{minimal + "[access]\nrate = 0.0\n", "access.rate"},
		{minimal + "[access]\nrate = -1.0\n", "access.rate"},
		{minimal + "[access]\nburst = 0\n", "access.burst"},
		{minimal + "[access]\nmax_pending = -3\n", "access.max_pending"},
		{minimal + "[api]\nsocket = \"/" + strings.Repeat("s", 120) + "\"\n", "api.socket"},
		{minimal + "[log]\nlevel = \"loud\"\n", "log.level"},
		{minimal + "[log]\nformat = \"xml\"\n", "log.format"},
	} {
		if tc.key == "" {
			continue
		}
		_, err := Parse([]byte(tc.src), "/")
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrConfig) {
			t.Errorf("want a FieldError for %s, got %v", tc.key, err)
			continue
		}
		if fe.Key != tc.key {
			t.Errorf("error %v names %s, want %s", err, fe.Key, tc.key)
		}
	}
	// Type errors and syntax errors are configuration errors too.
	for _, src := range []string{minimal + "[access]\nrate = \"fast\"\n", "policy = 3\n" + minimal, minimal + "[alerts]\nwindow = 60\n", minimal + "[log\n", replace(`password = "s3cret"`, `password = 3`)} {
		if _, err := Parse([]byte(src), "/"); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: want ErrConfig, got %v", src, err)
		}
	}
}

func TestSecretDoesNotPrint(t *testing.T) {
	c, err := Parse([]byte(minimal), "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.Account.Password.String(), c.Account.Password.GoString(), c.Account.Password.LogValue().String()} {
		if strings.Contains(s, "s3cret") {
			t.Fatalf("password printed: %q", s)
		}
	}
}

func TestPasswordCommand(t *testing.T) {
	sh, err := exec.LookPath("printf")
	if err != nil {
		t.Skip("no printf binary")
	}
	a := AccountConfig{PasswordCommand: []string{sh, "first line; $(no shell)\\r\\nsecond\\n"}}
	pw, err := a.password(context.Background())
	if err != nil || pw != "first line; $(no shell)" {
		t.Fatalf("password %q, %v", pw, err)
	}
	a = AccountConfig{PasswordCommand: []string{sh, ""}}
	if _, err := a.password(context.Background()); err == nil {
		t.Fatal("empty output accepted")
	}
	a = AccountConfig{PasswordCommand: []string{filepath.Join(t.TempDir(), "missing")}}
	if _, err := a.password(context.Background()); err == nil {
		t.Fatal("missing program accepted")
	}
}

func TestPin(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	a := AccountConfig{PinSHA256: hex.EncodeToString(sum[:])}
	cfg, err := a.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.InsecureSkipVerify || cfg.VerifyConnection == nil {
		t.Fatal("a pin without ca_file must replace chain verification with the pin check")
	}
	if err := cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}); err != nil {
		t.Fatalf("pinned key refused: %v", err)
	}
	sum[0] ^= 1
	a.PinSHA256 = hex.EncodeToString(sum[:])
	cfg, _ = a.tlsConfig()
	if err := cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}); !errors.Is(err, errPinMismatch) {
		t.Fatalf("other key accepted: %v", err)
	}
	if err := cfg.VerifyConnection(tls.ConnectionState{}); !errors.Is(err, errPinMismatch) {
		t.Fatalf("no certificate accepted: %v", err)
	}
}
