package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Regression tests for the first security review of the XML layer
// (findings 4 to 8). Each fails on the code before the fix.

const (
	revFP  = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	revFP2 = "11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11"
)

func revOffer(transportExtra, contentExtra string) string {
	return `<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'>` +
		`<content creator='initiator' name='a'>` +
		`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='111' name='opus' clockrate='48000' channels='2'/></description>` +
		`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='abcd' pwd='abcdefghijklmnopqrstuv'>` + transportExtra + `</transport>` +
		contentExtra + `</content></jingle>`
}

func revXEP0320(hash, value string) string {
	return `<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='` + hash + `' setup='actpass'>` + value + `</fingerprint>`
}

func mustParse(t *testing.T, s string) *Jingle {
	t.Helper()
	j, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, s)
	}
	return j
}

// wantMarshalError checks that Marshal refuses j with a *MarshalError
// holding a *ParseError, and that Validate refuses it too.
func wantMarshalError(t *testing.T, what string, j *Jingle) *ParseError {
	t.Helper()
	b, err := j.Marshal()
	var me *MarshalError
	var pe *ParseError
	if !errors.As(err, &me) || !errors.As(err, &pe) {
		t.Fatalf("%s: Marshal = %v, %s; want a *MarshalError with a *ParseError", what, err, b)
	}
	if verr := j.Validate(); !errors.Is(verr, ErrInvalid) {
		t.Fatalf("%s: Validate = %v, want ErrInvalid", what, verr)
	}
	return pe
}

