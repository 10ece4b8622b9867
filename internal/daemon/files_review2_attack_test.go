package daemon

// Attacks on the daemon's file bookkeeping found in the second review
// (issue 9), now regression tests.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/api"
)

// TestFileReview2AcceptTwiceForgetsQuota: AcceptTransfer recorded the
// transfer's directory for the quota before the gateway decided, and
// forgot the record when the gateway refused. Accepting a transfer that
// is already under way (the auto-accept took it, or a second accept from
// a script or another client) was refused, and the refusal dropped the
// quota's record of a transfer still bringing its bytes: the next offer
// was measured against a directory that no longer counted it, and
// auto-accepted over the quota. Expected: a refused accept leaves the
// bookkeeping as it was.
func TestFileReview2AcceptTwiceForgetsQuota(t *testing.T) {
	dir := t.TempDir()
	b, f := fileBackend(t, fileSettings{download: dir, quota: 1000})
	pinPeers(t, b)
	b.fileCfg.rules = []autoAccept{{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", dir: dir}}
	accept := b.accepter()
	t1 := f.offer(offerOf("t1", "bob@example.test", 1000), accept)
	if t1.State != api.TransferConnecting {
		t.Fatalf("t1 not auto-accepted: %s", t1.State)
	}
	if _, err := b.AcceptTransfer(context.Background(), "t1", ""); err == nil {
		t.Fatal("a second accept of a transfer under way succeeded")
	}
	if t2 := f.offer(offerOf("t2", "bob@example.test", 1000), accept); t2.State == api.TransferConnecting {
		t.Fatal("after a refused second accept of t1 the quota no longer counts it: t2 was auto-accepted over the quota")
	}
}

// TestFileReview2DownloadChangedInPlace: GET /v1/files/{id}/content
// handed out a received file as long as its path held the same regular
// file of the verified size. A process that rewrote its bytes in place
// (same size, even with the old times put back) had them downloaded as
// the verified file. Expected: the download checks the bytes against the
// hash verified at completion before anything is sent, and refuses with
// ErrConflict.
func TestFileReview2DownloadChangedInPlace(t *testing.T) {
	dir := t.TempDir()
	b, f := fileBackend(t, fileSettings{download: dir})
	data := bytes.Repeat([]byte("verified "), 1000)
	path := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f.set(transfer{ID: "in1", Direction: api.TransferIncoming, Peer: "bob@example.test", State: api.TransferCompleted,
		Files: []transferFile{{Name: "report.pdf", Size: uint64(len(data)), Hash: fmt.Sprintf("sha-256:%x", sum[:]), Path: path,
			Done: uint64(len(data)), State: api.TransferCompleted}}})
	ctx := context.Background()
	fh, _, err := b.OpenReceived(ctx, "in1", 0)
	if err != nil {
		t.Fatalf("the unchanged file: %v", err)
	}
	fh.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("EVIL"), 100); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fh, _, err := b.OpenReceived(ctx, "in1", 0); !errors.Is(err, api.ErrConflict) {
		if fh != nil {
			fh.Close()
		}
		t.Fatalf("a file rewritten in place since it verified: %v, want ErrConflict", err)
	}
}

// TestDownloadHashesOnlyChangedFiles: a download of a received file that
// is unchanged since its bytes last matched is not hashed again (so
// downloads cannot keep the check slots busy), and a rewrite in place,
// even with the times put back, is still found: it sets the change time.
func TestDownloadHashesOnlyChangedFiles(t *testing.T) {
	oldSettle, oldVerify := verifiedSettle, verifySaved
	t.Cleanup(func() { verifiedSettle, verifySaved = oldSettle, oldVerify })
	verifiedSettle = 20 * time.Millisecond
	var hashes atomic.Int32
	verifySaved = func(ctx context.Context, f io.ReaderAt, size uint64, want filexfer.Hash) error {
		hashes.Add(1)
		return oldVerify(ctx, f, size, want)
	}
	dir := t.TempDir()
	b, f := fileBackend(t, fileSettings{download: dir})
	data := bytes.Repeat([]byte("verified "), 1000)
	path := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f.set(transfer{ID: "in1", Direction: api.TransferIncoming, Peer: "bob@example.test", State: api.TransferCompleted,
		Files: []transferFile{{Name: "report.pdf", Size: uint64(len(data)), Hash: fmt.Sprintf("sha-256:%x", sum[:]), Path: path,
			Done: uint64(len(data)), State: api.TransferCompleted}}})
	ctx := context.Background()
	open := func() error {
		fh, _, err := b.OpenReceived(ctx, "in1", 0)
		if fh != nil {
			fh.Close()
		}
		return err
	}
	// Fresh from the disk: hashed every time until its change settles.
	if err := open(); err != nil || hashes.Load() != 1 {
		t.Fatalf("first download: %v, %d hashes", err, hashes.Load())
	}
	time.Sleep(50 * time.Millisecond)
	for i := range 3 {
		if err := open(); err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
	}
	if n := hashes.Load(); n != 2 {
		t.Fatalf("4 downloads of an unchanged file hashed it %d times, want 2 (the second remembered it)", n)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("EVIL"), 100); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := open(); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("a file rewritten in place after it was remembered: %v, want ErrConflict", err)
	}
	if n := hashes.Load(); n != 3 {
		t.Fatalf("the rewritten file was not hashed again: %d hashes", n)
	}
}
