package srtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	pionsrtp "github.com/pion/srtp/v3"
)

// MaxPacketSize bounds every packet the relay path accepts: the largest UDP
// payload. Buffers grow to at most this once and are then reused.
const MaxPacketSize = 1<<16 - 1

// ErrReplay is returned for a packet whose index the replay window has
// already accepted, or that is older than the window (RFC 3711 §3.3.2).
// Drop the packet; the [Unprotector] counts it.
var ErrReplay = errors.New("srtp: replayed packet")

// ErrAuth is returned for a packet whose authentication tag does not
// verify: forged, corrupted or under another key. Drop the packet; the
// [Unprotector] counts it. It carries no detail on purpose.
var ErrAuth = errors.New("srtp: packet authentication failed")

// ErrMalformed is matched by the error for a packet that is not a
// well-formed SRTP, SRTCP, RTP or RTCP packet (too short, bad version,
// lengths that do not add up, larger than [MaxPacketSize]).
var ErrMalformed = errors.New("srtp: malformed packet")

// pionReplay is the sentinel that pion/srtp wraps in its (unexported)
// error for a replayed packet. pion exports neither, so it is learnt once
// by replaying a packet against a throw-away context.
var pionReplay = sync.OnceValue(func() error {
	key, salt := make([]byte, 16), make([]byte, 14)
	enc, err := pionsrtp.CreateContext(key, salt, pionsrtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		return nil
	}
	dec, err := pionsrtp.CreateContext(key, salt, pionsrtp.ProtectionProfileAes128CmHmacSha1_80, pionsrtp.SRTPReplayProtection(64))
	if err != nil {
		return nil
	}
	pkt := []byte{0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xde, 0xad}
	ct, err := enc.EncryptRTP(nil, pkt, nil)
	if err != nil {
		return nil
	}
	if _, err := dec.DecryptRTP(nil, ct, nil); err != nil {
		return nil
	}
	_, err = dec.DecryptRTP(nil, ct, nil)
	return errors.Unwrap(err)
})

// classify maps a pion decryption error to this package's errors without
// allocating for the two a flood of bad packets produces.
func classify(err error, kind string) error {
	switch {
	case errors.Is(err, pionsrtp.ErrFailedToVerifyAuthTag):
		return ErrAuth
	case pionReplay() != nil && errors.Is(err, pionReplay()):
		return ErrReplay
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, kind, err)
}

// ErrUnknownSSRC is returned, before any decryption, for a packet whose
// SSRC (for SRTCP: the sender SSRC of its first RTCP packet; for a
// [Relay], also any CSRC) is not one the receiver keeps state for: not
// configured on a [Relay], or beyond the first [MaxSSRCs] of an
// [Unprotector]. Drop the packet; it is counted. It carries no detail on
// purpose.
var ErrUnknownSSRC = errors.New("srtp: packet from an SSRC not accepted")

// MaxSSRCs bounds the distinct SSRCs an [Unprotector] keeps replay and
// rollover state for (RTP sources and RTCP senders together): the first
// MaxSSRCs that send an authentic packet. pion/srtp keeps that state per
// SSRC for the life of the context, so without a bound an authenticated
// peer could make it grow without limit.
const MaxSSRCs = 32

// ssrcSet is a small fixed set of SSRCs, filled up to limit.
type ssrcSet struct {
	v     [MaxSSRCs]uint32
	n     int
	limit int
}

func (s *ssrcSet) has(x uint32) bool {
	for _, y := range s.v[:s.n] {
		if y == x {
			return true
		}
	}
	return false
}

func (s *ssrcSet) full() bool { return s.n >= s.limit }

func (s *ssrcSet) add(x uint32) {
	if s.n < s.limit && s.n < len(s.v) {
		s.v[s.n] = x
		s.n++
	}
}

// Header sizes that locate the SSRC in the clear part of a packet.
const (
	rtpHeaderLen  = 12 // RFC 3550 §5.1, without CSRCs
	rtcpHeaderLen = 8  // RFC 3550 §6.4.1: the common header and the sender SSRC
)

var (
	errShortRTP  = fmt.Errorf("%w: SRTP packet shorter than an RTP header", ErrMalformed)
	errShortRTCP = fmt.Errorf("%w: SRTCP packet shorter than an RTCP header", ErrMalformed)
	errOversize  = fmt.Errorf("%w: packet larger than %d bytes", ErrMalformed, MaxPacketSize)
)

