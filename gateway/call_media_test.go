package gateway

// Test media: Ogg Opus and IVF VP8 files of random payloads, and readers
// to compare a recording with its source. (Interim, until internal/rtcpeer
// provides its generator and ComparePayloads.)

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// writeTestOpus writes n 20 ms Opus packets of random payload (valid TOC
// byte) to path.
func writeTestOpus(t testing.TB, path string, n int) {
	t.Helper()
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := make([]byte, 60+i%40)
		rand.Read(p)
		p[0] = 0xfc // CELT fullband 20 ms, stereo, one frame
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i),
			Timestamp: uint32(i * 960), SSRC: 1}, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeTestIVF writes n VP8 frames of random payload (every one marked a
// key frame; some larger than one RTP packet) at 30 fps to path.
func writeTestIVF(t testing.TB, path string, n int) {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[4:], 0)
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], 320)
	binary.LittleEndian.PutUint16(h[14:], 240)
	binary.LittleEndian.PutUint32(h[16:], 30) // timebase denominator (rate)
	binary.LittleEndian.PutUint32(h[20:], 1)  // numerator (scale)
	binary.LittleEndian.PutUint32(h[24:], uint32(n))
	b.Write(h)
	for i := range n {
		f := make([]byte, 300+(i%5)*700) // up to 3100 bytes: fragmented
		rand.Read(f)
		f[0] &^= 1 // key frame
		fh := make([]byte, 12)
		binary.LittleEndian.PutUint32(fh, uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		b.Write(fh)
		b.Write(f)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// opusPayloads returns the audio packets of an Ogg Opus file.
func opusPayloads(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		p, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(p) >= 8 && string(p[:8]) == "OpusTags" {
			continue
		}
		out = append(out, p)
	}
}

// ivfFrames returns the frames of an IVF file.
func ivfFrames(t testing.TB, path string) [][]byte {
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
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, fr)
	}
}

// samePayloads fails unless got equals want, payload by payload.
func samePayloads(t testing.TB, what string, want, got [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d payloads recorded, %d sent", what, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Fatalf("%s: payload %d differs (%d bytes sent, %d recorded)", what, i, len(want[i]), len(got[i]))
		}
	}
}
