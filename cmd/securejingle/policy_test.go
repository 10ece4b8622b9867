package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/policy"
)

// runCmd runs a registered command and returns its output.
func runCmd(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	c, ok := commands[name]
	if !ok {
		t.Fatalf("command %q not registered", name)
	}
	var o, e bytes.Buffer
	err = c.run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// testPolicy has two rules, on lines 2 and 9.
const testPolicy = `# test policy
[[rule]]
name = "work-cleartext"
kind = ["chat", "stanza"]
peer = "*@work.example"
protection = "cleartext"
action = "refuse"

[[rule]]
kind = "media-call"
trust = "verified"
on_roster = true
action = "allow"
`

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tableRows returns the rows of a printed rule table as fields, keyed by
// their index column.
func tableRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] != "#" && strings.Trim(f[0], "0123456789") == "" {
			rows[f[0]] = f
		}
	}
	return rows
}

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "policy.toml", testPolicy)
	out, _, err := runCmd(t, "policy", "check", file)
	if err != nil {
		t.Fatal(err)
	}
	rows := tableRows(t, out)
	p, _ := policy.Load([]byte(testPolicy))
	all := p.Rules()
	if len(rows) != len(all) {
		t.Fatalf("%d rows for %d rules:\n%s", len(rows), len(all), out)
	}
	first, second, last := rows["0"], rows["1"], rows[strconv.Itoa(len(all)-1)]
	if first[1] != "work-cleartext" || first[len(first)-1] != file+":2" || first[len(first)-3] != "refuse" ||
		!strings.Contains(out, "kind=chat,stanza peer=*@work.example protection=cleartext") {
		t.Fatalf("first row %q in\n%s", first, out)
	}
	if second[1] != "rule-2" || second[len(second)-1] != file+":9" || second[len(second)-3] != "allow" || second[len(second)-2] != "info" {
		t.Fatalf("second row %q", second)
	}
	if last[1] != all[len(all)-1].Name || last[len(last)-1] != "catch-all" {
		t.Fatalf("last row %q", last)
	}
	// Every built-in rule is listed after the file's, in order.
	for i, r := range all[2:] {
		if row := rows[strconv.Itoa(i+2)]; row[1] != r.Name {
			t.Fatalf("row %d is %q, want %s", i+2, row, r.Name)
		}
	}

	// The same table through a daemon configuration that names the file.
	cfg := writeFile(t, dir, "daemon.toml", `[account]
jid = "alice@example.test"
password = "x"
[keys]
file = "k"
[store]
path = "state.db"
[policy]
file = "policy.toml"
`)
	out2, _, err := runCmd(t, "policy", "check", "-config", cfg)
	if err != nil || out2 != out {
		t.Fatalf("check -config: %v\n%s\nwant\n%s", err, out2, out)
	}
}

