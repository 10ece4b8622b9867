// Package mediagen writes synthetic test media: Ogg Opus files (RFC 7845)
// and IVF VP8 files whose payloads are pseudo-random bytes of realistic
// sizes.
//
// Nothing in a call decodes media, so the payloads need only be what the
// containers, pion's packetizers and its writers look at: every Opus
// packet starts with a valid TOC byte (RFC 6716 §3.1: CELT-only fullband,
// 20 ms, stereo, one frame), so that its duration is known; every VP8 frame
// has a frame tag whose P bit tells key frames from inter frames (RFC 6386
// §9.1), which is all pion's ivfwriter reads, and key frames also carry the
// start code and dimensions. The rest is noise, which no decoder would
// accept. The same seed gives the same files.
//
// Safe for concurrent use: there is no shared state.
package mediagen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"
)

// Opus framing of the generated packets.
const (
	// OpusTOC is the TOC byte of every generated packet: config 31
	// (CELT-only, fullband, 20 ms), stereo, code 0 (one frame).
	OpusTOC = 0xfc
	// OpusPacketDuration is the play time of one generated packet.
	OpusPacketDuration = 20 * time.Millisecond
	opusPacketSamples  = 960
	opusPreSkip        = 312 // what opusenc writes
)

// OpusPackets returns n pseudo-random Opus packets of 40 to 200 bytes (8
// to 80 kbit/s at 20 ms), each starting with [OpusTOC].
func OpusPackets(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 0x6f707573))
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, 40+r.IntN(161))
		fill(r, p)
		p[0] = OpusTOC
		out[i] = p
	}
	return out
}

// VP8Frames returns n pseudo-random VP8 frames of width x height: a key
// frame (4 to 9 KiB, several RTP packets) every keyEvery frames starting
// with the first, inter frames (200 to 1500 bytes) between them.
func VP8Frames(n, keyEvery int, width, height uint16, seed uint64) [][]byte {
	if keyEvery < 1 {
		keyEvery = 1
	}
	r := rand.New(rand.NewPCG(seed, 0x76703830))
	out := make([][]byte, n)
	for i := range out {
		key := i%keyEvery == 0
		var f []byte
		if key {
			f = make([]byte, 4096+r.IntN(5*1024))
		} else {
			f = make([]byte, 200+r.IntN(1301))
		}
		fill(r, f)
		// Frame tag: P (0 = key frame), version 0, show_frame, and a
		// first partition size within the frame.
		tag := uint32(1<<4) | uint32(len(f)/2)<<5
		if !key {
			tag |= 1
		}
		f[0], f[1], f[2] = byte(tag), byte(tag>>8), byte(tag>>16)
		if key {
			f[3], f[4], f[5] = 0x9d, 0x01, 0x2a
			binary.LittleEndian.PutUint16(f[6:], width&0x3fff)
			binary.LittleEndian.PutUint16(f[8:], height&0x3fff)
		}
		out[i] = f
	}
	return out
}

// capFrames cuts the frames longer than n bytes to n, keeping the frame
// tag's first partition size within the frame.
func capFrames(frames [][]byte, n int) {
	for i, f := range frames {
		if len(f) <= n {
			continue
		}
		f = f[:n]
		tag := uint32(f[0]) | uint32(f[1])<<8 | uint32(f[2])<<16
		tag = tag&0x1f | uint32(len(f)/2)<<5
		f[0], f[1], f[2] = byte(tag), byte(tag>>8), byte(tag>>16)
		frames[i] = f
	}
}

func fill(r *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
}

// WriteOgg writes an Ogg Opus stream of the given packets (each
// [OpusPacketDuration] long) to w: the OpusHead and OpusTags pages, then
// perPage packets per page (at least 1). A page holds at most 255 lacing
// values, so with many packets per page some packets continue on the next
// page, as in files opusenc writes.
func WriteOgg(w io.Writer, packets [][]byte, perPage int) error {
	if perPage < 1 {
		perPage = 1
	}
	o := &oggWriter{w: w, serial: 0x5ec0e1ce}
	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1 // version
	head[9] = 2 // channels
	binary.LittleEndian.PutUint16(head[10:], opusPreSkip)
	binary.LittleEndian.PutUint32(head[12:], 48000)
	if err := o.packets([][]byte{head}, []uint64{0}, 0x02); err != nil {
		return err
	}
	vendor := "securejingle mediagen"
	tags := make([]byte, 0, 8+4+len(vendor)+4)
	tags = append(tags, "OpusTags"...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)
	if err := o.packets([][]byte{tags}, []uint64{0}, 0); err != nil {
		return err
	}
	granules := make([]uint64, len(packets))
	for i := range granules {
		granules[i] = opusPreSkip + uint64(i+1)*opusPacketSamples
	}
	for i := 0; i < len(packets); i += perPage {
		j := min(i+perPage, len(packets))
		var flags byte
		if j == len(packets) {
			flags = 0x04 // end of stream
		}
		if err := o.packets(packets[i:j], granules[i:j], flags); err != nil {
			return err
		}
	}
	return nil
}

type oggWriter struct {
	w      io.Writer
	serial uint32
	seq    uint32
}

