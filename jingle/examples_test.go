package jingle

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
)

// relevantXEPs are the specifications whose examples this package must
// read: every Jingle, JMI and Jingle error payload in them.
var relevantXEPs = []string{"0166", "0167", "0176", "0293", "0294", "0320", "0338", "0339", "0343", "0353"}

// notPayload lists the example stanzas that carry no Jingle, JMI or error
// payload, by file and 1-based stanza number, with the reason. The test
// fails when an entry here does carry a payload, or when a stanza without
// one is missing from the list.
var notPayload = map[string]string{
	"xep0166-005.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-007.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-009.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-011.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-018.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-028.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-033.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0166-038.xml#1": "service discovery request",
	"xep0166-039.xml#1": "service discovery response",
	"xep0167-002.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-004.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-015.xml#1": "service discovery request",
	"xep0167-016.xml#1": "service discovery response",
	"xep0167-018.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-020.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-022.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-024.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-026.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-028.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-030.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-032.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-034.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-036.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-038.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-040.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-042.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-044.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-046.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-049.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-051.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-053.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0167-055.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-002.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-006.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-008.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-010.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-012.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-014.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-016.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0176-017.xml#1": "service discovery request",
	"xep0176-018.xml#1": "service discovery response",
	"xep0176-019.xml#1": "service discovery request",
	"xep0176-020.xml#1": "service discovery response",
	"xep0293-005.xml#1": "service discovery request",
	"xep0293-006.xml#1": "service discovery response",
	"xep0294-005.xml#1": "service discovery request",
	"xep0294-006.xml#1": "service discovery response",
	"xep0320-004.xml#1": "service discovery request",
	"xep0320-005.xml#1": "service discovery response",
	"xep0338-001.xml#1": "service discovery request",
	"xep0338-002.xml#1": "service discovery response",
	"xep0339-001.xml#1": "service discovery request",
	"xep0339-002.xml#1": "service discovery response",
	"xep0343-003.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0343-005.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0343-007.xml#1": "IQ result acknowledging a request (no payload)",
	"xep0353-002.xml#1": "directed presence with entity capabilities",
	"xep0353-006.xml#1": "directed presence with entity capabilities",
}

// notXML lists example files that are not XML at all, with the reason.
var notXML = map[string]string{
	"xep0343-002.xml": "elided example: '[...]' instead of the surrounding stanza and a typo (mlns=) on <fingerprint/>",
}

// malformedExamples lists example payloads that the specification prints
// wrongly, by file and stanza number, with the field the parser must name.
var malformedExamples = map[string]struct{ field, why string }{
	"xep0293-004.xml#1": {"jingle@action", "the attributes of <jingle/> are written as its text: no action, no sid"},
	"xep0353-011.xml#4": {"xml", "<retract> is closed by </reject>"},
	"xep0176-005.xml#1": {"jingle/content/transport/candidate@priority", "priority 21149780477 exceeds the maximum 2^31-1 (RFC 8445 §5.1.2.1, XEP-0176)"},
}

// notValid lists example payloads that parse but break a rule that
// Validate enforces, with the reason.
var notValid = map[string]string{}

