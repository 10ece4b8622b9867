package rtcpeer

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// packetize splits frames into RTP packets as pion's sender does.
func packetize(frames [][]byte, seq0 uint16) [][]*rtp.Packet {
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{}, rtp.NewFixedSequencer(seq0), 90000)
	out := make([][]*rtp.Packet, len(frames))
	for i, f := range frames {
		out[i] = pz.Packetize(f, 3000)
	}
	return out
}

type asmRun struct {
	a      *vp8Assembler
	clock  time.Time
	frames [][]byte
	ts     []uint32
}

func newAsmRun() *asmRun {
	r := &asmRun{clock: time.Unix(1000, 0)}
	r.a = newVP8Assembler(func(ts uint32, f []byte) { r.frames = append(r.frames, f); r.ts = append(r.ts, ts) })
	r.a.now = func() time.Time { return r.clock }
	return r
}

func (r *asmRun) push(p *rtp.Packet, advance time.Duration) {
	r.clock = r.clock.Add(advance)
	c := *p
	r.a.push(&c)
}

func TestVP8Assembler(t *testing.T) {
	t.Parallel()
	src := mediagen.VP8Frames(20, 5, 64, 48, 1) // key frames of several packets
	for _, seq0 := range []uint16{0, 65530} {   // across the wrap too
		pkts := packetize(src, seq0)
		var flat []*rtp.Packet
		frameOf := map[*rtp.Packet]int{}
		for i, ps := range pkts {
			for _, p := range ps {
				flat = append(flat, p)
				frameOf[p] = i
			}
		}
		if len(pkts[0]) < 3 {
			t.Fatalf("key frame in %d packets: the test needs fragmentation", len(pkts[0]))
		}

		// In order: every frame, exactly, before any flush.
		r := newAsmRun()
		for _, p := range flat {
			r.push(p, time.Millisecond)
		}
		if len(r.frames) != len(src) {
			t.Fatalf("in order: %d frames of %d", len(r.frames), len(src))
		}
		for i := range src {
			if !bytes.Equal(r.frames[i], src[i]) || r.ts[i] != pkts[i][0].Timestamp {
				t.Fatalf("in order: frame %d differs", i)
			}
		}

		// Reordered within the window, with duplicates: the same frames.
		r = newAsmRun()
		rng := rand.New(rand.NewPCG(uint64(seq0), 1))
		shuffled := append([]*rtp.Packet(nil), flat...)
		shuffled[0], shuffled[1] = shuffled[1], shuffled[0] // begins inside a frame
		for i := 2; i < len(shuffled); i++ {
			j := min(len(shuffled)-1, i+rng.IntN(6))
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		for _, p := range shuffled {
			r.push(p, time.Millisecond)
			if rng.IntN(4) == 0 {
				r.push(p, 0)
			}
		}
		r.a.flush()
		if len(r.frames) != len(src) {
			t.Fatalf("reordered: %d frames of %d", len(r.frames), len(src))
		}
		for i := range src {
			if !bytes.Equal(r.frames[i], src[i]) {
				t.Fatalf("reordered: frame %d differs", i)
			}
		}

		// A lost packet drops its frame only, once the wait is over; a
		// late retransmission within the wait repairs it.
		lostIdx, repairIdx := 1, len(pkts[0])+len(pkts[1])+len(pkts[2])+len(pkts[3])+len(pkts[4])+len(pkts[5])+1
		r = newAsmRun()
		for i, p := range flat {
			if i == lostIdx {
				continue
			}
			if i == repairIdx {
				continue
			}
			if i == repairIdx+3 {
				r.push(flat[repairIdx], 100*time.Millisecond) // NACKed, resent
			}
			r.push(p, 40*time.Millisecond)
		}
		r.a.flush()
		if len(r.frames) != len(src)-1 || !bytes.Equal(r.frames[0], src[1]) {
			t.Fatalf("loss: %d frames (want %d), first equal to frame 1: %v", len(r.frames), len(src)-1, bytes.Equal(r.frames[0], src[1]))
		}

		// Without the wait running out, frames behind a gap wait; flush
		// gives them up to the frame with the hole.
		r = newAsmRun()
		for i, p := range flat {
			if frameOf[p] == 2 && i == len(pkts[0])+len(pkts[1]) {
				continue
			}
			r.push(p, 0)
		}
		if len(r.frames) != 2 {
			t.Fatalf("gap: %d frames emitted before flush, want 2", len(r.frames))
		}
		r.a.flush()
		if len(r.frames) != len(src)-1 {
			t.Fatalf("gap: %d frames after flush, want %d", len(r.frames), len(src)-1)
		}

		// The first packet of the stream lost: the first frame is never
		// complete; and a jump far ahead gives up on what lies between.
		r = newAsmRun()
		for _, p := range flat[1:] {
			r.push(p, 100*time.Millisecond)
		}
		if len(r.frames) != len(src)-1 {
			t.Fatalf("head lost: %d frames before flush, want %d (the wait is over)", len(r.frames), len(src)-1)
		}
		r.a.flush()
		if len(r.frames) != len(src)-1 {
			t.Fatalf("head lost: %d frames", len(r.frames))
		}
		r = newAsmRun()
		r.push(flat[0], 0)
		far := *flat[1]
		far.SequenceNumber += 5000
		r.push(&far, 0)
		for _, p := range flat[len(pkts[0]):] {
			q := *p
			q.SequenceNumber += 5000
			r.push(&q, time.Second)
		}
		if len(r.frames) != len(src)-1 || !bytes.Equal(r.frames[0], src[1]) {
			t.Fatalf("jump: %d frames", len(r.frames))
		}
	}
}
