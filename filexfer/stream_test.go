package filexfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const testChunk = SecurityMinChunkSize // small chunks: many of them in little data

func testParams(t testing.TB, size uint64, cipher string) StreamParams {
	t.Helper()
	key := make([]byte, SecurityKeyLen)
	rand.Read(key)
	return StreamParams{Key: key, Cipher: cipher, ChunkSize: testChunk, SID: "sid-1", Content: "c1", Sender: SenderInitiator, Size: size}
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sendAll returns the wire bytes of one attempt.
func sendAll(t testing.TB, p StreamParams, data []byte, offset uint64) []byte {
	t.Helper()
	var w bytes.Buffer
	if err := SendStream(context.Background(), &w, bytes.NewReader(data), p, offset, StreamOptions{}); err != nil {
		t.Fatalf("SendStream: %v", err)
	}
	if uint64(w.Len()) != p.WireSize(offset) {
		t.Fatalf("wire size %d, WireSize says %d", w.Len(), p.WireSize(offset))
	}
	return w.Bytes()
}

func newTestReceiver(t testing.TB, p StreamParams) (*Receiver, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := NewReceiver(p, dir, "report.pdf", ReceiverOptions{})
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	return r, dir
}

// dirFiles lists the non-hidden files of dir.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestStreamRoundTrip(t *testing.T) {
	sizes := []int{0, 1, testChunk - 1, testChunk, testChunk + 1, 3 * testChunk, 5*testChunk + 17}
	for _, c := range []string{CipherAES256GCM, CipherChaCha20Poly1305} {
		for _, n := range sizes {
			p := testParams(t, uint64(n), c)
			data := randomData(n)
			wire := sendAll(t, p, data, 0)
			r, dir := newTestReceiver(t, p)
			if dirFiles(t, dir) != nil {
				t.Fatalf("a visible file exists before Finish: %v", dirFiles(t, dir))
			}
			var last uint64
			if err := r.Receive(context.Background(), bytes.NewReader(wire), func(d uint64) { last = d }); err != nil {
				t.Fatalf("%s %d bytes: Receive: %v", c, n, err)
			}
			if last != uint64(n) || r.Offset() != uint64(n) || !r.Done() {
				t.Fatalf("%d bytes: progress %d, offset %d, done %v", n, last, r.Offset(), r.Done())
			}
			sum := sha256.Sum256(data)
			path, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]})
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, data) || filepath.Base(path) != "report.pdf" {
				t.Fatalf("%d bytes: wrong file %s (%d bytes)", n, path, len(got))
			}
			if _, err := os.Stat(r.TempPath()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary file left: %v", err)
			}
		}
	}
}

func TestStreamKnownAnswer(t *testing.T) {
	// Pins the wire format of docs/protocol.md: key 00..1f, salt 20..2f,
	// sid "s", content "c", initiator, aes-256-gcm, 1024-byte chunks, a
	// 3-byte file "abc".
	key := make([]byte, 32)
	salt := make([]byte, 16)
	for i := range key {
		key[i] = byte(i)
	}
	for i := range salt {
		salt[i] = byte(0x20 + i)
	}
	p := StreamParams{Key: key, Cipher: CipherAES256GCM, ChunkSize: 1024, SID: "s", Content: "c", Sender: SenderInitiator, Size: 3}
	var w bytes.Buffer
	if err := sendAttempt(context.Background(), &w, strings.NewReader("abc"), p, 0, StreamOptions{}, salt); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(w.Bytes()); got != streamKAT {
		t.Fatalf("wire format changed:\n got %s\nwant %s", got, streamKAT)
	}
}

// streamKAT is the attempt of TestStreamKnownAnswer: header | "abc" sealed.
// It was checked against an independent implementation (Python's
// cryptography package: HKDF-SHA256 and AESGCM), see docs/protocol.md.
const streamKAT = "534a463101000004000000000000000000202122232425262728292a2b2c2d2e2fe3c53ad074f6a6c96cce14db70aa903ddeff03"