// counter is a statistic written by one goroutine and read by any.
type counter struct{ atomic.Uint64 }

func (c *counter) inc() { c.Add(1) }

// UnprotectStats counts what an [Unprotector] saw; a plain value.
type UnprotectStats struct {
	RTP, RTCP       uint64 // packets decrypted and authenticated
	Bytes           uint64 // plaintext bytes of those packets
	Replays         uint64 // refused with ErrReplay
	AuthFailures    uint64 // refused with ErrAuth
	MalformedPacket uint64 // refused with ErrMalformed
	UnknownSSRC     uint64 // refused with ErrUnknownSSRC, before decryption
}

// Unprotector decrypts and authenticates the SRTP and SRTCP packets of one
// direction of a call leg with one [Context], refusing replays and
// counting what it refuses. It keeps state for at most [MaxSSRCs] SSRCs:
// packets from others are refused with [ErrUnknownSSRC] before they are
// decrypted.
//
// Concurrency: RTP and RTCP must not be called concurrently with each other
// or themselves (the pion context and the kept headers are not
// synchronised); use one goroutine per direction. Stats is safe to call
// from any goroutine. The zero value is not usable; make one with
// [NewUnprotector].
type Unprotector struct {
	ctx     *pionsrtp.Context
	hdr     rtp.Header
	rtcpHdr rtcp.Header
	ssrcs   ssrcSet
	rtp     counter
	rtcp    counter
	bytes   counter
	replays counter
	auth    counter
	bad     counter
	unknown counter
}

// NewUnprotector returns an Unprotector that decrypts with c, which it
// owns from then on: a c already given to another Protector, Unprotector
// or Relay gives [ErrContextInUse]. It panics if c was not made by
// [NewContext] or [ContextsFromDTLS].
func NewUnprotector(c *Context) (*Unprotector, error) {
	if !c.valid() {
		panic("srtp: NewUnprotector with a Context not made by NewContext")
	}
	ctx, err := c.claim()
	if err != nil {
		return nil, err
	}
	return &Unprotector{ctx: ctx, ssrcs: ssrcSet{limit: MaxSSRCs}}, nil
}

// RTP decrypts the SRTP packet src and appends the RTP packet to dst[:0],
// returning it; it allocates only when cap(dst) is too small (an SRTP
// packet's plaintext is shorter than the packet). src and dst must not
// overlap, unless they are the same slice (decryption in place). A refused
// packet gives [ErrReplay], [ErrAuth], [ErrUnknownSSRC] or an error
// matching [ErrMalformed].
func (u *Unprotector) RTP(dst, src []byte) ([]byte, error) {
	if err := u.check(src, rtpHeaderLen, errShortRTP); err != nil {
		return nil, err
	}
	ssrc := binary.BigEndian.Uint32(src[8:12])
	known := u.ssrcs.has(ssrc)
	if !known && u.ssrcs.full() {
		u.unknown.inc()
		return nil, ErrUnknownSSRC
	}
	out, err := u.decryptRTP(dst, src)
	if err == nil && !known {
		u.ssrcs.add(ssrc)
	}
	return out, err
}

// RTCP decrypts the SRTCP packet src as [Unprotector.RTP] does for SRTP;
// the SSRC that counts is the sender SSRC of the first RTCP packet.
func (u *Unprotector) RTCP(dst, src []byte) ([]byte, error) {
	if err := u.check(src, rtcpHeaderLen, errShortRTCP); err != nil {
		return nil, err
	}
	ssrc := binary.BigEndian.Uint32(src[4:8])
	known := u.ssrcs.has(ssrc)
	if !known && u.ssrcs.full() {
		u.unknown.inc()
		return nil, ErrUnknownSSRC
	}
	out, err := u.decryptRTCP(dst, src)
	if err == nil && !known {
		u.ssrcs.add(ssrc)
	}
	return out, err
}

// check refuses, and counts, a packet too short to carry its SSRC in the
// clear or too large.
func (u *Unprotector) check(src []byte, min int, short error) error {
	switch {
	case len(src) > MaxPacketSize:
		u.bad.inc()
		return errOversize
	case len(src) < min:
		u.bad.inc()
		return short
	}
	return nil
}

// decryptRTP decrypts and counts, with no SSRC check.
func (u *Unprotector) decryptRTP(dst, src []byte) ([]byte, error) {
	out, err := u.ctx.DecryptRTP(dst[:0], src, &u.hdr)
	if err != nil {
		return nil, u.refused(err, "srtp")
	}
	u.rtp.inc()
	u.bytes.Add(uint64(len(out)))
	return out, nil
}

