package jingle

import (
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// JingleToSDP writes the SDP of contents and groups as the session
// initiator's (a session-initiate's offer); it is JingleToSDPAs(contents,
// groups, sessionID, CreatorInitiator). Write a responder's contents (a
// session-accept's answer) with [JingleToSDPAs].
func JingleToSDP(contents []Content, groups []Group, sessionID uint64) (string, error) {
	return JingleToSDPAs(contents, groups, sessionID, CreatorInitiator)
}

// JingleToSDPAs writes an SDP, authored by author (see
// [SendersFromDirection]), for contents and groups: the inverse of
// [SDPToJingleAs]. sessionID goes into the o= line (JSEP wants it below
// 2^63 and constant for the session). Each content becomes one m-line with
// port 9, c=IN IP4 0.0.0.0, a=mid from its name and per-media ICE
// credentials, fingerprint and setup; RTP contents get
// UDP/TLS/RTP/SAVPF when their transport has a fingerprint, RTP/SAVP(F)
// when they carry SDES keys, RTP/AVP(F) otherwise ("F" when any rtcp-fb is
// present); XEP-0343 data channel contents get m=application
// UDP/DTLS/SCTP webrtc-datachannel. a=extmap-allow-mixed is written per
// media and, when every RTP content has it, at session level too.
//
// A transport whose only fingerprint is of another namespace
// (Conversations' OMEMO-encrypted one) is refused with ErrSDPUnsupported
// rather than written as cleartext RTP; XEP-0294 extension parameters
// have no SDP form here and are refused the same way.
//
// Every value that comes from Jingle is checked before it is written, so
// that a peer cannot add or split SDP lines; counts are bounded as in
// [SDPToJingleAs]. Every error is an *[SDPError].
func JingleToSDPAs(contents []Content, groups []Group, sessionID uint64, author Creator) (string, error) {
	if _, err := sdpOtherParty(author); err != nil {
		return "", err
	}
	if len(contents) == 0 {
		return "", sdpErr(ErrSDPMalformed, "", "m=", "no content")
	}
	if len(contents) > MaxContents {
		return "", sdpErr(ErrSDPLimit, "", "m=", "%d contents, at most %d", len(contents), MaxContents)
	}
	sd := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "-", SessionID: sessionID, SessionVersion: 2,
			NetworkType: "IN", AddressType: "IP4", UnicastAddress: "127.0.0.1",
		},
		SessionName:      "-",
		TimeDescriptions: []sdp.TimeDescription{{}},
	}
	names := map[string]bool{}
	for i := range contents {
		n := contents[i].Name
		if n == "" || len(n) > MaxIDLen || !sdpIsToken(n) {
			return "", sdpErr(ErrSDPMalformed, "#"+strconv.Itoa(i), "name", "content name %q is not a token of at most %d bytes", n, MaxIDLen)
		}
		if names[n] {
			return "", sdpErr(ErrSDPMalformed, n, "name", "two contents of that name")
		}
		names[n] = true
	}
	if len(groups) > MaxContents {
		return "", sdpErr(ErrSDPLimit, "", "a=group", "more than %d groups", MaxContents)
	}
	for _, g := range groups {
		if !sdpIsToken(g.Semantics) {
			return "", sdpErr(ErrSDPMalformed, "", "a=group", "semantics %q", g.Semantics)
		}
		if len(g.Contents) > MaxContents {
			return "", sdpErr(ErrSDPLimit, "", "a=group", "more than %d names", MaxContents)
		}
		v := g.Semantics
		for _, gc := range g.Contents {
			if !names[gc.Name] {
				return "", sdpErr(ErrSDPMalformed, "", "a=group", "%s names unknown content %q", g.Semantics, gc.Name)
			}
			v += " " + gc.Name
		}
		sd.Attributes = append(sd.Attributes, sdp.NewAttribute("group", v))
	}
	allMixed, rtp := true, 0
	for i := range contents {
		if d := contents[i].Description; d != nil {
			rtp++
			allMixed = allMixed && d.ExtmapAllowMixed != nil
		}
	}
	if rtp > 0 && allMixed {
		sd.Attributes = append(sd.Attributes, sdp.NewPropertyAttribute("extmap-allow-mixed"))
	}
	for i := range contents {
		md, err := writeMedia(&contents[i], author)
		if err != nil {
			return "", err
		}
		sd.MediaDescriptions = append(sd.MediaDescriptions, md)
	}
	b, err := sd.Marshal()
	if err != nil {
		return "", &SDPError{Err: ErrSDPMalformed, Detail: "marshal", Cause: err}
	}
	if len(b) > MaxSDPSize {
		return "", sdpErr(ErrSDPTooLarge, "", "", "%d bytes, at most %d", len(b), MaxSDPSize)
	}
	return string(b), nil
}