func TestStreamResume(t *testing.T) {
	const n = 7*testChunk + 100
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	for cut := 0; cut < int(p.WireSize(0)); cut += 997 {
		r, _ := newTestReceiver(t, p)
		wire := sendAll(t, p, data, 0)
		err := r.Receive(context.Background(), bytes.NewReader(wire[:cut]), nil)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
		}
		off := r.Offset()
		if off%testChunk != 0 || off > uint64(cut) {
			t.Fatalf("cut at %d: offset %d not a verified chunk boundary", cut, off)
		}
		if p.AlignDown(off) != off {
			t.Fatalf("offset %d is not aligned", off)
		}
		// The resumed attempt carries nothing before the offset.
		again := sendAll(t, p, data, off)
		if uint64(len(again)) != p.WireSize(off) {
			t.Fatalf("resume from %d sent %d bytes, want %d", off, len(again), p.WireSize(off))
		}
		if err := r.Receive(context.Background(), bytes.NewReader(again), nil); err != nil {
			t.Fatalf("resume from %d: %v", off, err)
		}
		sum := sha256.Sum256(data)
		path, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]})
		if err != nil {
			t.Fatalf("Finish after resume from %d: %v", off, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Fatalf("resume from %d: content differs", off)
		}
	}
}

func TestStreamResumeWrongStart(t *testing.T) {
	p := testParams(t, 4*testChunk, CipherAES256GCM)
	data := randomData(4 * testChunk)
	r, _ := newTestReceiver(t, p)
	wire := sendAll(t, p, data, 0)
	r.Receive(context.Background(), bytes.NewReader(wire[:StreamHeaderLen+2*(testChunk+StreamTagLen)]), nil)
	if r.Offset() != 2*testChunk {
		t.Fatalf("offset %d", r.Offset())
	}
	// A sender that starts over (or skips ahead) is refused by the header.
	for _, off := range []uint64{0, 3 * testChunk} {
		err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, off)), nil)
		if !errors.Is(err, ErrBadHeader) {
			t.Fatalf("attempt from %d: %v, want ErrBadHeader", off, err)
		}
	}
	if err := SendStream(context.Background(), io.Discard, bytes.NewReader(data), p, 100, StreamOptions{}); !errors.Is(err, ErrStreamParams) {
		t.Fatalf("unaligned offset: %v", err)
	}
}

// splitChunks splits the wire bytes of an attempt into header and chunks.
func splitChunks(p StreamParams, wire []byte) (hdr []byte, cs [][]byte) {
	hdr, rest := wire[:StreamHeaderLen], wire[StreamHeaderLen:]
	for len(rest) > 0 {
		l := min(len(rest), int(p.ChunkSize)+StreamTagLen)
		cs = append(cs, rest[:l])
		rest = rest[l:]
	}
	return hdr, cs
}

func join(hdr []byte, cs [][]byte) []byte {
	out := append([]byte(nil), hdr...)
	for _, c := range cs {
		out = append(out, c...)
	}
	return out
}

func TestStreamTampering(t *testing.T) {
	const n = 4*testChunk + 10
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	wire := sendAll(t, p, data, 0)
	hdr, cs := splitChunks(p, wire)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	full := func(c []byte) []byte { return c } // a full chunk, same length

	cases := []struct {
		name string
		wire []byte
		want error
		off  uint64 // verified bytes expected
	}{
		{"flipped bit in chunk 2", join(hdr, [][]byte{cs[0], cs[1], flip(cs[2], 5), cs[3], cs[4]}), ErrTampered, 2 * testChunk},
		{"flipped bit in a tag", join(hdr, [][]byte{flip(cs[0], testChunk+3), cs[1], cs[2], cs[3], cs[4]}), ErrTampered, 0},
		{"flipped bit in the salt", append(flip(hdr, 20), join(nil, cs)...), ErrTampered, 0},
		{"wrong magic", append(flip(hdr, 0), join(nil, cs)...), ErrBadHeader, 0},
		{"wrong cipher id", append(flip(hdr, 4), join(nil, cs)...), ErrBadHeader, 0},
		{"wrong chunk size", append(flip(hdr, 7), join(nil, cs)...), ErrBadHeader, 0},
		{"dropped chunk", join(hdr, [][]byte{cs[0], cs[2], cs[3], cs[4]}), ErrTampered, testChunk},
		{"reordered chunks", join(hdr, [][]byte{cs[0], cs[2], cs[1], cs[3], cs[4]}), ErrTampered, testChunk},
		{"final chunk dropped", join(hdr, cs[:4]), ErrTruncated, 4 * testChunk},
		{"duplicated chunk", join(hdr, [][]byte{cs[0], full(cs[0]), cs[1], cs[2], cs[3], cs[4]}), ErrTampered, testChunk},
		{"appended chunk", join(hdr, append(append([][]byte{}, cs...), cs[4])), ErrTrailingData, n},
		{"one byte appended", append(bytes.Clone(wire), 0), ErrTrailingData, n},
	}
	for _, c := range cases {
		r, dir := newTestReceiver(t, p)
		err := r.Receive(context.Background(), bytes.NewReader(c.wire), nil)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		var se *StreamError
		if !errors.As(err, &se) {
			t.Errorf("%s: %T is not a *StreamError", c.name, err)
		}
		if r.Offset() != c.off {
			t.Errorf("%s: %d bytes verified, want %d", c.name, r.Offset(), c.off)
		}
		if errors.Is(c.want, ErrTrailingData) {
			// Reported (the gateway alerts), but every chunk of the file
			// verified and the final flag was seen: the file is kept, so
			// that one injected byte cannot force a whole new transfer.
			path, err := r.Finish(Hash{})
			if got, _ := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: the verified file was not kept: %v", c.name, err)
			}
			continue
		}
		if _, err := r.Finish(Hash{}); err == nil {
			t.Errorf("%s: Finish accepted the stream", c.name)
		}
		if f := dirFiles(t, dir); f != nil {
			t.Errorf("%s: a file that looks complete exists: %v", c.name, f)
		}
		r.Abort()
	}
}

