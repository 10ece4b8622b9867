package srtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/webrtc/v4"
)

// ForwardStats counts what a [Forwarder] moved; a plain value.
type ForwardStats struct {
	Packets, Bytes uint64 // RTP packets (and their bytes) written to the local track
}

// Forwarder copies the RTP packets of a remote track of one PeerConnection
// (leg A) to a local static RTP track that is added to another (leg B).
// pion decrypts on leg A and encrypts on leg B, with each leg's own keys;
// the local track sets the SSRC and payload type that leg B negotiated.
// The Forwarder reads into one buffer it keeps and writes from it.
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
	packets counter
	bytes   counter
}

// forwardBuffer is the read buffer of a Forwarder: a full-MTU packet, more
// than pion's receive MTU (1460).
const forwardBuffer = 1500

// NewForwarder returns a Forwarder from remote to local.
func NewForwarder(remote *webrtc.TrackRemote, local *webrtc.TrackLocalStaticRTP) *Forwarder {
	if remote == nil || local == nil {
		panic("srtp: NewForwarder with a nil track")
	}
	return &Forwarder{remote: remote, local: local, buf: make([]byte, forwardBuffer)}
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

// Stats returns the counters so far.
func (f *Forwarder) Stats() ForwardStats {
	return ForwardStats{Packets: f.packets.Load(), Bytes: f.bytes.Load()}
}
