package mediagen

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// TestMaxFrameBytes: capped frames are at most the cap, key frames keep
// their tag, start code and dimensions, and the count follows the
// duration.
func TestMaxFrameBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.ivf")
	f, err := WriteFilesWith("", path, Options{Duration: 800 * time.Millisecond, Seed: 3, KeyEvery: 5, MaxFrameBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, _, err := ivfreader.NewWith(in)
	if err != nil {
		t.Fatal(err)
	}
	keys, big := 0, 0
	for i := range f.Frames {
		fr, _, err := r.ParseNextFrame()
		if err != nil {
			t.Fatalf("frame %d of %d: %v", i, f.Frames, err)
		}
		if len(fr) > 1000 {
			t.Fatalf("frame %d: %d bytes", i, len(fr))
		}
		if len(fr) == 1000 {
			big++
		}
		if key := fr[0]&1 == 0; key != (i%5 == 0) {
			t.Fatalf("frame %d: key %v", i, key)
		}
		if fr[0]&1 == 0 {
			keys++
			if w, h := vp8Dims(fr); fr[3] != 0x9d || fr[4] != 0x01 || fr[5] != 0x2a || w != 320 || h != 240 {
				t.Fatalf("key frame %d: start code % x, %dx%d", i, fr[3:6], w, h)
			}
		}
		if part := (uint32(fr[0]) | uint32(fr[1])<<8 | uint32(fr[2])<<16) >> 5; int(part) > len(fr) {
			t.Fatalf("frame %d: first partition %d of %d bytes", i, part, len(fr))
		}
	}
	if f.Frames != 24 || keys != 5 || big < keys {
		t.Fatalf("%d frames, %d key frames, %d capped", f.Frames, keys, big)
	}
}

func vp8Dims(f []byte) (uint16, uint16) {
	return (uint16(f[6]) | uint16(f[7])<<8) & 0x3fff, (uint16(f[8]) | uint16(f[9])<<8) & 0x3fff
}
