package srtp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Implementation limits of a [Relay].
const (
	// MaxRelaySSRCs bounds a Relay's SSRC table: the [WithSSRC] and
	// [WithPassThrough] entries, the only RTP sources it relays.
	MaxRelaySSRCs = 16
	// MaxRelayRTCPSenders bounds the SRTCP sender SSRCs outside the table
	// that a Relay accepts (receive-only endpoints send their reports
	// from an SSRC that sends no media): the first ones that send an
	// authentic packet.
	MaxRelayRTCPSenders = 8
	// MaxPayloadTypeRewrites bounds the [WithPayloadType] entries.
	MaxPayloadTypeRewrites = 16
)

// relayScratch is the initial capacity of a Relay's plaintext buffers:
// a full-MTU packet. Larger packets grow them once.
const relayScratch = 1500

// ErrBadRelayOption is matched by the error of [NewRelay] for an invalid
// [RelayOption] or set of options, or a [Context] not made by
// [NewContext].
var ErrBadRelayOption = errors.New("srtp: invalid relay option")

// RelayOption configures a [Relay]; see [WithSSRC], [WithPassThrough] and
// [WithPayloadType]. [NewRelay] validates the options and refuses invalid
// ones.
type RelayOption func(*Relay) error

// WithSSRC relays the RTP source from, as SSRC to: in the RTP header, in
// the CSRC list and in every SSRC field of RTCP (see [Relay.RTCP]).
//
// The SSRC table of a Relay is its allowlist and must be one-to-one:
// [NewRelay] refuses a from given twice and a to given twice (including
// the SSRC of a [WithPassThrough]), because two sources leaving as one
// SSRC would be encrypted under the same packet indices, that is under
// the same nonces. WithSSRC(s, s) is WithPassThrough(s).
//
// Both directions of a call normally need entries: a leg-A-to-leg-B relay
// maps A's sources to the SSRCs B sees, and the reverse relay maps B's
// sources and also the SSRCs that B's feedback names back to the ones A
// sent (such an entry also admits RTP from that SSRC, which is harmless:
// the table stays one-to-one).
func WithSSRC(from, to uint32) RelayOption {
	return func(r *Relay) error { return r.addSSRC(from, to) }
}

// WithPassThrough relays the RTP source ssrc unchanged. It is refused if
// ssrc is also the from or the to of another entry (see [WithSSRC]).
func WithPassThrough(ssrc uint32) RelayOption {
	return func(r *Relay) error { return r.addSSRC(ssrc, ssrc) }
}

// WithPayloadType rewrites RTP payload type from to to (both 0 to 127),
// keeping the marker bit. Payload types without an entry pass unchanged.
// A from given twice is refused.
func WithPayloadType(from, to uint8) RelayOption {
	return func(r *Relay) error {
		if from > 127 || to > 127 {
			return fmt.Errorf("%w: payload type %d->%d out of range", ErrBadRelayOption, from, to)
		}
		if r.nPT == MaxPayloadTypeRewrites {
			return fmt.Errorf("%w: more than %d payload type rewrites", ErrBadRelayOption, MaxPayloadTypeRewrites)
		}
		if r.ptSet[from/64]&(1<<(from%64)) != 0 {
			return fmt.Errorf("%w: payload type %d rewritten twice", ErrBadRelayOption, from)
		}
		r.ptSet[from/64] |= 1 << (from % 64)
		r.pt[from] = to
		r.nPT++
		return nil
	}
}

func (r *Relay) addSSRC(from, to uint32) error {
	if r.nSSRC == MaxRelaySSRCs {
		return fmt.Errorf("%w: more than %d SSRCs", ErrBadRelayOption, MaxRelaySSRCs)
	}
	for _, m := range r.ssrc[:r.nSSRC] {
		if m.from == from {
			return fmt.Errorf("%w: SSRC %#x configured twice", ErrBadRelayOption, from)
		}
		if m.to == to {
			return fmt.Errorf("%w: SSRCs %#x and %#x would both leave as %#x", ErrBadRelayOption, m.from, from, to)
		}
	}
	r.ssrc[r.nSSRC] = ssrcRewrite{from, to}
	r.nSSRC++
	if from != to {
		r.rewrite = true
	}
	return nil
}

type ssrcRewrite struct{ from, to uint32 }

// RelayStats counts what a [Relay] did; a plain value.
type RelayStats struct {
	In  UnprotectStats // leg A: decrypted and refused packets (In.UnknownSSRC: not in the table)
	Out ProtectStats   // leg B: re-encrypted packets
	// RTCPUnsupported counts RTCP packets not relayed because the rewrite
	// does not know their layout (see [Relay.RTCP]).
	RTCPUnsupported uint64
}

