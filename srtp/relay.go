package srtp

import (
	"encoding/binary"
	"errors"
	"fmt"

	pionsrtp "github.com/pion/srtp/v3"
)

// Implementation limits of a [Relay]'s rewrite tables.
const (
	MaxSSRCRewrites        = 16
	MaxPayloadTypeRewrites = 16
)

// relayScratch is the initial capacity of a Relay's plaintext buffers:
// a full-MTU packet. Larger packets grow them once.
const relayScratch = 1500

// ErrBadRelayOption is matched by the error of [NewRelay] for an invalid
// [RelayOption].
var ErrBadRelayOption = errors.New("srtp: invalid relay option")

// RelayOption configures a [Relay]; see [WithSSRC] and [WithPayloadType].
// [NewRelay] validates the options and refuses invalid ones.
type RelayOption func(*Relay) error

// WithSSRC rewrites SSRC from to SSRC to: in the RTP header, and in every
// SSRC field of RTCP that the relay knows (sender SSRC of every packet,
// report blocks, SDES chunks, BYE sources, feedback media source, FIR and
// REMB entries). Both directions of a call normally need entries: a
// leg-A-to-leg-B relay maps A's sources to the SSRCs B sees, and the SSRCs
// that B's feedback names back to the ones A sent.
func WithSSRC(from, to uint32) RelayOption {
	return func(r *Relay) error {
		if r.nSSRC == MaxSSRCRewrites {
			return fmt.Errorf("%w: more than %d SSRC rewrites", ErrBadRelayOption, MaxSSRCRewrites)
		}
		for _, m := range r.ssrc[:r.nSSRC] {
			if m.from == from {
				return fmt.Errorf("%w: SSRC %d rewritten twice", ErrBadRelayOption, from)
			}
		}
		r.ssrc[r.nSSRC] = ssrcRewrite{from, to}
		r.nSSRC++
		return nil
	}
}

// WithPayloadType rewrites RTP payload type from to to (both 0 to 127),
// keeping the marker bit.
func WithPayloadType(from, to uint8) RelayOption {
	return func(r *Relay) error {
		if from > 127 || to > 127 {
			return fmt.Errorf("%w: payload type %d->%d out of range", ErrBadRelayOption, from, to)
		}
		if r.nPT == MaxPayloadTypeRewrites {
			return fmt.Errorf("%w: more than %d payload type rewrites", ErrBadRelayOption, MaxPayloadTypeRewrites)
		}
		if r.pt[from] != from {
			return fmt.Errorf("%w: payload type %d rewritten twice", ErrBadRelayOption, from)
		}
		r.pt[from] = to
		r.nPT++
		return nil
	}
}

type ssrcRewrite struct{ from, to uint32 }

// RelayStats counts what a [Relay] did; a plain value.
type RelayStats struct {
	In  UnprotectStats // leg A: decrypted and refused packets
	Out ProtectStats   // leg B: re-encrypted packets
}

// Relay moves SRTP and SRTCP packets from one call leg to another: it
// decrypts a packet with leg A's context (replay protection on, see
// [Unprotector]), rewrites SSRCs and payload types per its options, and
// encrypts it with leg B's context into a buffer the caller supplies. The
// plaintext stays in buffers the Relay keeps; nothing is allocated per
// packet once the caller's buffers and the Relay's have grown to the
// largest packet and every SSRC has been seen once.
//
// A Relay is one direction; the other direction is another Relay over the
// two other contexts (leg B's decrypting one, leg A's encrypting one).
//
// Concurrency: RTP and RTCP of one Relay must not run concurrently with
// each other or themselves: run each direction in its own goroutine. Stats
// is safe from any goroutine. The zero value is not usable; make one with
// [NewRelay].
type Relay struct {
	in        Unprotector
	out       Protector
	plain     []byte
	plainRTCP []byte
	ssrc      [MaxSSRCRewrites]ssrcRewrite
	nSSRC     int
	pt        [128]uint8
	nPT       int
}

