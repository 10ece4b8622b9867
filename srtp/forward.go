package srtp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/pion/webrtc/v4"
)

// ErrTrackInUse is returned by [NewForwarder] for a local track that
// another Forwarder has already been given.
var ErrTrackInUse = errors.New("srtp: local track already fed by a forwarder")

// ForwardStats counts what a [Forwarder] moved; a plain value.
type ForwardStats struct {
	Packets, Bytes uint64 // RTP packets (and their bytes) written to the local track
	// Dropped counts packets not forwarded because their sequence number
	// was one already forwarded (an RTX repair of a packet that did
	// arrive, a duplicate) or too old (see [Forwarder]), or because their
	// header was cut short.
	Dropped uint64
}

// Forwarder copies the RTP packets of a remote track of one PeerConnection
// (leg A) to a local static RTP track that is added to another (leg B).
// pion decrypts on leg A and encrypts on leg B, with each leg's own keys;
// the local track sets the SSRC and payload type that leg B negotiated.
// Header extensions (RFC 8285) are leg A's, whose ids are negotiated per
// leg: the Forwarder drops them, and leg B's sender adds its own. The
// Forwarder reads into one buffer it keeps and writes from it.
//
// Nonces: pion encrypts what the local track is given under the track's
// SSRC and an index extended from the packet's sequence number (see
// [Protector]), so two packets with one sequence number would share an
// AES-CM keystream or AES-GCM nonce on leg B. The Forwarder therefore
//   - refuses ([ErrTrackInUse]) a local track that another Forwarder was
//     ever given: two remote tracks feeding one local track would reuse
//     each other's sequence numbers;
//   - renumbers what it writes so that each outgoing index is used once:
//     a packet whose sequence number it has already forwarded (pion hands
//     RTX repairs to the track with the original sequence number, also for
//     packets that did arrive) or that is more than [ForwardWindow]
//     packets older than the newest is dropped and counted; a jump ahead
//     of more than 2^14 is shortened to 2^14.
//
// Nothing else may write to the local track (no WriteRTP of one's own, no
// track shared with a TrackLocalStaticSample), or the same reuse can
// happen. A local track that stays without a binding to leg B while more
// than 2^15 packets are forwarded (pion drops them) may also make pion
// misjudge the rollover: keep the track bound while a Forwarder runs.
//
// Allocations: the Forwarder's own loop allocates nothing per packet, but
// pion does inside TrackRemote.Read. Measured with pion v4.2.26 and its
// default interceptors (which webrtc.NewAPI registers when given no
// registry): 3 allocations (about 430 bytes) per received packet, all in
// the RTCP report interceptor (interceptor.Attributes.GetRTPHeader and the
// attributes map); the write side (TrackLocalStaticRTP.Write, SRTP
// encryption) allocates nothing. BenchmarkForwarder counts 6 per packet
// from A's track through the Forwarder to B's track (two receive paths),
// against 3 for BenchmarkPionDirect. The packet-level [Relay] is the
// zero-allocation path.
//
// Concurrency: Run once, in its own goroutine; Stats from any goroutine.
// The zero value is not usable; make one with [NewForwarder].
type Forwarder struct {
	remote  *webrtc.TrackRemote
	local   *webrtc.TrackLocalStaticRTP
	buf     []byte
	seq     seqGuard
	packets counter
	bytes   counter
	dropped counter
	paused  atomic.Bool
}

// forwardBuffer is the read buffer of a Forwarder: a full-MTU packet, more
// than pion's receive MTU (1460).
const forwardBuffer = 1500

// ForwardWindow is how many packets behind the newest one a [Forwarder]
// still forwards a late packet (once).
const ForwardWindow = 256

// forwardedTracks holds every local track a Forwarder was given, weakly:
// an entry goes when its track is garbage.
var forwardedTracks sync.Map // weak.Pointer[webrtc.TrackLocalStaticRTP] -> struct{}

// claimTrack records t as fed by a Forwarder, for its whole life, and
// reports false if it already was.
func claimTrack(t *webrtc.TrackLocalStaticRTP) bool {
	k := weak.Make(t)
	if _, loaded := forwardedTracks.LoadOrStore(k, struct{}{}); loaded {
		return false
	}
	runtime.AddCleanup(t, func(k weak.Pointer[webrtc.TrackLocalStaticRTP]) { forwardedTracks.Delete(k) }, k)
	return true
}

// NewForwarder returns a Forwarder from remote to local. A local track
// that was given to a Forwarder before, even one that has stopped, gives
// [ErrTrackInUse]. It panics on a nil track.
func NewForwarder(remote *webrtc.TrackRemote, local *webrtc.TrackLocalStaticRTP) (*Forwarder, error) {
	if remote == nil || local == nil {
		panic("srtp: NewForwarder with a nil track")
	}
	if !claimTrack(local) {
		return nil, fmt.Errorf("%w (track %q)", ErrTrackInUse, local.ID())
	}
	return &Forwarder{remote: remote, local: local, buf: make([]byte, forwardBuffer)}, nil
}