// Finding 5: a value that validates must not serialize to a different
// structure.
func TestRawInnerInjectionRegression(t *testing.T) {
	inject := []byte(`</x>` + revXEP0320("sha-256", revFP) + `<x xmlns='urn:x'>`)
	j := mustParse(t, revOffer("", ""))
	j.Contents[0].Transport.Other = []Raw{{XMLName: name("urn:x", "x"), Inner: inject}}
	pe := wantMarshalError(t, "inner closing its element", j)
	if pe.Field != "jingle/content/transport/x" {
		t.Errorf("field %q", pe.Field)
	}

	// An attribute named xmlns (or xmlns:p) would change the namespace
	// of the element it is written on.
	for _, a := range []xml.Attr{
		{Name: xml.Name{Local: "xmlns"}, Value: NSDTLS},
		{Name: xml.Name{Space: "xmlns", Local: "p"}, Value: NSDTLS},
		{Name: xml.Name{Space: nsXMLNS, Local: "p"}, Value: NSDTLS},
	} {
		j := mustParse(t, revOffer("", ""))
		j.Contents[0].Transport.Other = []Raw{{
			XMLName: name("urn:x", "fingerprint"),
			Attrs:   []xml.Attr{a, {Name: xml.Name{Local: "hash"}, Value: "sha-256"}},
			Inner:   []byte(revFP),
		}}
		wantMarshalError(t, "attribute "+a.Name.Space+" "+a.Name.Local, j)
	}

	// Names that are not XML names without a colon.
	for _, bad := range []Raw{
		{XMLName: name("urn:x", "x><fingerprint")},
		{XMLName: name("urn:x", "p:x")},
		{XMLName: name("urn:x", "")},
		{XMLName: name("urn:x", "1x")},
		{XMLName: name(nsXML, "x")},
		{XMLName: name("urn:x", "x"), Attrs: []xml.Attr{{Name: xml.Name{Local: "a='1' b"}, Value: "2"}}},
		{XMLName: name("urn:x", "x"), Attrs: []xml.Attr{{Name: xml.Name{Local: "p:a"}, Value: "2"}}},
	} {
		j := mustParse(t, revOffer("", ""))
		j.Contents[0].Transport.Other = []Raw{bad}
		wantMarshalError(t, "name "+strconv.Quote(bad.XMLName.Local), j)
	}

	// Inner XML that is balanced but splits into two elements at the top
	// level of its parent is not possible; the same bytes as two Raws
	// are fine. Inner that closes and reopens its own element is refused.
	j = mustParse(t, revOffer("", ""))
	j.Contents[0].Transport.Other = []Raw{{XMLName: name("urn:x", "x"), Inner: []byte(`a</x><x xmlns='urn:x'>b`)}}
	wantMarshalError(t, "close and reopen", j)

	// Unbalanced or undeclared inner XML.
	for _, inner := range []string{`<y>`, `</y>`, `<p:y/>`, `<y a='1' a='2'/>`, `<!-- c -->`, `&bogus;`} {
		j := mustParse(t, revOffer("", ""))
		j.Contents[0].Transport.Other = []Raw{{XMLName: name("urn:x", "x"), Inner: []byte(inner)}}
		wantMarshalError(t, "inner "+inner, j)
	}

	// A Raw in a namespace the package parses itself, at a place where it
	// defines that element, would come back as a typed field.
	j = mustParse(t, revOffer("", ""))
	j.Contents[0].Transport.Other = []Raw{{
		XMLName: name(NSDTLS, "fingerprint"),
		Attrs:   []xml.Attr{{Name: xml.Name{Local: "hash"}, Value: "sha-256"}},
		Inner:   []byte(revFP),
	}}
	pe = wantMarshalError(t, "own namespace in Other", j)
	if !strings.Contains(pe.Field, "Transport") {
		t.Errorf("round trip field %q does not name the transport", pe.Field)
	}

	// Typed fields that end up as element names.
	j = &Jingle{Action: ActionSessionTerminate, SID: "s1", Reason: &Reason{Condition: ReasonCondition(`success/><x xmlns='urn:x'`)}}
	wantMarshalError(t, "reason condition", j)
	if _, err := (&JMI{Kind: JMIKind("proceed id='1'/><x"), ID: "a"}).Marshal(); !errors.As(err, new(*MarshalError)) {
		t.Fatalf("JMI kind: %v", err)
	}
	// A field that the element cannot carry: sources of an ssrc-group
	// are references only.
	j = mustParse(t, revOffer("", ""))
	j.Contents[0].Description.SSRCGroups = []SSRCGroup{{Semantics: "FID", Sources: []Source{{SSRC: 1, Parameters: []Parameter{{Name: "cname", Value: "x"}}}}}}
	wantMarshalError(t, "ssrc-group source parameters", j)

	// Balanced inner XML in another spelling is emitted in canonical form
	// and reads back as the same value.
	j = mustParse(t, revOffer("", ""))
	j.Contents[0].Transport.Other = []Raw{{XMLName: name("urn:x", "x"), Inner: []byte(` <p:y xmlns:p="urn:y" q:a="&lt;" xmlns:q='urn:q'><![CDATA[<t>]]></p:y>`)}}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back := mustParse(t, string(b))
	want := ` <y xmlns='urn:y' xmlns:a0='urn:q' a0:a='&lt;'>&lt;t&gt;</y>`
	if got := string(back.Contents[0].Transport.Other[0].Inner); got != want {
		t.Fatalf("inner not canonical:\n%s\n%s", got, want)
	}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	// The same for a reason and a stand-alone description.
	r := &Reason{Condition: ReasonSuccess, Extra: []Raw{{XMLName: name("urn:x", "x"), Inner: inject}}}
	if _, err := r.Marshal(); !errors.As(err, new(*MarshalError)) {
		t.Fatalf("Reason.Marshal: %v", err)
	}
	d := &Description{Media: "audio", Other: []Raw{{XMLName: name("urn:x", "x"), Inner: inject}}}
	if _, err := d.Marshal(); !errors.As(err, new(*MarshalError)) {
		t.Fatalf("Description.Marshal: %v", err)
	}
}

