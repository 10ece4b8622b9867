package jingle

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const testFP = "DF:2F:F4:BE:BE:55:C0:83:77:47:26:C6:21:59:C0:F5:C6:61:6A:BE:96:E2:8C:B4:BE:C2:19:2B:EC:69:2F:28"

// chromeLikeOffer is shaped like a current Chromium offer: session-level
// extmap-allow-mixed and msid-semantic, media-level fingerprint, TCP and
// mDNS candidates, rtcp-fb for "*" and trr-int, raw fmtp, ptime, b=AS.
var chromeLikeOffer = strings.Join([]string{
	"v=0",
	"o=- 4611731400430051336 2 IN IP4 127.0.0.1",
	"s=-",
	"t=0 0",
	"a=group:BUNDLE 0 1",
	"a=extmap-allow-mixed",
	"a=msid-semantic: WMS",
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 126",
	"c=IN IP4 0.0.0.0",
	"b=AS:64",
	"a=rtcp:9 IN IP4 0.0.0.0",
	"a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0 network-id 1",
	"a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0 network-id 1",
	"a=candidate:3 1 UDP 1686052607 198.51.100.7 50001 typ srflx raddr 127.0.0.1 rport 50000 generation 0 network-id 1 network-cost 10",
	"a=candidate:4 1 udp 2122194687 8c1a4b3e-5f12-4f7a-9b7e-0d1d4e7c2a11.local 50002 typ host generation 0",
	"a=ice-ufrag:Ab+/",
	"a=ice-pwd:0123456789abcdefghijklmn",
	"a=ice-options:trickle",
	"a=fingerprint:sha-256 " + testFP,
	"a=setup:actpass",
	"a=mid:0",
	"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
	"a=extmap:9/sendonly urn:ietf:params:rtp-hdrext:sdes:mid",
	"a=sendrecv",
	"a=msid:- 6f3c1d2e-0b5a-4c4e-8d2a-1f0e9c8b7a6d",
	"a=rtcp-mux",
	"a=rtcp-rsize",
	"a=rtpmap:111 opus/48000/2",
	"a=rtcp-fb:111 transport-cc",
	"a=fmtp:111 minptime=10; useinbandfec=1",
	"a=rtpmap:63 red/48000/2",
	"a=fmtp:63 111/111",
	"a=rtpmap:126 telephone-event/8000",
	"a=rtcp-fb:* trr-int 100",
	"a=rtcp-fb:* nack",
	"a=ptime:20",
	"a=maxptime:120",
	"a=ssrc:1001 cname:abc",
	"a=ssrc:1001 msid:- 6f3c1d2e-0b5a-4c4e-8d2a-1f0e9c8b7a6d",
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97",
	"c=IN IP4 0.0.0.0",
	"a=ice-ufrag:Ab+/",
	"a=ice-pwd:0123456789abcdefghijklmn",
	"a=fingerprint:sha-256 " + testFP,
	"a=setup:actpass",
	"a=mid:1",
	"a=recvonly",
	"a=rtcp-mux",
	"a=rtpmap:96 VP8/90000",
	"a=rtcp-fb:96 ccm fir",
	"a=rtcp-fb:96 nack pli",
	"a=rtpmap:97 rtx/90000",
	"a=fmtp:97 apt=96",
	"a=ssrc-group:FID 2001 2002",
	"a=ssrc:2001 cname:abc",
	"a=ssrc:2002 cname:abc",
	"",
}, "\r\n")

