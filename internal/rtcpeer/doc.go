// Package rtcpeer is the media leg of one call: a single pion/webrtc
// PeerConnection with securejingle's DTLS-SRTP policy, trickle ICE, file
// playback and recording.
//
// A [Peer] negotiates one audio (Opus, 48 kHz stereo) and one video (VP8,
// 90 kHz) transceiver over one BUNDLEd ICE/DTLS transport (RFC 8829
// offer/answer, RFC 8838 trickle ICE, RFC 8445 ICE restarts). Its DTLS
// certificate is the per-call one from the caller (see the dtls package),
// its SRTP protection profiles those of the srtp package, never a NULL
// one, and replay protection is on for SRTP and SRTCP (RFC 3711 §3.3.2).
//
// The peer's certificate is exposed as DER by [Peer.RemoteCertificate] so
// that the caller can bind it, in constant time, to the fingerprint that
// arrived inside the end-to-end protected session-initiate or
// session-accept (dtls.Binding). Playback is started explicitly with
// [Peer.StartPlayback] for that reason: nothing is sent before the caller
// has checked who is on the other end. Likewise nothing received is
// counted or recorded before [Peer.Admit]: SRTP is up as soon as DTLS is,
// before that check, so until then each track holds at most
// [MaxHeldPackets] packets; [Peer.Reject] discards them and makes Close
// delete the recordings.
//
// Playback reads Ogg Opus (RFC 7845) with pion's oggreader, one Opus packet
// per sample, paced in real time from each packet's TOC byte (RFC 6716
// §3.1), and IVF VP8 with pion's ivfreader, paced by each frame's
// timestamp. Recording writes received Opus payloads to Ogg with pion's
// oggwriter and reassembled VP8 frames to IVF with ivfwriter, bounded in
// size. [ComparePayloads] and [CompareFrames] compare a recording with its
// source; the mediagen subpackage writes synthetic test media.
//
// Everything a remote party controls is bounded when it arrives: SDP size
// and media sections, candidate length and count, Ogg packet and IVF frame
// sizes (see constants.go).
package rtcpeer
