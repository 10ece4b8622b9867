package rtcpeer

import (
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// Stats are the counters of a [Peer]. Packet and byte counts are of RTP
// (header and payload, before SRTP protection and after it is removed),
// over all tracks, retransmissions included; RTCP, DTLS and STUN are not
// counted. A Stats is a snapshot, a plain value; its zero value means
// nothing was counted.
type Stats struct {
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64

	// AudioSamplesSent and VideoFramesSent count what playback handed to
	// the tracks.
	AudioSamplesSent, VideoFramesSent uint64
	// AudioPayloads counts the Opus payloads received in order (late and
	// duplicate packets are dropped); VideoFrames counts the complete VP8
	// frames reassembled, from the first key frame on. When RecordDir is
	// set these are what was recorded, until RecordingError.
	AudioPayloads, VideoFrames uint64

	// Recordings are the files opened so far; they are complete once
	// [Peer.Close] has returned.
	Recordings []string
	// RecordingError is the first error that stopped a recording, such
	// as one matching [ErrRecordingLimit]; nil if none.
	RecordingError error
	// PlaybackError is the first error that stopped playback early; nil
	// if playback ran to the end of its files (or is still running).
	PlaybackError error
}

// rtpCounter is an interceptor that counts the RTP packets and bytes a
// PeerConnection sends and receives. Safe for concurrent use.
type rtpCounter struct {
	interceptor.NoOp
	sentPkts, sentBytes, recvPkts, recvBytes atomic.Uint64
	stopped                                  atomic.Bool // Peer.Quiesce: count no more
}

func (c *rtpCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

func (c *rtpCounter) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		n, err := w.Write(h, payload, a)
		if err == nil && !c.stopped.Load() {
			c.sentPkts.Add(1)
			c.sentBytes.Add(uint64(h.MarshalSize() + len(payload)))
		}
		return n, err
	})
}

func (c *rtpCounter) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil && !c.stopped.Load() {
			c.recvPkts.Add(1)
			c.recvBytes.Add(uint64(n))
		}
		return n, a, err
	})
}
