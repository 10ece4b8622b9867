package rtcpeer

import "time"

// Implementation limits: bounds on what a remote party (or a media file)
// controls, checked when it arrives.
const (
	// MaxSDPBytes bounds an offer or answer handed to [Peer.AcceptOffer]
	// or [Peer.SetAnswer]. Browser offers with many codecs are about 6 KiB.
	MaxSDPBytes = 64 << 10
	// MaxMediaSections bounds the m= sections of a remote description: a
	// call has audio and video, and browsers may add an application one.
	MaxMediaSections = 8
	// MaxCandidateBytes bounds one remote candidate attribute.
	MaxCandidateBytes = 1024
	// MaxPendingCandidates bounds the remote candidates queued while no
	// remote description is set yet.
	MaxPendingCandidates = 64
	// MaxRemoteCandidates bounds the remote candidates one Peer accepts
	// over its lifetime, ICE restarts included.
	MaxRemoteCandidates = 1024
	// maxLocalCandidateQueue bounds the local candidates held until
	// [Peer.OnCandidate] is set.
	maxLocalCandidateQueue = 256

	// DefaultMaxRecordingBytes is the size limit of one recording file
	// when [Config.MaxRecordingBytes] is zero.
	DefaultMaxRecordingBytes = 1 << 30
	// MaxRecordingsPerKind bounds the recording files of one kind (a peer
	// may add tracks by renegotiating); further tracks are received and
	// counted but not recorded.
	MaxRecordingsPerKind = 4

	// MaxHeldPackets bounds the packets one received track holds until
	// [Peer.Admit] (about 2.5 s of Opus, a second of VP8); later ones are
	// discarded.
	MaxHeldPackets = 128

	// MaxOpusPacketBytes bounds one Opus packet read from an Ogg file or
	// received in RTP. The largest legal Opus packet is 48 frames of 1275
	// bytes plus framing (RFC 6716 §3.4, R5), under 62 000 bytes.
	MaxOpusPacketBytes = 64 << 10
	// MaxVideoFrameBytes bounds one VP8 frame read from an IVF file or
	// reassembled from RTP.
	MaxVideoFrameBytes = 4 << 20
	// maxFrameRate bounds how fast IVF frames may follow each other.
	maxFrameRate = 240
	// maxSampleGap bounds the time between two media samples of a file:
	// a file whose timestamps jump further is refused, not waited on.
	maxSampleGap = 10 * time.Second

	// reassemblyWindow is how many RTP sequence numbers the VP8
	// reassembly holds while it waits for a missing packet (NACK
	// retransmissions arrive one round trip late).
	reassemblyWindow = 512
	// reassemblyMaxDelay is how long it waits for one.
	reassemblyMaxDelay = time.Second
	// reassemblyHeadSlack is how many packets before the first one
	// received are waited for when the stream begins inside a frame.
	reassemblyHeadSlack = 16
)

// Specification constants.
const (
	opusClockRate = 48000 // RFC 7587 §4.1: always 48 kHz
	opusChannels  = 2     // RFC 7587 §7: a=rtpmap:<pt> opus/48000/2
	vp8ClockRate  = 90000 // RFC 7741 §6.1

	opusPayloadType = 111 // dynamic payload types as browsers number them
	vp8PayloadType  = 96
)
