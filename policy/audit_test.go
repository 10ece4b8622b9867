package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "POLICY_AUDIT_CRASH_CHILD"

func testAlert(seq int) Alert {
	return Alert{
		ID:       "seq-" + strconv.Itoa(seq),
		Time:     time.Unix(1700000000, int64(seq)).UTC(),
		Facts:    Facts{Kind: KindFileTransfer, Direction: DirectionIncoming, PeerJID: "bob@example.net", Protection: ProtectionCleartext},
		Decision: Decision{Action: ActionRefuse, Severity: SeverityCritical, Rule: "default-refuse-cleartext-channels", Index: 1, Message: "m"},
		Count:    1,
	}
}

// TestAuditCrash re-executes the test binary as a child that appends alerts
// and prints "ACK n" after each Send returns; the parent SIGKILLs it and
// checks that every acknowledged alert is in the file, intact.
func TestAuditCrash(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		auditCrashChild(path)
		return
	}
	for _, killAfter := range []int{1, 57, 301} {
		t.Run(strconv.Itoa(killAfter), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			cmd := exec.Command(os.Args[0], "-test.run=^TestAuditCrash$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			last := -1
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				s, ok := strings.CutPrefix(sc.Text(), "ACK ")
				if !ok {
					continue
				}
				n, err := strconv.Atoi(s)
				if err != nil || n != last+1 {
					t.Fatalf("bad ack %q after %d", sc.Text(), last)
				}
				last = n
				if last+1 == killAfter {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
			_ = cmd.Wait()
			if last+1 != killAfter {
				t.Fatalf("child stopped after %d acks", last+1)
			}
			alerts, err := ReadAudit(path)
			if err != nil && !errors.Is(err, ErrTornTail) {
				t.Fatal(err)
			}
			if len(alerts) < killAfter {
				t.Fatalf("%d alerts on disk, %d acknowledged", len(alerts), killAfter)
			}
			for i, a := range alerts {
				want := testAlert(i)
				if a.ID != want.ID || !a.Time.Equal(want.Time) || a.Facts != want.Facts || a.Decision != want.Decision {
					t.Fatalf("alert %d damaged: %+v", i, a)
				}
			}
			// Reopening repairs any torn tail and keeps appending cleanly.
			l, err := OpenAuditLog(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Send(context.Background(), testAlert(len(alerts))); err != nil {
				t.Fatal(err)
			}
			l.Close()
			again, err := ReadAudit(path)
			if err != nil || len(again) != len(alerts)+1 {
				t.Fatalf("after reopen: %d alerts, %v", len(again), err)
			}
		})
	}
}

func auditCrashChild(path string) {
	l, err := OpenAuditLog(path, WithMaxSize(1<<30))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; i < 1_000_000; i++ {
		if err := l.Send(context.Background(), testAlert(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("ACK %d\n", i)
	}
	os.Exit(3)
}

func TestAuditTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Send(context.Background(), testAlert(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	for name, tail := range map[string]string{
		"unterminated":      lines[0][:len(lines[0])/2],
		"unterminated json": strings.TrimSuffix(lines[0], "\n"),
		"garbage line":      "\x00\x00\x00\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.jsonl")
			if err := os.WriteFile(p, append(append([]byte(nil), data...), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadAudit(p)
			if !errors.Is(err, ErrTornTail) || len(got) != 3 {
				t.Fatalf("%d alerts, err %v", len(got), err)
			}
			l, err := OpenAuditLog(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Send(context.Background(), testAlert(3)); err != nil {
				t.Fatal(err)
			}
			l.Close()
			if got, err := ReadAudit(p); err != nil || len(got) != 4 {
				t.Fatalf("after repair: %d alerts, err %v", len(got), err)
			}
		})
	}
	// Damage in the middle is not a torn tail.
	p := filepath.Join(t.TempDir(), "b.jsonl")
	os.WriteFile(p, []byte(lines[0]+"{bad\n"+lines[1]), 0o600)
	got, err := ReadAudit(p)
	var le *AuditLineError
	if !errors.As(err, &le) || le.Line != 2 || len(got) != 1 || errors.Is(err, ErrTornTail) {
		t.Fatalf("%d alerts, err %v", len(got), err)
	}
}

func TestAuditRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	const maxSize, keep, total = 2048, 3, 100
	l, err := OpenAuditLog(path, WithMaxSize(maxSize), WithKeep(keep))
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		if err := l.Send(context.Background(), testAlert(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Send(context.Background(), testAlert(0)); err == nil {
		t.Fatal("Send after Close succeeded")
	}
	if _, err := os.Stat(path + "." + strconv.Itoa(keep+1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("more than %d rotated files kept: %v", keep, err)
	}
	// Oldest file first: path.3, path.2, path.1, path.
	var all []Alert
	for i := keep; i >= 0; i-- {
		p := path
		if i > 0 {
			p += "." + strconv.Itoa(i)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Fatalf("%s is %d bytes", p, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", p, st.Mode())
		}
		got, err := ReadAudit(p)
		if err != nil || len(got) == 0 {
			t.Fatalf("%s: %d alerts, %v", p, len(got), err)
		}
		all = append(all, got...)
	}
	first := total - len(all)
	if first <= 0 {
		t.Fatal("nothing was rotated away")
	}
	for i, a := range all {
		if a.ID != testAlert(first+i).ID {
			t.Fatalf("alert %d is %s, want %s", i, a.ID, testAlert(first+i).ID)
		}
	}
}

func TestAuditKeepZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLog(path, WithMaxSize(600), WithKeep(0))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 10 {
		if err := l.Send(context.Background(), testAlert(i)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadAudit(path)
	if err != nil || len(got) == 0 || got[len(got)-1].ID != "seq-9" {
		t.Fatalf("%d, %v", len(got), err)
	}
	if _, err := os.Stat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rotated file kept")
	}
}
