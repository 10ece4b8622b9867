package rtcpeer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

func writeOgg(t testing.TB, path string, pkts [][]byte, perPage int) {
	t.Helper()
	var b bytes.Buffer
	if err := mediagen.WriteOgg(&b, pkts, perPage); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPackets(t testing.TB, path string) [][]byte {
	t.Helper()
	o, err := openOgg(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var out [][]byte
	for {
		p, err := o.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

// TestOggPackets reads packets back whatever the paging: one per page,
// many per page, and packets that continue on the next page.
func TestOggPackets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := make([][]byte, 100)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = make([]byte, 1000+r.IntN(300)) // 4 or 5 lacing values each
		for j := range big[i] {
			big[i][j] = byte(r.Uint32())
		}
		big[i][0] = mediagen.OpusTOC
	}
	for _, c := range []struct {
		name    string
		pkts    [][]byte
		perPage int
	}{
		{"one per page", mediagen.OpusPackets(50, 1), 1},
		{"seven per page", mediagen.OpusPackets(50, 2), 7},
		{"continued packets", big, 100},
		{"255-byte packet", [][]byte{bytes.Repeat([]byte{mediagen.OpusTOC}, 255), {mediagen.OpusTOC, 1}}, 2},
	} {
		path := filepath.Join(dir, c.name+".ogg")
		writeOgg(t, path, c.pkts, c.perPage)
		if c.name == "continued packets" && continuedPages(t, path) == 0 {
			t.Fatal("no page continues a packet: the case tests nothing")
		}
		got := readPackets(t, path)
		if len(got) != len(c.pkts) {
			t.Fatalf("%s: %d packets read, %d written", c.name, len(got), len(c.pkts))
		}
		for i := range got {
			if !bytes.Equal(got[i], c.pkts[i]) {
				t.Fatalf("%s: packet %d differs", c.name, i)
			}
		}
		if err := checkOgg(path); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m, err := ComparePayloads(path, path); err != nil || m.Matched != len(c.pkts) || m.Missing != 0 {
			t.Fatalf("%s: self-comparison %+v %v", c.name, m, err)
		}
	}
}

// continuedPages counts the pages flagged as continuing a packet.
func continuedPages(t testing.TB, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(b) >= 27 {
		segs := int(b[26])
		size := 27 + segs
		for _, l := range b[27 : 27+segs] {
			size += int(l)
		}
		if b[5]&1 != 0 {
			n++
		}
		b = b[size:]
	}
	return n
}

// TestOggPionWriter: what pion's oggwriter records reads back packet by
// packet.
func TestOggPionWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rec.ogg")
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	pkts := mediagen.OpusPackets(30, 3)
	for i, p := range pkts {
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readPackets(t, path)
	if len(got) != len(pkts) || !bytes.Equal(got[29], pkts[29]) {
		t.Fatalf("%d packets", len(got))
	}
}

func TestOggBad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.ogg")
	writeOgg(t, good, mediagen.OpusPackets(10, 4), 1)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flip := append([]byte(nil), raw...)
	flip[len(flip)-5] ^= 1 // CRC mismatch on the last page
	badTOC := filepath.Join(dir, "toc.ogg")
	pkts := mediagen.OpusPackets(3, 5)
	pkts[1][0] = 0x03 // code 3 with a frame count byte of ...
	pkts[1][1] = 0    // ... zero frames
	writeOgg(t, badTOC, pkts, 1)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"bit flip", flip},
		{"truncated", raw[:len(raw)-3]},
		{"not ogg", []byte("RIFF....WAVEfmt ")},
		{"head only", raw[:47]},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkOgg(p); !errors.Is(err, ErrBadMedia) {
			t.Errorf("%s: %v, want ErrBadMedia", c.name, err)
		}
	}
	if err := checkOgg(badTOC); !errors.Is(err, ErrBadMedia) {
		t.Errorf("bad TOC: %v, want ErrBadMedia", err)
	}
	var me *MediaError
	if err := checkOgg(filepath.Join(dir, "bit flip")); !errors.As(err, &me) || me.Path == "" {
		t.Errorf("MediaError not returned: %v", err)
	}
}