// Relay moves SRTP and SRTCP packets from one call leg to another: it
// decrypts a packet with leg A's context (replay protection on, see
// [Unprotector]), rewrites SSRCs and payload types per its options, and
// encrypts it with leg B's context into a buffer the caller supplies. The
// plaintext stays in buffers the Relay keeps; nothing is allocated per
// packet once the caller's buffers and the Relay's have grown to the
// largest packet and every SSRC has been seen once.
//
// Allowlist: a Relay relays RTP only from the SSRCs of its table
// ([WithSSRC], [WithPassThrough]). It reads the SSRC from the clear
// header and refuses any other with [ErrUnknownSSRC] before decrypting,
// so an authenticated peer can neither make either context keep state for
// SSRCs it invents nor make two sources share an outgoing SSRC.
//
// Nonces: leg B's context extends each packet's sequence number to an
// index (see [Protector]). The table is one-to-one, the Relay owns both
// contexts, and it decides before decryption whether a packet is relayed;
// so leg B's context sees, per outgoing SSRC, exactly the packets that
// leg A's context accepted for one incoming SSRC, in the same order, and
// extends their sequence numbers to the same indices, which A's replay
// protection makes unique. Should encryption for leg B ever fail (after
// 2^48 packets), the Relay stops: every later RTP packet gets that error.
//
// A Relay is one direction; the other direction is another Relay over the
// two other contexts (leg B's decrypting one, leg A's encrypting one).
//
// Concurrency: RTP and RTCP of one Relay must not run concurrently with
// each other or themselves: run each direction in its own goroutine. Stats
// is safe from any goroutine. The zero value is not usable; make one with
// [NewRelay].
type Relay struct {
	in          Unprotector
	out         Protector
	plain       []byte
	plainRTCP   []byte
	ssrc        [MaxRelaySSRCs]ssrcRewrite
	nSSRC       int
	rewrite     bool // an entry has from != to
	pt          [128]uint8
	ptSet       [2]uint64
	nPT         int
	unsupported counter
	failed      error // sticky: leg B's context refused to encrypt
}

