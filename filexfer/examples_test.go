package filexfer

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/jingle"
)

// relevantXEPs are the specifications whose examples carry the elements of
// this package (the Jingle ones that carry them included: XEP-0343's).
var relevantXEPs = []string{"0234", "0260", "0261", "0300", "0343", "0391"}

// notJingle lists the example stanzas that carry no Jingle element, by
// file and 1-based stanza number, with what they are. The test fails when
// such a stanza is missing from the list or an entry does carry Jingle.
var notJingle = map[string]string{
	"xep0234-002.xml#1": "IQ result acknowledging a request",
	"xep0234-004.xml#1": "IQ result acknowledging a request",
	"xep0234-007.xml#1": "IQ result acknowledging a request",
	"xep0234-011.xml#1": "IQ result acknowledging a request",
	"xep0234-019.xml#1": "service discovery request",
	"xep0234-020.xml#1": "service discovery response",
	"xep0260-002.xml#1": "IQ result acknowledging a request",
	"xep0260-004.xml#1": "IQ result acknowledging a request",
	"xep0260-006.xml#1": "IQ result acknowledging a request",
	"xep0260-008.xml#1": "IQ result acknowledging a request",
	"xep0260-009.xml#1": "XEP-0065 proxy activation (the SOCKS5 layer, package filexfer/transport)",
	"xep0260-010.xml#1": "IQ result acknowledging a request",
	"xep0260-014.xml#1": "IQ result acknowledging a request",
	"xep0260-016.xml#1": "IQ result acknowledging a request",
	"xep0260-018.xml#1": "IQ result acknowledging a request",
	"xep0260-019.xml#1": "service discovery request",
	"xep0260-020.xml#1": "service discovery response",
	"xep0261-002.xml#1": "IQ result acknowledging a request",
	"xep0261-004.xml#1": "IQ result acknowledging a request",
	"xep0261-005.xml#1": "XEP-0047 <open/> (the IBB layer, package filexfer/transport)",
	"xep0261-006.xml#1": "IQ result acknowledging a request",
	"xep0261-007.xml#1": "XEP-0047 <data/> (the IBB layer)",
	"xep0261-008.xml#1": "IQ result acknowledging a request",
	"xep0261-010.xml#1": "XEP-0047 <open/> (the IBB layer)",
	"xep0261-011.xml#1": "XEP-0047 <close/> (the IBB layer)",
	"xep0261-012.xml#1": "IQ result acknowledging a request",
	"xep0261-014.xml#1": "IQ result acknowledging a request",
	"xep0261-015.xml#1": "service discovery request",
	"xep0261-016.xml#1": "service discovery response",
	"xep0300-001.xml#1": "service discovery request",
	"xep0300-002.xml#1": "service discovery response",
	"xep0343-003.xml#1": "IQ result acknowledging a request",
	"xep0343-005.xml#1": "IQ result acknowledging a request",
	"xep0343-007.xml#1": "IQ result acknowledging a request",
	"xep0391-004.xml#1": "service discovery request",
	"xep0391-005.xml#1": "service discovery response",
}

// notXML lists example files that are not XML at all.
var notXML = map[string]string{
	"xep0343-002.xml": "elided example: '[...]' instead of the surrounding stanza and a typo (mlns=) on <fingerprint/>",
}

// wrongExamples lists examples the specification prints wrongly: the
// element path this package must name in its *ElementError, and why.
var wrongExamples = map[string]struct{ field, why string }{
	"xep0260-001.xml#1": {`content["ex"]/transport/candidate@host`,
		"the proxy candidate's host 123.456.7.8 is not an IPv4 address (456 > 255), and a dotted number is no host name (RFC 1123 §2.1)"},
	"xep0260-003.xml#1": {`content["ex"]/transport/candidate@host`,
		"the proxy candidate's host 234.567.8.9 is not an IPv4 address (567 > 255), and a dotted number is no host name (RFC 1123 §2.1)"},
}

// notFileTransfer lists contents that carry a description of another
// application or namespace, which this package does not read as a file
// transfer, with why.
var notFileTransfer = map[string]string{
	"xep0343-001.xml#1": "file-transfer:3 (XEP-0234 before v0.16, with <offer/>) and a urn:xmpp:hashes:1 hash whose value is 32 hex digits, neither base64 nor a sha-1 digest",
	"xep0343-004.xml#1": "file-transfer:3 again, as in example 1",
	"xep0343-006.xml#1": "a made-up urn:xmpp:jingle:apps:some-file description on a bare ICE-UDP transport",
	"xep0261-001.xml#1": "the placeholder urn:xmpp:example application of the transport XEPs",
	"xep0261-003.xml#1": "the placeholder urn:xmpp:example application of the transport XEPs",
}