func TestOpusSamples(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    []byte
		want int
	}{
		{[]byte{0xfc}, 960},             // CELT FB 20 ms, one frame
		{[]byte{0xe0}, 120},             // CELT 2.5 ms
		{[]byte{0xfd}, 1920},            // two frames of 20 ms
		{[]byte{0xff, 0x03}, 2880},      // code 3, three frames
		{[]byte{0xff, 0x07}, 0},         // seven 20 ms frames: over 120 ms
		{[]byte{0xff}, 0},               // code 3 without a count byte
		{[]byte{0x78}, 960},             // hybrid FB 20 ms
		{[]byte{0x70}, 480},             // hybrid FB 10 ms
		{[]byte{0x18}, 2880},            // SILK NB 60 ms
		{[]byte{0x08}, 960},             // SILK NB 20 ms
		{nil, 0},                        // empty
		{[]byte{0x1b, 0x02}, 2 * 2880},  // SILK 60 ms, two frames
		{[]byte{0x1b, 0x03}, 0},         // three 60 ms frames: 180 ms
		{[]byte{0xfc, 0xff, 0xff}, 960}, // payload bytes are not looked at
	} {
		if got := opusSamples(c.p); got != c.want {
			t.Errorf("opusSamples(% x) = %d, want %d", c.p, got, c.want)
		}
	}
	if d := opusDuration([]byte{0xfc}); d != 20*time.Millisecond {
		t.Errorf("duration %v", d)
	}
}

