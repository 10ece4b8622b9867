package jingle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	fp256 = "02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2"
	fp1   = "02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD"
	goodT = `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhy' pwd='asd88fgpdd777uzjYhagZg'>%s</transport>`
	goodC = `<candidate component='1' foundation='1' generation='0' id='c1' ip='10.0.1.1' network='1' port='8998' priority='2130706431' protocol='udp' type='host'%s/>`
)

// jingleWith wraps inner in a session-initiate.
func jingleWith(inner string) string {
	return `<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1' initiator='a@b/c'>` + inner + `</jingle>`
}

// contentWith wraps inner in one audio content.
func contentWith(inner string) string {
	return jingleWith(`<content creator='initiator' name='voice'>` + inner + `</content>`)
}

func descWith(inner string) string {
	return contentWith(`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>` + inner + `</description>`)
}

func transportWith(inner string) string {
	return contentWith(fmt.Sprintf(goodT, inner))
}

func candidate(extra string) string { return transportWith(fmt.Sprintf(goodC, extra)) }

func candidateAttr(attr, value string) string {
	c := fmt.Sprintf(goodC, "")
	i := strings.Index(c, " "+attr+"='")
	j := strings.Index(c[i+len(attr)+3:], "'")
	return transportWith(c[:i] + " " + attr + "='" + value + "'" + c[i+len(attr)+3+j+1:])
}

func fingerprint(attrs, value string) string {
	return transportWith(`<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' ` + attrs + `>` + value + `</fingerprint>`)
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

func nContents(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<content creator='initiator' name='c%d'/>`, i)
	}
	return jingleWith(b.String())
}

func nPayloadTypes(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<payload-type id='%d'/>`, i)
	}
	return descWith(b.String())
}

func nested(depth int) string {
	return contentWith(repeat("<x xmlns='urn:x'>", depth) + repeat("</x>", depth))
}