// NewRelay returns a Relay that decrypts with in (leg A's context for what
// A sends) and encrypts with out (leg B's context for what is sent to B);
// it owns both from then on. A context already given to a Protector,
// Unprotector or Relay, or in and out being one context, gives
// [ErrContextInUse]. A nil context, no SSRC entry at all or invalid
// options give [ErrBadRelayOption].
func NewRelay(in, out *Context, opts ...RelayOption) (*Relay, error) {
	if !in.valid() || !out.valid() {
		return nil, fmt.Errorf("%w: a context not made by NewContext", ErrBadRelayOption)
	}
	if in.s == out.s {
		return nil, fmt.Errorf("%w: one context for both legs", ErrContextInUse)
	}
	r := &Relay{
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
	if r.nSSRC == 0 {
		return nil, fmt.Errorf("%w: no SSRC to relay (WithSSRC or WithPassThrough)", ErrBadRelayOption)
	}
	inCtx, err := in.claim()
	if err != nil {
		return nil, err
	}
	outCtx, err := out.claim()
	if err != nil {
		in.release()
		return nil, err
	}
	r.in = Unprotector{ctx: inCtx, ssrcs: ssrcSet{limit: MaxRelayRTCPSenders}}
	r.out = Protector{ctx: outCtx}
	return r, nil
}

// RTP relays the SRTP packet src and returns the SRTP packet for leg B,
// appended to dst[:0] (give dst a capacity of len(src)+16 and it is not
// reallocated). src is not modified; dst must not overlap it.
//
// A packet whose SSRC is not in the table, or (when the table rewrites an
// SSRC) one of whose CSRCs is not, gives [ErrUnknownSSRC] before
// decryption; a packet refused by leg A's context gives [ErrReplay],
// [ErrAuth] or an error matching [ErrMalformed]. Nothing is sent then.
func (r *Relay) RTP(dst, src []byte) ([]byte, error) {
	if r.failed != nil {
		return nil, r.failed
	}
	if err := r.in.check(src, rtpHeaderLen, errShortRTP); err != nil {
		return nil, err
	}
	// Everything that may refuse the packet is decided here, before leg
	// A's context accepts it: see "Nonces" in the type's doc.
	i := r.lookup(binary.BigEndian.Uint32(src[8:12]))
	if i < 0 {
		r.in.unknown.inc()
		return nil, ErrUnknownSSRC
	}
	cc := 0
	if r.rewrite {
		cc = int(src[0] & 0x0f)
		if len(src) < rtpHeaderLen+4*cc {
			r.in.bad.inc()
			return nil, errShortRTP
		}
		for k := range cc {
			if r.lookup(binary.BigEndian.Uint32(src[rtpHeaderLen+4*k:])) < 0 {
				r.in.unknown.inc()
				return nil, ErrUnknownSSRC
			}
		}
	}
	plain, err := r.in.decryptRTP(r.plain, src)
	if err != nil {
		return nil, err
	}
	r.plain = plain[:0]
	// The header is src's, checked by DecryptRTP: 12 bytes and the CSRCs.
	if r.rewrite {
		binary.BigEndian.PutUint32(plain[8:12], r.ssrc[i].to)
		for k := range cc {
			r.rewriteAt(plain, rtpHeaderLen+4*k)
		}
	}
	if r.nPT > 0 {
		plain[1] = plain[1]&0x80 | r.pt[plain[1]&0x7f]
	}
	out, err := r.out.RTP(dst, plain)
	if err != nil {
		r.failed = fmt.Errorf("srtp: relay stopped: %w", err)
		return nil, r.failed
	}
	return out, nil
}

// RTCP relays the SRTCP packet src as [Relay.RTP] does for SRTP.
//
// The sender SSRC of the first RTCP packet (the one SRTCP keys its state
// by) must be in the table or be one of the first [MaxRelayRTCPSenders]
// others that sent an authentic packet, and must not be the to of an
// entry; otherwise [ErrUnknownSSRC], before decryption. Other SSRCs that
// are not in the table pass unchanged.
//
// When the table rewrites an SSRC, every SSRC field of the compound packet
// is rewritten, in the RTCP packets whose layout the Relay knows: SR and
// RR (sender, report blocks), SDES (chunks), BYE (sources), RTPFB generic
// NACK, TMMBR, TMMBN and transport-wide congestion control (sender, media
// source, TMMBR/TMMBN entries), PSFB PLI, SLI, RPSI, FIR, TSTR, TSTN and
// REMB (sender, media source, FIR/TSTR/TSTN entries, REMB SSRCs) and XR
// with report blocks of types 1 to 7 (sender, block sources, DLRR
// sub-blocks). Any other packet (APP, other feedback, other XR blocks,
// unknown types) could carry an SSRC the Relay would not rewrite, so it
// is removed from the compound; if it is the first, the whole compound is
// dropped with [ErrUnsupportedRTCP]. A compound whose lengths do not add
// up is refused with [ErrMalformed].
func (r *Relay) RTCP(dst, src []byte) ([]byte, error) {
	if err := r.in.check(src, rtcpHeaderLen, errShortRTCP); err != nil {
		return nil, err
	}
	sender := binary.BigEndian.Uint32(src[4:8])
	learn := false
	if r.lookup(sender) < 0 {
		if r.isTo(sender) {
			r.in.unknown.inc()
			return nil, ErrUnknownSSRC
		}
		if !r.in.ssrcs.has(sender) {
			if r.in.ssrcs.full() {
				r.in.unknown.inc()
				return nil, ErrUnknownSSRC
			}
			learn = true
		}
	}
	plain, err := r.in.decryptRTCP(r.plainRTCP, src)
	if err != nil {
		return nil, err
	}
	r.plainRTCP = plain[:0]
	if learn {
		r.in.ssrcs.add(sender)
	}
	if r.rewrite {
		n, unsupported, err := r.rewriteRTCP(plain)
		if unsupported > 0 {
			r.unsupported.Add(uint64(unsupported))
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) {
				r.in.bad.inc()
			}
			return nil, err
		}
		plain = plain[:n]
	}
	return r.out.RTCP(dst, plain)
}

// Stats returns the counters so far.
func (r *Relay) Stats() RelayStats {
	return RelayStats{In: r.in.Stats(), Out: r.out.Stats(), RTCPUnsupported: r.unsupported.Load()}
}

// lookup returns the index of the table entry for from, or -1.
func (r *Relay) lookup(from uint32) int {
	for i, m := range r.ssrc[:r.nSSRC] {
		if m.from == from {
			return i
		}
	}
	return -1
}

// isTo reports whether s is the outgoing SSRC of an entry.
func (r *Relay) isTo(s uint32) bool {
	for _, m := range r.ssrc[:r.nSSRC] {
		if m.to == s {
			return true
		}
	}
	return false
}

func (r *Relay) mapSSRC(s uint32) uint32 {
	if i := r.lookup(s); i >= 0 {
		return r.ssrc[i].to
	}
	return s
}

func (r *Relay) rewriteAt(b []byte, off int) {
	binary.BigEndian.PutUint32(b[off:off+4], r.mapSSRC(binary.BigEndian.Uint32(b[off:off+4])))
}
