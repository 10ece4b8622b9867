package filexfer

// Attack PoCs against the file stream and the Receiver (review h/rvstream),
// kept as regression tests. Each TestAttack* test asserts the property
// that should hold; each failed on the code under review.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestAttackFreeSpaceOvercommit: the free-space check of NewReceiver
// counts only the disk's current free space, not what other Receivers in
// the same directory have already been promised. A peer that offers two
// (or N) files, each just under the free space, gets them all accepted;
// together they fill the disk far past MinFree.
func TestAttackFreeSpaceOvercommit(t *testing.T) {
	dir := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Skip(err)
	}
	free := st.Bavail * uint64(st.Bsize)
	size := free / 3 * 2 // each fits alone, two do not
	var rs []*Receiver
	for i := 0; i < 2; i++ {
		p := testParams(t, size, CipherAES256GCM)
		p.Content = fmt.Sprintf("c%d", i)
		r, err := NewReceiver(p, dir, "big.bin", ReceiverOptions{MinFree: 1 << 20})
		if err != nil {
			if i == 1 && errors.Is(err, ErrNoSpace) {
				return // the second one was refused: what should happen
			}
			t.Fatalf("receiver %d: %v", i, err)
		}
		rs = append(rs, r)
		defer r.Abort()
	}
	t.Errorf("two receivers of %d bytes each accepted with %d bytes free: the check does not reserve space (disk can be filled past MinFree)", size, free)
}

// cancelAwareReader serves data, then records whether the Receiver went
// on reading the transport after its ctx was cancelled. A real transport
// would block there as long as the sender keeps the stream open.
type cancelAwareReader struct {
	r               io.Reader
	ctx             context.Context
	readAfterCancel bool
}

func (c *cancelAwareReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n == 0 && c.ctx.Err() != nil {
		c.readAfterCancel = true
		return 0, io.EOF // the test's stand-in for "blocks forever"
	}
	return n, err
}

// TestAttackReceiveHangsAfterFinalChunk: after the final chunk verified,
// Receive waits for the end of the stream without looking at ctx. A sender
// (or a server) that keeps the stream open after the final chunk holds
// Receive (and the goroutine, the file and the buffer) forever even after
// the caller cancelled, unless the caller also closes the transport.
// Every byte is already authenticated at that point, so the wait buys no
// security.
func TestAttackReceiveHangsAfterFinalChunk(t *testing.T) {
	p := testParams(t, 3*testChunk, CipherAES256GCM)
	data := randomData(3 * testChunk)
	r, _ := newTestReceiver(t, p)
	defer r.Abort()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &cancelAwareReader{r: bytes.NewReader(sendAll(t, p, data, 0)), ctx: ctx}
	err := r.Receive(ctx, src, func(done uint64) {
		if done == p.Size {
			cancel() // the user (or an idle timer) gives up now
		}
	})
	if src.readAfterCancel {
		t.Errorf("Receive blocked in the transport after ctx was cancelled (err %v): a sender that never closes hangs it", err)
	}
}

// TestAttackTrailingBytePoisons: one byte injected after a fully verified
// final chunk poisons the Receiver for good: the file (every chunk
// authenticated, the final flag seen) is thrown away and no resume is
// possible, so a network attacker forces a complete re-transfer of an
// arbitrarily large file with one byte, where cutting the stream would
// only cost a resume of the last chunk.
func TestAttackTrailingBytePoisons(t *testing.T) {
	const n = 8 * testChunk
	p := testParams(t, n, CipherAES256GCM)
	data := randomData(n)
	r, _ := newTestReceiver(t, p)
	defer r.Abort()
	wire := append(sendAll(t, p, data, 0), 'x')
	if err := r.Receive(context.Background(), bytes.NewReader(wire), nil); !errors.Is(err, ErrTrailingData) {
		t.Fatalf("got %v, want ErrTrailingData", err)
	}
	// Every byte is verified on disk.
	if r.Offset() != n {
		t.Fatalf("offset %d", r.Offset())
	}
	// A clean new attempt cannot repair it either.
	err2 := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, p.AlignDown(n-1))), nil)
	if _, err := r.Finish(Hash{}); err != nil {
		t.Errorf("a fully verified file is discarded because 1 byte followed it (retry: %v; Finish: %v): a 1-byte injection forces a full re-transfer", err2, err)
	}
}

