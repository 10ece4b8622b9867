package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/policy"
)

// testAlerts returns n alerts from alice, the last a summary.
func testAlerts(n int) []policy.Alert {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var out []policy.Alert
	for i := range n {
		a := policy.Alert{
			ID:   "ALERT" + strconv.Itoa(i),
			Time: t0.Add(time.Duration(i) * time.Minute),
			Facts: policy.Facts{Kind: policy.KindChat, Direction: policy.DirectionIncoming, PeerJID: "alice@example.test",
				Protection: policy.ProtectionCleartext, SecuredSession: true, Signaling: policy.SignalingNone},
			Decision: policy.Decision{Action: policy.ActionFlag, Severity: policy.SeverityWarning,
				Rule: "default-flag-cleartext-downgrade", Index: 4, Message: "downgrade\tattempt " + strconv.Itoa(i)},
			Count: 1,
		}
		if i == n-1 {
			a.Summary, a.Count, a.Since = true, 41, t0.Add(time.Duration(i-1)*time.Minute)
		}
		out = append(out, a)
	}
	return out
}

// writeAudit writes alerts with policy.OpenAuditLog and returns the path.
func writeAudit(t *testing.T, path string, alerts []policy.Alert, opts ...policy.AuditOption) string {
	t.Helper()
	l, err := policy.OpenAuditLog(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if err := l.Send(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonAlerts decodes the output of alerts -json.
func jsonAlerts(t *testing.T, out string) []policy.Alert {
	t.Helper()
	var as []policy.Alert
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var a policy.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		as = append(as, a)
	}
	return as
}

func sameAlerts(got, want []policy.Alert) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || !g.Time.Equal(w.Time) || g.Facts != w.Facts || g.Decision != w.Decision ||
			g.Count != w.Count || g.Summary != w.Summary || !g.Since.Equal(w.Since) {
			return false
		}
	}
	return true
}

func TestAlertsCommand(t *testing.T) {
	dir := t.TempDir()
	all := testAlerts(5)
	path := writeAudit(t, filepath.Join(dir, "audit.jsonl"), all)

	// -json -n 3: the newest three, oldest first.
	out, _, err := runCmd(t, "alerts", "-audit", path, "-n", "3", "-json")
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonAlerts(t, out); !sameAlerts(got, all[2:]) {
		t.Fatalf("alerts -n 3 -json: %+v", got)
	}

	// The table: a header, one row per alert, the summary with its count
	// and window start; tabs in messages do not split cells.
	out, _, err = runCmd(t, "alerts", "-audit", path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("table:\n%s", out)
	}
	if !strings.HasPrefix(lines[1], "2026-11-25T12:00:00Z") || !strings.HasSuffix(lines[1], "downgrade attempt 0") {
		t.Fatalf("first row %q", lines[1])
	}
	if f := strings.Fields(lines[5]); len(f) < 9 || f[1] != "warning" || f[2] != "flag" || f[3] != "chat" ||
		f[4] != "alice@example.test" || f[5] != "41" || f[6] != "since" || f[7] != "2026-11-25T12:03:00Z" {
		t.Fatalf("summary row %q", lines[5])
	}

	// A torn last line is reported on stderr, not fatal.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"TORN","time":"2026-11-25T13:`)
	f.Close()
	out, errOut, err := runCmd(t, "alerts", "-audit", path, "-json", "-n", "0")
	if err != nil {
		t.Fatalf("torn tail is fatal: %v", err)
	}
	if got := jsonAlerts(t, out); !sameAlerts(got, all) {
		t.Fatalf("with a torn tail: %+v", got)
	}
	if !strings.Contains(errOut, path) {
		t.Fatalf("torn tail not reported on stderr: %q", errOut)
	}

	// Damage in the middle is an error, after the alerts before it.
	bad := filepath.Join(dir, "bad.jsonl")
	good := writeAudit(t, filepath.Join(dir, "good.jsonl"), all[:2])
	b, _ := os.ReadFile(good)
	if err := os.WriteFile(bad, append(append(b, "not json\n"...), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCmd(t, "alerts", "-audit", bad, "-json")
	var le *policy.AuditLineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Fatalf("damaged log: %v", err)
	}
	if got := jsonAlerts(t, out); !sameAlerts(got, all[:2]) {
		t.Fatalf("alerts before the damage: %+v", got)
	}

	// No log yet.
	out, _, err = runCmd(t, "alerts", "-audit", filepath.Join(dir, "none.jsonl"))
	if err != nil || !strings.HasPrefix(out, "no alerts") {
		t.Fatalf("missing log: %v %q", err, out)
	}

	for _, args := range [][]string{{"-n", "-1"}, {"-audit", path, "-config", path}, {"extra"}} {
		if _, _, err := runCmd(t, "alerts", args...); err == nil {
			t.Errorf("alerts %q succeeded", args)
		}
	}
}

// TestAlertsRotatedAndConfig: the default log next to the store of a
// daemon configuration, read across rotation.
func TestAlertsRotatedAndConfig(t *testing.T) {
	dir := t.TempDir()
	all := testAlerts(30)
	// Small files: a few alerts each, so the log rotates several times.
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeAudit(t, filepath.Join(dir, "data", "audit.jsonl"), all, policy.WithMaxSize(2048), policy.WithKeep(50))
	if _, err := os.Stat(filepath.Join(dir, "data", "audit.jsonl.3")); err != nil {
		t.Fatalf("the log did not rotate: %v", err)
	}
	cfg := writeFile(t, dir, "daemon.toml", "[account]\njid = \"bob@example.test\"\npassword = \"x\"\n[keys]\nfile = \"k\"\n[store]\npath = \"data/state.db\"\n")
	for _, n := range []int{0, 1, 7, 25, 30, 100} {
		out, _, err := runCmd(t, "alerts", "-config", cfg, "-json", "-n", strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		want := all
		if n > 0 && n < len(all) {
			want = all[len(all)-n:]
		}
		if got := jsonAlerts(t, out); !sameAlerts(got, want) {
			t.Fatalf("-n %d: %d alerts, want %d", n, len(got), len(want))
		}
	}
}
