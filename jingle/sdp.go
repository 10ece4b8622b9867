package jingle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// MaxSDPSize bounds the SDP text [SDPToJingle] accepts (implementation
// constant, the same bound as one <jingle/> element).
const MaxSDPSize = MaxElementSize

// Sentinels of the SDP translation; every error it returns is an *SDPError
// wrapping one of them.
var (
	// ErrSDPTooLarge: the SDP text is longer than MaxSDPSize.
	ErrSDPTooLarge = errors.New("jingle: sdp too large")
	// ErrSDPLimit: a count or length is above its implementation limit
	// (m-lines, payload types, candidates, sources, attribute length).
	ErrSDPLimit = errors.New("jingle: sdp limit exceeded")
	// ErrSDPMalformed: the SDP, or a Jingle value to write into SDP, is
	// not well formed.
	ErrSDPMalformed = errors.New("jingle: malformed sdp")
	// ErrSDPUnsupported: well formed but not translatable (another
	// media type or profile, simulcast, TCP candidates, ...).
	ErrSDPUnsupported = errors.New("jingle: unsupported sdp")
)

// SDPError is the error of the SDP translation: which media section (by
// mid, or by index before the mid is known) and which attribute, and what
// is wrong. Err is one of the ErrSDP sentinels; Cause, when set, is the
// underlying parser error.
type SDPError struct {
	Err    error  // ErrSDPTooLarge, ErrSDPLimit, ErrSDPMalformed or ErrSDPUnsupported
	Media  string // mid, "#<index>" before the mid is known, "" at session level
	Attr   string // SDP line or attribute, e.g. "a=rtpmap", "m=", "c=" ("" when none)
	Detail string
	Cause  error
}

