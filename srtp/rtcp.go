package srtp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrUnsupportedRTCP is returned by [Relay.RTCP], when its table rewrites
// an SSRC, for a compound RTCP packet whose first packet is of a type (or
// feedback format, or XR block type) whose layout the Relay does not know,
// so could not rewrite every SSRC of. Drop it; it is counted.
var ErrUnsupportedRTCP = errors.New("srtp: RTCP packet type not relayed")

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
)

// Feedback message types (the FMT in the count field).
const (
	rtpfbNACK  = 1  // RFC 4585 §6.2.1
	rtpfbTMMBR = 3  // RFC 5104 §4.2.1
	rtpfbTMMBN = 4  // RFC 5104 §4.2.2
	rtpfbTWCC  = 15 // draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1

	psfbPLI  = 1  // RFC 4585 §6.3.1
	psfbSLI  = 2  // RFC 4585 §6.3.2
	psfbRPSI = 3  // RFC 4585 §6.3.3
	psfbFIR  = 4  // RFC 5104 §4.3.1
	psfbTSTR = 5  // RFC 5104 §4.3.2
	psfbTSTN = 6  // RFC 5104 §4.3.3
	psfbAFB  = 15 // RFC 4585 §6.4; REMB is draft-alvestrand-rmcat-remb-03 §2.2
)

// XR report block types (RFC 3611 §4).
const (
	xrLossRLE      = 1
	xrDuplicateRLE = 2
	xrReceiptTimes = 3
	xrRRT          = 4 // receiver reference time: no SSRC
	xrDLRR         = 5
	xrStatistics   = 6
	xrVoIPMetrics  = 7
)

var errRTCPLayout = fmt.Errorf("%w: RTCP lengths do not add up", ErrMalformed)

// errSkip marks, inside rewriteRTCP, a packet whose layout it does not know.
var errSkip = errors.New("srtp: unknown RTCP layout")

// rewriteRTCP maps every SSRC field of the compound RTCP packet b in place
// and removes the packets whose layout it does not know (see
// [Relay.RTCP]), checking each packet's length against its content first.
// It returns the length of what is left and how many packets it removed.
// Whether it accepts b, and what it removes, does not depend on the map.
func (r *Relay) rewriteRTCP(b []byte) (n, removed int, err error) {
	w := 0 // write offset: kept packets move down over removed ones
	for off := 0; off < len(b); {
		if len(b)-off < 4 || b[off]>>6 != 2 {
			return 0, removed, errRTCPLayout
		}
		size := (int(binary.BigEndian.Uint16(b[off+2:off+4])) + 1) * 4
		if size > len(b)-off {
			return 0, removed, errRTCPLayout
		}
		p := b[off : off+size]
		switch err := r.rewritePacket(p); {
		case err == errSkip:
			if off == 0 {
				return 0, removed + 1, ErrUnsupportedRTCP
			}
			removed++
		case err != nil:
			return 0, removed, err
		default:
			w += copy(b[w:], p)
		}
		off += size
	}
	return w, removed, nil
}

// rewritePacket rewrites the SSRC fields of one RTCP packet p (its length
// field already checked against len(p)), or returns errSkip for a layout
// it does not know or errRTCPLayout for one that does not add up.
func (r *Relay) rewritePacket(p []byte) error {
	count := int(p[0] & 0x1f)
	end := len(p)
	if p[0]&0x20 != 0 { // padding: the last octet counts it
		pad := int(p[end-1])
		if pad == 0 || pad > end-4 {
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
	case rtcpRTPFB:
		return r.rewriteFeedback(p, end, count == rtpfbTMMBR || count == rtpfbTMMBN,
			count == rtpfbNACK || count == rtpfbTMMBR || count == rtpfbTMMBN || count == rtpfbTWCC)
	case rtcpPSFB:
		if count == psfbAFB {
			return r.rewriteREMB(p, end)
		}
		return r.rewriteFeedback(p, end, count == psfbFIR || count == psfbTSTR || count == psfbTSTN,
			count >= psfbPLI && count <= psfbTSTN)
	case rtcpXR:
		return r.rewriteXR(p, end)
	default: // APP (opaque application data) and every other type
		return errSkip
	}
	return nil
}

// rewriteFeedback rewrites an RTPFB or PSFB packet (RFC 4585 §6.1): the
// sender and media source SSRCs and, when entries is set, the SSRC that
// opens each 8-byte FCI entry (TMMBR, TMMBN, FIR, TSTR, TSTN).
func (r *Relay) rewriteFeedback(p []byte, end int, entries, known bool) error {
	if end < 12 {
		return errRTCPLayout
	}
	if !known {
		return errSkip
	}
	if entries && (end-12)%8 != 0 {
		return errRTCPLayout
	}
	r.rewriteAt(p, 4)
	r.rewriteAt(p, 8)
	if entries {
		for off := 12; off < end; off += 8 {
			r.rewriteAt(p, off)
		}
	}
	return nil
}

// rewriteREMB rewrites a PSFB application-layer feedback packet if it is
// REMB: sender, media source (0 by the draft) and the SSRC list.
func (r *Relay) rewriteREMB(p []byte, end int) error {
	if end < 12 {
		return errRTCPLayout
	}
	if end < 20 || string(p[12:16]) != "REMB" {
		return errSkip
	}
	num := int(p[16])
	if end < 20+num*4 {
		return errRTCPLayout
	}
	r.rewriteAt(p, 4)
	r.rewriteAt(p, 8)
	for i := range num {
		r.rewriteAt(p, 20+i*4)
	}
	return nil
}

// rewriteXR rewrites an XR packet (RFC 3611 §2): the sender SSRC and the
// SSRCs of its report blocks, after checking every block's length. Any
// block type other than 1 to 7 makes the whole packet errSkip.
func (r *Relay) rewriteXR(p []byte, end int) error {
	if end < 8 {
		return errRTCPLayout
	}
	for off := 8; off < end; {
		if end-off < 4 {
			return errRTCPLayout
		}
		size := (int(binary.BigEndian.Uint16(p[off+2:off+4])) + 1) * 4
		if size > end-off {
			return errRTCPLayout
		}
		switch p[off] {
		case xrLossRLE, xrDuplicateRLE, xrReceiptTimes, xrStatistics, xrVoIPMetrics:
			if size < 8 {
				return errRTCPLayout
			}
		case xrDLRR:
			if (size-4)%12 != 0 {
				return errRTCPLayout
			}
		case xrRRT:
		default:
			return errSkip
		}
		off += size
	}
	// Every block is known and fits: rewrite.
	r.rewriteAt(p, 4)
	for off := 8; off < end; {
		size := (int(binary.BigEndian.Uint16(p[off+2:off+4])) + 1) * 4
		switch p[off] {
		case xrLossRLE, xrDuplicateRLE, xrReceiptTimes, xrStatistics, xrVoIPMetrics:
			r.rewriteAt(p, off+4)
		case xrDLRR:
			for sub := off + 4; sub < off+size; sub += 12 {
				r.rewriteAt(p, sub)
			}
		}
		off += size
	}
	return nil
}