// TestAttackNameInvisibleChars: SanitizeName removes Cc and Cf but keeps
// other invisible or layout characters a peer can use to disguise a name
// or break the line it is shown on: line/paragraph separators (Zl, Zp),
// wide Unicode spaces (kept even at the ends, where the doc says spaces
// are trimmed), Hangul fillers, Braille blank. "invoice.pdf<U+2028>.exe"
// shows as "invoice.pdf" on its first line; "<U+2003>.bashrc" shows as a
// dot file.
func TestAttackNameInvisibleChars(t *testing.T) {
	for _, in := range []string{
		"invoice.pdf\u2028.exe",                   // LINE SEPARATOR
		"invoice.pdf\u2029.exe",                   // PARAGRAPH SEPARATOR
		"\u2003.bashrc",                           // EM SPACE at the start
		"report.pdf\u3000",                        // IDEOGRAPHIC SPACE at the end: extension ".pdf\u3000"
		"photo.jpg\u3164\u3164\u3164.sh",          // HANGUL FILLER (Lo, renders blank)
		"photo.jpg\u2800\u2800\u2800.sh",          // BRAILLE PATTERN BLANK
		"a" + strings.Repeat("\u00a0", 200) + "b", // the cut leaves a trailing NBSP
	} {
		got := SanitizeName(in)
		for i, r := range got {
			bad := unicode.In(r, unicode.Zl, unicode.Zp) || r == '\u3164' || r == '\u2800' || r == '\u115f' || r == '\u1160' || r == '\uffa0'
			if (i == 0 || i+utf8.RuneLen(r) == len(got)) && unicode.IsSpace(r) {
				bad = true
			}
			if bad {
				t.Errorf("SanitizeName(%q) = %q keeps invisible %U at byte %d", in, got, r, i)
				break
			}
		}
	}
}

// TestAttackNameCutSurfacesExtension: when a long name's extension is
// longer than 32 bytes it is dropped and the base is cut, which can make
// an inner extension the final one: the offer shows "...exe.<long>" (an
// unknown type) and the saved file ends in ".exe".
func TestAttackNameCutSurfacesExtension(t *testing.T) {
	in := strings.Repeat("A", maxNameLen-4) + ".exe." + strings.Repeat("z", 40)
	got := SanitizeName(in)
	if filepath.Ext(got) != filepath.Ext(in) && filepath.Ext(got) != "" {
		t.Errorf("SanitizeName(%d-byte name with extension %q) = ...%q: the saved file has extension %q", len(in), filepath.Ext(in)[:8]+"...", got[len(got)-10:], filepath.Ext(got))
	}
}

