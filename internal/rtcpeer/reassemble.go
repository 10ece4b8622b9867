package rtcpeer

// VP8 frame reassembly (RFC 7741 §4): packets are put back in sequence
// order within a window, frames are cut at the marker bit, and a frame
// with a packet missing is dropped. pion's samplebuilder does the same but
// can spend seconds in Flush; this one is linear.

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// vp8Assembler reassembles VP8 frames. It is not safe for concurrent use.
type vp8Assembler struct {
	ring    [reassemblyWindow]*rtp.Packet
	held    int    // packets in ring
	next    uint16 // first sequence number not yet processed
	started bool
	waiting time.Time // when processing stopped at the gap before next

	frame   []byte
	ts      uint32
	inFrame bool // a frame is being built and none of its packets is missing

	emit func(ts uint32, frame []byte)
	now  func() time.Time
}

func newVP8Assembler(emit func(ts uint32, frame []byte)) *vp8Assembler {
	return &vp8Assembler{emit: emit, now: time.Now}
}

// push adds a packet; complete frames are emitted, in order.
func (a *vp8Assembler) push(p *rtp.Packet) {
	now := a.now()
	if !a.started {
		a.started, a.next = true, p.SequenceNumber
		if !vp8FrameStart(p.Payload) {
			// The stream begins inside a frame: its first packets may
			// still come, reordered.
			a.next -= reassemblyHeadSlack
		}
	}
	off := p.SequenceNumber - a.next
	if off >= 0x8000 {
		return // before next: a duplicate, or too late
	}
	if off >= reassemblyWindow {
		// Far ahead: give up waiting for what falls out of the window.
		a.drain(now, p.SequenceNumber-reassemblyWindow+1)
		if p.SequenceNumber-a.next >= reassemblyWindow {
			// Nothing was held: the packets between were all lost.
			a.next, a.inFrame, a.waiting = p.SequenceNumber, false, time.Time{}
		}
	}
	i := p.SequenceNumber % reassemblyWindow
	if a.ring[i] != nil {
		return // duplicate
	}
	a.ring[i] = p
	a.held++
	a.drain(now, a.next)
}

// flush processes every buffered packet, treating gaps as losses.
func (a *vp8Assembler) flush() {
	for a.held > 0 {
		a.step()
	}
	a.inFrame, a.frame = false, nil
}

// drain processes packets in order up to a gap; it skips the gap when its
// wait is over or when it is before until.
func (a *vp8Assembler) drain(now time.Time, until uint16) {
	for a.held > 0 {
		if a.ring[a.next%reassemblyWindow] == nil && int16(until-a.next) <= 0 {
			if a.waiting.IsZero() {
				a.waiting = now
			}
			if now.Sub(a.waiting) < reassemblyMaxDelay {
				return
			}
		}
		a.step()
	}
}

// vp8FrameStart reports whether an RTP payload begins a VP8 frame: S set,
// partition index 0 (RFC 7741 §4.2).
func vp8FrameStart(payload []byte) bool {
	var d codecs.VP8Packet
	_, err := d.Unmarshal(payload)
	return err == nil && d.S == 1 && d.PID == 0
}

// step processes the packet at next, or its loss. A run of losses is
// waited for once: the wait ends when a packet is processed.
func (a *vp8Assembler) step() {
	i := a.next % reassemblyWindow
	p := a.ring[i]
	a.next++
	if p == nil {
		a.inFrame = false // a frame with a hole is not decodable
		return
	}
	a.waiting = time.Time{}
	a.ring[i] = nil
	a.held--
	var d codecs.VP8Packet
	payload, err := d.Unmarshal(p.Payload)
	switch {
	case err != nil || len(payload) == 0:
		a.inFrame = false
		return
	case d.S == 1 && d.PID == 0: // first packet of a frame
		a.frame, a.ts, a.inFrame = append([]byte(nil), payload...), p.Timestamp, true
	case a.inFrame && p.Timestamp == a.ts:
		a.frame = append(a.frame, payload...)
	default:
		a.inFrame = false
		return
	}
	if len(a.frame) > MaxVideoFrameBytes {
		a.inFrame = false
		return
	}
	if p.Marker {
		f := a.frame
		a.inFrame, a.frame = false, nil
		a.emit(a.ts, f)
	}
}