func TestChromeLikeOffer(t *testing.T) {
	contents, groups, err := SDPToJingle(chromeLikeOffer)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Semantics != "BUNDLE" || len(groups[0].Contents) != 2 {
		t.Fatalf("groups %+v", groups)
	}
	audio, video := contents[0], contents[1]
	if audio.Name != "0" || audio.Creator != CreatorInitiator || audio.Senders != SendersBoth {
		t.Errorf("audio content %q %q %q", audio.Name, audio.Creator, audio.Senders)
	}
	if video.Senders != SendersResponder {
		t.Errorf("recvonly in the initiator's offer: senders %q, want responder", video.Senders)
	}
	d := audio.Description
	if d.Media != "audio" || len(d.PayloadTypes) != 3 || d.RTCPMux == nil || d.ReducedSize == nil || d.ExtmapAllowMixed == nil {
		t.Fatalf("audio description %+v", d)
	}
	opus := d.PayloadTypes[0]
	if opus.Name != "opus" || opus.Clockrate != 48000 || opus.Channels != 2 || opus.Ptime != "20" {
		t.Errorf("opus %+v", opus)
	}
	if len(opus.Parameters) != 2 || opus.Parameters[1] != (Parameter{Name: "useinbandfec", Value: "1"}) {
		t.Errorf("opus fmtp %+v", opus.Parameters)
	}
	if red := d.PayloadTypes[1]; len(red.Parameters) != 1 || red.Parameters[0] != (Parameter{Value: "111/111"}) {
		t.Errorf("red fmtp should be one nameless parameter: %+v", red.Parameters)
	}
	if len(opus.Feedback) != 1 || opus.Feedback[0].Type != "transport-cc" {
		t.Errorf("opus feedback %+v", opus.Feedback)
	}
	if len(d.Feedback) != 1 || d.Feedback[0] != (RTCPFeedback{Type: "nack"}) || len(d.FeedbackTRRInt) != 1 || d.FeedbackTRRInt[0].Value != 100 {
		t.Errorf("wildcard feedback %+v %+v", d.Feedback, d.FeedbackTRRInt)
	}
	if len(d.HeaderExts) != 2 || fmt.Sprint(d.HeaderExts[1]) != fmt.Sprint(HeaderExt{ID: 9, URI: "urn:ietf:params:rtp-hdrext:sdes:mid", Senders: SendersInitiator}) {
		t.Errorf("header extensions %+v", d.HeaderExts)
	}
	if d.Bandwidth == nil || *d.Bandwidth != (Bandwidth{Type: "AS", Value: "64"}) || d.Maxptime != "120" {
		t.Errorf("bandwidth %+v maxptime %q", d.Bandwidth, d.Maxptime)
	}
	if len(d.Sources) != 1 || d.Sources[0].SSRC != 1001 || !sdpHasParam(d.Sources[0].Parameters, "msid", "- 6f3c1d2e-0b5a-4c4e-8d2a-1f0e9c8b7a6d") || len(d.Sources[0].Parameters) != 2 {
		t.Errorf("sources %+v", d.Sources)
	}
	if d.Encryption != nil {
		t.Errorf("DTLS offer has encryption %+v", d.Encryption)
	}
	tr := audio.Transport
	if tr.Ufrag != "Ab+/" || tr.Fingerprint == nil || tr.Fingerprint.Setup != SetupActpass || tr.Fingerprint.Hash != "sha-256" || tr.Fingerprint.Value != testFP {
		t.Errorf("transport %+v fingerprint %+v", tr, tr.Fingerprint)
	}
	if len(tr.Candidates) != 3 {
		t.Fatalf("want the 3 UDP candidates (TCP left out), got %+v", tr.Candidates)
	}
	want := Candidate{Component: 1, Foundation: "3", Generation: 0, Network: 1, IP: "198.51.100.7", Port: 50001,
		Priority: 1686052607, Protocol: "udp", RelAddr: "127.0.0.1", RelPort: 50000, Type: "srflx"}
	got := tr.Candidates[1]
	want.ID = got.ID
	if got != want || got.ID == "" {
		t.Errorf("srflx candidate\n got %+v\nwant %+v", got, want)
	}
	if g := video.Description.SSRCGroups; len(g) != 1 || g[0].Semantics != "FID" || len(g[0].Sources) != 2 || g[0].Sources[1].SSRC != 2002 {
		t.Errorf("ssrc groups %+v", g)
	}
	if fb := video.Description.PayloadTypes[0].Feedback; len(fb) != 2 || fb[0] != (RTCPFeedback{Type: "ccm", Subtype: "fir"}) {
		t.Errorf("video feedback %+v", fb)
	}

	out, err := JingleToSDP(contents, groups, 7)
	if err != nil {
		t.Fatal(err)
	}
	in := semantic(t, chromeLikeOffer)
	// What the mapping does not carry, by design: TCP candidates (not in
	// the semantic view), b= and ptime are checked above.
	diffSemantic(t, in, semantic(t, out))
	for _, line := range []string{"a=rtcp-fb:* trr-int 100", "a=ptime:20", "a=maxptime:120", "b=AS:64", "a=extmap:9/sendonly urn:ietf:params:rtp-hdrext:sdes:mid"} {
		if !strings.Contains(out, line+"\r\n") {
			t.Errorf("translated SDP lacks %q", line)
		}
	}
	// The same SDP seen as the responder's: sendonly/recvonly swap.
	asAnswer, _, err := SDPToJingleAs(chromeLikeOffer, CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	if asAnswer[1].Senders != SendersInitiator || asAnswer[0].Description.HeaderExts[1].Senders != SendersResponder {
		t.Errorf("responder's recvonly: senders %q, extmap %q", asAnswer[1].Senders, asAnswer[0].Description.HeaderExts[1].Senders)
	}
}

func plainSDP(proto string, extra ...string) string {
	lines := []string{
		"v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0",
		"m=audio 4000 " + proto + " 0 8",
		"c=IN IP4 192.0.2.1",
		"a=mid:a",
		"a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijklmn",
		"a=rtpmap:0 PCMU/8000",
	}
	return strings.Join(append(lines, extra...), "\r\n") + "\r\n"
}

// TestPlainRTPAndSDES: cleartext RTP and SDES keys translate faithfully,
// never as DTLS, so that policy can classify them.
func TestPlainRTPAndSDES(t *testing.T) {
	contents, _, err := SDPToJingle(plainSDP("RTP/AVP"))
	if err != nil {
		t.Fatal(err)
	}
	c := contents[0]
	if c.Transport.Fingerprint != nil || c.Description.Encryption != nil {
		t.Fatalf("plain RTP became fingerprint %+v encryption %+v", c.Transport.Fingerprint, c.Description.Encryption)
	}
	if p := c.Description.PayloadTypes[1]; p.ID != 8 || p.Name != "" {
		t.Errorf("static payload type without rtpmap: %+v", p)
	}
	out, err := JingleToSDP(contents, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "m=audio 9 RTP/AVP 0 8\r\n") || strings.Contains(out, "fingerprint") {
		t.Errorf("plain RTP written as\n%s", out)
	}

	const key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyBpc2luZm8="
	sdes := plainSDP("RTP/SAVPF", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "+key+" KDR=1 UNENCRYPTED_SRTCP", "a=crypto:2 AES_CM_128_HMAC_SHA1_32 "+key, "a=rtcp-fb:0 nack")
	contents, _, err = SDPToJingle(sdes)
	if err != nil {
		t.Fatal(err)
	}
	e := contents[0].Description.Encryption
	if e == nil || len(e.Crypto) != 2 || contents[0].Transport.Fingerprint != nil {
		t.Fatalf("SDES lost: %+v", e)
	}
	if e.Crypto[0] != (Crypto{Tag: "1", CryptoSuite: "AES_CM_128_HMAC_SHA1_80", KeyParams: key, SessionParams: "KDR=1 UNENCRYPTED_SRTCP"}) {
		t.Errorf("crypto %+v", e.Crypto[0])
	}
	out, err = JingleToSDP(contents, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	diffSemantic(t, semantic(t, sdes), semantic(t, out))

	// SDES next to DTLS: both kept, policy sees the keys.
	both := strings.Replace(chromeLikeOffer, "a=mid:0\r\n", "a=mid:0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "+key+"\r\n", 1)
	contents, _, err = SDPToJingle(both)
	if err != nil {
		t.Fatal(err)
	}
	if contents[0].Description.Encryption == nil || contents[0].Transport.Fingerprint == nil {
		t.Fatal("SDES with DTLS: one of them dropped")
	}
}

func TestSDPErrors(t *testing.T) {
	many := func(n int, line string) []string {
		var l []string
		for i := 0; i < n; i++ {
			l = append(l, fmt.Sprintf(line, i))
		}
		return l
	}
	var manyMedia strings.Builder
	manyMedia.WriteString("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	for i := 0; i <= MaxContents; i++ {
		fmt.Fprintf(&manyMedia, "m=audio 9 RTP/AVP 0\r\na=mid:%d\r\n", i)
	}
	dtls := func(extra ...string) string {
		return plainSDP("UDP/TLS/RTP/SAVPF", append([]string{"a=fingerprint:sha-256 " + testFP, "a=setup:actpass"}, extra...)...)
	}
	tests := []struct {
		name string
		sdp  string
		want error
	}{
		{"too large", strings.Repeat("a", MaxSDPSize+1), ErrSDPTooLarge},
		{"too many m-lines", manyMedia.String(), ErrSDPLimit},
		{"too many candidates", dtls(many(MaxCandidates+1, "a=candidate:%d 1 udp 1 127.0.0.1 1 typ host")...), ErrSDPLimit},
		{"long attribute", dtls("a=x-long:" + strings.Repeat("x", MaxAttrLen+1)), ErrSDPLimit},
		{"too many fb", dtls(many(MaxFeedback+1, "a=rtcp-fb:0 x%d")...), ErrSDPLimit},
		{"too many sources", dtls(many(MaxSources+1, "a=ssrc:%d cname:x")...), ErrSDPLimit},
		{"not sdp", "hello", ErrSDPMalformed},
		{"no media", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", ErrSDPMalformed},
		{"no mid", strings.Replace(dtls(), "a=mid:a\r\n", "", 1), ErrSDPMalformed},
		{"mid with space", strings.Replace(dtls(), "a=mid:a", "a=mid:a b", 1), ErrSDPMalformed},
		{"fingerprint with plain RTP", plainSDP("RTP/AVP", "a=fingerprint:sha-256 "+testFP), ErrSDPMalformed},
		{"DTLS without fingerprint", plainSDP("UDP/TLS/RTP/SAVPF"), ErrSDPMalformed},
		{"SAVP without keys", plainSDP("RTP/SAVP"), ErrSDPMalformed},
		{"bad fingerprint", plainSDP("UDP/TLS/RTP/SAVPF", "a=fingerprint:sha-256 XY:12"), ErrSDPMalformed},
		{"holdconn", dtls("a=setup:holdconn"), ErrSDPUnsupported},
		{"rtpmap unknown pt", dtls("a=rtpmap:96 VP8/90000"), ErrSDPMalformed},
		{"rtpmap twice", dtls("a=rtpmap:0 PCMU/8000"), ErrSDPMalformed},
		{"rtpmap no clock", dtls("a=rtpmap:8 PCMA"), ErrSDPMalformed},
		{"fmtp unknown pt", dtls("a=fmtp:96 apt=0"), ErrSDPMalformed},
		{"pt out of range", strings.Replace(dtls(), " 0 8\r\n", " 0 200\r\n", 1), ErrSDPMalformed},
		{"pt twice", strings.Replace(dtls(), " 0 8\r\n", " 0 0\r\n", 1), ErrSDPMalformed},
		{"rtcp-fb unknown pt", dtls("a=rtcp-fb:96 nack"), ErrSDPMalformed},
		{"extmap bad id", dtls("a=extmap:0 urn:x"), ErrSDPMalformed},
		{"extmap attributes", dtls("a=extmap:1 urn:x attr"), ErrSDPUnsupported},
		{"two directions", dtls("a=sendonly", "a=recvonly"), ErrSDPMalformed},
		{"bad candidate", dtls("a=candidate:1 1 udp x 127.0.0.1 1 typ host"), ErrSDPMalformed},
		{"candidate bad type", dtls("a=candidate:1 1 udp 1 127.0.0.1 1 typ weird"), ErrSDPMalformed},
		{"bad ufrag", strings.Replace(dtls(), "a=ice-ufrag:abcd", "a=ice-ufrag:ab\"cd", 1), ErrSDPMalformed},
		{"simulcast", dtls("a=rid:h send", "a=simulcast:send h"), ErrSDPUnsupported},
		{"text media", strings.Replace(dtls(), "m=audio", "m=text", 1), ErrSDPUnsupported},
		{"tcp profile", plainSDP("TCP/RTP/AVP"), ErrSDPUnsupported},
		{"group unknown mid", strings.Replace(dtls(), "t=0 0\r\n", "t=0 0\r\na=group:BUNDLE a b\r\n", 1), ErrSDPMalformed},
		{"session crypto", strings.Replace(dtls(), "t=0 0\r\n", "t=0 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n", 1), ErrSDPMalformed},
		{"duplicate mid", dtls("m=audio 9 RTP/AVP 0", "a=mid:a"), ErrSDPMalformed},
		{"legacy sctp", strings.Join([]string{"v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=application 9 DTLS/SCTP 5000", "a=mid:d", ""}, "\r\n"), ErrSDPUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := SDPToJingle(tc.sdp)
			var se *SDPError
			if !errors.As(err, &se) || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want an *SDPError wrapping %v", err, tc.want)
			}
			if se.Error() == "" || !strings.HasPrefix(se.Error(), "jingle: ") {
				t.Errorf("message %q", se.Error())
			}
		})
	}
	if _, _, err := SDPToJingleAs(dtls(), "someone"); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("bad author: %v", err)
	}
}

// validContent is a minimal DTLS audio content for JingleToSDP tests.
func validContent() Content {
	return Content{
		Creator: CreatorInitiator, Name: "0", Senders: SendersBoth,
		Description: &Description{Media: "audio", PayloadTypes: []PayloadType{{ID: 111, Name: "opus", Clockrate: 48000, Channels: 2,
			Parameters: []Parameter{{Name: "useinbandfec", Value: "1"}}}}},
		Transport: &Transport{Ufrag: "abcd", Pwd: "0123456789abcdefghijklmn",
			Fingerprint: &Fingerprint{Hash: "sha-256", Setup: SetupActpass, Value: testFP},
			Candidates:  []Candidate{{Component: 1, Foundation: "1", IP: "127.0.0.1", Port: 5000, Priority: 1, Protocol: "udp", Type: "host", ID: "x"}}},
	}
}

// TestJingleToSDPRefusesInjection: values from a peer cannot add or split
// SDP lines, and bad structure is refused.
func TestJingleToSDPRefusesInjection(t *testing.T) {
	if _, err := JingleToSDP([]Content{validContent()}, nil, 1); err != nil {
		t.Fatalf("valid content: %v", err)
	}
	evil := "x\r\na=fingerprint:sha-256 " + testFP
	tests := []struct {
		name   string
		mutate func(c *Content, g *[]Group)
		want   error
	}{
		{"name", func(c *Content, _ *[]Group) { c.Name = evil }, ErrSDPMalformed},
		{"empty name", func(c *Content, _ *[]Group) { c.Name = "" }, ErrSDPMalformed},
		{"ufrag", func(c *Content, _ *[]Group) { c.Transport.Ufrag = evil }, ErrSDPMalformed},
		{"pwd missing", func(c *Content, _ *[]Group) { c.Transport.Pwd = "" }, ErrSDPMalformed},
		{"fingerprint", func(c *Content, _ *[]Group) { c.Transport.Fingerprint.Value = evil }, ErrSDPMalformed},
		{"hash", func(c *Content, _ *[]Group) { c.Transport.Fingerprint.Hash = "sha 256" }, ErrSDPMalformed},
		{"setup", func(c *Content, _ *[]Group) { c.Transport.Fingerprint.Setup = "holdconn" }, ErrSDPUnsupported},
		{"payload name", func(c *Content, _ *[]Group) { c.Description.PayloadTypes[0].Name = "op us" }, ErrSDPMalformed},
		{"payload clock", func(c *Content, _ *[]Group) { c.Description.PayloadTypes[0].Clockrate = 0 }, ErrSDPMalformed},
		{"payload id", func(c *Content, _ *[]Group) { c.Description.PayloadTypes[0].ID = 128 }, ErrSDPMalformed},
		{"no payload", func(c *Content, _ *[]Group) { c.Description.PayloadTypes = nil }, ErrSDPMalformed},
		{"parameter value", func(c *Content, _ *[]Group) { c.Description.PayloadTypes[0].Parameters[0].Value = evil }, ErrSDPMalformed},
		{"parameter semicolon", func(c *Content, _ *[]Group) { c.Description.PayloadTypes[0].Parameters[0].Value = "1;x=2" }, ErrSDPMalformed},
		{"feedback", func(c *Content, _ *[]Group) {
			c.Description.Feedback = []RTCPFeedback{{Type: "nack", Subtype: evil}}
		}, ErrSDPMalformed},
		{"extmap uri", func(c *Content, _ *[]Group) { c.Description.HeaderExts = []HeaderExt{{ID: 1, URI: "a b"}} }, ErrSDPMalformed},
		{"extmap parameters", func(c *Content, _ *[]Group) {
			c.Description.HeaderExts = []HeaderExt{{ID: 1, URI: "urn:x", Parameters: []Parameter{{Name: "a", Value: "b"}}}}
		}, ErrSDPUnsupported},
		{"extmap id", func(c *Content, _ *[]Group) { c.Description.HeaderExts = []HeaderExt{{ID: 15, URI: "urn:x"}} }, ErrSDPMalformed},
		{"source parameter", func(c *Content, _ *[]Group) {
			c.Description.Sources = []Source{{SSRC: 1, Parameters: []Parameter{{Name: "cname", Value: evil}}}}
		}, ErrSDPMalformed},
		{"msid", func(c *Content, _ *[]Group) {
			c.Description.Sources = []Source{{SSRC: 1, Parameters: []Parameter{{Name: "msid", Value: evil}}}}
		}, ErrSDPMalformed},
		{"candidate ip", func(c *Content, _ *[]Group) { c.Transport.Candidates[0].IP = evil }, ErrSDPMalformed},
		{"candidate tcp", func(c *Content, _ *[]Group) { c.Transport.Candidates[0].Protocol = "tcp" }, ErrSDPUnsupported},
		{"crypto", func(c *Content, _ *[]Group) {
			c.Description.Encryption = &Encryption{Crypto: []Crypto{{Tag: "1", CryptoSuite: "x", KeyParams: evil}}}
		}, ErrSDPMalformed},
		{"senders", func(c *Content, _ *[]Group) { c.Senders = "everyone" }, ErrSDPMalformed},
		{"media", func(c *Content, _ *[]Group) { c.Description.Media = "text" }, ErrSDPUnsupported},
		{"no transport", func(c *Content, _ *[]Group) { c.Transport = nil }, ErrSDPMalformed},
		{"no description", func(c *Content, _ *[]Group) { c.Description = nil }, ErrSDPUnsupported},
		{"group unknown", func(_ *Content, g *[]Group) {
			*g = []Group{{Semantics: "BUNDLE", Contents: []GroupContent{{Name: "nope"}}}}
		}, ErrSDPMalformed},
		{"group semantics", func(_ *Content, g *[]Group) { *g = []Group{{Semantics: evil}} }, ErrSDPMalformed},
		{"bandwidth", func(c *Content, _ *[]Group) { c.Description.Bandwidth = &Bandwidth{Type: "AS", Value: evil} }, ErrSDPMalformed},
		{"encrypted fingerprint only", func(c *Content, _ *[]Group) {
			c.Transport.Fingerprint = nil
			c.Transport.Other = []Raw{{XMLName: xml.Name{Space: "http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification", Local: "fingerprint"}}}
		}, ErrSDPUnsupported},
		{"too many candidates", func(c *Content, _ *[]Group) {
			for len(c.Transport.Candidates) <= MaxCandidates {
				c.Transport.Candidates = append(c.Transport.Candidates, c.Transport.Candidates[0])
			}
		}, ErrSDPLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validContent()
			var groups []Group
			tc.mutate(&c, &groups)
			out, err := JingleToSDP([]Content{c}, groups, 1)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (sdp %q), want %v", err, out, tc.want)
			}
		})
	}
	if _, err := JingleToSDP(nil, nil, 1); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("no contents: %v", err)
	}
	c := validContent()
	if _, err := JingleToSDP([]Content{c, c}, nil, 1); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("two contents of one name: %v", err)
	}
	var many []Content
	for i := 0; i <= MaxContents; i++ {
		c := validContent()
		c.Name = fmt.Sprint(i)
		many = append(many, c)
	}
	if _, err := JingleToSDP(many, nil, 1); !errors.Is(err, ErrSDPLimit) {
		t.Errorf("too many contents: %v", err)
	}
}

