package jingle

import (
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
)

// errNonUDPCandidate marks a well-formed candidate of another transport
// protocol (TCP): SDPToJingle leaves those out, CandidateFromSDP returns
// it wrapped in an *SDPError with ErrSDPUnsupported.
var errNonUDPCandidate = errors.New("jingle: not a UDP candidate")

// CandidateFromSDP parses one ICE candidate as SDP writes it (RFC 8839
// §5.1), with or without the "a=" and "candidate:" prefixes — the form of
// RTCIceCandidate.candidate and pion's ICECandidateInit.Candidate — into a
// XEP-0176 candidate of the content mid. Extensions generation and
// network-id are kept; ufrag, network-cost and unknown extensions are
// not. The candidate id is derived from mid and the candidate, so the
// same candidate always gets the same id.
//
// A TCP candidate gives an *SDPError wrapping ErrSDPUnsupported (ICE-UDP
// carries none: skip it); an empty line (end of candidates) gives one
// wrapping ErrSDPMalformed. Every error is an *[SDPError].
func CandidateFromSDP(mid, candidateLine string) (Candidate, error) {
	if mid == "" || len(mid) > MaxIDLen || !sdpIsToken(mid) {
		return Candidate{}, sdpErr(ErrSDPMalformed, "", "a=candidate", "mid %q is not a token of at most %d bytes", mid, MaxIDLen)
	}
	line := strings.TrimSpace(candidateLine)
	line = strings.TrimPrefix(line, "a=")
	line = strings.TrimPrefix(line, "candidate:")
	c, err := sdpParseCandidate(mid, line)
	if errors.Is(err, errNonUDPCandidate) {
		return Candidate{}, &SDPError{Err: ErrSDPUnsupported, Media: mid, Attr: "a=candidate", Detail: "not UDP (ICE-UDP carries UDP candidates only)", Cause: errNonUDPCandidate}
	}
	return c, err
}

// parseCandidate parses the value of an a=candidate attribute (without
// the "candidate:" key).
func sdpParseCandidate(mid, v string) (Candidate, error) {
	const key = "a=candidate"
	if len(v) > MaxAttrLen {
		return Candidate{}, sdpErr(ErrSDPLimit, mid, key, "%d bytes, at most %d", len(v), MaxAttrLen)
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "empty (end of candidates)")
	}
	if len(f) < 8 || f[6] != "typ" || len(f)%2 != 0 {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "not foundation component transport priority address port typ type [extensions]")
	}
	var c Candidate
	if len(f[0]) > 32 || !sdpIsToken(f[0]) {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "foundation %q", f[0])
	}
	c.Foundation = f[0]
	comp, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil || comp == 0 {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "component %q", f[1])
	}
	c.Component = uint8(comp)
	c.Protocol = strings.ToLower(f[2])
	if c.Protocol != "udp" {
		if sdpIsToken(c.Protocol) {
			return Candidate{}, errNonUDPCandidate
		}
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "transport %q", f[2])
	}
	prio, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "priority %q", f[3])
	}
	c.Priority = uint32(prio)
	if !sdpIsCandidateAddr(f[4]) {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "address %q", f[4])
	}
	c.IP = f[4]
	port, err := strconv.ParseUint(f[5], 10, 16)
	if err != nil {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "port %q", f[5])
	}
	c.Port = uint16(port)
	switch f[7] {
	case "host", "srflx", "prflx", "relay":
		c.Type = f[7]
	default:
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "type %q", f[7])
	}
	hasRPort := false
	for i := 8; i+1 < len(f); i += 2 {
		name, val := f[i], f[i+1]
		switch name {
		case "raddr":
			if !sdpIsCandidateAddr(val) {
				return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "raddr %q", val)
			}
			c.RelAddr = val
		case "rport":
			p, err := strconv.ParseUint(val, 10, 16)
			if err != nil {
				return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "rport %q", val)
			}
			c.RelPort, hasRPort = uint16(p), true
		case "generation":
			g, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "generation %q", val)
			}
			c.Generation = uint32(g)
		case "network-id":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "network-id %q", val)
			}
			c.Network = uint32(n)
		default:
			if !sdpIsToken(name) || !sdpIsToken(val) {
				return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "extension %q", name)
			}
		}
	}
	if (c.RelAddr != "") != hasRPort {
		return Candidate{}, sdpErr(ErrSDPMalformed, mid, key, "raddr and rport go together")
	}
	c.ID = sdpCandidateID(mid, c)
	return c, nil
}

