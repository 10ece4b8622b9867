package daemontest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// MaxIVFFrame is the largest frame [WriteIVF] writes: every frame fits
// one RTP packet, so a call carries exactly one packet per frame.
const MaxIVFFrame = 1000

// WriteIVF writes an IVF VP8 file of n frames at 30 fps at path, each a
// key frame (as far as the VP8 payload header says) of random payload
// between 200 and [MaxIVFFrame] bytes, and returns the frames, to compare
// with a recording ([CheckReceived]).
func WriteIVF(t testing.TB, path string, n int) [][]byte {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32) // header size
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], 320)
	binary.LittleEndian.PutUint16(h[14:], 240)
	binary.LittleEndian.PutUint32(h[16:], 30) // timebase denominator (rate)
	binary.LittleEndian.PutUint32(h[20:], 1)  // numerator (scale)
	binary.LittleEndian.PutUint32(h[24:], uint32(n))
	b.Write(h)
	var frames [][]byte
	for i := range n {
		f := make([]byte, 200+(i*263)%(MaxIVFFrame-200+1))
		rand.Read(f)
		f[0] &^= 1 // P bit clear: a key frame
		fh := make([]byte, 12)
		binary.LittleEndian.PutUint32(fh, uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		b.Write(fh)
		b.Write(f)
		frames = append(frames, f)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return frames
}

// ReadIVF returns the frames of an IVF file.
func ReadIVF(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		fr, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, fr)
	}
}