func TestSendersDirection(t *testing.T) {
	tests := []struct {
		dir     string
		author  Creator
		senders Senders
	}{
		{"sendrecv", CreatorInitiator, SendersBoth},
		{"inactive", CreatorInitiator, SendersNone},
		{"sendonly", CreatorInitiator, SendersInitiator},
		{"recvonly", CreatorInitiator, SendersResponder},
		{"sendrecv", CreatorResponder, SendersBoth},
		{"inactive", CreatorResponder, SendersNone},
		{"sendonly", CreatorResponder, SendersResponder},
		{"recvonly", CreatorResponder, SendersInitiator},
	}
	for _, tc := range tests {
		s, err := SendersFromDirection(tc.dir, tc.author)
		if err != nil || s != tc.senders {
			t.Errorf("SendersFromDirection(%s, %s) = %q, %v; want %q", tc.dir, tc.author, s, err, tc.senders)
		}
		d, err := DirectionFromSenders(tc.senders, tc.author)
		if err != nil || d != tc.dir {
			t.Errorf("DirectionFromSenders(%s, %s) = %q, %v; want %q", tc.senders, tc.author, d, err, tc.dir)
		}
	}
	if s, _ := SendersFromDirection("", CreatorResponder); s != SendersBoth {
		t.Errorf("no direction: %q", s)
	}
	if d, _ := DirectionFromSenders("", CreatorInitiator); d != "sendrecv" {
		t.Errorf("empty senders: %q", d)
	}
	for _, bad := range []struct {
		dir    string
		author Creator
	}{{"sideways", CreatorInitiator}, {"sendrecv", ""}} {
		if _, err := SendersFromDirection(bad.dir, bad.author); !errors.Is(err, ErrSDPMalformed) {
			t.Errorf("SendersFromDirection(%q, %q): %v", bad.dir, bad.author, err)
		}
	}
	if _, err := DirectionFromSenders("x", CreatorInitiator); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("DirectionFromSenders(x): %v", err)
	}
}