// candidateID derives a stable XEP-0176 id from the content and the
// candidate's own fields (FNV-1a; an identifier, not a secret).
func sdpCandidateID(mid string, c Candidate) string {
	h := fnv.New64a()
	h.Write([]byte(mid))
	h.Write([]byte{0})
	c.ID = ""
	h.Write([]byte(sdpCandidateString(c)))
	return "c" + strconv.FormatUint(h.Sum64(), 36)
}

// sdpIsCandidateAddr accepts the characters of an IPv4 or IPv6 address or
// of an mDNS / host name (browsers hide host addresses behind <uuid>.local
// names); ICE resolves or refuses the value itself.
func sdpIsCandidateAddr(s string) bool {
	if len(s) > 253 || s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// CheckCandidate reports whether c can be written into SDP as it stands:
// UDP, component 1-255, a known type, an IP address or host name, and a
// foundation token. Candidates that arrived from a peer must pass it
// before [CandidateToSDP]; [JingleToSDP] checks every candidate itself.
// Its error is an *[SDPError].
func CheckCandidate(c Candidate) error {
	const key = "candidate"
	switch {
	case !strings.EqualFold(c.Protocol, "udp"):
		return sdpErr(ErrSDPUnsupported, "", key, "protocol %q (ICE-UDP carries UDP only)", c.Protocol)
	case c.Component == 0:
		return sdpErr(ErrSDPMalformed, "", key, "component 0")
	case len(c.Foundation) > 32 || !sdpIsToken(c.Foundation):
		return sdpErr(ErrSDPMalformed, "", key, "foundation %q", c.Foundation)
	case !sdpIsCandidateAddr(c.IP):
		return sdpErr(ErrSDPMalformed, "", key, "ip %q", c.IP)
	case c.RelAddr != "" && !sdpIsCandidateAddr(c.RelAddr):
		return sdpErr(ErrSDPMalformed, "", key, "rel-addr %q", c.RelAddr)
	}
	switch c.Type {
	case "host", "srflx", "prflx", "relay":
	default:
		return sdpErr(ErrSDPMalformed, "", key, "type %q", c.Type)
	}
	return nil
}

// CandidateToSDP writes c as the value pion's ICECandidateInit.Candidate
// and a browser's addIceCandidate take: "candidate:<foundation> ...",
// without "a=". It returns the empty string for a candidate that fails
// [CheckCandidate]; never hand that on (to ICE an empty candidate means
// end of candidates).
func CandidateToSDP(c Candidate) string {
	if CheckCandidate(c) != nil {
		return ""
	}
	return "candidate:" + sdpCandidateString(c)
}

func sdpCandidateString(c Candidate) string {
	var b strings.Builder
	b.WriteString(c.Foundation)
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(uint64(c.Component), 10))
	b.WriteString(" udp ")
	b.WriteString(strconv.FormatUint(uint64(c.Priority), 10))
	b.WriteByte(' ')
	b.WriteString(c.IP)
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(uint64(c.Port), 10))
	b.WriteString(" typ ")
	b.WriteString(c.Type)
	if c.RelAddr != "" {
		b.WriteString(" raddr ")
		b.WriteString(c.RelAddr)
		b.WriteString(" rport ")
		b.WriteString(strconv.FormatUint(uint64(c.RelPort), 10))
	}
	b.WriteString(" generation ")
	b.WriteString(strconv.FormatUint(uint64(c.Generation), 10))
	if c.Network != 0 {
		b.WriteString(" network-id ")
		b.WriteString(strconv.FormatUint(uint64(c.Network), 10))
	}
	return b.String()
}