// NewRelay returns a Relay that decrypts with in (leg A's context for what
// A sends, with replay protection: see [NewContext]) and encrypts with out
// (leg B's context for what is sent to B). in and out must be different
// contexts.
func NewRelay(in, out *pionsrtp.Context, opts ...RelayOption) (*Relay, error) {
	if in == nil || out == nil {
		return nil, fmt.Errorf("%w: nil context", ErrBadRelayOption)
	}
	if in == out {
		return nil, fmt.Errorf("%w: one context for both legs", ErrBadRelayOption)
	}
	r := &Relay{
		in:        Unprotector{ctx: in},
		out:       Protector{ctx: out},
		plain:     make([]byte, 0, relayScratch),
		plainRTCP: make([]byte, 0, relayScratch),
	}
	for i := range r.pt {
		r.pt[i] = uint8(i)
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// RTP relays the SRTP packet src and returns the SRTP packet for leg B,
// appended to dst[:0] (give dst a capacity of len(src)+16 and it is not
// reallocated). src is not modified; dst must not overlap it. A packet
// refused by leg A's context gives [ErrReplay], [ErrAuth] or an error
// matching [ErrMalformed], and nothing is sent.
func (r *Relay) RTP(dst, src []byte) ([]byte, error) {
	plain, err := r.in.RTP(r.plain, src)
	if err != nil {
		return nil, err
	}
	r.plain = plain[:0]
	// The header was checked by DecryptRTP: at least 12 bytes.
	if r.nSSRC > 0 {
		binary.BigEndian.PutUint32(plain[8:12], r.mapSSRC(binary.BigEndian.Uint32(plain[8:12])))
	}
	if r.nPT > 0 {
		plain[1] = plain[1]&0x80 | r.pt[plain[1]&0x7f]
	}
	return r.out.RTP(dst, plain)
}

// RTCP relays the SRTCP packet src as [Relay.RTP] does for SRTP, rewriting
// the SSRC fields of every packet of the compound RTCP packet. A compound
// packet whose lengths do not add up is refused with [ErrMalformed].
func (r *Relay) RTCP(dst, src []byte) ([]byte, error) {
	plain, err := r.in.RTCP(r.plainRTCP, src)
	if err != nil {
		return nil, err
	}
	r.plainRTCP = plain[:0]
	if r.nSSRC > 0 {
		if err := r.rewriteRTCP(plain); err != nil {
			r.in.bad.inc()
			return nil, err
		}
	}
	return r.out.RTCP(dst, plain)
}

// Stats returns the counters so far.
func (r *Relay) Stats() RelayStats { return RelayStats{In: r.in.Stats(), Out: r.out.Stats()} }

func (r *Relay) mapSSRC(s uint32) uint32 {
	for _, m := range r.ssrc[:r.nSSRC] {
		if m.from == s {
			return m.to
		}
	}
	return s
}

func (r *Relay) rewriteAt(b []byte, off int) {
	binary.BigEndian.PutUint32(b[off:off+4], r.mapSSRC(binary.BigEndian.Uint32(b[off:off+4])))
}

// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2).
const (
	rtcpSR    = 200
	rtcpRR    = 201
	rtcpSDES  = 202
	rtcpBYE   = 203
	rtcpAPP   = 204
	rtcpRTPFB = 205
	rtcpPSFB  = 206
	rtcpXR    = 207

	psfbFIR = 4  // RFC 5104 §4.3.1
	psfbAFB = 15 // RFC 4585 §6.4; REMB is draft-alvestrand-rmcat-remb
)

var errRTCPLayout = fmt.Errorf("%w: RTCP lengths do not add up", ErrMalformed)

// rewriteRTCP maps every SSRC field it knows in the compound RTCP packet b,
// in place, checking each packet's length against its content first.
func (r *Relay) rewriteRTCP(b []byte) error {
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return errRTCPLayout
		}
		count := int(b[0] & 0x1f)
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return errRTCPLayout
		}
		p := b[:n]
		b = b[n:]
		end := n
		if p[0]&0x20 != 0 { // padding: the last octet counts it
			pad := int(p[n-1])
			if pad == 0 || pad > n-4 {
				return errRTCPLayout
			}
			end -= pad
		}
		switch p[1] {
		case rtcpSR, rtcpRR:
			blocks := 8
			if p[1] == rtcpSR {
				blocks = 28
			}
			if end < blocks+count*24 {
				return errRTCPLayout
			}
			r.rewriteAt(p, 4)
			for i := range count {
				r.rewriteAt(p, blocks+i*24)
			}
		case rtcpSDES:
			off := 4
			for range count {
				if off+4 > end {
					return errRTCPLayout
				}
				r.rewriteAt(p, off)
				off += 4
				for {
					if off >= end {
						return errRTCPLayout
					}
					if p[off] == 0 { // end of items, padded to a word
						off = (off + 4) &^ 3
						break
					}
					if off+2 > end {
						return errRTCPLayout
					}
					off += 2 + int(p[off+1])
				}
			}
			if off > end {
				return errRTCPLayout
			}
		case rtcpBYE:
			if end < 4+count*4 {
				return errRTCPLayout
			}
			for i := range count {
				r.rewriteAt(p, 4+i*4)
			}
		case rtcpRTPFB, rtcpPSFB:
			if end < 12 {
				return errRTCPLayout
			}
			r.rewriteAt(p, 4)
			r.rewriteAt(p, 8)
			if p[1] == rtcpPSFB && count == psfbFIR {
				if (end-12)%8 != 0 {
					return errRTCPLayout
				}
				for off := 12; off < end; off += 8 {
					r.rewriteAt(p, off)
				}
			}
			if p[1] == rtcpPSFB && count == psfbAFB && end >= 20 && string(p[12:16]) == "REMB" {
				num := int(p[16])
				if end < 20+num*4 {
					return errRTCPLayout
				}
				for i := range num {
					r.rewriteAt(p, 20+i*4)
				}
			}
		case rtcpAPP, rtcpXR:
			if end < 8 {
				return errRTCPLayout
			}
			r.rewriteAt(p, 4)
		default:
			if end >= 8 {
				r.rewriteAt(p, 4)
			}
		}
	}
	return nil
}