// findExamples locates testdata/xep-examples (the repository's copy) or
// shared/testdata/xep-examples in a parent of the working directory (the repository's checkout and its worktrees sit at
// different depths), or at $SECUREJINGLE_XEP_EXAMPLES.
func findExamples() (string, bool) {
	if d := os.Getenv("SECUREJINGLE_XEP_EXAMPLES"); d != "" {
		return d, true
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		// The repository's own copy (testdata/xep-examples, the Jingle
		// examples), or the team's shared folder next to the checkout.
		for _, c := range []string{filepath.Join(d, "testdata", "xep-examples"), filepath.Join(d, "shared", "testdata", "xep-examples")} {
			if st, err := os.Stat(filepath.Join(c, "INDEX.tsv")); err == nil && !st.IsDir() {
				return c, true
			}
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

func examplesDir(t testing.TB) string {
	t.Helper()
	d, ok := findExamples()
	if ok {
		return d
	}
	if os.Getenv("SECUREJINGLE_INTEGRATION") == "1" {
		t.Fatal("XEP examples (shared/testdata/xep-examples) not found in a parent directory")
	}
	t.Skip("XEP examples (shared/testdata/xep-examples) not found; set SECUREJINGLE_XEP_EXAMPLES")
	return ""
}

// exampleFiles returns the relevant example files named in INDEX.tsv.
func exampleFiles(t testing.TB) (dir string, files []string) {
	dir = examplesDir(t)
	f, err := os.Open(filepath.Join(dir, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
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

var topLevel = regexp.MustCompile(`(?m)^[ \t]*<(iq|message|presence)\b|^<(jingle|description)\b`)

// chunks splits an example file into its top-level stanzas (some files
// hold several, and some are not one well-formed document).
func chunks(b []byte) [][]byte {
	idx := topLevel.FindAllIndex(b, -1)
	for i := range idx {
		for b[idx[i][0]] != '<' {
			idx[i][0]++
		}
	}
	var out [][]byte
	for i, m := range idx {
		end := len(b)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		out = append(out, b[m[0]:end])
	}
	return out
}

type payload struct {
	name xml.Name
	raw  []byte
}

// payloads returns the Jingle, JMI, RTP description and stanza error
// elements of a stanza, or the stanza itself when it is one of those.
func payloads(chunk []byte) ([]payload, error) {
	d := xml.NewDecoder(bytes.NewReader(chunk))
	var out []payload
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
			isPayload := tk.Name.Space == NS && tk.Name.Local == "jingle" ||
				tk.Name.Space == NSJMI ||
				depth == 0 && tk.Name.Space == NSRTP && tk.Name.Local == "description" ||
				depth == 1 && tk.Name.Local == "error"
			if isPayload {
				if err := d.Skip(); err != nil {
					return out, err
				}
				out = append(out, payload{tk.Name, chunk[off:d.InputOffset()]})
				continue
			}
			depth++
			if depth == 2 {
				// Only children of the stanza can be payloads.
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

// roundTrip parses src, serializes, parses again and checks that the two
// values are deeply equal, that the output holds every attribute, element
// and text of the source, and that serializing again gives the same bytes.
func roundTrip[T any](t *testing.T, src []byte, parse func([]byte) (T, error), marshal func(T) ([]byte, error)) T {
	t.Helper()
	v1, err := parse(src)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	out, err := marshal(v1)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	v2, err := parse(out)
	if err != nil {
		t.Fatalf("parse of marshaled output: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("round trip changed the value:\n%#v\n%#v\n%s", v1, v2, out)
	}
	if m := missingFacts(t, src, out); len(m) > 0 {
		t.Fatalf("output lost %d facts of the source:\n%s\n%s", len(m), strings.Join(m, "\n"), out)
	}
	again, err := marshal(v2)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("serialization is not a fixed point (%v):\n%s\n%s", err, out, again)
	}
	return v1
}

func parseJingle(b []byte) (*Jingle, error)      { return Parse(b) }
func marshalJingle(j *Jingle) ([]byte, error)    { return j.Marshal() }
func marshalJMI(m *JMI) ([]byte, error)          { return m.Marshal() }
func marshalDesc(d *Description) ([]byte, error) { return d.Marshal() }

// TestXEPExamples reads every relevant example of the XEPs this package
// implements (XEP-0166, 0167, 0176, 0293, 0294, 0320, 0338, 0339, 0343,
// 0353) through a full round trip.
func TestXEPExamples(t *testing.T) {
	dir, files := exampleFiles(t)
	counts := map[string]int{}
	seenKeys := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if why, ok := notXML[f]; ok {
			counts["not XML"]++
			seenKeys[f] = true
			t.Logf("%s: skipped: %s", f, why)
			continue
		}
		cs := chunks(b)
		if len(cs) == 0 {
			t.Errorf("%s: no stanza found", f)
		}
		for i, c := range cs {
			key := f + "#" + strconv.Itoa(i+1)
			seenKeys[key] = true
			t.Run(key, func(t *testing.T) {
				if m, ok := malformedExamples[key]; ok {
					counts["malformed"]++
					checkMalformedExample(t, c, m.field)
					return
				}
				ps, err := payloads(c)
				if err != nil {
					t.Fatalf("not XML: %v", err)
				}
				if why, ok := notPayload[key]; ok {
					if len(ps) != 0 {
						t.Fatalf("listed as %q but holds %s", why, fmtName(ps[0].name))
					}
					counts["no payload"]++
					return
				}
				if len(ps) == 0 {
					t.Fatalf("no Jingle, JMI or error payload and not listed in notPayload")
				}
				for _, p := range ps {
					checkPayload(t, key, p, counts)
				}
			})
		}
	}
	for _, m := range []map[string]string{notPayload, notXML} {
		for k := range m {
			if !seenKeys[k] {
				t.Errorf("skip list names %s, which is not an example", k)
			}
		}
	}
	for k := range malformedExamples {
		if !seenKeys[k] {
			t.Errorf("malformed list names %s, which is not an example", k)
		}
	}
	t.Logf("examples: %d files, %v", len(files), counts)
	// The corpus must actually have been exercised.
	if counts["jingle"] < 68 || counts["jmi"] < 18 || counts["error"] < 9 || counts["description"] < 7 {
		t.Fatalf("too few payloads checked: %v", counts)
	}
}

func checkPayload(t *testing.T, key string, p payload, counts map[string]int) {
	t.Helper()
	switch {
	case p.name.Space == NS && p.name.Local == "jingle":
		counts["jingle"]++
		j := roundTrip(t, p.raw, parseJingle, marshalJingle)
		err := j.Validate()
		if why, ok := notValid[key]; ok {
			if err == nil {
				t.Fatalf("listed as invalid (%s) but validates", why)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: %v does not match ErrInvalid", err)
			}
		} else if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if j.Action == ActionSessionInfo {
			if _, _, err := j.RTPInfos(); err != nil {
				t.Fatalf("RTPInfos: %v", err)
			}
		}
	case p.name.Space == NSJMI:
		counts["jmi"]++
		roundTrip(t, p.raw, ParseJMI, marshalJMI)
	case p.name.Space == NSRTP && p.name.Local == "description":
		counts["description"]++
		roundTrip(t, p.raw, ParseDescription, marshalDesc)
	case p.name.Local == "error":
		counts["error"]++
		se, err := ParseStanzaError(p.raw)
		if err != nil {
			t.Fatalf("ParseStanzaError: %v\n%s", err, p.raw)
		}
		var want ErrorCondition
		for f := range facts(t, p.raw) {
			if i := strings.Index(f.path, "{"+NSErrors+"}"); i >= 0 && f.key == "#element" {
				want = ErrorCondition(f.path[i+len(NSErrors)+2:])
			}
		}
		got, ok := ParseErrorCondition(p.raw)
		if got != want || ok != (want != "") || se.Jingle != want {
			t.Fatalf("ParseErrorCondition = %q, %v; want %q", got, ok, want)
		}
		if want != "" {
			// Our own payload for the same pair reads back the same.
			if back, ok := ParseErrorCondition(ErrorPayload(se.Condition, want)); !ok || back != want {
				t.Fatalf("ErrorPayload(%s, %s) reads back as %q, %v", se.Condition, want, back, ok)
			}
		}
	default:
		t.Fatalf("unexpected payload %s", fmtName(p.name))
	}
}

// checkMalformedExample finds the Jingle or JMI element of a broken
// example by its text and checks that the parser refuses it naming field.
func checkMalformedExample(t *testing.T, chunk []byte, field string) {
	t.Helper()
	var src []byte
	var err error
	if ps, perr := payloads(chunk); perr == nil && len(ps) == 1 {
		src = ps[0].raw
		if ps[0].name.Space == NSJMI {
			_, err = ParseJMI(src)
		} else {
			_, err = Parse(src)
		}
	} else {
		switch {
		case bytes.Contains(chunk, []byte("<jingle")):
			i := bytes.Index(chunk, []byte("<jingle"))
			j := bytes.LastIndex(chunk, []byte("</jingle>"))
			src = chunk[i : j+len("</jingle>")]
			_, err = Parse(src)
		default:
			i := bytes.Index(chunk, []byte("<retract"))
			j := bytes.LastIndex(chunk, []byte("</reject>"))
			src = chunk[i : j+len("</reject>")]
			_, err = ParseJMI(src)
		}
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Field != field || !errors.Is(err, ErrMalformed) {
		t.Fatalf("want a ParseError on %s, got %v\n%s", field, err, src)
	}
}
