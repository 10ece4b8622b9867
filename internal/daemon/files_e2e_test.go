package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// nextFile reads s until a file event for id satisfies cond; the
// transfer ending otherwise fails the test.
func nextFile(t *testing.T, s *api.EventStream, id, what string, cond func(api.TransferInfo) bool) api.TransferInfo {
	t.Helper()
	for {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("waiting for transfer %s %s: %v", id, what, err)
		}
		if ev.Kind != "file" || ev.File == nil || (id != "" && ev.File.ID != id) {
			continue
		}
		x := *ev.File
		if cond(x) {
			return x
		}
		if api.TransferEnded(x.State) {
			t.Fatalf("transfer %s ended %s (%s) before %s", x.ID, x.State, x.Detail, what)
		}
	}
}

// TestFilesEndToEnd: alice sends 1 MiB to bob through her daemon's API;
// bob accepts through his; the file arrives in his download directory
// with the sender's sha-256, and both sides report completed.
func TestFilesEndToEnd(t *testing.T) { filesEndToEnd(t, api.TransportDataChannel) }

// TestFilesEndToEndS5B is TestFilesEndToEnd over SOCKS5 (direct, on
// loopback).
func TestFilesEndToEndS5B(t *testing.T) { filesEndToEnd(t, api.TransportS5BDirect) }

func filesEndToEnd(t *testing.T, transport string) {
	env := daemontest.New(t)
	down := filepath.Join(t.TempDir(), "bob-downloads")
	for _, a := range []*daemontest.Account{env.Alice, env.Bob} {
		a.AppendConfig(t, fmt.Sprintf("[files]\ndownload_dir = %q\ntransports = [%q]\n", down, transport))
	}
	alice := daemontest.StartWith(t, env.Alice, daemon.WithCallLoopback())
	bob := daemontest.StartWith(t, env.Bob, daemon.WithCallLoopback())
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()

	data := make([]byte, 1<<20)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Client.SendFiles(ctx, api.SendFilesRequest{To: env.Bob.JID, Paths: []string{src}, Desc: "the report"})
	if err != nil {
		t.Fatal(err)
	}
	if sent.State != api.TransferOffered || sent.BytesTotal != 1<<20 || sent.Direction != api.TransferOutgoing {
		t.Fatalf("offered: %+v", sent)
	}
	pending := nextFile(t, bobEvents, sent.ID, "pending", func(x api.TransferInfo) bool { return x.State == api.TransferPending })
	if len(pending.Files) != 1 || pending.Files[0].Name != "report.pdf" || pending.Files[0].Desc != "the report" ||
		pending.Files[0].MediaType != "application/pdf" || pending.AccountFingerprint == "" {
		t.Fatalf("pending: %+v", pending)
	}
	if _, err := bob.Client.AcceptTransfer(ctx, sent.ID, ""); err != nil {
		t.Fatal(err)
	}
	done := func(x api.TransferInfo) bool { return x.State == api.TransferCompleted }
	in := nextFile(t, bobEvents, sent.ID, "completed", done)
	out := nextFile(t, aliceEvents, sent.ID, "completed", done)
	sum := sha256.Sum256(data)
	want := fmt.Sprintf("sha-256:%x", sum[:])
	if in.Files[0].Hash != want || out.Files[0].Hash != want {
		t.Fatalf("hashes: received %s, sent %s, want %s", in.Files[0].Hash, out.Files[0].Hash, want)
	}
	if in.Files[0].Path != filepath.Join(down, "report.pdf") || in.Transport != transport {
		t.Fatalf("received: %+v", in)
	}
	got, err := os.ReadFile(in.Files[0].Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the received file differs (%v)", err)
	}
	list, err := alice.Client.Transfers(ctx)
	if err != nil || len(list) != 1 || list[0].State != api.TransferCompleted {
		t.Fatalf("alice's transfers: %+v %v", list, err)
	}
}