// Run forwards packets until the remote track ends (it returns nil), ctx is
// cancelled (it returns ctx's error; cancellation interrupts a blocked read
// by setting the remote track's read deadline, which stays set) or reading
// or writing fails.
func (f *Forwarder) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = f.remote.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		n, _, err := f.remote.Read(f.buf)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, io.EOF):
				return nil
			}
			return fmt.Errorf("srtp: forwarder: reading the remote track: %w", err)
		}
		if n < rtpHeaderLen || f.paused.Load() {
			f.dropped.inc()
			continue
		}
		out, ok := f.seq.next(binary.BigEndian.Uint16(f.buf[2:4]))
		if !ok {
			f.dropped.inc()
			continue
		}
		binary.BigEndian.PutUint16(f.buf[2:4], out)
		if n, ok = stripExtension(f.buf[:n]); !ok {
			f.dropped.inc()
			continue
		}
		if _, err := f.local.Write(f.buf[:n]); err != nil {
			if errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return fmt.Errorf("srtp: forwarder: writing the local track: %w", err)
		}
		f.packets.inc()
		f.bytes.Add(uint64(n))
	}
}

// stripExtension removes the header extension (RFC 8285) of the RTP
// packet pkt in place and returns its new length; false for a packet whose
// CSRC list or extension runs past its end. Extension ids are negotiated
// per leg: leg A's mean nothing, or something else, on leg B, where a
// receiver demultiplexing by a MID extension would drop the packet; leg
// B's sender adds its own (transport-wide sequence numbers).
func stripExtension(pkt []byte) (int, bool) {
	hdr := rtpHeaderLen + 4*int(pkt[0]&0x0f)
	if len(pkt) < hdr {
		return 0, false
	}
	if pkt[0]&0x10 == 0 {
		return len(pkt), true
	}
	if len(pkt) < hdr+4 {
		return 0, false
	}
	ext := 4 + 4*int(binary.BigEndian.Uint16(pkt[hdr+2:hdr+4]))
	if len(pkt) < hdr+ext {
		return 0, false
	}
	pkt[0] &^= 0x10
	n := copy(pkt[hdr:], pkt[hdr+ext:])
	return hdr + n, true
}

// SetPaused stops (true) or resumes (false) forwarding: while paused the
// packets read are dropped and counted in Dropped. They never reach the
// sequence guard, so the first packet after the pause is a jump ahead on
// leg B (receivers see a loss, as for a gap at the source). Safe to call
// from any goroutine.
func (f *Forwarder) SetPaused(p bool) { f.paused.Store(p) }

// Stats returns the counters so far.
func (f *Forwarder) Stats() ForwardStats {
	return ForwardStats{Packets: f.packets.Load(), Bytes: f.bytes.Load(), Dropped: f.dropped.Load()}
}

// seqGuard renumbers a stream of RTP sequence numbers so that the indices
// pion/srtp's sender extends them to (RFC 3711 §3.3.1, as
// srtpSSRCState.nextRolloverCount does) are each used at most once.
//
// It keeps ext, the extended index of the newest number it emitted,
// which is the index pion's sender state holds for the outgoing SSRC when
// pion encrypts exactly what the guard emits: a first number s starts at
// index s; each newer one advances ext by its distance, at most 2^14 (so
// pion, which takes a step of less than 2^15 as forward, agrees); a late
// one (at most ForwardWindow behind, not before floor) is emitted at ext
// minus its lateness, which pion extends to exactly that index, once (the
// bitmap records which of the last ForwardWindow indices were emitted).
// An input jump that was shortened changes the offset between input and
// output numbers, so floor moves up to ext: nothing older is emitted.
type seqGuard struct {
	started bool
	last    uint16 // newest input number
	ext     uint64 // extended index of the newest output number
	floor   uint64 // lowest index that may still be emitted
	seen    [ForwardWindow / 64]uint64
}

// maxSeqStep is the largest forward step of the output numbers.
const maxSeqStep = 1 << 14

// next returns the output number for input number seq, or false to drop
// the packet.
func (g *seqGuard) next(seq uint16) (uint16, bool) {
	if !g.started {
		g.started = true
		g.last, g.ext, g.floor = seq, uint64(seq), uint64(seq)
		g.seen = [len(g.seen)]uint64{1}
		return seq, true
	}
	d := int(int16(seq - g.last))
	if d > 0 {
		step := min(d, maxSeqStep)
		g.ext += uint64(step)
		g.last = seq
		g.shift(step)
		if step < d {
			g.floor = g.ext
		}
		g.seen[0] |= 1
		return uint16(g.ext), true
	}
	late := -d
	if late >= ForwardWindow || uint64(late) > g.ext-g.floor {
		return 0, false
	}
	w, bit := late/64, uint64(1)<<(late%64)
	if g.seen[w]&bit != 0 {
		return 0, false
	}
	g.seen[w] |= bit
	return uint16(g.ext - uint64(late)), true
}

// shift ages the bitmap by n indices.
func (g *seqGuard) shift(n int) {
	if n >= ForwardWindow {
		g.seen = [len(g.seen)]uint64{}
		return
	}
	words, bits := n/64, uint(n%64)
	for i := len(g.seen) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = g.seen[j] << bits
			if bits > 0 && j > 0 {
				v |= g.seen[j-1] >> (64 - bits)
			}
		}
		g.seen[i] = v
	}
}