// decryptRTCP decrypts and counts, with no SSRC check.
func (u *Unprotector) decryptRTCP(dst, src []byte) ([]byte, error) {
	out, err := u.ctx.DecryptRTCP(dst[:0], src, &u.rtcpHdr)
	if err != nil {
		return nil, u.refused(err, "srtcp")
	}
	u.rtcp.inc()
	u.bytes.Add(uint64(len(out)))
	return out, nil
}

func (u *Unprotector) refused(err error, kind string) error {
	err = classify(err, kind)
	switch err {
	case ErrAuth:
		u.auth.inc()
	case ErrReplay:
		u.replays.inc()
	default:
		u.bad.inc()
	}
	return err
}

// Stats returns the counters so far.
func (u *Unprotector) Stats() UnprotectStats {
	return UnprotectStats{
		RTP: u.rtp.Load(), RTCP: u.rtcp.Load(), Bytes: u.bytes.Load(),
		Replays: u.replays.Load(), AuthFailures: u.auth.Load(), MalformedPacket: u.bad.Load(),
		UnknownSSRC: u.unknown.Load(),
	}
}

// ProtectStats counts what a [Protector] sent; a plain value.
type ProtectStats struct {
	RTP, RTCP uint64 // packets encrypted
	Bytes     uint64 // bytes of the encrypted packets
}

// Protector encrypts the RTP and RTCP packets of one direction of a call
// leg with one [Context].
//
// The SRTP nonce is the SSRC and the packet index, which pion/srtp
// extends from the 16-bit sequence number as the index nearest to the
// highest one sent on that SSRC (RFC 3711 §3.3.1). The caller must never
// give it two different packets that extend to the same SSRC and index:
// that reuses the AES-CM keystream or the AES-GCM nonce under this key.
// [Relay] and [Forwarder] say how they keep that promise.
//
// Concurrency as for [Unprotector]: one goroutine per direction; Stats from
// any goroutine. The zero value is not usable; make one with
// [NewProtector].
type Protector struct {
	ctx     *pionsrtp.Context
	hdr     rtp.Header
	rtcpHdr rtcp.Header
	rtp     counter
	rtcp    counter
	bytes   counter
}

// NewProtector returns a Protector that encrypts with c, which it owns
// from then on: a c already given to another Protector, Unprotector or
// Relay gives [ErrContextInUse]. It panics if c was not made by
// [NewContext] or [ContextsFromDTLS].
func NewProtector(c *Context) (*Protector, error) {
	if !c.valid() {
		panic("srtp: NewProtector with a Context not made by NewContext")
	}
	ctx, err := c.claim()
	if err != nil {
		return nil, err
	}
	return &Protector{ctx: ctx}, nil
}

// RTP encrypts the RTP packet src and appends the SRTP packet to dst[:0],
// returning it; it allocates only when cap(dst) is too small (the packet
// grows by the authentication tag: 16 bytes for AEAD, 10 for
// AES128_CM_HMAC_SHA1_80). src and dst must not overlap unless they are the
// same slice (encryption in place, with room for the tag).
func (p *Protector) RTP(dst, src []byte) ([]byte, error) {
	if len(src) > MaxPacketSize {
		return nil, errOversize
	}
	out, err := p.ctx.EncryptRTP(dst[:0], src, &p.hdr)
	if err != nil {
		return nil, fmt.Errorf("srtp: encrypting RTP: %w", err)
	}
	p.rtp.inc()
	p.bytes.Add(uint64(len(out)))
	return out, nil
}

// RTCP encrypts the RTCP packet src as [Protector.RTP] does for RTP (the
// packet grows by the tag and the 4-byte SRTCP index).
func (p *Protector) RTCP(dst, src []byte) ([]byte, error) {
	if len(src) > MaxPacketSize {
		return nil, errOversize
	}
	out, err := p.ctx.EncryptRTCP(dst[:0], src, &p.rtcpHdr)
	if err != nil {
		return nil, fmt.Errorf("srtp: encrypting RTCP: %w", err)
	}
	p.rtcp.inc()
	p.bytes.Add(uint64(len(out)))
	return out, nil
}

// Stats returns the counters so far.
func (p *Protector) Stats() ProtectStats {
	return ProtectStats{RTP: p.rtp.Load(), RTCP: p.rtcp.Load(), Bytes: p.bytes.Load()}
}