func writeMedia(c *Content, author Creator) (*sdp.MediaDescription, error) {
	label := c.Name
	dcTransport, sctpPort, maxMsg, isDC, err := DataChannelTransport(c)
	if err != nil {
		return nil, err
	}
	t := c.Transport
	if isDC {
		if c.Description != nil {
			return nil, sdpErr(ErrSDPMalformed, label, "content", "both an RTP description and a data channel transport")
		}
		t = dcTransport
	} else if c.Description == nil {
		return nil, sdpErr(ErrSDPUnsupported, label, "content", "neither an RTP description nor a XEP-0343 data channel")
	}
	if t == nil {
		return nil, sdpErr(ErrSDPMalformed, label, "transport", "no ICE-UDP transport")
	}
	if t.Fingerprint == nil && t.HasForeignFingerprint() {
		// Conversations' OMEMO-encrypted fingerprint: written as it stands
		// the content would read as cleartext RTP.
		return nil, sdpErr(ErrSDPUnsupported, label, "fingerprint", "only a fingerprint of another namespace (encrypted): decrypt it into Transport.Fingerprint first")
	}
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{Port: sdp.RangedPort{Value: 9}},
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: "IP4", Address: &sdp.Address{Address: "0.0.0.0"},
		},
	}
	add := func(k, v string) { md.Attributes = append(md.Attributes, sdp.NewAttribute(k, v)) }
	prop := func(k string) { md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute(k)) }

	d := c.Description
	if d == nil {
		md.MediaName.Media = "application"
		md.MediaName.Protos = strings.Split(protoDataChannel, "/")
		md.MediaName.Formats = []string{fmtDataChannel}
		if t.Fingerprint == nil {
			return nil, sdpErr(ErrSDPMalformed, label, "fingerprint", "a data channel needs DTLS")
		}
	} else {
		if d.Media != "audio" && d.Media != "video" {
			return nil, sdpErr(ErrSDPUnsupported, label, "media", "%q", d.Media)
		}
		md.MediaName.Media = d.Media
		fb := len(d.Feedback) > 0 || len(d.FeedbackTRRInt) > 0
		for _, p := range d.PayloadTypes {
			fb = fb || len(p.Feedback) > 0 || len(p.FeedbackTRRInt) > 0
		}
		proto := "RTP/AVP"
		switch {
		case t.Fingerprint != nil:
			proto = "UDP/TLS/RTP/SAVP"
		case d.Encryption != nil && len(d.Encryption.Crypto) > 0:
			proto = "RTP/SAVP"
		}
		if fb || t.Fingerprint != nil {
			proto += "F"
		}
		md.MediaName.Protos = strings.Split(proto, "/")
		if len(d.PayloadTypes) == 0 {
			return nil, sdpErr(ErrSDPMalformed, label, "payload-type", "none")
		}
		if len(d.PayloadTypes) > MaxPayloadTypes {
			return nil, sdpErr(ErrSDPLimit, label, "payload-type", "more than %d", MaxPayloadTypes)
		}
		seen := map[uint8]bool{}
		for _, p := range d.PayloadTypes {
			if p.ID > 127 || seen[p.ID] {
				return nil, sdpErr(ErrSDPMalformed, label, "payload-type", "id %d (0-127, once)", p.ID)
			}
			seen[p.ID] = true
			md.MediaName.Formats = append(md.MediaName.Formats, strconv.Itoa(int(p.ID)))
		}
	}

	add("mid", c.Name)
	if t.Ufrag != "" || t.Pwd != "" {
		if !sdpIsICEChars(t.Ufrag) || !sdpIsICEChars(t.Pwd) {
			return nil, sdpErr(ErrSDPMalformed, label, "transport", "ufrag or pwd missing or with characters outside ICE's ice-char")
		}
		add("ice-ufrag", t.Ufrag)
		add("ice-pwd", t.Pwd)
	}
	add("ice-options", "trickle")
	if f := t.Fingerprint; f != nil {
		if !sdpIsHashName(f.Hash) || !sdpIsFingerprint(strings.TrimSpace(f.Value)) {
			return nil, sdpErr(ErrSDPMalformed, label, "fingerprint", "not <hash> <hex:hex:...>")
		}
		add("fingerprint", strings.ToLower(f.Hash)+" "+strings.TrimSpace(f.Value))
		if f.Setup != "" {
			if _, err := sdpParseSetup(label, string(f.Setup)); err != nil {
				return nil, err
			}
			add("setup", string(f.Setup))
		}
	}
	if len(t.Candidates) > MaxCandidates {
		return nil, sdpErr(ErrSDPLimit, label, "candidate", "more than %d", MaxCandidates)
	}
	for _, cand := range t.Candidates {
		if err := CheckCandidate(cand); err != nil {
			return nil, sdpWithMedia(err, label)
		}
		add("candidate", sdpCandidateString(cand))
	}

	if d == nil {
		if sctpPort == "" {
			sctpPort = "5000"
		}
		add("sctp-port", sctpPort)
		if maxMsg != "" {
			add("max-message-size", maxMsg)
		}
		return md, nil
	}

	dir, err := DirectionFromSenders(c.Senders, author)
	if err != nil {
		return nil, sdpWithMedia(err, label)
	}
	if len(d.HeaderExts) > MaxHeaderExts {
		return nil, sdpErr(ErrSDPLimit, label, "rtp-hdrext", "more than %d", MaxHeaderExts)
	}
	for _, h := range d.HeaderExts {
		if h.ID < 1 || h.ID > 255 || h.ID == 15 || !sdpIsToken(h.URI) {
			return nil, sdpErr(ErrSDPMalformed, label, "rtp-hdrext", "id %d uri %q", h.ID, h.URI)
		}
		if len(h.Parameters) > 0 {
			return nil, sdpErr(ErrSDPUnsupported, label, "rtp-hdrext", "id %d: extension parameters have no SDP form here", h.ID)
		}
		v := strconv.Itoa(int(h.ID))
		if h.Senders != "" && h.Senders != SendersBoth {
			hd, err := DirectionFromSenders(h.Senders, author)
			if err != nil {
				return nil, sdpWithMedia(err, label)
			}
			v += "/" + hd
		}
		add("extmap", v+" "+h.URI)
	}
	if d.ExtmapAllowMixed != nil {
		prop("extmap-allow-mixed")
	}
	prop(dir)
	if len(d.Sources) > MaxSources || len(d.SSRCGroups) > MaxSources {
		return nil, sdpErr(ErrSDPLimit, label, "source", "more than %d", MaxSources)
	}
	var msids []string
	for _, s := range d.Sources {
		for _, p := range s.Parameters {
			if p.Name == "msid" && strings.TrimSpace(p.Value) != "" && !sdpContains(msids, p.Value) {
				if !sdpIsText(p.Value) {
					return nil, sdpErr(ErrSDPMalformed, label, "source", "msid %q", p.Value)
				}
				msids = append(msids, p.Value)
			}
		}
	}
	// Media-level a=msid for the msids every source carries (SDPToJingle
	// gives a media-level msid to every source).
	for _, m := range msids {
		all := true
		for _, s := range d.Sources {
			all = all && sdpHasParam(s.Parameters, "msid", m)
		}
		if all {
			add("msid", m)
		}
	}
	if d.RTCPMux != nil {
		prop("rtcp-mux")
	}
	if d.ReducedSize != nil {
		prop("rtcp-rsize")
	}
	if d.Bandwidth != nil {
		typ, exp := strings.CutPrefix(d.Bandwidth.Type, "X-")
		v, err := strconv.ParseUint(strings.TrimSpace(d.Bandwidth.Value), 10, 64)
		if err != nil || !sdpIsToken(typ) {
			return nil, sdpErr(ErrSDPMalformed, label, "bandwidth", "%q %q", d.Bandwidth.Type, d.Bandwidth.Value)
		}
		md.Bandwidth = []sdp.Bandwidth{{Experimental: exp, Type: typ, Bandwidth: v}}
	}
	ptime := ""
	for _, p := range d.PayloadTypes {
		id := strconv.Itoa(int(p.ID))
		if p.Name != "" {
			if !sdpIsToken(p.Name) || strings.Contains(p.Name, "/") || p.Clockrate == 0 {
				return nil, sdpErr(ErrSDPMalformed, label, "payload-type", "%d: name %q clockrate %d", p.ID, p.Name, p.Clockrate)
			}
			v := id + " " + p.Name + "/" + strconv.FormatUint(uint64(p.Clockrate), 10)
			if p.Channels > 0 {
				v += "/" + strconv.Itoa(int(p.Channels))
			}
			add("rtpmap", v)
		}
		if len(p.Parameters) > MaxParameters || len(p.Feedback) > MaxFeedback || len(p.FeedbackTRRInt) > MaxFeedback {
			return nil, sdpErr(ErrSDPLimit, label, "payload-type", "%d: too many parameters or feedback", p.ID)
		}
		if len(p.Parameters) > 0 {
			parts := make([]string, 0, len(p.Parameters))
			for _, q := range p.Parameters {
				if q.Name == "" {
					if !sdpIsText(q.Value) || strings.Contains(q.Value, ";") && len(p.Parameters) > 1 {
						return nil, sdpErr(ErrSDPMalformed, label, "parameter", "%d: raw value %q", p.ID, q.Value)
					}
					parts = append(parts, q.Value)
					continue
				}
				if !sdpIsToken(q.Name) || strings.ContainsAny(q.Name, "=;") || !sdpIsText(q.Value) || strings.Contains(q.Value, ";") {
					return nil, sdpErr(ErrSDPMalformed, label, "parameter", "%d: %q=%q", p.ID, q.Name, q.Value)
				}
				parts = append(parts, q.Name+"="+q.Value)
			}
			add("fmtp", id+" "+strings.Join(parts, ";"))
		}
		if err := writeFeedback(label, id, p.Feedback, p.FeedbackTRRInt, add); err != nil {
			return nil, err
		}
		if p.Ptime != "" && ptime == "" {
			ptime = p.Ptime
		}
	}
	if len(d.Feedback) > MaxFeedback || len(d.FeedbackTRRInt) > MaxFeedback {
		return nil, sdpErr(ErrSDPLimit, label, "rtcp-fb", "more than %d", MaxFeedback)
	}
	if err := writeFeedback(label, "*", d.Feedback, d.FeedbackTRRInt, add); err != nil {
		return nil, err
	}
	if ptime != "" {
		if _, err := strconv.ParseFloat(ptime, 64); err != nil || !sdpIsToken(ptime) {
			return nil, sdpErr(ErrSDPMalformed, label, "ptime", "%q", ptime)
		}
		add("ptime", ptime)
	}
	if d.Maxptime != "" {
		if _, err := strconv.ParseFloat(d.Maxptime, 64); err != nil || !sdpIsToken(d.Maxptime) {
			return nil, sdpErr(ErrSDPMalformed, label, "maxptime", "%q", d.Maxptime)
		}
		add("maxptime", d.Maxptime)
	}
	if e := d.Encryption; e != nil {
		if len(e.Crypto) > MaxParameters {
			return nil, sdpErr(ErrSDPLimit, label, "crypto", "more than %d", MaxParameters)
		}
		for _, k := range e.Crypto {
			if !sdpIsToken(k.Tag) || !sdpIsToken(k.CryptoSuite) || !sdpIsToken(k.KeyParams) || !sdpIsText(k.SessionParams) {
				return nil, sdpErr(ErrSDPMalformed, label, "crypto", "tag %q suite %q", k.Tag, k.CryptoSuite)
			}
			v := k.Tag + " " + k.CryptoSuite + " " + k.KeyParams
			if s := strings.TrimSpace(k.SessionParams); s != "" {
				v += " " + s
			}
			add("crypto", v)
		}
	}
	for _, g := range d.SSRCGroups {
		if !sdpIsToken(g.Semantics) || len(g.Sources) == 0 || len(g.Sources) > MaxSources {
			return nil, sdpErr(ErrSDPMalformed, label, "ssrc-group", "%q with %d sources", g.Semantics, len(g.Sources))
		}
		v := g.Semantics
		for _, s := range g.Sources {
			v += " " + strconv.FormatUint(uint64(s.SSRC), 10)
		}
		add("ssrc-group", v)
	}
	for _, s := range d.Sources {
		id := strconv.FormatUint(uint64(s.SSRC), 10)
		if len(s.Parameters) > MaxParameters {
			return nil, sdpErr(ErrSDPLimit, label, "source", "%s: more than %d parameters", id, MaxParameters)
		}
		if len(s.Parameters) == 0 {
			add("ssrc", id)
		}
		for _, p := range s.Parameters {
			if !sdpIsToken(p.Name) || strings.Contains(p.Name, ":") || !sdpIsText(p.Value) {
				return nil, sdpErr(ErrSDPMalformed, label, "source", "%s: parameter %q", id, p.Name)
			}
			v := id + " " + p.Name
			if p.Value != "" {
				v += ":" + p.Value
			}
			add("ssrc", v)
		}
	}
	return md, nil
}

func writeFeedback(label, target string, fbs []RTCPFeedback, trrs []RTCPFeedbackTRRInt, add func(k, v string)) error {
	for _, f := range fbs {
		if !sdpIsToken(f.Type) || f.Subtype != "" && (!sdpIsText(f.Subtype) || strings.TrimSpace(f.Subtype) == "") {
			return sdpErr(ErrSDPMalformed, label, "rtcp-fb", "%s: type %q subtype %q", target, f.Type, f.Subtype)
		}
		v := target + " " + f.Type
		if f.Subtype != "" {
			v += " " + f.Subtype
		}
		add("rtcp-fb", v)
	}
	for _, t := range trrs {
		add("rtcp-fb", target+" trr-int "+strconv.FormatUint(uint64(t.Value), 10))
	}
	return nil
}

func sdpContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