// packets writes pages holding the given packets completely; granules[i]
// is the granule position after packet i. flags go on the first page of
// the stream (BOS) or the last page written (EOS).
func (o *oggWriter) packets(pkts [][]byte, granules []uint64, flags byte) error {
	var lacing []byte
	var owner []int // packet of each lacing value
	var body []byte
	for i, p := range pkts {
		n := len(p)
		for ; n >= 255; n -= 255 {
			lacing = append(lacing, 255)
			owner = append(owner, i)
		}
		lacing = append(lacing, byte(n))
		owner = append(owner, i)
		body = append(body, p...)
	}
	continued := false
	for len(lacing) > 0 {
		k := min(len(lacing), 255)
		seg := lacing[:k]
		size := 0
		pos := ^uint64(0) // -1: no packet ends on this page (RFC 3533 §6)
		for j, l := range seg {
			size += int(l)
			if l < 255 {
				pos = granules[owner[j]]
			}
		}
		var hdrFlags byte
		if continued {
			hdrFlags |= 0x01
		}
		if k == len(lacing) {
			hdrFlags |= flags & 0x04
		}
		if o.seq == 0 {
			hdrFlags |= flags & 0x02
		}
		if err := o.page(seg, body[:size], pos, hdrFlags); err != nil {
			return err
		}
		continued = seg[k-1] == 255
		lacing, owner, body = lacing[k:], owner[k:], body[size:]
	}
	return nil
}

func (o *oggWriter) page(lacing, body []byte, granule uint64, flags byte) error {
	h := make([]byte, 27, 27+len(lacing)+len(body))
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint64(h[6:], granule)
	binary.LittleEndian.PutUint32(h[14:], o.serial)
	binary.LittleEndian.PutUint32(h[18:], o.seq)
	h[26] = byte(len(lacing))
	h = append(h, lacing...)
	h = append(h, body...)
	binary.LittleEndian.PutUint32(h[22:], oggCRC(h))
	o.seq++
	_, err := o.w.Write(h)
	return err
}

var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// oggCRC is the Ogg page checksum (RFC 3533 §6: CRC-32, polynomial
// 0x04c11db7, no reflection, zero initial value and final xor).
func oggCRC(b []byte) uint32 {
	var c uint32
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}

// WriteIVF writes an IVF file of the given VP8 frames at fps frames per
// second (timebase 1/fps, frame timestamps 0, 1, 2, ...).
func WriteIVF(w io.Writer, frames [][]byte, width, height uint16, fps int) error {
	if fps < 1 {
		return errors.New("mediagen: fps must be positive")
	}
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], width)
	binary.LittleEndian.PutUint16(h[14:], height)
	binary.LittleEndian.PutUint32(h[16:], uint32(fps)) // rate
	binary.LittleEndian.PutUint32(h[20:], 1)           // scale
	binary.LittleEndian.PutUint32(h[24:], uint32(len(frames)))
	b.Write(h)
	for i, f := range frames {
		var fh [12]byte
		binary.LittleEndian.PutUint32(fh[:], uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		b.Write(fh[:])
		b.Write(f)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Options say what [WriteFilesWith] writes.
type Options struct {
	Duration time.Duration // of the audio and of the video
	Seed     uint64        // of the pseudo-random payloads
	// KeyEvery is the key frame interval in frames; zero means one key
	// frame a second.
	KeyEvery int
	// PacketsPerPage is how many Opus packets an Ogg page holds; zero
	// means one.
	PacketsPerPage int
	// MaxFrameBytes caps every VP8 frame, key frames too, at this many
	// bytes (at least [MinFrameBytes]): 1000 makes every frame fit one RTP
	// packet, so that a test can count frames by packets. Zero means no
	// cap (see [VP8Frames]).
	MaxFrameBytes int
}

// MinFrameBytes is the least [Options.MaxFrameBytes]: a key frame's tag,
// start code and dimensions.
const MinFrameBytes = 10

// Files describes a pair of test files written by [WriteFiles] or
// [WriteFilesWith].
type Files struct {
	Ogg, IVF           string // paths ("" when not written)
	Packets, Frames    int    // how many Opus packets and VP8 frames
	Duration           time.Duration
	Width, Height, FPS int
}

// WriteFiles writes d of audio to oggPath and of video to ivfPath (either
// may be "" to skip it), from seed: 20 ms Opus packets, one per page, and
// VP8 at 30 frames per second, 320x240, a key frame every second.
func WriteFiles(oggPath, ivfPath string, d time.Duration, seed uint64) (Files, error) {
	return WriteFilesWith(oggPath, ivfPath, Options{Duration: d, Seed: seed})
}

// WriteFilesWith is [WriteFiles] with the key frame interval and the Ogg
// paging chosen by o.
func WriteFilesWith(oggPath, ivfPath string, o Options) (Files, error) {
	f := Files{Ogg: oggPath, IVF: ivfPath, Duration: o.Duration, Width: 320, Height: 240, FPS: 30}
	if o.KeyEvery <= 0 {
		o.KeyEvery = f.FPS
	}
	if oggPath != "" {
		f.Packets = int(o.Duration / OpusPacketDuration)
		if err := writeFile(oggPath, func(w io.Writer) error {
			return WriteOgg(w, OpusPackets(f.Packets, o.Seed), o.PacketsPerPage)
		}); err != nil {
			return f, err
		}
	}
	if ivfPath != "" {
		f.Frames = int(o.Duration * time.Duration(f.FPS) / time.Second)
		frames := VP8Frames(f.Frames, o.KeyEvery, uint16(f.Width), uint16(f.Height), o.Seed)
		if o.MaxFrameBytes > 0 {
			capFrames(frames, max(o.MaxFrameBytes, MinFrameBytes))
		}
		if err := writeFile(ivfPath, func(w io.Writer) error {
			return WriteIVF(w, frames, uint16(f.Width), uint16(f.Height), f.FPS)
		}); err != nil {
			return f, err
		}
	}
	return f, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("mediagen: %w", err)
	}
	return nil
}