func TestStreamBoundToParams(t *testing.T) {
	const n = 2 * testChunk
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	wire := sendAll(t, p, data, 0)
	other := func(f func(*StreamParams)) StreamParams { q := p; q.Key = bytes.Clone(p.Key); f(&q); return q }
	for name, q := range map[string]StreamParams{
		"key":     other(func(q *StreamParams) { q.Key[0] ^= 1 }),
		"sid":     other(func(q *StreamParams) { q.SID = "sid-2" }),
		"content": other(func(q *StreamParams) { q.Content = "c2" }),
		"sender":  other(func(q *StreamParams) { q.Sender = SenderResponder }),
		"size":    other(func(q *StreamParams) { q.Size = n + 1 }),
	} {
		r, _ := newTestReceiver(t, q)
		if err := r.Receive(context.Background(), bytes.NewReader(wire), nil); !errors.Is(err, ErrTampered) {
			t.Errorf("other %s: %v, want ErrTampered", name, err)
		}
		r.Abort()
	}
}

func TestStreamLyingHash(t *testing.T) {
	data := randomData(3000)
	p := testParams(t, 3000, CipherChaCha20Poly1305)
	r, dir := newTestReceiver(t, p)
	if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sum[0] ^= 1
	if _, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("lying hash: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("files left after a hash mismatch: %v", es)
	}
	// A hash of another algorithm than the one computed is a mismatch too.
	r2, _ := newTestReceiver(t, p)
	r2.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil)
	if _, err := r2.Finish(Hash{Algo: "sha-512", Value: make([]byte, 64)}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("other algorithm: %v", err)
	}
}

func TestStreamHashAlgos(t *testing.T) {
	data := randomData(5000)
	for _, algo := range AcceptableHashAlgos() {
		p := testParams(t, 5000, CipherAES256GCM)
		r, err := NewReceiver(p, t.TempDir(), "x", ReceiverOptions{HashAlgo: algo})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := NewHash(algo)
		var w bytes.Buffer
		if err := SendStream(context.Background(), &w, bytes.NewReader(data), p, 0, StreamOptions{Hash: h}); err != nil {
			t.Fatal(err)
		}
		if err := r.Receive(context.Background(), &w, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Finish(Hash{Algo: algo, Value: h.Sum(nil)}); err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
	}
	if _, err := NewReceiver(testParams(t, 1, CipherAES256GCM), t.TempDir(), "x", ReceiverOptions{HashAlgo: "sha-1"}); !errors.Is(err, ErrStreamParams) {
		t.Fatalf("sha-1 accepted: %v", err)
	}
}

// limitedFile is a partFile that fails with ENOSPC past limit bytes.
type limitedFile struct {
	*os.File
	limit int64
}

func (f *limitedFile) WriteAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > f.limit {
		k := max(0, int(f.limit-off))
		f.File.WriteAt(b[:k], off)
		return k, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(b, off)
}

func TestStreamDiskFull(t *testing.T) {
	const n = 5 * testChunk
	data := randomData(n)
	p := testParams(t, n, CipherAES256GCM)
	dir := t.TempDir()
	r, err := newReceiver(p, dir, "big.bin", ReceiverOptions{}, func(path string) (partFile, error) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		return &limitedFile{File: f, limit: 2*testChunk + 500}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("disk full: %v", err)
	}
	if r.Offset() != 2*testChunk {
		t.Fatalf("offset %d after disk full", r.Offset())
	}
	if st, _ := os.Stat(r.TempPath()); st.Size() != 2*testChunk {
		t.Fatalf("partial file is %d bytes, want the verified %d", st.Size(), 2*testChunk)
	}
	if f := dirFiles(t, dir); f != nil {
		t.Fatalf("visible files: %v", f)
	}
	if err := r.Abort(); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("Abort left %v", es)
	}
}