func TestPolicyCheckErrors(t *testing.T) {
	dir := t.TempDir()
	// Line 4: an action that does not exist.
	bad := writeFile(t, dir, "bad.toml", "[[rule]]\nname = \"x\"\nkind = \"chat\"\naction = \"drop\"\n")
	_, _, err := runCmd(t, "policy", "check", bad)
	var ce *policy.ConfigError
	if !errors.As(err, &ce) || ce.Line != 4 || !errors.Is(err, policy.ErrInvalidValue) {
		t.Fatalf("bad file: %v", err)
	}
	if !strings.HasPrefix(err.Error(), bad+": ") {
		t.Fatalf("error does not name the file first: %v", err)
	}
	// An unknown key, on line 3.
	typo := writeFile(t, dir, "typo.toml", "[[rule]]\naction = \"flag\"\nprotecton = \"cleartext\"\n")
	_, _, err = runCmd(t, "policy", "check", typo)
	if !errors.As(err, &ce) || ce.Line != 3 || !errors.Is(err, policy.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	// Through a daemon configuration the error is a configuration error.
	cfg := writeFile(t, dir, "daemon.toml", "[account]\njid = \"a@b.test\"\npassword = \"x\"\n[keys]\nfile = \"k\"\n[store]\npath = \"s.db\"\n[policy]\nfile = \"bad.toml\"\n")
	_, _, err = runCmd(t, "policy", "check", "-config", cfg)
	var pe *daemon.PolicyFileError
	if !errors.As(err, &pe) || !errors.As(err, &ce) || ce.Line != 4 || !errors.Is(err, daemon.ErrConfig) {
		t.Fatalf("check -config with a bad file: %v", err)
	}
	if _, _, err := runCmd(t, "policy", "check", filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	for _, args := range [][]string{{"check"}, {"check", bad, bad}, {"check", bad, "-config", cfg}, {}, {"frobnicate"}} {
		if _, _, err := runCmd(t, "policy", args...); err == nil {
			t.Errorf("policy %q succeeded", args)
		}
	}
	// Exit status through run: 1 for a bad file.
	var o, e bytes.Buffer
	if code := run([]string{"policy", "check", bad}, &o, &e); code != 1 {
		t.Fatalf("exit status %d", code)
	}
}

func TestPolicyExplain(t *testing.T) {
	file := writeFile(t, t.TempDir(), "policy.toml", testPolicy)
	out, _, err := runCmd(t, "policy", "explain", "-file", file, "-kind", "chat", "-protection", "cleartext",
		"-secured-session", "-peer", "bob@example.org", "-direction", "incoming", "-on-roster")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := policy.Load([]byte(testPolicy))
	f := policy.Facts{Kind: policy.KindChat, Protection: policy.ProtectionCleartext, SecuredSession: true,
		PeerJID: "bob@example.org", Direction: policy.DirectionIncoming, OnRoster: true}
	d := p.Decide(f)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	steps := p.Explain(f)
	// facts, one line per step, decision, message.
	if len(lines) != len(steps)+3 {
		t.Fatalf("%d lines for %d steps:\n%s", len(lines), len(steps), out)
	}
	if !strings.HasPrefix(lines[0], "facts: kind=chat direction=incoming peer=bob@example.org") {
		t.Fatalf("facts line %q", lines[0])
	}
	// The first rule fails on its peer pattern (its kind matches), the
	// second on its kind.
	if want := "  #0 work-cleartext (" + file + ":2): skipped: peer is bob@example.org, the rule wants *@work.example"; lines[1] != want {
		t.Fatalf("step 0:\n%q\nwant\n%q", lines[1], want)
	}
	if !strings.HasPrefix(lines[2], "  #1 rule-2 ("+file+":9): skipped: kind is chat, the rule wants media-call (and 1 more)") {
		t.Fatalf("step 1 %q", lines[2])
	}
	if want := "  #" + strconv.Itoa(d.Index) + " " + d.Rule + " (built-in): matches"; lines[len(steps)] != want || d.Rule != "default-refuse-cleartext-downgrade" {
		t.Fatalf("matched step %q, want %q", lines[len(steps)], want)
	}
	if want := "decision: refuse, severity critical, by rule #" + strconv.Itoa(d.Index) + " " + d.Rule; lines[len(steps)+1] != want {
		t.Fatalf("decision line %q, want %q", lines[len(steps)+1], want)
	}

	// Without a file: the built-in rules.
	out, _, err = runCmd(t, "policy", "explain", "-kind", "file-transfer", "-protection", "cleartext")
	if err != nil || !strings.Contains(out, "decision: refuse, severity critical, by rule #3 default-refuse-cleartext-channels") {
		t.Fatalf("default policy: %v\n%s", err, out)
	}

	// Bad facts are errors.
	for _, args := range [][]string{
		{"-kind", "telegram"},
		{"-kind", "chat", "-trust", "maybe"},
		{"-kind", "chat", "-protection", "rot13"},
		{"-kind", "chat", "-direction", "sideways"},
		{"-kind", "chat", "-signaling", "smoke"},
	} {
		_, _, err := runCmd(t, "policy", append([]string{"explain"}, args...)...)
		if !errors.Is(err, policy.ErrInvalidValue) {
			t.Errorf("%q: %v", args, err)
		}
	}
	if _, _, err := runCmd(t, "policy", "explain", "-protection", "cleartext"); err == nil {
		t.Error("explain without -kind succeeded")
	}
	if _, _, err := runCmd(t, "policy", "explain", "-kind", "chat", "-device", "4294967296"); err == nil {
		t.Error("device id beyond 32 bits accepted")
	}
}

func TestPolicyDefaults(t *testing.T) {
	out, _, err := runCmd(t, "policy", "defaults")
	if err != nil || out != policy.DefaultConfigTOML {
		t.Fatalf("defaults: %v", err)
	}
	// What it prints compiles to the built-in table.
	p, err := policy.Load([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(p.Rules()), len(policy.Default().Rules()); got != want {
		t.Fatalf("%d rules, want %d", got, want)
	}
}