func TestCandidateSDP(t *testing.T) {
	for _, line := range []string{
		"candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 ufrag sEMT network-cost 999",
		"a=candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0",
		"842163049 1 UDP 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 rport 61665",
	} {
		c, err := CandidateFromSDP("0", line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if c.Foundation != "842163049" || c.Component != 1 || c.Protocol != "udp" || c.Priority != 1677729535 ||
			c.IP != "198.51.100.7" || c.Port != 61665 || c.Type != "srflx" || c.RelAddr != "10.0.0.2" || c.RelPort != 61665 {
			t.Errorf("%q -> %+v", line, c)
		}
		want := "candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0"
		if got := CandidateToSDP(c); got != want {
			t.Errorf("CandidateToSDP = %q, want %q", got, want)
		}
	}
	c, err := CandidateFromSDP("1", "candidate:1 2 udp 5 fd00::1 9 typ host generation 3 network-id 7")
	if err != nil || c.Generation != 3 || c.Network != 7 || c.Component != 2 || c.IP != "fd00::1" {
		t.Fatalf("%+v %v", c, err)
	}
	if c2, _ := CandidateFromSDP("1", CandidateToSDP(c)); c2 != c {
		t.Errorf("round trip %+v != %+v", c2, c)
	}
	if c3, _ := CandidateFromSDP("2", CandidateToSDP(c)); c3.ID == c.ID {
		t.Errorf("the same candidate of two contents has one id %q", c.ID)
	}
	_, err = CandidateFromSDP("0", "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active")
	if !errors.Is(err, ErrSDPUnsupported) {
		t.Errorf("tcp: %v", err)
	}
	for _, bad := range []string{"", "candidate:", "candidate:1 1 udp 1 127.0.0.1 1 typ", "candidate:1 0 udp 1 127.0.0.1 1 typ host",
		"candidate:1 1 udp 1 127.0.0.1 70000 typ host", "candidate:1 1 udp 1 127.0.0.1 1 typ host generation",
		"candidate:1 1 udp 1 bad_host 1 typ host", "candidate:1 1 udp 1 127.0.0.1 1 typ host rport x"} {
		if _, err := CandidateFromSDP("0", bad); !errors.Is(err, ErrSDPMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := CandidateFromSDP("a b", "candidate:1 1 udp 1 127.0.0.1 1 typ host"); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("bad mid: %v", err)
	}
	if s := CandidateToSDP(Candidate{Component: 1, Foundation: "1", IP: "1.2.3.4\r\na=x", Protocol: "udp", Type: "host"}); s != "" {
		t.Errorf("invalid candidate written: %q", s)
	}
}

// TestDataChannelContent: m=application maps to the XEP-0343 transport
// Conversations sends, and a content built from that XML maps back.
func TestDataChannelContent(t *testing.T) {
	dc := strings.Join([]string{"v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
		"a=fingerprint:sha-256 " + testFP,
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
		"a=mid:dc", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijklmn", "a=setup:actpass",
		"a=sctp-port:5000", "a=max-message-size:262144",
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", ""}, "\r\n")
	contents, _, err := SDPToJingle(dc)
	if err != nil {
		t.Fatal(err)
	}
	c := contents[0]
	if c.Description != nil || c.Transport != nil || len(c.Other) != 1 {
		t.Fatalf("data channel content %+v", c)
	}
	tr, port, mms, ok, err := DataChannelTransport(&c)
	if err != nil || !ok || port != "5000" || mms != "262144" || tr.Ufrag != "abcd" || tr.Fingerprint.Setup != SetupActpass || len(tr.Candidates) != 1 {
		t.Fatalf("DataChannelTransport: %+v %q %q %v %v", tr, port, mms, ok, err)
	}
	out, err := JingleToSDP(contents, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	diffSemantic(t, semantic(t, dc), semantic(t, out))

	// As Conversations writes it (prefixed inner namespace, whitespace).
	inner := `
	  <ice:transport xmlns:ice='urn:xmpp:jingle:transports:ice-udp:1' ufrag='wxyz' pwd='0123456789abcdefghijklmn'>
	    <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>` + testFP + `</fingerprint>
	  </ice:transport>`
	conv := Content{Creator: CreatorInitiator, Name: "file", Other: []Raw{
		{XMLName: xml.Name{Space: "urn:xmpp:jingle:apps:file-transfer:5", Local: "description"}},
		{XMLName: xml.Name{Space: NSDataChan, Local: "transport"}, Attrs: []xml.Attr{{Name: xml.Name{Local: "sctp-port"}, Value: "5000"}}, Inner: []byte(inner)},
	}}
	out, err = JingleToSDPAs([]Content{conv}, nil, 1, CreatorResponder)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=ice-ufrag:wxyz", "a=setup:active", "a=sctp-port:5000", "a=mid:file"} {
		if !strings.Contains(out, want+"\r\n") {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	bad := conv
	bad.Other = []Raw{{XMLName: xml.Name{Space: NSDataChan, Local: "transport"}, Attrs: []xml.Attr{{Name: xml.Name{Local: "sctp-port"}, Value: "x"}}}}
	if _, err := JingleToSDP([]Content{bad}, nil, 1); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("bad sctp-port: %v", err)
	}
	bad.Other[0].Attrs = nil
	bad.Other[0].Inner = []byte("<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'")
	if _, err := JingleToSDP([]Content{bad}, nil, 1); !errors.Is(err, ErrSDPMalformed) {
		t.Errorf("broken inner XML: %v", err)
	}
}

// FuzzSDPToJingle: any input either fails with an *SDPError or gives
// contents that JingleToSDP accepts and that translate back to the same
// contents.
func FuzzSDPToJingle(f *testing.F) {
	f.Add(chromeLikeOffer)
	f.Add(plainSDP("RTP/AVP"))
	f.Add(plainSDP("RTP/SAVPF", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x"))
	f.Fuzz(func(t *testing.T, s string) {
		contents, groups, err := SDPToJingle(s)
		if err != nil {
			var se *SDPError
			if !errors.As(err, &se) {
				t.Fatalf("not an *SDPError: %v", err)
			}
			return
		}
		out, err := JingleToSDP(contents, groups, 1)
		if err != nil {
			t.Fatalf("translated contents refused: %v", err)
		}
		again, groups2, err := SDPToJingle(out)
		if err != nil {
			t.Fatalf("own output refused: %v\n%s", err, out)
		}
		if fmt.Sprintf("%+v %+v", contentsView(again), groups2) != fmt.Sprintf("%+v %+v", contentsView(contents), groups) {
			t.Fatalf("not stable:\n%+v\n%+v", contentsView(contents), contentsView(again))
		}
	})
}

// contentsView prints contents with pointers followed.
func contentsView(cs []Content) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "{%s %s %s", c.Creator, c.Name, c.Senders)
		if d := c.Description; d != nil {
			fmt.Fprintf(&b, " %s %+v %+v %+v %+v %+v %+v %v %v %v %q", d.Media, d.PayloadTypes, d.Feedback, d.FeedbackTRRInt, d.HeaderExts, d.Sources, d.SSRCGroups, d.RTCPMux != nil, d.ReducedSize != nil, d.ExtmapAllowMixed != nil, d.Maxptime)
			if d.Encryption != nil {
				fmt.Fprintf(&b, " %+v", *d.Encryption)
			}
			if d.Bandwidth != nil {
				fmt.Fprintf(&b, " %+v", *d.Bandwidth)
			}
		}
		if t := c.Transport; t != nil {
			fmt.Fprintf(&b, " %s %s %+v", t.Ufrag, t.Pwd, t.Candidates)
			if t.Fingerprint != nil {
				fmt.Fprintf(&b, " %+v", *t.Fingerprint)
			}
		}
		for _, o := range c.Other {
			fmt.Fprintf(&b, " %v %v %s", o.XMLName, o.Attrs, o.Inner)
		}
		b.WriteString("}")
	}
	return b.String()
}
