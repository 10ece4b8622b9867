package e2e

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/e2e/store"
)

// The crash test runs Alice's engine in a child process on a bbolt store,
// kills it with SIGKILL at random points, restarts it, and checks from
// Bob's side that every message the child released decrypts, that no
// message key was ever used for two released messages, and that every
// reply the child acknowledged stays consumed while unacknowledged ones can
// still be opened.

const crashEnv = "SECUREJINGLE_E2E_CRASH_DIR"

// TestHelperCrashChild is the child process; it does nothing in a normal
// test run.
func TestHelperCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("crash child only")
	}
	if err := crashChild(dir); err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func crashChild(dir string) error {
	signer, err := identity.LoadFile(filepath.Join(dir, "alice_key"), nil)
	if err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(dir, "alice.db"))
	if err != nil {
		return err
	}
	clk := newClock()
	e, err := newCertified(nil, Config{JID: "alice@example.org", Signer: signer, Store: st, Now: clk.now})
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "bob_bundle"))
	if err != nil {
		return err
	}
	bu, err := ParseBundle(raw)
	if err != nil {
		return err
	}
	if err := e.AddBundle("bob@example.net", bu); err != nil {
		return err
	}
	bob := Device{"bob@example.net", bu.Device}
	ctxIn := Context{From: "bob@example.net", To: "alice@example.org", StanzaKind: "message", StanzaType: "chat"}
	ctxOut := Context{From: "alice@example.org", To: "bob@example.net", StanzaKind: "message", StanzaType: "chat"}
	// Open every reply Bob wrote so far; report each one opened now.
	if replies, err := os.ReadFile(filepath.Join(dir, "replies")); err == nil {
		for i, line := range strings.Fields(string(replies)) {
			blob, err := base64.StdEncoding.DecodeString(line)
			if err != nil {
				return err
			}
			_, _, err = e.OpenChat(ctxIn, &ChatElement{Blob: blob})
			switch {
			case err == nil:
				fmt.Println("ack", i)
			case errors.Is(err, ErrReplay):
			default:
				return fmt.Errorf("reply %d: %w", i, err)
			}
		}
	}
	for k := 0; k < 100000; k++ {
		el, err := e.SealChat(ctxOut, []Device{bob}, fmt.Sprintf("message %d", k), true)
		if err != nil {
			return err
		}
		fmt.Println("msg", base64.StdEncoding.EncodeToString(el.Blob))
	}
	return nil
}

func TestCrashKillMidRatchet(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in child")
	}
	dir := t.TempDir()
	if _, err := identity.Generate(filepath.Join(dir, "alice_key"), nil, "alice"); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	bob := newTestEngine(t, "bob@example.net", clk)
	if err := os.WriteFile(filepath.Join(dir, "bob_bundle"), bob.Bundle().Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxIn := Context{From: "alice@example.org", To: "bob@example.net", StanzaKind: "message", StanzaType: "chat"}
	ctxOut := Context{From: "bob@example.net", To: "alice@example.org", StanzaKind: "message", StanzaType: "chat"}
	aliceKnown := false
	seen := map[msgID]bool{}
	acked := map[int]bool{}
	var replies []string
	opened := 0
	for run := 0; run < 6; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 20 + rand.IntN(200)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "error":
				t.Fatalf("child: %s", sc.Text())
			case "ack":
				var i int
				fmt.Sscan(f[1], &i)
				if acked[i] {
					t.Fatalf("reply %d acknowledged twice", i)
				}
				acked[i] = true
			case "msg":
				blob, _ := base64.StdEncoding.DecodeString(f[1])
				id := entryID(t, blob)
				if seen[id] {
					t.Fatalf("run %d: message key %v released twice", run, id)
				}
				seen[id] = true
				if _, _, err := bob.OpenChat(ctxIn, &ChatElement{Blob: blob}); err != nil {
					t.Fatalf("run %d: released message %v does not open: %v", run, id, err)
				}
				aliceKnown = true
				opened++
				n++
			}
			if n == killAt {
				cmd.Process.Kill()
				break
			}
		}
		cmd.Wait()
		// Bob answers, so the next run steps the DH ratchet.
		if aliceKnown {
			alice, err := bob.Devices("alice@example.org")
			if err != nil || len(alice) != 1 { // stored from the inline bundle
				t.Fatalf("bob does not know alice's device: %v %v", alice, err)
			}
			el, err := bob.SealChat(ctxOut, alice, fmt.Sprintf("reply %d", run), false)
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, base64.StdEncoding.EncodeToString(el.Blob))
			if err := os.WriteFile(filepath.Join(dir, "replies"), []byte(strings.Join(replies, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if opened < 100 || len(acked) < 3 {
		t.Fatalf("too little happened: %d messages opened, %d replies acknowledged", opened, len(acked))
	}
	t.Logf("%d messages released and opened across 6 killed runs, %d of %d replies acknowledged, no key reused", opened, len(acked), len(replies))
}
