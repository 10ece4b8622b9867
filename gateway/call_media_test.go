package gateway

// Test media: files from internal/rtcpeer/mediagen, recordings compared
// with their sources by rtcpeer.ComparePayloads and CompareFrames.

import (
	"hash/fnv"
	"path/filepath"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// mediaSeed gives every test file payloads of its own (from its path), so
// that a recording matches only the file the other side played.
func mediaSeed(path string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(path))
	return h.Sum64()
}

// writeTestOpus writes n 20 ms Opus packets, one per Ogg page, to path.
func writeTestOpus(t testing.TB, path string, n int) {
	t.Helper()
	d := time.Duration(n) * mediagen.OpusPacketDuration
	if _, err := mediagen.WriteFilesWith(path, "", mediagen.Options{Duration: d, Seed: mediaSeed(path)}); err != nil {
		t.Fatal(err)
	}
}

// writeTestIVF writes n VP8 frames at 30 fps to path: a key frame (of
// several RTP packets) every second, inter frames between them.
func writeTestIVF(t testing.TB, path string, n int) {
	t.Helper()
	d := (time.Duration(n)*time.Second + 29) / 30 // makes exactly n frames
	if _, err := mediagen.WriteFilesWith("", path, mediagen.Options{Duration: d, Seed: mediaSeed(path)}); err != nil {
		t.Fatal(err)
	}
}

// compareMedia compares a recording with its source, Ogg Opus or IVF VP8
// by the source's extension.
func compareMedia(src, rec string) (rtcpeer.Match, error) {
	if filepath.Ext(src) == ".ivf" {
		return rtcpeer.CompareFrames(src, rec)
	}
	return rtcpeer.ComparePayloads(src, rec)
}

// sameMedia fails unless rec holds exactly the payloads of src.
func sameMedia(t testing.TB, what, src, rec string) {
	t.Helper()
	m, err := compareMedia(src, rec)
	if err != nil || m.Source == 0 || m.Missing != 0 {
		t.Fatalf("%s: %d of %d payloads recorded (%v)", what, m.Matched, m.Source, err)
	}
}
