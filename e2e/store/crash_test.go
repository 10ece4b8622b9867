package store_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
)

// crashDBEnv names the database the crash-writer child process writes to;
// crashSealedEnv, set to 1, makes it seal the database.
const (
	crashDBEnv     = "SECUREJINGLE_STORE_CRASH_DB"
	crashSealedEnv = "SECUREJINGLE_STORE_CRASH_SEALED"
)

// openCrashStore opens the crash test's database, sealed or not.
func openCrashStore(path string, sealed bool) (store.Store, error) {
	s, err := store.OpenBolt(path)
	if err != nil || !sealed {
		return s, err
	}
	ss, err := store.Sealed(s, fixedKey(9, nil))
	if err != nil {
		s.Close()
		return nil, err
	}
	return ss, nil
}

// crashBlob is the 4 KiB blob stored with counter n: SHA-256 blocks over n.
func crashBlob(n uint64) []byte {
	blob := make([]byte, 0, 4096)
	var seed [16]byte
	binary.BigEndian.PutUint64(seed[:8], n)
	for i := uint64(0); len(blob) < 4096; i++ {
		binary.BigEndian.PutUint64(seed[8:], i)
		sum := sha256.Sum256(seed[:])
		blob = append(blob, sum[:]...)
	}
	return blob
}

// readCrashState returns the counter stored in the database, checking the
// invariants a crash must not break.
func readCrashState(tx store.Tx) (uint64, error) {
	a, errA := tx.Get("crash/a", "counter")
	b, errB := tx.Get("crash/b", "counter")
	blob, errBlob := tx.Get("crash/a", "blob")
	if errors.Is(errA, store.ErrNotFound) && errors.Is(errB, store.ErrNotFound) && errors.Is(errBlob, store.ErrNotFound) {
		return 0, nil
	}
	if err := errors.Join(errA, errB, errBlob); err != nil {
		return 0, fmt.Errorf("partial state: %w", err)
	}
	if !bytes.Equal(a, b) || len(a) != 8 {
		return 0, fmt.Errorf("torn update: counters %x and %x", a, b)
	}
	n := binary.BigEndian.Uint64(a)
	if !bytes.Equal(blob, crashBlob(n)) {
		return 0, fmt.Errorf("blob does not match counter %d", n)
	}
	return n, nil
}

// TestHelperCrashWriter is the child process of TestBoltCrash. It does
// nothing unless crashDBEnv is set. It commits Updates in a loop and prints
// each counter once Update has returned nil, until it is killed.
func TestHelperCrashWriter(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("helper process for TestBoltCrash")
	}
	s, err := openCrashStore(path, os.Getenv(crashSealedEnv) == "1")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var n uint64
	if err := s.View(func(tx store.Tx) (err error) { n, err = readCrashState(tx); return err }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	// Bounded in case the parent dies without killing us.
	for range 100000 {
		n++
		err := s.Update(func(tx store.Tx) error {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], n)
			if err := tx.Put("crash/a", "counter", v[:]); err != nil {
				return err
			}
			if err := tx.Put("crash/a", "blob", crashBlob(n)); err != nil {
				return err
			}
			return tx.Put("crash/b", "counter", v[:])
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(out, n)
		if err := out.Flush(); err != nil {
			os.Exit(3) // parent gone
		}
	}
	os.Exit(0)
}

// TestBoltCrash kills a writer process with SIGKILL at a random point and
// checks that the database reopens with a consistent state that includes
// every acknowledged transaction.
func TestBoltCrash(t *testing.T) { testCrash(t, false) }

// TestSealedBoltCrash is TestBoltCrash over a sealed bbolt store: sealing
// keeps the inner store's crash safety.
func TestSealedBoltCrash(t *testing.T) { testCrash(t, true) }

func testCrash(t *testing.T, sealed bool) {
	if testing.Short() {
		t.Skip("spawns writer processes")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	var last uint64 // last acknowledged counter over all runs
	for run := range 4 {
		killAfter := 20 + rand.IntN(181) // acknowledged commits before the kill
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashSealedEnv+"="+map[bool]string{true: "1"}[sealed])
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		acked := 0
		for acked < killAfter && sc.Scan() {
			n, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: child printed %q", run, sc.Text())
			}
			if n <= last {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: child acknowledged %d after %d: counter went back", run, n, last)
			}
			last = n
			acked++
		}
		// Let the child run on for a random moment, so that the kill lands
		// anywhere in its next transaction or commit.
		for range rand.IntN(2000) {
			runtime.Gosched()
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if acked < killAfter {
			t.Fatalf("run %d: child stopped after %d acknowledgements (%v): %s", run, acked, err, stderr.Bytes())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %d: child exit: %v", run, err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child was not killed by SIGKILL: %v: %s", run, err, stderr.Bytes())
		}

		s, err := openCrashStore(path, sealed)
		if err != nil {
			t.Fatalf("run %d: reopen after kill: %v", run, err)
		}
		var stored uint64
		err = s.View(func(tx store.Tx) (err error) { stored, err = readCrashState(tx); return err })
		s.Close()
		if err != nil {
			t.Fatalf("run %d: after kill: %v", run, err)
		}
		if stored < last {
			t.Fatalf("run %d: stored counter %d < last acknowledged %d: acknowledged commit lost", run, stored, last)
		}
		t.Logf("run %d: killed after %d acks, last ack %d, stored %d", run, acked, last, stored)
		last = stored // the next child continues from what is stored
	}
}