func writeIVFFile(t testing.TB, path string, rate, scale uint32, frames [][]byte, pts []uint64) {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint32(h[16:], rate)
	binary.LittleEndian.PutUint32(h[20:], scale)
	b.Write(h)
	for i, f := range frames {
		var fh [12]byte
		binary.LittleEndian.PutUint32(fh[:], uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], pts[i])
		b.Write(fh[:])
		b.Write(f)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIVFIndex: play times come from the timestamps in any timebase.
func TestIVFIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	frames := mediagen.VP8Frames(4, 2, 64, 48, 1)
	for _, c := range []struct {
		name        string
		rate, scale uint32
		pts         []uint64
		want        []time.Duration
	}{
		{"30 fps", 30, 1, []uint64{0, 1, 2, 3}, []time.Duration{0, 33333333, 66666666, 100 * time.Millisecond}},
		{"ms timebase", 1000, 1, []uint64{10, 50, 90, 130}, []time.Duration{0, 40 * time.Millisecond, 80 * time.Millisecond, 120 * time.Millisecond}},
		{"90 kHz", 90000, 1, []uint64{3000, 6000, 9000, 12000}, []time.Duration{0, time.Second / 30, 2 * time.Second / 30, 3 * time.Second / 30}},
		{"29.97 fps", 30000, 1001, []uint64{0, 1, 2, 3}, []time.Duration{0, 33366666, 66733333, 100100000}},
		{"huge start", 1000, 1, []uint64{1 << 62, 1<<62 + 33, 1<<62 + 66, 1<<62 + 100}, []time.Duration{0, 33 * time.Millisecond, 66 * time.Millisecond, 100 * time.Millisecond}},
	} {
		path := filepath.Join(dir, c.name+".ivf")
		writeIVFFile(t, path, c.rate, c.scale, frames, c.pts)
		x, err := openIVF(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range c.want {
			f, err := x.next()
			if err != nil {
				t.Fatalf("%s: frame %d: %v", c.name, i, err)
			}
			if f.at != w || f.size != len(frames[i]) {
				t.Errorf("%s: frame %d at %v size %d, want %v %d", c.name, i, f.at, f.size, w, len(frames[i]))
			}
		}
		if _, err := x.next(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: after the last frame: %v", c.name, err)
		}
		x.Close()
	}
}

func TestIVFBad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	frames := mediagen.VP8Frames(3, 1, 64, 48, 2)
	for _, c := range []struct {
		name   string
		mutate func([]byte) []byte
		rate   uint32
		pts    []uint64
	}{
		{"frame size beyond the file", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[32:], 1<<30); return b }, 30, nil},
		{"frame size beyond the limit", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[32:], MaxVideoFrameBytes+1)
			return append(b, make([]byte, MaxVideoFrameBytes)...)
		}, 30, nil},
		{"truncated frame", func(b []byte) []byte { return b[:len(b)-1] }, 30, nil},
		{"truncated header", func(b []byte) []byte { return b[:20] }, 30, nil},
		{"VP9", func(b []byte) []byte { copy(b[8:], "VP90"); return b }, 30, nil},
		{"zero rate", nil, 0, nil},
		{"pts going back", nil, 30, []uint64{0, 2, 1}},
		{"pts repeated", nil, 30, []uint64{0, 1, 1}},
		{"pts too far apart", nil, 1, []uint64{0, 11, 12}},
		{"pts too close", nil, 1000, []uint64{0, 1, 2}},
		{"no frames", func(b []byte) []byte { return b[:32] }, 30, nil},
	} {
		pts := c.pts
		if pts == nil {
			pts = []uint64{0, 1, 2}
		}
		path := filepath.Join(dir, c.name+".ivf")
		writeIVFFile(t, path, c.rate, 1, frames, pts)
		if c.mutate != nil {
			b, _ := os.ReadFile(path)
			if err := os.WriteFile(path, c.mutate(b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := checkIVF(path); !errors.Is(err, ErrBadMedia) {
			t.Errorf("%s: %v, want ErrBadMedia", c.name, err)
		}
	}
}

// TestCompare: losses are counted, reordering and alteration are caught.
func TestCompare(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := mediagen.OpusPackets(20, 9)
	srcPath := filepath.Join(dir, "src.ogg")
	writeOgg(t, srcPath, src, 1)
	drop := func(idx ...int) [][]byte {
		var out [][]byte
	next:
		for i, p := range src {
			for _, j := range idx {
				if i == j {
					continue next
				}
			}
			out = append(out, p)
		}
		return out
	}
	altered := drop()
	altered[7] = append([]byte(nil), altered[7]...)
	altered[7][3] ^= 0x80
	swapped := drop()
	swapped[4], swapped[5] = swapped[5], swapped[4]
	for _, c := range []struct {
		name    string
		rec     [][]byte
		matched int
		bad     bool
	}{
		{"equal", src, 20, false},
		{"head lost", drop(0, 1, 2), 17, false},
		{"tail lost", drop(19), 19, false},
		{"middle lost", drop(5, 9, 10), 17, false},
		{"empty", nil, 0, false},
		{"altered", altered, 0, true},
		{"reordered", swapped, 0, true},
		{"duplicated", append(drop(), src[19]), 0, true},
	} {
		p := filepath.Join(dir, c.name+".ogg")
		writeOgg(t, p, c.rec, 3)
		m, err := ComparePayloads(srcPath, p)
		switch {
		case c.bad && !errors.Is(err, ErrPayloadMismatch):
			t.Errorf("%s: %+v %v, want ErrPayloadMismatch", c.name, m, err)
		case !c.bad && (err != nil || m.Matched != c.matched || m.Missing != 20-c.matched || m.Source != 20):
			t.Errorf("%s: %+v %v, want %d matched", c.name, m, err, c.matched)
		}
	}

	frames := mediagen.VP8Frames(10, 5, 64, 48, 3)
	pts := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	ivfSrc, ivfRec := filepath.Join(dir, "src.ivf"), filepath.Join(dir, "rec.ivf")
	writeIVFFile(t, ivfSrc, 30, 1, frames, pts)
	writeIVFFile(t, ivfRec, 90000, 1, append(frames[:3:3], frames[5:]...), []uint64{0, 3000, 6000, 9000, 12000, 15000, 18000, 21000})
	if m, err := CompareFrames(ivfSrc, ivfRec); err != nil || m.Matched != 8 || m.Missing != 2 {
		t.Errorf("frames: %+v %v", m, err)
	}
	writeIVFFile(t, ivfRec, 30, 1, [][]byte{frames[1], frames[0]}, pts)
	if _, err := CompareFrames(ivfSrc, ivfRec); !errors.Is(err, ErrPayloadMismatch) {
		t.Errorf("reordered frames: %v", err)
	}
}

// TestMediagen: the generated files are what the players accept, the same
// seed gives the same bytes, and key frames are where they should be.
func TestMediagen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f1, err := mediagen.WriteFiles(filepath.Join(dir, "a.ogg"), filepath.Join(dir, "a.ivf"), time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := mediagen.WriteFilesWith(filepath.Join(dir, "b.ogg"), filepath.Join(dir, "b.ivf"), mediagen.Options{Duration: time.Second, Seed: 5, PacketsPerPage: 10})
	if err != nil {
		t.Fatal(err)
	}
	if f1.Packets != 50 || f1.Frames != 30 {
		t.Fatalf("%+v", f1)
	}
	if err := checkOgg(f1.Ogg); err != nil {
		t.Fatal(err)
	}
	if err := checkIVF(f1.IVF); err != nil {
		t.Fatal(err)
	}
	// Other paging, same packets.
	if m, err := ComparePayloads(f1.Ogg, f2.Ogg); err != nil || m.Missing != 0 {
		t.Fatalf("%+v %v", m, err)
	}
	a, _ := os.ReadFile(f1.IVF)
	b, _ := os.ReadFile(f2.IVF)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different video")
	}
	for i, fr := range mediagen.VP8Frames(12, 5, 320, 240, 1) {
		key := fr[0]&1 == 0
		if key != (i%5 == 0) {
			t.Fatalf("frame %d: key %v", i, key)
		}
		if key {
			if w, h := vp8Size(fr); w != 320 || h != 240 {
				t.Fatalf("key frame size %dx%d", w, h)
			}
		}
	}
}