// Finding 6: elements of the package's namespaces are refused where the
// package does not define them.
func TestFingerprintOutsideTransportRegression(t *testing.T) {
	fp := revXEP0320("sha-256", revFP2)
	own := revXEP0320("sha-256", revFP)
	cases := []struct{ name, in, field string }{
		{"content child", revOffer(own, fp), "jingle/content/fingerprint"},
		{"nested in foreign child of the transport", revOffer(own+`<w xmlns='urn:w'>`+fp+`</w>`, ""), "jingle/content/transport/w/fingerprint"},
		{"description child", strings.Replace(revOffer(own, ""), "</description>", fp+"</description>", 1), "jingle/content/description/fingerprint"},
		{"jingle root", strings.Replace(revOffer(own, ""), "</jingle>", fp+"</jingle>", 1), "jingle/fingerprint"},
		{"non-ICE transport", revOffer(own, `<transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'>`+fp+`</transport>`), "jingle/content/transport/fingerprint"},
		{"ICE candidate in a foreign transport", revOffer(own, `<transport xmlns='urn:x'><candidate xmlns='urn:xmpp:jingle:transports:ice-udp:1'/></transport>`), "jingle/content/transport/candidate"},
		{"ICE transport in the description", strings.Replace(revOffer(own, ""), "</description>", `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/></description>`, 1), "jingle/content/description/transport"},
		{"jingle content in a source", strings.Replace(revOffer(own, ""), "</description>", `<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1'><x xmlns='urn:x'><content xmlns='urn:xmpp:jingle:1'/></x></source></description>`, 1), "jingle/content/description/source/x/content"},
		{"rtp description in the transport", revOffer(own+`<description xmlns='urn:xmpp:jingle:apps:rtp:1'/>`, ""), "jingle/content/transport/description"},
		{"info payload in a content", revOffer(own, `<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>`), "jingle/content/ringing"},
		{"fingerprint in a reason", `<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s'><reason><success/>` + fp + `</reason></jingle>`, "jingle/reason/fingerprint"},
		{"fingerprint inside an info payload", `<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'><dance xmlns='urn:xmpp:jingle:apps:rtp:info:1'>` + fp + `</dance></jingle>`, "jingle/dance/fingerprint"},
		{"two ICE transports in a data channel", revOffer(own, `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/></transport>`), "jingle/content/transport/transport"},
		{"bad fingerprint in a data channel", revOffer(own, `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'>`+revXEP0320("sha-256", "AB")+`</transport></transport>`), "jingle/content/transport/transport/fingerprint"},
		{"fingerprint directly in a data channel", revOffer(own, `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'>`+fp+`</transport>`), "jingle/content/transport/fingerprint"},
		{"fingerprint in a foreign child of a data channel's ICE transport", revOffer(own, `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><w xmlns='urn:w'>`+fp+`</w></transport></transport>`), "jingle/content/transport/transport/w/fingerprint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkParseError(t, c.in, c.field, func(b []byte) error { _, err := Parse(b); return err })
			// And through encoding/xml.
			var j Jingle
			if err := xml.Unmarshal([]byte(c.in), &j); !errors.Is(err, ErrMalformed) {
				t.Fatalf("UnmarshalXML: %v", err)
			}
		})
	}
	jmiCases := []struct{ name, in, field string }{
		{"fingerprint in a proceed", `<proceed xmlns='urn:xmpp:jingle-message:0' id='a'>` + fp + `</proceed>`, "proceed/fingerprint"},
		{"fingerprint in a foreign child", `<proceed xmlns='urn:xmpp:jingle-message:0' id='a'><device xmlns='` + NSOMEMOVerification + `' id='1'>` + fp + `</device></proceed>`, "proceed/device/fingerprint"},
		{"ICE transport in a propose", `<propose xmlns='urn:xmpp:jingle-message:0' id='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/></propose>`, "propose/transport"},
	}
	for _, c := range jmiCases {
		t.Run(c.name, func(t *testing.T) {
			checkParseError(t, c.in, c.field, func(b []byte) error { _, err := ParseJMI(b); return err })
		})
	}
}