func TestReceiverLimits(t *testing.T) {
	p := testParams(t, 1<<20, CipherAES256GCM)
	if _, err := NewReceiver(p, t.TempDir(), "x", ReceiverOptions{MaxSize: 1 << 19}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := NewReceiver(p, t.TempDir(), "x", ReceiverOptions{MinFree: 1 << 62}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("no space: %v", err)
	}
	for name, q := range map[string]StreamParams{
		"short key":   {Key: make([]byte, 16), Cipher: CipherAES256GCM, ChunkSize: testChunk, SID: "s", Content: "c", Sender: SenderInitiator},
		"cipher":      {Key: make([]byte, 32), Cipher: "urn:xmpp:ciphers:aes-128-gcm-nopadding", ChunkSize: testChunk, SID: "s", Content: "c", Sender: SenderInitiator},
		"small chunk": {Key: make([]byte, 32), Cipher: CipherAES256GCM, ChunkSize: 16, SID: "s", Content: "c", Sender: SenderInitiator},
		"role":        {Key: make([]byte, 32), Cipher: CipherAES256GCM, ChunkSize: testChunk, SID: "s", Content: "c", Sender: "both"},
		"no sid":      {Key: make([]byte, 32), Cipher: CipherAES256GCM, ChunkSize: testChunk, Content: "c", Sender: SenderInitiator},
	} {
		if _, err := NewReceiver(q, t.TempDir(), "x", ReceiverOptions{}); !errors.Is(err, ErrStreamParams) {
			t.Errorf("%s: %v", name, err)
		}
		if err := SendStream(context.Background(), io.Discard, strings.NewReader(""), q, 0, StreamOptions{}); !errors.Is(err, ErrStreamParams) {
			t.Errorf("send %s: %v", name, err)
		}
	}
}

func TestReceiverTempFile(t *testing.T) {
	p := testParams(t, 10, CipherAES256GCM)
	r, dir := newTestReceiver(t, p)
	st, err := os.Stat(r.TempPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || filepath.Dir(r.TempPath()) != dir || !strings.HasPrefix(filepath.Base(r.TempPath()), ".") {
		t.Fatalf("temporary file %s mode %v", r.TempPath(), st.Mode())
	}
	if _, err := r.Finish(Hash{}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Finish before the data: %v", err)
	}
}

func TestSourceChanged(t *testing.T) {
	p := testParams(t, 3*testChunk, CipherAES256GCM)
	err := SendStream(context.Background(), io.Discard, bytes.NewReader(randomData(2*testChunk)), p, 0, StreamOptions{})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("short source: %v", err)
	}
}

func TestStreamCancel(t *testing.T) {
	p := testParams(t, 3*testChunk, CipherAES256GCM)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SendStream(ctx, io.Discard, bytes.NewReader(randomData(3*testChunk)), p, 0, StreamOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("send: %v", err)
	}
	r, _ := newTestReceiver(t, p)
	wire := sendAll(t, p, randomData(3*testChunk), 0)
	if err := r.Receive(ctx, bytes.NewReader(wire), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("receive: %v", err)
	}
}

func TestParamsArithmetic(t *testing.T) {
	cs := uint64(testChunk)
	for _, c := range []struct{ size, chunks, align, off uint64 }{
		{0, 1, 0, 0},
		{1, 1, 0, 1},
		{cs, 1, 0, cs},
		{cs + 1, 2, cs, cs + 1},
		{2 * cs, 2, cs, 5 * cs},
		{MaxOfferedSize, (MaxOfferedSize-1)/cs + 1, (MaxOfferedSize - 1) / cs * cs, MaxOfferedSize},
	} {
		p := StreamParams{ChunkSize: testChunk, Size: c.size}
		if p.Chunks() != c.chunks || p.AlignDown(c.off) != c.align {
			t.Errorf("size %d: chunks %d align(%d) %d, want %d %d", c.size, p.Chunks(), c.off, p.AlignDown(c.off), c.chunks, c.align)
		}
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("é", 200) + ".txt"
	for in, want := range map[string]string{
		"report.pdf":              "report.pdf",
		"../../etc/passwd":        "passwd",
		`..\..\windows\win.ini`:   "win.ini",
		"/":                       "file",
		"..":                      "file",
		".bashrc":                 "bashrc",
		"a\x00b\nc\x1b[31m.txt":   "abc[31m.txt",
		"invoice\u202Efdp.exe":    "invoicefdp.exe",
		"zero\u200bwidth":         "zerowidth",
		"  spaced . ":             "spaced",
		"-rf":                     "_-rf",
		"bad\xffutf8":             "bad_utf8",
		"":                        "file",
		"name.":                   "name",
		"ok (1).tar.gz":           "ok (1).tar.gz",
		strings.Repeat("a", 1000): strings.Repeat("a", maxNameLen),
	} {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	got := SanitizeName(long)
	if len(got) > maxNameLen || !strings.HasSuffix(got, ".txt") || !strings.HasPrefix(got, "é") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("long name cut badly: %q (%d bytes)", got, len(got))
	}
}

func TestFinishNeverOverwrites(t *testing.T) {
	data := randomData(100)
	p := testParams(t, 100, CipherAES256GCM)
	dir := t.TempDir()
	for _, existing := range []string{"photo.jpg", "photo (1).jpg"} {
		os.WriteFile(filepath.Join(dir, existing), []byte("mine"), 0o600)
	}
	r, err := NewReceiver(p, dir, "../photo.jpg", ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil); err != nil {
		t.Fatal(err)
	}
	path, err := r.Finish(Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "photo (2).jpg" || filepath.Dir(path) != dir {
		t.Fatalf("placed at %s", path)
	}
	for _, existing := range []string{"photo.jpg", "photo (1).jpg"} {
		if b, _ := os.ReadFile(filepath.Join(dir, existing)); string(b) != "mine" {
			t.Fatalf("%s was overwritten", existing)
		}
	}
}

// TestStreamRandomFaults cuts and corrupts a stream at random points: the
// receiver never accepts a wrong file, never panics, and always resumes to
// the right one.
func TestStreamRandomFaults(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	const n = 9*testChunk + 333
	data := randomData(n)
	sum := sha256.Sum256(data)
	p := testParams(t, n, CipherAES256GCM)
	for trial := 0; trial < 40; trial++ {
		r, _ := newTestReceiver(t, p)
		for attempts := 0; !r.Done(); attempts++ {
			if attempts > 50 {
				t.Fatalf("trial %d: no progress", trial)
			}
			wire := sendAll(t, p, data, r.Offset())
			switch rng.IntN(3) {
			case 0: // cut
				wire = wire[:rng.IntN(len(wire)+1)]
			case 1: // flip a bit
				i := rng.IntN(len(wire))
				wire[i] ^= 1 << rng.IntN(8)
			}
			before := r.Offset()
			err := r.Receive(context.Background(), bytes.NewReader(wire), nil)
			if err == nil && !r.Done() {
				t.Fatalf("trial %d: nil error without the end", trial)
			}
			if r.Offset() < before {
				t.Fatalf("trial %d: verified bytes went back", trial)
			}
		}
		path, err := r.Finish(Hash{Algo: "sha-256", Value: sum[:]})
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Fatalf("trial %d: wrong content", trial)
		}
	}
}

func FuzzStreamReceive(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	p := StreamParams{Key: key, Cipher: CipherAES256GCM, ChunkSize: testChunk, SID: "s", Content: "c", Sender: SenderInitiator, Size: 2*testChunk + 5}
	var w bytes.Buffer
	SendStream(context.Background(), &w, bytes.NewReader(make([]byte, p.Size)), p, 0, StreamOptions{})
	f.Add(w.Bytes())
	f.Add([]byte("SJF1"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, wire []byte) {
		r, err := newReceiver(p, dir, "f", ReceiverOptions{}, func(string) (partFile, error) { return &memFile{}, nil })
		if err != nil {
			t.Fatal(err)
		}
		defer r.Abort()
		if err := r.Receive(context.Background(), bytes.NewReader(wire), nil); err == nil {
			if !r.Done() || r.Offset() != p.Size {
				t.Fatal("accepted without the whole file")
			}
		}
		if r.Offset()%testChunk != 0 && r.Offset() != p.Size {
			t.Fatalf("unaligned offset %d", r.Offset())
		}
	})
}

// memFile is an in-memory partFile.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}
func (m *memFile) Truncate(n int64) error { m.b = m.b[:n]; return nil }
func (m *memFile) Sync() error            { return nil }
func (m *memFile) Close() error           { return nil }
