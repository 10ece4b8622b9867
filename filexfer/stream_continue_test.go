package filexfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// cutReceiver returns a Receiver of p that verified the first k chunks of
// data (its attempt was cut inside chunk k).
func cutReceiver(t *testing.T, p StreamParams, data []byte, k int) (*Receiver, string) {
	t.Helper()
	r, dir := newTestReceiver(t, p)
	wire := sendAll(t, p, data, 0)
	cut := StreamHeaderLen + k*(int(p.ChunkSize)+StreamTagLen) + 10
	if err := r.Receive(context.Background(), bytes.NewReader(wire[:cut]), nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut attempt: %v", err)
	}
	if r.Offset() != uint64(k)*uint64(p.ChunkSize) {
		t.Fatalf("offset %d after %d chunks", r.Offset(), k)
	}
	return r, dir
}

// otherSession is p in another session: a fresh key, another sid and
// content, the responder sending (a request).
func otherSession(p StreamParams) StreamParams {
	q := p
	q.Key = make([]byte, SecurityKeyLen)
	rand.Read(q.Key)
	q.SID, q.Content, q.Sender = "sid-2", "file-0", SenderResponder
	return q
}

func TestContinueReceiver(t *testing.T) {
	const n = 6*testChunk + 77
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	for _, k := range []int{0, 1, 3, 6} {
		prev, dir := cutReceiver(t, p, data, k)
		tmp := prev.TempPath()
		q := otherSession(p)
		r, err := ContinueReceiver(context.Background(), prev, q)
		if err != nil {
			t.Fatalf("k=%d: %v", k, err)
		}
		if r.TempPath() != tmp || r.Offset() != prev.Offset() || r.Name() != prev.Name() {
			t.Fatalf("k=%d: the new receiver writes %s from %d, the kept file is %s at %d", k, r.TempPath(), r.Offset(), tmp, prev.Offset())
		}
		// The earlier receiver passed the file on: its Abort keeps it,
		// its Receive and Finish fail.
		if err := prev.Abort(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(tmp); err != nil {
			t.Fatalf("k=%d: the old receiver's Abort removed the continued file: %v", k, err)
		}
		if err := prev.Receive(context.Background(), bytes.NewReader(nil), nil); err == nil {
			t.Fatalf("k=%d: the old receiver still receives", k)
		}
		// An attempt of the old session is refused: another key.
		if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, r.Offset())), nil); !errors.Is(err, ErrTampered) {
			t.Fatalf("k=%d: old session's stream: %v, want ErrTampered", k, err)
		}
		// The new session's stream from the kept offset: nothing before
		// it on the wire, and the whole file verifies.
		off := r.Offset()
		again := sendAll(t, q, data, off)
		if uint64(len(again)) != q.WireSize(off) {
			t.Fatalf("k=%d: %d bytes sent, want %d", k, len(again), q.WireSize(off))
		}
		if err := r.Receive(context.Background(), bytes.NewReader(again), nil); err != nil {
			t.Fatalf("k=%d: continued stream: %v", k, err)
		}
		sum := sha256.Sum256(data)
		path, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]})
		if err != nil {
			t.Fatalf("k=%d: Finish: %v", k, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) || filepath.Base(path) != "report.pdf" {
			t.Fatalf("k=%d: %s differs", k, path)
		}
		if files := dirFiles(t, dir); len(files) != 1 {
			t.Fatalf("k=%d: %v in the directory", k, files)
		}
		if _, err := os.Stat(tmp); !os.IsNotExist(err) {
			t.Fatalf("k=%d: the temporary file stayed: %v", k, err)
		}
	}
}

// A kept prefix altered on disk is hashed as it is: Finish refuses it.
func TestContinueReceiverAlteredPrefix(t *testing.T) {
	const n = 4 * testChunk
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	prev, dir := cutReceiver(t, p, data, 2)
	f, err := os.OpenFile(prev.TempPath(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^data[5]}, 5)
	f.Close()
	q := otherSession(p)
	r, err := ContinueReceiver(context.Background(), prev, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, q, data, r.Offset())), nil); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if _, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("an altered prefix: %v, want ErrHashMismatch", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("left %v", files)
	}
}

func TestContinueReceiverRefusals(t *testing.T) {
	const n = 4*testChunk + 1
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	prev, _ := cutReceiver(t, p, data, 1)
	tmp := prev.TempPath()
	for name, q := range map[string]StreamParams{
		"another size":       func() StreamParams { q := otherSession(p); q.Size++; return q }(),
		"misaligned chunks":  func() StreamParams { q := otherSession(p); q.ChunkSize = testChunk * 3; return q }(),
		"invalid parameters": func() StreamParams { q := otherSession(p); q.Key = q.Key[:5]; return q }(),
	} {
		if _, err := ContinueReceiver(context.Background(), prev, q); !errors.Is(err, ErrStreamParams) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Refused: prev still owns the file.
	if _, err := os.Stat(tmp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ContinueReceiver(ctx, prev, otherSession(p)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// A kept file cut shorter than its verified prefix.
	if err := os.Truncate(tmp, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := ContinueReceiver(context.Background(), prev, otherSession(p)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("shortened kept file: %v", err)
	}
	prev.Abort()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("Abort of a receiver that kept its file left it")
	}
	if _, err := ContinueReceiver(context.Background(), prev, otherSession(p)); !errors.Is(err, ErrStreamParams) {
		t.Fatalf("aborted: %v", err)
	}
	// A receiver that has the whole file is finished, not continued.
	whole, _ := newTestReceiver(t, p)
	if err := whole.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ContinueReceiver(context.Background(), whole, otherSession(p)); !errors.Is(err, ErrStreamParams) {
		t.Fatalf("done: %v", err)
	}
	// Continued twice: the first continuation owns the file.
	prev2, _ := cutReceiver(t, p, data, 2)
	if _, err := ContinueReceiver(context.Background(), prev2, otherSession(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := ContinueReceiver(context.Background(), prev2, otherSession(p)); !errors.Is(err, ErrStreamParams) {
		t.Fatalf("continued twice: %v", err)
	}
}
