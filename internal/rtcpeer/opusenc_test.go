package rtcpeer

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/integration"
)

// writeWAV writes d of a 440 Hz tone, 48 kHz 16-bit stereo PCM.
func writeWAV(t testing.TB, path string, d time.Duration) {
	t.Helper()
	const rate, channels = 48000, 2
	n := int(d.Seconds() * rate)
	var pcm bytes.Buffer
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate))
		for range channels {
			binary.Write(&pcm, binary.LittleEndian, v)
		}
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+pcm.Len()))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(channels), uint32(rate),
		uint32(rate * channels * 2), uint16(channels * 2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(pcm.Len()))
	b.Write(pcm.Bytes())
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lastGranule returns the granule position of the last page of an Ogg
// file and the pre-skip of its OpusHead.
func lastGranule(t testing.TB, path string) (granule uint64, preSkip uint16) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := true
	for len(b) >= 27 {
		segs := int(b[26])
		size := 27 + segs
		for _, l := range b[27 : 27+segs] {
			size += int(l)
		}
		if first {
			preSkip = binary.LittleEndian.Uint16(b[27+segs+10:])
			first = false
		}
		granule = binary.LittleEndian.Uint64(b[6:])
		b = b[size:]
	}
	return granule, preSkip
}

func pageCount(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; len(b) >= 27; n++ {
		size := 27 + int(b[26])
		for _, l := range b[27 : 27+int(b[26])] {
			size += int(l)
		}
		b = b[size:]
	}
	return n
}

// TestOpusencFile plays a file from the real opusenc (many packets per
// page, packets of varying size) through a call: the timing from the TOC
// bytes agrees with the granule positions, and the recording holds every
// packet.
func TestOpusencFile(t *testing.T) {
	if !integration.Required() {
		t.Skip("set " + integration.Env + "=1 to run against a real opusenc")
	}
	opusenc := integration.Tool(t, "opusenc", "opus-tools")
	t.Parallel()
	dir := t.TempDir()
	wav, opus := filepath.Join(dir, "tone.wav"), filepath.Join(dir, "tone.opus")
	writeWAV(t, wav, 2*time.Second)
	if out, err := exec.Command(opusenc, "--quiet", "--bitrate", "48", wav, opus).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v\n%s", err, out)
	}
	if err := checkOgg(opus); err != nil {
		t.Fatal(err)
	}
	pkts := readPackets(t, opus)
	var total time.Duration
	for _, p := range pkts {
		total += opusDuration(p)
	}
	g, preSkip := lastGranule(t, opus)
	byGranule := time.Duration(g-uint64(preSkip)) * time.Second / opusClockRate
	// The last page's granule may trim the end of the last packet
	// (RFC 7845 §4.5), never more than one packet.
	if total < byGranule || total-byGranule > 20*time.Millisecond {
		t.Fatalf("TOC durations sum to %v, granule positions say %v", total, byGranule)
	}
	if pages := pageCount(t, opus); pages-2 >= len(pkts) {
		t.Fatalf("%d packets in %d pages: one per page, the case tests nothing", len(pkts), pages)
	}

	a := newPeer(t, Config{LoopbackOnly: true, Audio: true, AudioFile: opus})
	b := newPeer(t, Config{Name: "opusenc", LoopbackOnly: true, Audio: true, RecordDir: dir})
	connect(t, a, b)
	a.StartPlayback()
	waitClosed(t, "playback ends", a.PlaybackDone())
	eventually(t, "all packets received", func() bool { return b.Stats().AudioPayloads == uint64(len(pkts)) })
	b.Close()
	rec := b.Recordings()
	if len(rec) != 1 {
		t.Fatalf("recordings %v", rec)
	}
	m, err := ComparePayloads(opus, rec[0])
	if err != nil || m.Matched != len(pkts) || m.Missing != 0 {
		t.Fatalf("%+v %v; want all %d packets", m, err, len(pkts))
	}
	t.Logf("opusenc: %d packets, %v; all recorded", len(pkts), total)
}