func (e *SDPError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if e.Media != "" {
		b.WriteString(": media ")
		b.WriteString(e.Media)
	}
	if e.Attr != "" {
		b.WriteString(": ")
		b.WriteString(e.Attr)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and, when set, the cause.
func (e *SDPError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

func sdpErr(kind error, media, attr, format string, args ...any) *SDPError {
	return &SDPError{Err: kind, Media: media, Attr: attr, Detail: fmt.Sprintf(format, args...)}
}

// Media-section protocols (RFC 8866 §5.14, RFC 5764, RFC 8841).
const (
	protoDTLS        = "UDP/TLS/RTP/SAVPF"
	protoDataChannel = "UDP/DTLS/SCTP"
	fmtDataChannel   = "webrtc-datachannel"
)

// SendersFromDirection maps an SDP direction attribute (sendrecv,
// sendonly, recvonly, inactive; "" means sendrecv) to the Jingle senders
// of the content. sendonly and recvonly are seen from the author of the
// SDP, the party that sends the Jingle element that carries it: in a
// session-initiate (an offer) it is the initiator, in a session-accept (an
// answer) the responder, in a content-add whichever party sends it. A
// Session tells which: [Session.Role] for what we send, [Session.PeerRole]
// for what we receive.
func SendersFromDirection(direction string, author Creator) (Senders, error) {
	other, err := sdpOtherParty(author)
	if err != nil {
		return "", err
	}
	switch direction {
	case "", "sendrecv":
		return SendersBoth, nil
	case "inactive":
		return SendersNone, nil
	case "sendonly":
		return Senders(author), nil
	case "recvonly":
		return Senders(other), nil
	}
	return "", sdpErr(ErrSDPMalformed, "", "a=direction", "unknown direction %q", direction)
}

// DirectionFromSenders is the inverse of [SendersFromDirection]: the SDP
// direction attribute for senders, in an SDP written by author. The empty
// senders value means both.
func DirectionFromSenders(s Senders, author Creator) (string, error) {
	if _, err := sdpOtherParty(author); err != nil {
		return "", err
	}
	switch s {
	case "", SendersBoth:
		return "sendrecv", nil
	case SendersNone:
		return "inactive", nil
	case SendersInitiator, SendersResponder:
		if Creator(s) == author {
			return "sendonly", nil
		}
		return "recvonly", nil
	}
	return "", sdpErr(ErrSDPMalformed, "", "senders", "unknown senders %q", s)
}

func sdpOtherParty(c Creator) (Creator, error) {
	switch c {
	case CreatorInitiator:
		return CreatorResponder, nil
	case CreatorResponder:
		return CreatorInitiator, nil
	}
	return "", sdpErr(ErrSDPMalformed, "", "", "author must be initiator or responder, not %q", c)
}

// SDPToJingle translates an SDP written by the session initiator (its
// offer, or a later offer of the initiator) into one Jingle content per
// media section and the XEP-0338 groups. It is SDPToJingleAs(sdp,
// CreatorInitiator); translate a responder's SDP (an answer) with
// [SDPToJingleAs].
func SDPToJingle(sdp string) (contents []Content, groups []Group, err error) {
	return SDPToJingleAs(sdp, CreatorInitiator)
}

// SDPToJingleAs translates an SDP whose author is author (see
// [SendersFromDirection]) into Jingle contents and groups, following the
// mapping deployed clients use (Conversations, StanzaJS, lib-jitsi-meet):
//
//   - one content per m-line, name = a=mid, creator initiator (set
//     Creator yourself for a content the responder adds), senders from
//     the direction; a rejected m-line (port 0) becomes senders none;
//   - audio and video m-lines become an RTP [Description]: a=rtpmap,
//     a=fmtp (k=v;k=v as named parameters, anything else as one nameless
//     parameter with the raw value), a=rtcp-fb per payload type and for
//     "*" at description level (trr-int into FeedbackTRRInt), a=extmap,
//     a=extmap-allow-mixed (session or media level), a=ssrc and
//     a=ssrc-group (XEP-0339), a=msid as an "msid" parameter of every
//     source (as deployed; dropped when the section has no a=ssrc),
//     a=rtcp-mux, a=rtcp-rsize, a=ptime (on every payload type),
//     a=maxptime, the first b= line, and SDES a=crypto lines into
//     Description.Encryption;
//   - the ICE-UDP [Transport] of each content carries a=ice-ufrag,
//     a=ice-pwd, the UDP a=candidate lines (TCP candidates are left out:
//     ICE-UDP has none), and a=fingerprint with a=setup (XEP-0320; session
//     or media level in SDP, always per transport in Jingle; sha-256 is
//     kept when several are given, else the first);
//   - m=application UDP/DTLS/SCTP webrtc-datachannel becomes a content
//     without Description or Transport whose Other holds the XEP-0343
//     <transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'
//     sctp-port max-message-size> wrapping the ICE-UDP transport, as
//     Conversations sends it (the caller adds the application, e.g. a
//     XEP-0234 description, to Other before sending: a session-initiate
//     content needs one);
//   - a=group lines become groups (BUNDLE and any other semantics).
//
// The security profile is translated faithfully so that policy can
// classify it: a UDP/TLS/RTP/SAVP(F) section must have a fingerprint, a
// plain RTP/AVP(F) or SDES RTP/SAVP(F) section must not (an error, not a
// silent drop: a fingerprint there would make cleartext look like
// DTLS-SRTP), and a=crypto lines always reach Description.Encryption.
//
// Attributes without a Jingle form (a=msid-semantic, a=ice-options,
// a=end-of-candidates, a=rtcp, a=cryptex, a=bundle-only, vendor
// attributes) are not carried. Simulcast (a=rid, a=simulcast), other media
// types and profiles are refused with ErrSDPUnsupported. Counts are
// bounded by the package limits (MaxSDPSize, MaxContents m-lines,
// MaxCandidates per m-line, ...). Every error is an *[SDPError].
func SDPToJingleAs(sdpText string, author Creator) (contents []Content, groups []Group, err error) {
	if len(sdpText) > MaxSDPSize {
		return nil, nil, sdpErr(ErrSDPTooLarge, "", "", "%d bytes, at most %d", len(sdpText), MaxSDPSize)
	}
	if _, err := sdpOtherParty(author); err != nil {
		return nil, nil, err
	}
	// Count m-lines before the parser builds them.
	if n := strings.Count(sdpText, "\nm=") + sdpBoolInt(strings.HasPrefix(sdpText, "m=")); n > MaxContents {
		return nil, nil, sdpErr(ErrSDPLimit, "", "m=", "%d media sections, at most %d", n, MaxContents)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(sdpText); err != nil {
		return nil, nil, &SDPError{Err: ErrSDPMalformed, Detail: "parse", Cause: err}
	}
	if len(sd.MediaDescriptions) > MaxContents {
		return nil, nil, sdpErr(ErrSDPLimit, "", "m=", "%d media sections, at most %d", len(sd.MediaDescriptions), MaxContents)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, nil, sdpErr(ErrSDPMalformed, "", "m=", "no media section")
	}
	sess, groups, err := parseSessionLevel(&sd)
	if err != nil {
		return nil, nil, err
	}
	mids := map[string]bool{}
	for i, md := range sd.MediaDescriptions {
		c, err := parseMedia(md, i, sess, author)
		if err != nil {
			return nil, nil, err
		}
		if mids[c.Name] {
			return nil, nil, sdpErr(ErrSDPMalformed, c.Name, "a=mid", "duplicate mid")
		}
		mids[c.Name] = true
		contents = append(contents, c)
	}
	for _, g := range groups {
		for _, gc := range g.Contents {
			if !mids[gc.Name] {
				return nil, nil, sdpErr(ErrSDPMalformed, "", "a=group", "%s names unknown mid %q", g.Semantics, gc.Name)
			}
		}
	}
	return contents, groups, nil
}

func sdpBoolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sessionLevel holds the session-level attributes that apply to every
// media section unless the section overrides them.
type sessionLevel struct {
	ufrag, pwd   string
	fingerprints []Fingerprint
	setup        Setup
	allowMixed   bool
	extmaps      []HeaderExt
	extmapDirs   []string
}

func parseSessionLevel(sd *sdp.SessionDescription) (*sessionLevel, []Group, error) {
	s := &sessionLevel{}
	var groups []Group
	for _, a := range sd.Attributes {
		if len(a.Value) > MaxAttrLen {
			return nil, nil, sdpErr(ErrSDPLimit, "", "a="+a.Key, "value of %d bytes, at most %d", len(a.Value), MaxAttrLen)
		}
		switch a.Key {
		case "ice-ufrag":
			s.ufrag = a.Value
		case "ice-pwd":
			s.pwd = a.Value
		case "fingerprint":
			f, err := parseFingerprintAttr("", a.Value)
			if err != nil {
				return nil, nil, err
			}
			if len(s.fingerprints) >= 8 {
				return nil, nil, sdpErr(ErrSDPLimit, "", "a=fingerprint", "too many")
			}
			s.fingerprints = append(s.fingerprints, f)
		case "setup":
			st, err := sdpParseSetup("", a.Value)
			if err != nil {
				return nil, nil, err
			}
			s.setup = st
		case "extmap-allow-mixed":
			s.allowMixed = true
		case "extmap":
			h, dir, err := sdpParseExtmap("", a.Value)
			if err != nil {
				return nil, nil, err
			}
			if len(s.extmaps) >= MaxHeaderExts {
				return nil, nil, sdpErr(ErrSDPLimit, "", "a=extmap", "more than %d", MaxHeaderExts)
			}
			s.extmaps = append(s.extmaps, h)
			s.extmapDirs = append(s.extmapDirs, dir)
		case "group":
			f := strings.Fields(a.Value)
			if len(f) == 0 {
				return nil, nil, sdpErr(ErrSDPMalformed, "", "a=group", "no semantics")
			}
			if len(f)-1 > MaxContents {
				return nil, nil, sdpErr(ErrSDPLimit, "", "a=group", "more than %d names", MaxContents)
			}
			if len(groups) >= MaxContents {
				return nil, nil, sdpErr(ErrSDPLimit, "", "a=group", "more than %d groups", MaxContents)
			}
			for _, n := range f {
				if !sdpIsToken(n) {
					return nil, nil, sdpErr(ErrSDPMalformed, "", "a=group", "%q is not a token", n)
				}
			}
			g := Group{Semantics: f[0]}
			for _, n := range f[1:] {
				g.Contents = append(g.Contents, GroupContent{Name: n})
			}
			groups = append(groups, g)
		case "crypto":
			return nil, nil, sdpErr(ErrSDPMalformed, "", "a=crypto", "at session level (RFC 4568 defines it per media)")
		case "rid", "simulcast":
			return nil, nil, sdpErr(ErrSDPUnsupported, "", "a="+a.Key, "simulcast is not translated")
		}
	}
	return s, groups, nil
}

// mediaAttrs gathers one media section's attributes before they are
// assembled into a content.
type mediaAttrs struct {
	name         string // label for errors
	mid          string
	hasMid       bool
	ufrag, pwd   string
	hasUfrag     bool
	hasPwd       bool
	fingerprints []Fingerprint
	setup        Setup
	direction    string
	candidates   []Candidate
	msids        []string
	sources      []Source
	sourceIndex  map[uint32]int
	groups       []SSRCGroup
	rtpmap       map[uint8]bool
	fmtp         map[uint8]bool
	crypto       []Crypto
	ptime        string
	sctpPort     string
	maxMsgSize   string
}

func parseMedia(md *sdp.MediaDescription, index int, sess *sessionLevel, author Creator) (Content, error) {
	label := "#" + strconv.Itoa(index)
	// The mid first, so that every later error can name it.
	for _, a := range md.Attributes {
		if a.Key == "mid" {
			label = a.Value
			break
		}
	}
	m := &mediaAttrs{name: label, sourceIndex: map[uint32]int{}, rtpmap: map[uint8]bool{}, fmtp: map[uint8]bool{}}
	media := md.MediaName.Media
	proto := strings.Join(md.MediaName.Protos, "/")
	var desc *Description
	switch media {
	case "audio", "video":
		switch proto {
		case "UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF":
		default:
			return Content{}, sdpErr(ErrSDPUnsupported, label, "m=", "%s profile %q", media, proto)
		}
		desc = &Description{Media: media}
		if len(md.MediaName.Formats) == 0 {
			return Content{}, sdpErr(ErrSDPMalformed, label, "m=", "no payload type")
		}
		if len(md.MediaName.Formats) > MaxPayloadTypes {
			return Content{}, sdpErr(ErrSDPLimit, label, "m=", "%d payload types, at most %d", len(md.MediaName.Formats), MaxPayloadTypes)
		}
		for _, f := range md.MediaName.Formats {
			pt, err := sdpParsePT(label, "m=", f)
			if err != nil {
				return Content{}, err
			}
			for _, p := range desc.PayloadTypes {
				if p.ID == pt {
					return Content{}, sdpErr(ErrSDPMalformed, label, "m=", "payload type %d twice", pt)
				}
			}
			desc.PayloadTypes = append(desc.PayloadTypes, PayloadType{ID: pt})
		}
		desc.ExtmapAllowMixed = sdpPresent(sess.allowMixed)
	case "application":
		if proto != protoDataChannel || len(md.MediaName.Formats) != 1 || md.MediaName.Formats[0] != fmtDataChannel {
			return Content{}, sdpErr(ErrSDPUnsupported, label, "m=", "application %q %v (only UDP/DTLS/SCTP webrtc-datachannel)", proto, md.MediaName.Formats)
		}
	default:
		return Content{}, sdpErr(ErrSDPUnsupported, label, "m=", "media %q", media)
	}

	var exts []HeaderExt
	var extDirs []string
	for _, a := range md.Attributes {
		if len(a.Value) > MaxAttrLen {
			return Content{}, sdpErr(ErrSDPLimit, label, "a="+a.Key, "value of %d bytes, at most %d", len(a.Value), MaxAttrLen)
		}
		if err := m.attr(desc, a, &exts, &extDirs); err != nil {
			return Content{}, err
		}
	}
	if m.mid == "" {
		return Content{}, sdpErr(ErrSDPMalformed, label, "a=mid", "missing (a Jingle content needs a name)")
	}
	if len(m.mid) > MaxIDLen || !sdpIsToken(m.mid) {
		return Content{}, sdpErr(ErrSDPMalformed, label, "a=mid", "not a token of at most %d bytes", MaxIDLen)
	}

	c := Content{Creator: CreatorInitiator, Name: m.mid}
	senders, err := SendersFromDirection(m.direction, author)
	if err != nil {
		return Content{}, sdpWithMedia(err, label)
	}
	if md.MediaName.Port.Value == 0 {
		senders = SendersNone
	}
	c.Senders = senders

	t := &Transport{Ufrag: sess.ufrag, Pwd: sess.pwd}
	if m.hasUfrag {
		t.Ufrag = m.ufrag
	}
	if m.hasPwd {
		t.Pwd = m.pwd
	}
	if (t.Ufrag != "" || t.Pwd != "") && (!sdpIsICEChars(t.Ufrag) || !sdpIsICEChars(t.Pwd)) {
		return Content{}, sdpErr(ErrSDPMalformed, label, "a=ice-ufrag", "ufrag or pwd missing or with characters outside ICE's ice-char")
	}
	fps := m.fingerprints
	if len(fps) == 0 {
		fps = sess.fingerprints
	}
	setup := m.setup
	if setup == "" {
		setup = sess.setup
	}
	dtls := strings.HasPrefix(proto, "UDP/TLS/") || proto == protoDataChannel
	if len(fps) > 0 {
		if !dtls {
			return Content{}, sdpErr(ErrSDPMalformed, label, "a=fingerprint", "with the non-DTLS profile %s: cleartext or SDES media cannot carry a DTLS fingerprint", proto)
		}
		f := sdpPickFingerprint(fps)
		f.Setup = setup
		t.Fingerprint = &f
	} else if dtls {
		return Content{}, sdpErr(ErrSDPMalformed, label, "a=fingerprint", "missing for the DTLS profile %s", proto)
	}
	t.Candidates = m.candidates

	if desc == nil {
		c.Other = []Raw{dataChannelRaw(t, m.sctpPort, m.maxMsgSize)}
		return c, nil
	}
	if len(m.crypto) > 0 {
		// With a DTLS profile too (RFC 8827 forbids SDES there) both are
		// kept, so that policy sees keys in signaling.
		desc.Encryption = &Encryption{Crypto: m.crypto}
	}
	if strings.Contains(proto, "SAVP") && !dtls && len(m.crypto) == 0 {
		return Content{}, sdpErr(ErrSDPMalformed, label, "a=crypto", "profile %s without SDES keys or a fingerprint", proto)
	}
	// Session-level extmaps apply where the section does not define the id.
	for i, h := range sess.extmaps {
		dup := false
		for _, e := range exts {
			if e.ID == h.ID {
				dup = true
			}
		}
		if !dup {
			exts = append(exts, h)
			extDirs = append(extDirs, sess.extmapDirs[i])
		}
	}
	if len(exts) > MaxHeaderExts {
		return Content{}, sdpErr(ErrSDPLimit, label, "a=extmap", "more than %d", MaxHeaderExts)
	}
	for i := range exts {
		if extDirs[i] != "" {
			s, err := SendersFromDirection(extDirs[i], author)
			if err != nil {
				return Content{}, sdpWithMedia(err, label)
			}
			exts[i].Senders = s
		}
	}
	desc.HeaderExts = exts
	if m.ptime != "" {
		for i := range desc.PayloadTypes {
			desc.PayloadTypes[i].Ptime = m.ptime
		}
	}
	// Media-level msid: a parameter of every source, unless already there.
	for _, id := range m.msids {
		for i := range m.sources {
			if !sdpHasParam(m.sources[i].Parameters, "msid", id) {
				if len(m.sources[i].Parameters) >= MaxParameters {
					return Content{}, sdpErr(ErrSDPLimit, label, "a=msid", "more than %d source parameters", MaxParameters)
				}
				m.sources[i].Parameters = append(m.sources[i].Parameters, Parameter{Name: "msid", Value: id})
			}
		}
	}
	desc.Sources = m.sources
	desc.SSRCGroups = m.groups
	if len(md.Bandwidth) > 0 {
		b := md.Bandwidth[0]
		typ := b.Type
		if b.Experimental {
			typ = "X-" + typ
		}
		desc.Bandwidth = &Bandwidth{Type: typ, Value: strconv.FormatUint(b.Bandwidth, 10)}
	}
	c.Description = desc
	c.Transport = t
	return c, nil
}

func sdpWithMedia(err error, label string) error {
	var se *SDPError
	if errors.As(err, &se) && se.Media == "" {
		se.Media = label
	}
	return err
}

func sdpPresent(b bool) *struct{} {
	if b {
		return &struct{}{}
	}
	return nil
}

func sdpHasParam(ps []Parameter, name, value string) bool {
	for _, p := range ps {
		if p.Name == name && p.Value == value {
			return true
		}
	}
	return false
}

// pickFingerprint prefers sha-256 (what securejingle sends and Dino
// accepts), else the first.
func sdpPickFingerprint(fps []Fingerprint) Fingerprint {
	for _, f := range fps {
		if f.Hash == "sha-256" {
			return f
		}
	}
	return fps[0]
}

func (m *mediaAttrs) attr(desc *Description, a sdp.Attribute, exts *[]HeaderExt, extDirs *[]string) error {
	label := m.name
	key := "a=" + a.Key
	switch a.Key {
	case "mid":
		if m.hasMid {
			return sdpErr(ErrSDPMalformed, label, key, "twice")
		}
		m.mid, m.hasMid = a.Value, true
	case "ice-ufrag":
		m.ufrag, m.hasUfrag = a.Value, true
	case "ice-pwd":
		m.pwd, m.hasPwd = a.Value, true
	case "fingerprint":
		f, err := parseFingerprintAttr(label, a.Value)
		if err != nil {
			return err
		}
		if len(m.fingerprints) >= 8 {
			return sdpErr(ErrSDPLimit, label, key, "too many")
		}
		m.fingerprints = append(m.fingerprints, f)
	case "setup":
		s, err := sdpParseSetup(label, a.Value)
		if err != nil {
			return err
		}
		m.setup = s
	case "sendrecv", "sendonly", "recvonly", "inactive":
		if m.direction != "" {
			return sdpErr(ErrSDPMalformed, label, key, "second direction after %s", m.direction)
		}
		m.direction = a.Key
	case "candidate":
		c, err := sdpParseCandidate(label, a.Value)
		if errors.Is(err, errNonUDPCandidate) {
			return nil // ICE-UDP carries UDP candidates only
		}
		if err != nil {
			return sdpWithMedia(err, label)
		}
		if len(m.candidates) >= MaxCandidates {
			return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxCandidates)
		}
		m.candidates = append(m.candidates, c)
	case "sctp-port":
		if desc != nil {
			return nil
		}
		if _, err := strconv.ParseUint(a.Value, 10, 16); err != nil {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		m.sctpPort = a.Value
	case "max-message-size":
		if desc != nil {
			return nil
		}
		if _, err := strconv.ParseUint(a.Value, 10, 32); err != nil {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		m.maxMsgSize = a.Value
	case "sctpmap":
		return sdpErr(ErrSDPUnsupported, label, key, "legacy SCTP negotiation (use a=sctp-port)")
	case "rid", "simulcast":
		return sdpErr(ErrSDPUnsupported, label, key, "simulcast is not translated")
	}
	if desc == nil {
		return nil
	}
	switch a.Key {
	case "rtpmap":
		pt, rest, err := sdpPTPrefix(label, key, a.Value)
		if err != nil {
			return err
		}
		p := desc.payloadType(pt)
		if p == nil {
			return sdpErr(ErrSDPMalformed, label, key, "payload type %d not on the m-line", pt)
		}
		if m.rtpmap[pt] {
			return sdpErr(ErrSDPMalformed, label, key, "payload type %d twice", pt)
		}
		m.rtpmap[pt] = true
		parts := strings.Split(rest, "/")
		if len(parts) < 2 || len(parts) > 3 || !sdpIsToken(parts[0]) {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		clock, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil || clock == 0 {
			return sdpErr(ErrSDPMalformed, label, key, "clock rate %q", parts[1])
		}
		p.Name, p.Clockrate = parts[0], uint32(clock)
		if len(parts) == 3 {
			ch, err := strconv.ParseUint(parts[2], 10, 8)
			if err != nil || ch == 0 {
				return sdpErr(ErrSDPMalformed, label, key, "channels %q", parts[2])
			}
			p.Channels = uint8(ch)
		}
	case "fmtp":
		pt, rest, err := sdpPTPrefix(label, key, a.Value)
		if err != nil {
			return err
		}
		p := desc.payloadType(pt)
		if p == nil {
			return sdpErr(ErrSDPMalformed, label, key, "payload type %d not on the m-line", pt)
		}
		if m.fmtp[pt] {
			return sdpErr(ErrSDPMalformed, label, key, "payload type %d twice", pt)
		}
		m.fmtp[pt] = true
		ps, err := sdpParseFmtp(label, rest)
		if err != nil {
			return err
		}
		p.Parameters = ps
	case "rtcp-fb":
		target, rest, ok := strings.Cut(a.Value, " ")
		rest = strings.TrimSpace(rest)
		if !ok || rest == "" {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		fbs, trrs := &desc.Feedback, &desc.FeedbackTRRInt
		if target != "*" {
			pt, err := sdpParsePT(label, key, target)
			if err != nil {
				return err
			}
			p := desc.payloadType(pt)
			if p == nil {
				return sdpErr(ErrSDPMalformed, label, key, "payload type %d not on the m-line", pt)
			}
			fbs, trrs = &p.Feedback, &p.FeedbackTRRInt
		}
		typ, sub, _ := strings.Cut(rest, " ")
		sub = strings.TrimSpace(sub)
		if !sdpIsToken(typ) || sub != "" && !sdpIsText(sub) {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		if typ == "trr-int" {
			v, err := strconv.ParseUint(sub, 10, 32)
			if err != nil {
				return sdpErr(ErrSDPMalformed, label, key, "trr-int %q", sub)
			}
			if len(*trrs) >= MaxFeedback {
				return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxFeedback)
			}
			*trrs = append(*trrs, RTCPFeedbackTRRInt{Value: uint32(v)})
			return nil
		}
		if len(*fbs) >= MaxFeedback {
			return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxFeedback)
		}
		*fbs = append(*fbs, RTCPFeedback{Type: typ, Subtype: sub})
	case "extmap":
		h, dir, err := sdpParseExtmap(label, a.Value)
		if err != nil {
			return err
		}
		if len(*exts) >= MaxHeaderExts {
			return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxHeaderExts)
		}
		for _, e := range *exts {
			if e.ID == h.ID {
				return sdpErr(ErrSDPMalformed, label, key, "id %d twice", h.ID)
			}
		}
		*exts = append(*exts, h)
		*extDirs = append(*extDirs, dir)
	case "extmap-allow-mixed":
		desc.ExtmapAllowMixed = &struct{}{}
	case "rtcp-mux":
		desc.RTCPMux = &struct{}{}
	case "rtcp-rsize":
		desc.ReducedSize = &struct{}{}
	case "ptime":
		if _, err := strconv.ParseFloat(a.Value, 64); err != nil || !sdpIsToken(a.Value) {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		m.ptime = a.Value
	case "maxptime":
		if _, err := strconv.ParseFloat(a.Value, 64); err != nil || !sdpIsToken(a.Value) {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		desc.Maxptime = a.Value
	case "msid":
		if !sdpIsText(a.Value) || strings.TrimSpace(a.Value) == "" {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		if len(m.msids) >= MaxParameters {
			return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxParameters)
		}
		m.msids = append(m.msids, a.Value)
	case "ssrc":
		id, rest, _ := strings.Cut(a.Value, " ")
		ssrc, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return sdpErr(ErrSDPMalformed, label, key, "ssrc %q", id)
		}
		i, ok := m.sourceIndex[uint32(ssrc)]
		if !ok {
			if len(m.sources) >= MaxSources {
				return sdpErr(ErrSDPLimit, label, key, "more than %d sources", MaxSources)
			}
			i = len(m.sources)
			m.sourceIndex[uint32(ssrc)] = i
			m.sources = append(m.sources, Source{SSRC: uint32(ssrc)})
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			return nil
		}
		name, value, _ := strings.Cut(rest, ":")
		if !sdpIsToken(name) || !sdpIsText(value) {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		if len(m.sources[i].Parameters) >= MaxParameters {
			return sdpErr(ErrSDPLimit, label, key, "more than %d parameters for ssrc %d", MaxParameters, ssrc)
		}
		m.sources[i].Parameters = append(m.sources[i].Parameters, Parameter{Name: name, Value: value})
	case "ssrc-group":
		f := strings.Fields(a.Value)
		if len(f) < 2 || !sdpIsToken(f[0]) {
			return sdpErr(ErrSDPMalformed, label, key, "%q", a.Value)
		}
		if len(f)-1 > MaxSources || len(m.groups) >= MaxSources {
			return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxSources)
		}
		g := SSRCGroup{Semantics: f[0]}
		for _, s := range f[1:] {
			v, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return sdpErr(ErrSDPMalformed, label, key, "ssrc %q", s)
			}
			g.Sources = append(g.Sources, Source{SSRC: uint32(v)})
		}
		m.groups = append(m.groups, g)
	case "crypto":
		f := strings.Fields(a.Value)
		if len(f) < 3 || !sdpIsToken(f[0]) || !sdpIsToken(f[1]) || !sdpIsToken(f[2]) {
			return sdpErr(ErrSDPMalformed, label, key, "not tag suite key-params [session-params]")
		}
		if len(m.crypto) >= MaxParameters {
			return sdpErr(ErrSDPLimit, label, key, "more than %d", MaxParameters)
		}
		m.crypto = append(m.crypto, Crypto{Tag: f[0], CryptoSuite: f[1], KeyParams: f[2], SessionParams: strings.Join(f[3:], " ")})
	}
	return nil
}

func (d *Description) payloadType(id uint8) *PayloadType {
	for i := range d.PayloadTypes {
		if d.PayloadTypes[i].ID == id {
			return &d.PayloadTypes[i]
		}
	}
	return nil
}

func sdpParsePT(label, key, s string) (uint8, error) {
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil || v > 127 {
		return 0, sdpErr(ErrSDPMalformed, label, key, "payload type %q (0-127)", s)
	}
	return uint8(v), nil
}

func sdpPTPrefix(label, key, v string) (uint8, string, error) {
	id, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, "", sdpErr(ErrSDPMalformed, label, key, "%q", v)
	}
	pt, err := sdpParsePT(label, key, id)
	return pt, strings.TrimSpace(rest), err
}

// parseFmtp splits "k=v;k=v" into named parameters; anything else is one
// nameless parameter holding the raw value (e.g. telephone-event's
// "0-16", RED's "111/111").
func sdpParseFmtp(label, v string) ([]Parameter, error) {
	if !sdpIsText(v) {
		return nil, sdpErr(ErrSDPMalformed, label, "a=fmtp", "control characters")
	}
	var ps []Parameter
	named := true
	for _, piece := range strings.Split(v, ";") {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		k, val, ok := strings.Cut(piece, "=")
		k = strings.TrimSpace(k)
		if !ok || !sdpIsToken(k) {
			named = false
			break
		}
		ps = append(ps, Parameter{Name: k, Value: strings.TrimSpace(val)})
	}
	if !named {
		ps = []Parameter{{Value: strings.TrimSpace(v)}}
	}
	if len(ps) > MaxParameters {
		return nil, sdpErr(ErrSDPLimit, label, "a=fmtp", "more than %d parameters", MaxParameters)
	}
	return ps, nil
}

func sdpParseExtmap(label, v string) (HeaderExt, string, error) {
	f := strings.Fields(v)
	if len(f) < 2 {
		return HeaderExt{}, "", sdpErr(ErrSDPMalformed, label, "a=extmap", "%q", v)
	}
	if len(f) > 2 {
		return HeaderExt{}, "", sdpErr(ErrSDPUnsupported, label, "a=extmap", "extension attributes %q are not translated", strings.Join(f[2:], " "))
	}
	idStr, dir, hasDir := strings.Cut(f[0], "/")
	id, err := strconv.ParseUint(idStr, 10, 16)
	if err != nil || id < 1 || id > 255 || id == 15 {
		return HeaderExt{}, "", sdpErr(ErrSDPMalformed, label, "a=extmap", "id %q (1-14, 16-255)", idStr)
	}
	if hasDir {
		switch dir {
		case "sendrecv", "sendonly", "recvonly", "inactive":
		default:
			return HeaderExt{}, "", sdpErr(ErrSDPMalformed, label, "a=extmap", "direction %q", dir)
		}
	}
	if !sdpIsToken(f[1]) {
		return HeaderExt{}, "", sdpErr(ErrSDPMalformed, label, "a=extmap", "uri %q", f[1])
	}
	return HeaderExt{ID: uint16(id), URI: f[1]}, dir, nil
}

func parseFingerprintAttr(label, v string) (Fingerprint, error) {
	hash, value, ok := strings.Cut(strings.TrimSpace(v), " ")
	value = strings.TrimSpace(value)
	if !ok || !sdpIsHashName(hash) || !sdpIsFingerprint(value) {
		return Fingerprint{}, sdpErr(ErrSDPMalformed, label, "a=fingerprint", "not <hash> <hex:hex:...>")
	}
	return Fingerprint{Hash: strings.ToLower(hash), Value: value}, nil
}

func sdpParseSetup(label, v string) (Setup, error) {
	switch Setup(v) {
	case SetupActpass, SetupActive, SetupPassive:
		return Setup(v), nil
	}
	return "", sdpErr(ErrSDPUnsupported, label, "a=setup", "%q (actpass, active or passive)", v)
}

// isToken reports whether s is a non-empty run of visible ASCII without
// spaces: what may stand alone in an SDP field without changing how the
// line splits.
func sdpIsToken(s string) bool {
	if s == "" || len(s) > MaxAttrLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// isText reports whether s has no control characters (so it cannot end
// an SDP line or start another); spaces are allowed.
func sdpIsText(s string) bool {
	if len(s) > MaxAttrLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// isICEChars: ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.4).
func sdpIsICEChars(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

func sdpIsHashName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isFingerprintValue: 2UHEX *(":" 2UHEX), at most 64 bytes (sha-512).
func sdpIsFingerprint(s string) bool {
	if len(s) < 2 || len(s) > 64*3-1 || len(s)%3 != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