// TestAttackPlaceFailureDeletesFile: when Finish cannot place the file
// (here all 1000 numbered names taken; in the field also ENAMETOOLONG on
// file systems with a NAME_MAX below 255 bytes, such as eCryptfs' 143, for
// any peer-chosen long name), it deletes the fully verified download and
// tells the user to "move some away": advice that cannot help, the data
// is gone and must be transferred again.
func TestAttackPlaceFailureDeletesFile(t *testing.T) {
	data := randomData(100)
	p := testParams(t, 100, CipherAES256GCM)
	dir := t.TempDir()
	for k := 0; k < maxNameTries; k++ {
		if err := os.WriteFile(filepath.Join(dir, numberedName("photo.jpg", k)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReceiver(p, dir, "photo.jpg", ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil); err != nil {
		t.Fatal(err)
	}
	_, err = r.Finish(Hash{})
	if err == nil {
		t.Fatal("placed")
	}
	if _, serr := os.Stat(r.TempPath()); serr != nil {
		t.Errorf("Finish failed (%v) and deleted the verified download (%v): the advice cannot be followed, the file must be sent again", err, serr)
	}
}

// FuzzAttackSanitizeName checks the invariants a download-directory name
// needs, on any input.
func FuzzAttackSanitizeName(f *testing.F) {
	for _, s := range []string{"report.pdf", "../../x", ".bashrc", "-rf", "a\u202eb", strings.Repeat("é", 300) + ".txt", "\xff\xfe", " . ", "x." + strings.Repeat("y", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SanitizeName(in)
		switch {
		case !utf8.ValidString(got):
			t.Fatalf("invalid UTF-8 %q", got)
		case got == "" || got == "." || got == "..":
			t.Fatalf("%q", got)
		case strings.ContainsAny(got, "/\\\x00"):
			t.Fatalf("separator in %q", got)
		case strings.HasPrefix(got, ".") || strings.HasPrefix(got, "-") || strings.HasPrefix(got, " "):
			t.Fatalf("bad start %q", got)
		case len(got) > maxNameLen || len(numberedName(got, maxNameTries-1)) > 255:
			t.Fatalf("too long %d", len(got))
		case strings.HasSuffix(got, " ") || strings.HasSuffix(got, "."):
			t.Fatalf("bad end %q", got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("%U in %q", r, got)
			}
		}
		if again := SanitizeName(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, got, again)
		}
	})
}

// FuzzAttackReceiveStructured mutates valid attempts (cuts, bit flips,
// chunk splices between two attempts and two transfers, insertions) over
// several resumes: whatever is accepted must be chunks the sender sealed,
// and the verified offset never goes back or leaves a chunk boundary.
func FuzzAttackReceiveStructured(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	p := StreamParams{Key: key, Cipher: CipherChaCha20Poly1305, ChunkSize: testChunk, SID: "s", Content: "c", Sender: SenderInitiator, Size: 4*testChunk + 5}
	other := p
	other.Content = "d"
	data := bytes.Repeat([]byte("0123456789abcdef"), int(p.Size)/16+1)[:p.Size]
	data2 := bytes.Repeat([]byte("fedcba9876543210"), int(p.Size)/16+1)[:p.Size]
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, ops []byte) {
		mf := &memFile{}
		r, err := newReceiver(p, dir, "f", ReceiverOptions{}, func(string) (partFile, error) { return mf, nil })
		if err != nil {
			t.Fatal(err)
		}
		defer r.Abort()
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for attempt := 0; attempt < 6 && !r.Done(); attempt++ {
			var a, b, c bytes.Buffer
			off := r.Offset()
			SendStream(context.Background(), &a, bytes.NewReader(data), p, off, StreamOptions{})
			SendStream(context.Background(), &b, bytes.NewReader(data2), p, off, StreamOptions{}) // the same transfer, a changed source
			SendStream(context.Background(), &c, bytes.NewReader(data), other, p.AlignDown(uint64(next())*100), StreamOptions{})
			wire := a.Bytes()
			for k := int(next() % 4); k > 0; k-- {
				pos := (int(next())<<8 | int(next())) % (len(wire) + 1)
				switch next() % 5 {
				case 0:
					wire = wire[:pos]
				case 1:
					if pos < len(wire) {
						wire[pos] ^= 1 << (next() % 8)
					}
				case 2: // splice from the other attempt or transfer
					src := b.Bytes()
					if next()%2 == 0 {
						src = c.Bytes()
					}
					from := (int(next())<<8 | int(next())) % (len(src) + 1)
					l := int(next()) * 8
					seg := src[from:min(len(src), from+l)]
					wire = append(append(append([]byte{}, wire[:pos]...), seg...), wire[min(len(wire), pos+len(seg)):]...)
				case 3:
					wire = append(append(append([]byte{}, wire[:pos]...), next()), wire[pos:]...)
				case 4: // replay the header of another attempt
					if next()%2 == 0 {
						copy(wire, b.Bytes()[:StreamHeaderLen])
					}
				}
			}
			err := r.Receive(context.Background(), bytes.NewReader(wire), nil)
			if r.Offset() < off || (r.Offset()%testChunk != 0 && r.Offset() != p.Size) {
				t.Fatalf("offset %d -> %d", off, r.Offset())
			}
			// Every verified chunk is one the sender sealed for this
			// transfer at that index: of data, or of data2 (the changed
			// source, which the sender really sent).
			for i := uint64(0); i*testChunk < r.Offset(); i++ {
				lo, hi := i*testChunk, min((i+1)*testChunk, r.Offset())
				if !bytes.Equal(mf.b[lo:hi], data[lo:hi]) && !bytes.Equal(mf.b[lo:hi], data2[lo:hi]) {
					t.Fatalf("verified chunk %d is not the sender's", i)
				}
			}
			if err == nil && !r.Done() {
				t.Fatal("nil error before the end")
			}
			if r.Done() {
				return
			}
		}
	})
}

// TestAttackReplayStaleAttempt: attempts of one transfer share key, sid,
// content and size; the salt is the sender's alone, and nothing the
// receiver chose goes into an attempt's keys. So a recorded attempt that
// made no progress (the attacker cut it after the header, or after any
// part of its first chunk) can be replayed in place of the sender's next
// attempt from the same offset. If the sender's file changed in between
// (same size), the receiver stores the old version as a complete,
// authenticated file; with a zero want (or a hash the sender computes
// from what it reads on the resume, StreamOptions.Hash) nothing notices.
// The spec (§14.8.5) says a replayed stream fails the first chunk only
// for another session, content or direction.
func TestAttackReplayStaleAttempt(t *testing.T) {
	const n = 3 * testChunk
	p := testParams(t, n, CipherAES256GCM)
	v1, v2 := randomData(n), randomData(n)
	r, _ := newTestReceiver(t, p)
	defer r.Abort()
	recorded := sendAll(t, p, v1, 0) // attempt 1: the attacker records it ...
	if err := r.Receive(context.Background(), bytes.NewReader(recorded[:StreamHeaderLen+10]), nil); !errors.Is(err, ErrTruncated) {
		t.Fatal(err) // ... and cuts it before the first chunk completes
	}
	_ = sendAll(t, p, v2, r.Offset()) // attempt 2: the sender now sends v2; the attacker drops it ...
	if err := r.Receive(context.Background(), bytes.NewReader(recorded), nil); err != nil {
		t.Logf("replay refused: %v", err) // ... and replays attempt 1
		return
	}
	path, err := r.Finish(Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); bytes.Equal(got, v1) {
		t.Errorf("a replayed earlier attempt was accepted in place of the current one: the receiver stored the stale version")
	}
}
