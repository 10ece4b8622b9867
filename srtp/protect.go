package srtp

import (
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
}

// Unprotector decrypts and authenticates the SRTP and SRTCP packets of one
// direction of a call leg with one pion/srtp context, refusing replays and
// counting what it refuses.
//
// The context must have replay protection on: make it with [NewContext] or
// [ContextsFromDTLS], or pass [ContextOptions] to pionsrtp.CreateContext.
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
	rtp     counter
	rtcp    counter
	bytes   counter
	replays counter
	auth    counter
	bad     counter
}

// NewUnprotector returns an Unprotector that decrypts with ctx.
func NewUnprotector(ctx *pionsrtp.Context) *Unprotector {
	if ctx == nil {
		panic("srtp: NewUnprotector with a nil context")
	}
	return &Unprotector{ctx: ctx}
}

// RTP decrypts the SRTP packet src and appends the RTP packet to dst[:0],
// returning it; it allocates only when cap(dst) is too small (an SRTP
// packet's plaintext is shorter than the packet). src and dst must not
// overlap, unless they are the same slice (decryption in place). A refused
// packet gives [ErrReplay], [ErrAuth] or an error matching [ErrMalformed].
func (u *Unprotector) RTP(dst, src []byte) ([]byte, error) {
	if len(src) > MaxPacketSize {
		u.bad.inc()
		return nil, fmt.Errorf("%w: %d-byte packet", ErrMalformed, len(src))
	}
	out, err := u.ctx.DecryptRTP(dst[:0], src, &u.hdr)
	if err != nil {
		return nil, u.refused(err, "srtp")
	}
	u.rtp.inc()
	u.bytes.Add(uint64(len(out)))
	return out, nil
}

// RTCP decrypts the SRTCP packet src as [Unprotector.RTP] does for SRTP.
func (u *Unprotector) RTCP(dst, src []byte) ([]byte, error) {
	if len(src) > MaxPacketSize {
		u.bad.inc()
		return nil, fmt.Errorf("%w: %d-byte packet", ErrMalformed, len(src))
	}
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
	}
}

// ProtectStats counts what a [Protector] sent; a plain value.
type ProtectStats struct {
	RTP, RTCP uint64 // packets encrypted
	Bytes     uint64 // bytes of the encrypted packets
}

// Protector encrypts the RTP and RTCP packets of one direction of a call
// leg with one pion/srtp context.
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

// NewProtector returns a Protector that encrypts with ctx.
func NewProtector(ctx *pionsrtp.Context) *Protector {
	if ctx == nil {
		panic("srtp: NewProtector with a nil context")
	}
	return &Protector{ctx: ctx}
}

// RTP encrypts the RTP packet src and appends the SRTP packet to dst[:0],
// returning it; it allocates only when cap(dst) is too small (the packet
// grows by the authentication tag: 16 bytes for AEAD, 10 for
// AES128_CM_HMAC_SHA1_80). src and dst must not overlap unless they are the
// same slice (encryption in place, with room for the tag).
func (p *Protector) RTP(dst, src []byte) ([]byte, error) {
	if len(src) > MaxPacketSize {
		return nil, fmt.Errorf("%w: %d-byte packet", ErrMalformed, len(src))
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
		return nil, fmt.Errorf("%w: %d-byte packet", ErrMalformed, len(src))
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