func TestParseMalformed(t *testing.T) {
	cases := []struct {
		name, in, field string
	}{
		{"oversize", jingleWith("") + repeat(" ", MaxElementSize), "jingle"},
		{"not xml", `<jingle xmlns='urn:xmpp:jingle:1'`, "xml"},
		{"empty input", ``, "jingle"},
		{"wrong namespace root", `<jingle xmlns='urn:xmpp:jingle:0' action='session-info' sid='a'/>`, "jingle"},
		{"wrong root element", `<content xmlns='urn:xmpp:jingle:1' creator='initiator' name='a'/>`, "jingle"},
		{"trailing element", jingleWith("") + `<jingle xmlns='urn:xmpp:jingle:1'/>`, "jingle"},
		{"trailing text", jingleWith("") + "garbage", "jingle"},
		{"leading text", "x" + jingleWith(""), "jingle"},
		{"comment", jingleWith("<!-- hi -->"), "xml"},
		{"doctype", `<!DOCTYPE jingle>` + jingleWith(""), "xml"},
		{"processing instruction", `<?xml version='1.0'?>` + jingleWith(""), "xml"},
		{"undeclared prefix", jingleWith(`<p:x/>`), "xml"},
		{"undeclared attribute prefix", jingleWith(`<x xmlns='urn:x' p:a='1'/>`), "xml"},
		{"duplicate attribute", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a' sid='b'/>`, "xml"},
		{"mismatched end", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a'></jingl>`, "xml"},
		{"invalid utf-8", jingleWith("\xff"), "xml"},
		{"unknown entity", jingleWith("&foo;"), "xml"},
		{"unknown action", `<jingle xmlns='urn:xmpp:jingle:1' action='session-explode' sid='a'/>`, "jingle@action"},
		{"missing action", `<jingle xmlns='urn:xmpp:jingle:1' sid='a'/>`, "jingle@action"},
		{"missing sid", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info'/>`, "jingle@sid"},
		{"empty sid", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid=''/>`, "jingle@sid"},
		{"sid with space", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a b'/>`, "jingle@sid"},
		{"long sid", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='` + repeat("a", MaxIDLen+1) + `'/>`, "jingle@sid"},
		{"long attribute", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a' initiator='` + repeat("a", MaxAttrLen+1) + `'/>`, "jingle@initiator"},
		{"unknown jingle attribute", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a' color='red'/>`, "jingle@color"},
		{"unknown jingle child", jingleWith(`<colour/>`), "jingle/colour"},
		{"text in jingle", jingleWith(`hello`), "jingle"},
		{"too many contents", nContents(MaxContents + 1), "jingle/content"},
		{"duplicate content name", jingleWith(`<content creator='initiator' name='a'/><content creator='responder' name='a'/>`), "jingle/content@name"},
		{"unknown creator", jingleWith(`<content creator='nobody' name='a'/>`), "jingle/content@creator"},
		{"missing creator", jingleWith(`<content name='a'/>`), "jingle/content@creator"},
		{"missing content name", jingleWith(`<content creator='initiator'/>`), "jingle/content@name"},
		{"unknown senders", jingleWith(`<content creator='initiator' name='a' senders='everyone'/>`), "jingle/content@senders"},
		{"unknown content attribute", jingleWith(`<content creator='initiator' name='a' x='1'/>`), "jingle/content@x"},
		{"two rtp descriptions", contentWith(`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'/>`), "jingle/content/description"},
		{"too many extensions", contentWith(repeat(`<x xmlns='urn:x'/>`, MaxExtensions+1)), "jingle/content/x"},
		{"too deep", nested(MaxDepth), "jingle"},
		{"payload id 128", descWith(`<payload-type id='128'/>`), "jingle/content/description/payload-type@id"},
		{"payload id 256", descWith(`<payload-type id='256'/>`), "jingle/content/description/payload-type@id"},
		{"payload id negative", descWith(`<payload-type id='-1'/>`), "jingle/content/description/payload-type@id"},
		{"payload id leading zero", descWith(`<payload-type id='096'/>`), "jingle/content/description/payload-type@id"},
		{"payload id plus", descWith(`<payload-type id='+96'/>`), "jingle/content/description/payload-type@id"},
		{"payload id missing", descWith(`<payload-type name='opus'/>`), "jingle/content/description/payload-type@id"},
		{"payload id duplicate", descWith(`<payload-type id='96'/><payload-type id='96'/>`), "jingle/content/description/payload-type@id"},
		{"too many payload types", nPayloadTypes(MaxPayloadTypes + 1), "jingle/content/description/payload-type"},
		{"channels 0", descWith(`<payload-type id='96' channels='0'/>`), "jingle/content/description/payload-type@channels"},
		{"clockrate not a number", descWith(`<payload-type id='96' clockrate='fast'/>`), "jingle/content/description/payload-type@clockrate"},
		{"clockrate over uint32", descWith(`<payload-type id='96' clockrate='4294967296'/>`), "jingle/content/description/payload-type@clockrate"},
		{"ptime not a number", descWith(`<payload-type id='96' ptime='20ms'/>`), "jingle/content/description/payload-type@ptime"},
		{"too many parameters", descWith(`<payload-type id='96'>` + repeat(`<parameter name='a' value='b'/>`, MaxParameters+1) + `</payload-type>`), "jingle/content/description/payload-type/parameter"},
		{"empty parameter", descWith(`<payload-type id='96'><parameter/></payload-type>`), "jingle/content/description/payload-type/parameter"},
		{"unknown payload child", descWith(`<payload-type id='96'><x xmlns='urn:x'/></payload-type>`), "jingle/content/description/payload-type/x"},
		{"unknown rtp element", descWith(`<sprocket/>`), "jingle/content/description/sprocket"},
		{"description ssrc over uint32", contentWith(`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio' ssrc='4294967296'/>`), "jingle/content/description@ssrc"},
		{"rtcp-mux with attribute", descWith(`<rtcp-mux x='1'/>`), "jingle/content/description/rtcp-mux@x"},
		{"rtcp-mux with child", descWith(`<rtcp-mux><y/></rtcp-mux>`), "jingle/content/description/rtcp-mux/y"},
		{"bandwidth not a number", descWith(`<bandwidth type='AS'>lots</bandwidth>`), "jingle/content/description/bandwidth"},
		{"too many feedback", descWith(repeat(`<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>`, MaxFeedback+1)), "jingle/content/description/rtcp-fb"},
		{"feedback without type", descWith(`<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0'/>`), "jingle/content/description/rtcp-fb@type"},
		{"header extension id 0", descWith(`<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='0' uri='urn:x'/>`), "jingle/content/description/rtp-hdrext@id"},
		{"header extension id 65536", descWith(`<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='65536' uri='urn:x'/>`), "jingle/content/description/rtp-hdrext@id"},
		{"header extension senders", descWith(`<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:x' senders='all'/>`), "jingle/content/description/rtp-hdrext@senders"},
		{"too many header extensions", descWith(repeat(`<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:x'/>`, MaxHeaderExts+1)), "jingle/content/description/rtp-hdrext"},
		{"source ssrc over uint32", descWith(`<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='4294967296'/>`), "jingle/content/description/source@ssrc"},
		{"too many sources", descWith(repeat(`<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1'/>`, MaxSources+1)), "jingle/content/description/source"},
		{"source parameter without name", descWith(`<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1'><parameter value='x'/></source>`), "jingle/content/description/source/parameter@name"},
		{"empty ssrc-group", descWith(`<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'/>`), "jingle/content/description/ssrc-group"},
		{"too many crypto lines", descWith(`<encryption>` + repeat(`<crypto crypto-suite='AES_CM_128_HMAC_SHA1_80' key-params='inline:x' tag='1'/>`, MaxCrypto+1) + `</encryption>`), "jingle/content/description/encryption/crypto"},
		{"candidate port 65536", candidateAttr("port", "65536"), "jingle/content/transport/candidate@port"},
		{"candidate port negative", candidateAttr("port", "-1"), "jingle/content/transport/candidate@port"},
		{"candidate priority 0", candidateAttr("priority", "0"), "jingle/content/transport/candidate@priority"},
		{"candidate priority 2^31", candidateAttr("priority", "2147483648"), "jingle/content/transport/candidate@priority"},
		{"candidate component 0", candidateAttr("component", "0"), "jingle/content/transport/candidate@component"},
		{"candidate component 256", candidateAttr("component", "256"), "jingle/content/transport/candidate@component"},
		{"candidate generation over uint32", candidateAttr("generation", "4294967296"), "jingle/content/transport/candidate@generation"},
		{"candidate type", candidateAttr("type", "magic"), "jingle/content/transport/candidate@type"},
		{"candidate protocol tcp", candidateAttr("protocol", "tcp"), "jingle/content/transport/candidate@protocol"},
		{"candidate protocol upper case", candidateAttr("protocol", "UDP"), "jingle/content/transport/candidate@protocol"},
		{"candidate ip", candidateAttr("ip", "10.0.0.1 evil"), "jingle/content/transport/candidate@ip"},
		{"candidate foundation", candidateAttr("foundation", "a b"), "jingle/content/transport/candidate@foundation"},
		{"candidate unknown attribute", candidate(" tcptype='active'"), "jingle/content/transport/candidate@tcptype"},
		{"candidate rel-port", candidate(" rel-addr='10.0.0.2' rel-port='70000'"), "jingle/content/transport/candidate@rel-port"},
		{"too many candidates", transportWith(repeat(fmt.Sprintf(goodC, ""), MaxCandidates+1)), "jingle/content/transport/candidate"},
		{"remote candidate port", transportWith(`<remote-candidate component='1' ip='10.0.0.1' port='99999'/>`), "jingle/content/transport/remote-candidate@port"},
		{"short ufrag", contentWith(`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='abc'/>`), "jingle/content/transport@ufrag"},
		{"pwd bad char", contentWith(`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' pwd='asd88fgpdd777uzjYhagZ!'/>`), "jingle/content/transport@pwd"},
		{"unknown ice element", transportWith(`<candidates/>`), "jingle/content/transport/candidates"},
		{"setup holdconn", fingerprint(`hash='sha-256' setup='holdconn'`, fp256), "jingle/content/transport/fingerprint@setup"},
		{"fingerprint hash missing", fingerprint(`setup='actpass'`, fp256), "jingle/content/transport/fingerprint@hash"},
		{"fingerprint md5", fingerprint(`hash='md5' setup='actpass'`, fp1[:47]), "jingle/content/transport/fingerprint"},
		{"fingerprint hash name with space", fingerprint(`hash=' sha-256' setup='actpass'`, fp256), "jingle/content/transport/fingerprint"},
		{"fingerprint too short for sha-256", fingerprint(`hash='sha-256' setup='actpass'`, fp1), "jingle/content/transport/fingerprint"},
		{"fingerprint too long for sha-1", fingerprint(`hash='sha-1' setup='actpass'`, fp256), "jingle/content/transport/fingerprint"},
		{"fingerprint not hex", fingerprint(`hash='sha-256' setup='actpass'`, strings.Replace(fp256, "1A", "1G", 1)), "jingle/content/transport/fingerprint"},
		{"fingerprint no colons", fingerprint(`hash='sha-256' setup='actpass'`, strings.ReplaceAll(fp256, ":", " ")), "jingle/content/transport/fingerprint"},
		{"fingerprint inner space", fingerprint(`hash='sha-256' setup='actpass'`, strings.Replace(fp256, ":", " :", 1)), "jingle/content/transport/fingerprint"},
		{"fingerprint with child", fingerprint(`hash='sha-256'`, `<x/>`), "jingle/content/transport/fingerprint/x"},
		{"two fingerprints", transportWith(repeat(`<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>`+fp256+`</fingerprint>`, 2)), "jingle/content/transport/fingerprint"},
		{"reason without condition", jingleWith(`<reason><text>x</text></reason>`), "jingle/reason"},
		{"reason two conditions", jingleWith(`<reason><busy/><decline/></reason>`), "jingle/reason/decline"},
		{"reason unknown condition", jingleWith(`<reason><bored/></reason>`), "jingle/reason/bored"},
		{"reason two texts", jingleWith(`<reason><busy/><text>a</text><text>b</text></reason>`), "jingle/reason/text"},
		{"reason long text", jingleWith(`<reason><busy/><text>` + repeat("a", MaxAttrLen+1) + `</text></reason>`), "jingle/reason/text"},
		{"alternative-session without sid", jingleWith(`<reason><alternative-session/></reason>`), "jingle/reason/alternative-session"},
		{"condition with content", jingleWith(`<reason><busy>now</busy></reason>`), "jingle/reason/busy"},
		{"two reasons", jingleWith(`<reason><busy/></reason><reason><busy/></reason>`), "jingle/reason"},
		{"mute unknown creator", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a'><mute xmlns='urn:xmpp:jingle:apps:rtp:info:1' creator='someone' name='voice'/></jingle>`, "jingle/mute@creator"},
		{"ringing with attribute", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='a'><ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1' loud='yes'/></jingle>`, "jingle/ringing@loud"},
		{"group content without name", jingleWith(`<group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content/></group>`), "jingle/group/content@name"},
		{"group without semantics", jingleWith(`<group xmlns='urn:xmpp:jingle:apps:grouping:0'/>`), "jingle/group@semantics"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkParseError(t, c.in, c.field, func(b []byte) error { _, err := Parse(b); return err })
		})
	}
}

func checkParseError(t *testing.T, in, field string, parse func([]byte) error) {
	t.Helper()
	err := parse([]byte(in))
	if err == nil {
		t.Fatalf("accepted %.300s", in)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v is not a *ParseError matching ErrMalformed", err)
	}
	if pe.Field != field {
		t.Fatalf("field = %q, want %q (%v)", pe.Field, field, err)
	}
	if !strings.HasPrefix(err.Error(), "jingle: ") {
		t.Fatalf("error not prefixed: %v", err)
	}
}

func TestParseJMIMalformed(t *testing.T) {
	const desc = `<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/>`
	cases := []struct {
		name, in, field string
	}{
		{"oversize", `<proceed xmlns='urn:xmpp:jingle-message:0' id='a'/>` + repeat(" ", MaxElementSize), "jmi"},
		{"wrong namespace", `<propose xmlns='urn:xmpp:jingle:1' id='a'>` + desc + `</propose>`, "jmi"},
		{"unknown element", `<call xmlns='urn:xmpp:jingle-message:0' id='a'/>`, "call"},
		{"missing id", `<proceed xmlns='urn:xmpp:jingle-message:0'/>`, "proceed@id"},
		{"long id", `<proceed xmlns='urn:xmpp:jingle-message:0' id='` + repeat("x", MaxIDLen+1) + `'/>`, "proceed@id"},
		{"unknown attribute", `<proceed xmlns='urn:xmpp:jingle-message:0' id='a' x='1'/>`, "proceed@x"},
		{"propose without description", `<propose xmlns='urn:xmpp:jingle-message:0' id='a'/>`, "propose"},
		{"too many descriptions", `<propose xmlns='urn:xmpp:jingle-message:0' id='a'>` + repeat(desc, MaxContents+1) + `</propose>`, "propose/description"},
		{"bad description", `<propose xmlns='urn:xmpp:jingle-message:0' id='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='300'/></description></propose>`, "propose/description/payload-type@id"},
		{"migrated outside finish", `<proceed xmlns='urn:xmpp:jingle-message:0' id='a'><migrated to='b'/></proceed>`, "proceed/migrated"},
		{"migrated without to", `<finish xmlns='urn:xmpp:jingle-message:0' id='a'><migrated/></finish>`, "finish/migrated@to"},
		{"tie-break in proceed", `<proceed xmlns='urn:xmpp:jingle-message:0' id='a'><tie-break/></proceed>`, "proceed/tie-break"},
		{"two reasons", `<reject xmlns='urn:xmpp:jingle-message:0' id='a'><reason xmlns='urn:xmpp:jingle:1'><busy/></reason><reason xmlns='urn:xmpp:jingle:1'><busy/></reason></reject>`, "reject/reason"},
		{"reason unknown condition", `<reject xmlns='urn:xmpp:jingle-message:0' id='a'><reason xmlns='urn:xmpp:jingle:1'><meh/></reason></reject>`, "reject/reason/meh"},
		{"unknown jingle element", `<reject xmlns='urn:xmpp:jingle-message:0' id='a'><content xmlns='urn:xmpp:jingle:1'/></reject>`, "reject/content"},
		{"trailing data", `<ringing xmlns='urn:xmpp:jingle-message:0' id='a'/><ringing xmlns='urn:xmpp:jingle-message:0' id='a'/>`, "jmi"},
		{"text", `<ringing xmlns='urn:xmpp:jingle-message:0' id='a'>ring</ringing>`, "ringing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkParseError(t, c.in, c.field, func(b []byte) error { _, err := ParseJMI(b); return err })
		})
	}
}

// TestParseLimitsAccepted checks that the limits are not off by one: the
// maximum counts parse.
func TestParseLimitsAccepted(t *testing.T) {
	for name, in := range map[string]string{
		"contents":      nContents(MaxContents),
		"payload types": nPayloadTypes(MaxPayloadTypes),
		"candidates":    transportWith(repeat(fmt.Sprintf(goodC, ""), MaxCandidates)),
		"extensions":    contentWith(repeat(`<x xmlns='urn:x'/>`, MaxExtensions)),
		"depth":         nested(MaxDepth - 3),
		"sid":           `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='` + repeat("a", MaxIDLen) + `'/>`,
		"size":          jingleWith("") + repeat(" ", MaxElementSize-len(jingleWith(""))),
		"numeric max":   candidate(" rel-addr='10.0.0.2' rel-port='65535'"),
		"priority max":  candidateAttr("priority", "2147483647"),
		"mdns":          candidateAttr("ip", "4f0bc1e4-96f5-4a0e-8a6f-0ab2d1c6e1a9.local"),
		"ipv6":          candidateAttr("ip", "2001:db8::9:1"),
		"lower hex":     fingerprint(`hash='sha-256' setup='active'`, strings.ToLower(fp256)),
		"sha-1":         fingerprint(`hash='sha-1' setup='passive'`, fp1),
		"sha-512":       fingerprint(`hash='sha-512'`, fp256+":"+fp256),
	} {
		if _, err := Parse([]byte(in)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