// Finding 6, the other half: what stays accepted, and Fingerprints
// reports every fingerprint-like element.
func TestFingerprintsRegression(t *testing.T) {
	// Conversations' OMEMO-encrypted fingerprint (its own namespace).
	j, err := Parse(conversationsPayload(t, "session-initiate-omemo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	refs, err := j.Fingerprints()
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(j.Contents) {
		t.Fatalf("%d refs for %d contents: %+v", len(refs), len(j.Contents), refs)
	}
	for i, r := range refs {
		if r.Content != j.Contents[i].Name || r.Creator != j.Contents[i].Creator || r.Fingerprint != nil ||
			r.Name != name(NSOMEMOVerification, "fingerprint") || r.Raw.XMLName != r.Name || r.Path != "jingle/content/transport/fingerprint" {
			t.Fatalf("ref %d: %+v", i, r)
		}
	}

	// XEP-0343 data channel as h/jsdp maps it (and Conversations sends
	// it): ICE-UDP inside the webrtc-datachannel transport, with the
	// fingerprint; a foreign fingerprint nested in a foreign child of
	// the transport is found as well, and so is one in a session-info.
	dc := `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' sctp-port='5000' max-message-size='262144'>` +
		`<ice:transport xmlns:ice='urn:xmpp:jingle:transports:ice-udp:1' ufrag='wxyz' pwd='0123456789abcdefghijklmn'>` +
		revXEP0320("SHA-256", revFP2) + `<candidate xmlns='urn:xmpp:jingle:transports:ice-udp:1' component='1' foundation='1' generation='0' ip='127.0.0.1' network='0' port='5000' priority='1' protocol='udp' type='host'/>` +
		`</ice:transport><sctpmap xmlns='urn:xmpp:jingle:transports:dtls-sctp:1' number='5000'/></transport>`
	in := `<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'>` +
		`<content creator='initiator' name='a'>` +
		`<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/>` +
		`<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'>` + revXEP0320("sha-256", revFP) +
		`<w xmlns='urn:w'><fingerprint xmlns='urn:other' algo='x'>zz</fingerprint></w></transport></content>` +
		`<content creator='responder' name='dc'><description xmlns='urn:xmpp:jingle:apps:file-transfer:5'/>` + dc + `</content>` +
		`</jingle>`
	j = mustParse(t, in)
	refs, err = j.Fingerprints()
	if err != nil {
		t.Fatal(err)
	}
	type short struct {
		content, path, space, value string
	}
	var got []short
	for _, r := range refs {
		s := short{r.Content, r.Path, r.Name.Space, ""}
		if r.Fingerprint != nil {
			s.value = r.Fingerprint.Hash + " " + r.Fingerprint.Value
		}
		got = append(got, s)
	}
	want := []short{
		{"a", "jingle/content/transport/fingerprint", NSDTLS, "sha-256 " + revFP},
		{"a", "jingle/content/transport/w/fingerprint", "urn:other", ""},
		{"dc", "jingle/content/transport/transport/fingerprint", NSDTLS, "sha-256 " + revFP2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Fingerprints:\n%+v\nwant\n%+v", got, want)
	}
	if r, ok := j.Contents[0].Transport.ForeignFingerprint(); !ok || r.XMLName != name("urn:other", "fingerprint") {
		t.Fatalf("ForeignFingerprint missed the nested one: %v %v", r, ok)
	}
	// The data channel content still marshals and round-trips.
	roundTrip(t, []byte(in), parseJingle, marshalJingle)

	// Hand-built values with broken inner XML are reported, not skipped.
	j.Info = []Raw{{XMLName: name("urn:x", "x"), Inner: []byte("<y>")}}
	if _, err := j.Fingerprints(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Fingerprints with broken inner XML: %v", err)
	}

	// What stays accepted as Raw in the package's namespaces: XEP-0167
	// informational payloads in a session-info, XEP-0167 error
	// conditions in a reason.
	for _, s := range []string{
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'><dance xmlns='urn:xmpp:jingle:apps:rtp:info:1'/></jingle>`,
		`<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s'><reason><security-error/><invalid-crypto xmlns='urn:xmpp:jingle:apps:rtp:errors:1'/></reason></jingle>`,
	} {
		roundTrip(t, []byte(s), parseJingle, marshalJingle)
	}
}

// Finding 7: hash names are case-insensitive, and Marshal never emits
// the hash functions that may not bind.
func TestFingerprintHashRegression(t *testing.T) {
	j := mustParse(t, revOffer(revXEP0320("SHA-256", revFP), ""))
	if h := j.Contents[0].Transport.Fingerprint.Hash; h != "sha-256" {
		t.Fatalf("hash %q not normalized", h)
	}
	b, err := j.Marshal()
	if err != nil || !bytes.Contains(b, []byte("hash='sha-256'")) {
		t.Fatalf("Marshal: %v\n%s", err, b)
	}
	if err := ValidateFingerprint("Sha-512", revFP+":"+revFP); err != nil {
		t.Fatal(err)
	}
	if n, ok := HashSize("SHA-384"); !ok || n != 48 {
		t.Fatal("HashSize is case-sensitive")
	}
	// A hand-built upper-case name is written in lower case.
	j.Contents[0].Transport.Fingerprint.Hash = "SHA-256"
	if b2, err := j.Marshal(); err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("hand-built upper-case hash: %v\n%s", err, b2)
	}
	// Whitespace around the name stays refused: stricter than dtls, which
	// is the safe direction.
	if _, err := Parse([]byte(revOffer(revXEP0320(" sha-256", revFP), ""))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hash with a space: %v", err)
	}

	sha1 := strings.Repeat("AB:", 19) + "CD"
	sha224 := strings.Repeat("AB:", 27) + "CD"
	for _, c := range []struct{ hash, value string }{{"sha-1", sha1}, {"SHA-1", sha1}, {"sha-224", sha224}} {
		j := mustParse(t, revOffer(revXEP0320(c.hash, c.value), "")) // still read, for policy
		if err := j.Validate(); err != nil {
			t.Fatalf("%s: Validate: %v", c.hash, err)
		}
		_, err := j.Marshal()
		var me *MarshalError
		if !errors.Is(err, ErrWeakFingerprint) || !errors.As(err, &me) {
			t.Fatalf("%s: Marshal = %v, want ErrWeakFingerprint", c.hash, err)
		}
	}
	// Also inside a data channel transport.
	dc := `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'>` + revXEP0320("sha-1", sha1) + `</transport></transport>`
	j = mustParse(t, `<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='s1'><content creator='initiator' name='dc'>`+dc+`</content></jingle>`)
	if _, err := j.Marshal(); !errors.Is(err, ErrWeakFingerprint) {
		t.Fatalf("sha-1 in a data channel: %v", err)
	}
	for _, h := range []string{"sha-256", "sha-384", "sha-512"} {
		n, _ := HashSize(h)
		v := strings.Repeat("0A:", n-1) + "0A"
		if _, err := mustParse(t, revOffer(revXEP0320(h, v), "")).Marshal(); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
	}
	if got := HashNames(); !reflect.DeepEqual(got, []string{"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"}) {
		t.Fatalf("HashNames = %v", got)
	}
}

// Finding 8: UnmarshalXML is as strict as Parse about namespaces.
func TestUnmarshalXMLNamespacesRegression(t *testing.T) {
	for name, in := range map[string]string{
		"element":   revOffer(revXEP0320("sha-256", revFP)+`<bogus:thing/>`, ""),
		"attribute": revOffer(revXEP0320("sha-256", revFP)+`<x xmlns='urn:x' bogus:a='1'/>`, ""),
		"nested":    revOffer(revXEP0320("sha-256", revFP)+`<x xmlns='urn:x'><y><bogus:thing/></y></x>`, ""),
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		var j Jingle
		err := xml.Unmarshal([]byte(in), &j)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: UnmarshalXML accepted an undeclared prefix: %v %+v", name, err, j.Contents)
		}
		var m JMI
		jmi := `<proceed xmlns='urn:xmpp:jingle-message:0' id='a'><bogus:device id='1'/></proceed>`
		if err := xml.Unmarshal([]byte(jmi), &m); !errors.Is(err, ErrMalformed) {
			t.Fatalf("JMI: %v", err)
		}
	}
	// A colon-less namespace declared inside the element (Conversations'
	// OMEMO namespace) is accepted, in an IQ as a receiver sees it.
	src := conversationsPayload(t, "session-initiate-omemo.xml")
	iq := `<iq xmlns='jabber:client' type='set' id='1'>` + string(src) + `</iq>`
	var v struct {
		XMLName xml.Name `xml:"jabber:client iq"`
		J       *Jingle  `xml:"urn:xmpp:jingle:1 jingle"`
	}
	if err := xml.Unmarshal([]byte(iq), &v); err != nil {
		t.Fatal(err)
	}
	want, _ := Parse(src)
	if !reflect.DeepEqual(v.J, want) {
		t.Fatal("UnmarshalXML and Parse disagree on the Conversations offer")
	}
}

// attrFlood is the reviewer's input: one element holding 64 KiB of
// attributes.
func attrFlood() []byte {
	var b bytes.Buffer
	b.WriteString(`<jingle xmlns='urn:xmpp:jingle:1'`)
	for i := 0; b.Len() < MaxElementSize-20; i++ {
		b.WriteString(" a" + strconv.FormatInt(int64(i), 36) + "=''")
	}
	b.WriteString("/>")
	return b.Bytes()
}

// attrElements fills 64 KiB with accepted elements of MaxAttrs attributes
// each (canonical form included), the worst case that Parse accepts.
func attrElements() []byte {
	var el bytes.Buffer
	el.WriteString("<y")
	for i := range MaxAttrs - 1 {
		el.WriteString(" " + string(rune('a'+i%26)) + strconv.Itoa(i/26) + "=''")
	}
	el.WriteString("/>")
	var b bytes.Buffer
	b.WriteString(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'><x xmlns='urn:x'>`)
	for b.Len()+el.Len() < MaxElementSize-100 {
		b.Write(el.Bytes())
	}
	b.WriteString("</x></jingle>")
	return b.Bytes()
}

// Finding 4: attributes per element are bounded before the duplicate
// check (the benchmarks in bench_test.go measure the cost).
func TestAttributeLimitRegression(t *testing.T) {
	checkParseError(t, string(attrFlood()), "jingle", func(b []byte) error { _, err := Parse(b); return err })
	var j Jingle
	if err := xml.Unmarshal(attrFlood(), &j); !errors.Is(err, ErrMalformed) {
		t.Fatalf("UnmarshalXML: %v", err)
	}
	if _, err := Parse(attrElements()); err != nil {
		t.Fatalf("worst accepted input refused: %v", err)
	}
	attrs := func(n int) string {
		var s strings.Builder
		for i := range n {
			s.WriteString(" a" + strconv.Itoa(i) + "=''")
		}
		return s.String()
	}
	at := func(n int) string { return contentWith(`<x xmlns='urn:x'` + attrs(n) + `/>`) }
	if _, err := Parse([]byte(at(MaxAttrs - 1))); err != nil {
		t.Fatalf("MaxAttrs (with xmlns) refused: %v", err)
	}
	checkParseError(t, at(MaxAttrs), "jingle", func(b []byte) error { _, err := Parse(b); return err })
	// Attributes whose namespaces are declared on an ancestor count with
	// the declarations the canonical form puts on the element.
	var decl, use strings.Builder
	for i := range 16 {
		decl.WriteString(" xmlns:p" + strconv.Itoa(i) + "='urn:p" + strconv.Itoa(i) + "'")
		use.WriteString(" p" + strconv.Itoa(i) + ":a=''")
	}
	in := contentWith(`<x xmlns='urn:x'` + decl.String() + `><y` + use.String() + `/></x>`)
	checkParseError(t, in, "jingle", func(b []byte) error { _, err := Parse(b); return err })
	// 15 namespaces fit (1 + 15 + 15 = 31).
	in = strings.Replace(strings.Replace(in, " p15:a=''", "", 1), " xmlns:p15='urn:p15'", "", 1)
	roundTrip(t, []byte(in), parseJingle, marshalJingle)
	// Duplicate namespace declarations are not well-formed.
	for _, s := range []string{
		contentWith(`<x xmlns='urn:x' xmlns='urn:y'/>`),
		contentWith(`<x xmlns='urn:x' xmlns:p='urn:y' xmlns:p='urn:z'/>`),
		contentWith(`<x xmlns='http://www.w3.org/XML/1998/namespace'/>`),
		contentWith(`<x xmlns='urn:x' xmlns:p='http://www.w3.org/2000/xmlns/'/>`),
	} {
		checkParseError(t, s, "xml", func(b []byte) error { _, err := Parse(b); return err })
	}
}

// FuzzMarshalRaw builds values by hand around an arbitrary Raw (name,
// one attribute, inner XML) in a transport and checks finding 5's
// promise: Marshal either refuses with a *MarshalError, or its output
// parses back to the same value, with no XEP-0320 fingerprint appearing
// and the Raw still the only extension.
func FuzzMarshalRaw(f *testing.F) {
	f.Add("urn:x", "x", "a", "1", []byte(`</x>`+revXEP0320("sha-256", revFP)+`<x xmlns='urn:x'>`))
	f.Add("urn:x", "fingerprint", "xmlns", NSDTLS, []byte(revFP))
	f.Add(NSDTLS, "fingerprint", "hash", "sha-256", []byte(revFP))
	f.Add("urn:x", "x", "b", "", []byte(`<p:y xmlns:p='urn:y'>t</p:y>`))
	f.Add("eu.siacs.conversations.axolotl", "encrypted", "", "", []byte(`<header sid='1'/>`))
	f.Fuzz(func(t *testing.T, space, local, attr, value string, inner []byte) {
		j, err := Parse([]byte(revOffer("", "")))
		if err != nil {
			t.Fatal(err)
		}
		r := Raw{XMLName: xml.Name{Space: space, Local: local}, Inner: inner}
		if attr != "" {
			r.Attrs = []xml.Attr{{Name: xml.Name{Local: attr}, Value: value}}
		}
		j.Contents[0].Transport.Other = []Raw{r}
		b, err := j.Marshal()
		verr := j.Validate()
		if err != nil {
			if !errors.As(err, new(*MarshalError)) {
				t.Fatalf("not a *MarshalError: %v", err)
			}
			if verr == nil && !errors.Is(err, ErrWeakFingerprint) {
				t.Fatalf("Marshal refuses (%v) what Validate accepts", err)
			}
			return
		}
		if verr != nil {
			t.Fatalf("Validate refuses (%v) what Marshal accepts", verr)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, b)
		}
		tr := back.Contents[0].Transport
		if tr.Fingerprint != nil || len(tr.Candidates) != 0 || tr.RemoteCandidate != nil || len(tr.Other) != 1 ||
			len(back.Contents) != 1 || len(back.Contents[0].Other) != 0 {
			t.Fatalf("structure changed:\n%s", b)
		}
		if got := tr.Other[0]; got.XMLName != r.XMLName || len(got.Attrs) != len(r.Attrs) {
			t.Fatalf("Raw changed: %+v\n%s", got, b)
		}
	})
}