// examplesDir finds testdata/xep-examples (the repository's copy) or
// shared/testdata/xep-examples in a parent of the working directory, or
// $SECUREJINGLE_XEP_EXAMPLES.
func examplesDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("SECUREJINGLE_XEP_EXAMPLES"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, c := range []string{filepath.Join(d, "testdata", "xep-examples"), filepath.Join(d, "shared", "testdata", "xep-examples")} {
			if st, err := os.Stat(filepath.Join(c, "INDEX.tsv")); err == nil && !st.IsDir() {
				return c
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	t.Fatal("XEP examples (testdata/xep-examples) not found in a parent directory; set SECUREJINGLE_XEP_EXAMPLES")
	return ""
}

func exampleFiles(t testing.TB) (string, []string) {
	dir := examplesDir(t)
	f, err := os.Open(filepath.Join(dir, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var files []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, _, _ := strings.Cut(s.Text(), "\t")
		for _, x := range relevantXEPs {
			if strings.HasPrefix(name, "xep"+x+"-") {
				files = append(files, name)
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

var topLevel = regexp.MustCompile(`(?m)^[ \t]*<(iq|message|presence)\b`)

// chunks splits an example file into its top-level stanzas.
func chunks(b []byte) [][]byte {
	idx := topLevel.FindAllIndex(b, -1)
	var out [][]byte
	for i, m := range idx {
		start := m[0]
		for b[start] != '<' {
			start++
		}
		end := len(b)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		out = append(out, b[start:end])
	}
	return out
}

// jingleOf returns the <jingle/> children of a stanza.
func jingleOf(chunk []byte) ([][]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(chunk))
	var out [][]byte
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if depth == 1 && tk.Name.Space == jingle.NS && tk.Name.Local == "jingle" {
				if err := d.Skip(); err != nil {
					return out, err
				}
				out = append(out, chunk[off:d.InputOffset()])
				continue
			}
			depth++
			if depth == 2 {
				if err := d.Skip(); err != nil {
					return out, err
				}
				depth--
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return out, nil
			}
		}
	}
}

// TestXEPExamples reads every Jingle element of the examples of
// XEP-0234, 0260, 0261, 0300, 0343 and 0391, parses every file-transfer,
// JET and transport element in it into the typed values of this package,
// writes them back, and checks that nothing of the source was lost, that
// the typed values read back equal, and that the output is a fixed point.
func TestXEPExamples(t *testing.T) {
	dir, files := exampleFiles(t)
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if why, ok := notXML[f]; ok {
			seen[f] = true
			counts["not XML"]++
			t.Logf("%s: skipped: %s", f, why)
			continue
		}
		cs := chunks(b)
		if len(cs) == 0 {
			t.Errorf("%s: no stanza", f)
		}
		for i, c := range cs {
			key := f + "#" + strconv.Itoa(i+1)
			seen[key] = true
			t.Run(key, func(t *testing.T) {
				js, err := jingleOf(c)
				if err != nil {
					t.Fatalf("not XML: %v", err)
				}
				if why, ok := notJingle[key]; ok {
					if len(js) != 0 {
						t.Fatalf("listed as %q but carries Jingle", why)
					}
					counts["no jingle"]++
					return
				}
				if len(js) != 1 {
					t.Fatalf("%d Jingle elements and not listed in notJingle", len(js))
				}
				counts["jingle"]++
				if w, ok := wrongExamples[key]; ok {
					counts["wrong in the XEP"]++
					checkWrongExample(t, js[0], w.field)
					return
				}
				n := checkExample(t, js[0], key)
				for k, v := range n {
					counts[k] += v
				}
			})
		}
	}
	for _, m := range []map[string]string{notJingle, notXML, notFileTransfer} {
		for k := range m {
			if !seen[k] {
				t.Errorf("list names %s, which is not an example", k)
			}
		}
	}
	for k := range wrongExamples {
		if !seen[k] {
			t.Errorf("wrongExamples names %s, which is not an example", k)
		}
	}
	t.Logf("examples: %d files, %v", len(files), counts)
	if counts["jingle"] < 33 || counts["description"] < 9 || counts["s5b"] < 13 || counts["ibb"] < 5 ||
		counts["security"] < 3 || counts["checksum"] < 2 || counts["received"] < 1 || counts["classified"] < 8 {
		t.Fatalf("too few elements checked: %v", counts)
	}
}

// typedOf parses every element of r this package reads and writes it
// back; it returns the rewritten element, the typed value and its kind.
func typedOf(t *testing.T, r jingle.Raw) (jingle.Raw, any, string) {
	t.Helper()
	type parser struct {
		kind  string
		parse func(jingle.Raw) (any, bool, error)
		raw   func(any) (jingle.Raw, error)
	}
	ps := []parser{
		{"description", func(r jingle.Raw) (any, bool, error) { return ParseDescription(r) }, func(v any) (jingle.Raw, error) { return v.(*Description).Raw() }},
		{"security", func(r jingle.Raw) (any, bool, error) { return ParseSecurity(r) }, func(v any) (jingle.Raw, error) { return v.(*Security).Raw() }},
		{"s5b", func(r jingle.Raw) (any, bool, error) { return ParseS5BTransport(r) }, func(v any) (jingle.Raw, error) { return v.(*S5BTransport).Raw() }},
		{"ibb", func(r jingle.Raw) (any, bool, error) { return ParseIBBTransport(r) }, func(v any) (jingle.Raw, error) { return v.(*IBBTransport).Raw() }},
		{"datachannel", func(r jingle.Raw) (any, bool, error) { return ParseDataChannelTransport(r) }, func(v any) (jingle.Raw, error) { return v.(*DataChannelTransport).Raw() }},
		{"checksum", func(r jingle.Raw) (any, bool, error) { return ParseChecksum(r) }, func(v any) (jingle.Raw, error) { return v.(*Checksum).Raw() }},
		{"received", func(r jingle.Raw) (any, bool, error) { return ParseReceived(r) }, func(v any) (jingle.Raw, error) { return v.(*Received).Raw() }},
	}
	for _, p := range ps {
		v, ok, err := p.parse(r)
		if !ok {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", p.kind, err)
		}
		out, err := p.raw(v)
		if err != nil {
			t.Fatalf("%s: Raw: %v", p.kind, err)
		}
		back, ok, err := p.parse(out)
		if !ok || err != nil {
			t.Fatalf("%s: parse of Raw's output: %v", p.kind, err)
		}
		if !sameValue(reflect.ValueOf(v), reflect.ValueOf(back)) {
			t.Fatalf("%s: round trip changed the value:\n%v\n%v", p.kind, v, back)
		}
		again, err := p.raw(back)
		if err != nil || !again.Equal(out) {
			t.Fatalf("%s: serialization is not a fixed point (%v)", p.kind, err)
		}
		return out, v, p.kind
	}
	return r, nil, ""
}

func checkExample(t *testing.T, src []byte, key string) map[string]int {
	t.Helper()
	n := map[string]int{}
	j, err := jingle.Parse(src)
	if err != nil {
		t.Fatalf("jingle.Parse: %v", err)
	}
	files := 0
	for ci := range j.Contents {
		c := &j.Contents[ci]
		fc, err := ParseContent(c)
		if err != nil {
			t.Fatalf("ParseContent: %v", err)
		}
		if fc.ForeignDescription {
			n["foreign description"]++
		}
		if fc.Description != nil {
			files++
		}
		for i, r := range c.Other {
			out, v, kind := typedOf(t, r)
			if v != nil {
				n[kind]++
				c.Other[i] = out
			}
		}
		if fc.Transport == TransportOther || c.Transport != nil {
			n["other transport"]++
		}
	}
	for i, r := range j.Info {
		out, v, kind := typedOf(t, r)
		if v != nil {
			n[kind]++
			j.Info[i] = out
		}
	}
	_, listed := notFileTransfer[key]
	if listed != (n["foreign description"] > 0 && files == 0) {
		t.Fatalf("listed in notFileTransfer: %v, but %d file descriptions and %d foreign ones", listed, files, n["foreign description"])
	}
	out, err := j.Marshal()
	if err != nil {
		t.Fatalf("Marshal with the typed elements written back: %v", err)
	}
	if m := missingFacts(t, src, out); len(m) > 0 {
		t.Fatalf("output lost %d facts of the source:\n%s\n%s", len(m), strings.Join(m, "\n"), out)
	}
	j2, err := jingle.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	again, err := j2.Marshal()
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("not a fixed point (%v):\n%s\n%s", err, out, again)
	}
	// Offers classify; none of the XEP's is ours, all are cleartext.
	switch j.Action {
	case jingle.ActionSessionInitiate, jingle.ActionContentAdd:
		if files == 0 {
			break
		}
		o, err := ClassifyOffer(j, Arrival{Protected: true, Certified: true})
		if err != nil {
			t.Fatalf("ClassifyOffer: %v", err)
		}
		if o.Class != ClassCleartext || o.Protection() != 4 {
			t.Fatalf("an XEP example classified %v: %+v", o.Class, o)
		}
		n["classified"]++
	}
	return n
}

func checkWrongExample(t *testing.T, src []byte, field string) {
	t.Helper()
	j, err := jingle.Parse(src)
	if err != nil {
		t.Fatalf("jingle.Parse: %v", err)
	}
	for ci := range j.Contents {
		_, err := ParseContent(&j.Contents[ci])
		if err == nil {
			continue
		}
		var ee *ElementError
		if !errors.As(err, &ee) || !errors.Is(err, ErrMalformedElement) || ee.Field != field {
			t.Fatalf("want an ElementError on %s, got %v", field, err)
		}
		return
	}
	t.Fatalf("parsed without error; want one on %s", field)
}
