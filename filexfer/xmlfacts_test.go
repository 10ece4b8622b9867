package filexfer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"
)

// The no-loss comparison of the example tests (the same as jingle's): an
// element is flattened into a multiset of facts (path, attribute, value),
// (path, #text, trimmed text) and (path, #element), with namespaces
// resolved, whitespace-only text ignored and namespace declarations
// dropped. A round trip must keep every fact of the source.

type fact struct{ path, key, value string }

func facts(t testing.TB, b []byte) map[fact]int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	out := map[fact]int{}
	var path []string
	var text []*strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("facts: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			path = append(path, "{"+tk.Name.Space+"}"+tk.Name.Local)
			text = append(text, &strings.Builder{})
			p := strings.Join(path, "/")
			out[fact{p, "#element", ""}]++
			for _, a := range tk.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Value == "" {
					continue
				}
				out[fact{p, "@{" + a.Name.Space + "}" + a.Name.Local, a.Value}]++
			}
		case xml.CharData:
			if len(text) > 0 {
				text[len(text)-1].Write(tk)
			}
		case xml.EndElement:
			p := strings.Join(path, "/")
			if s := strings.TrimSpace(text[len(text)-1].String()); s != "" {
				out[fact{p, "#text", s}]++
			}
			path = path[:len(path)-1]
			text = text[:len(text)-1]
		}
	}
	return out
}

// missingFacts returns the facts of src that out lacks, sorted.
func missingFacts(t testing.TB, src, out []byte) []string {
	t.Helper()
	fs, fo := facts(t, src), facts(t, out)
	var missing []string
	for f, n := range fs {
		if fo[f] < n {
			missing = append(missing, f.path+" "+f.key+"="+f.value)
		}
	}
	sort.Strings(missing)
	return missing
}

func TestFactsSeeLoss(t *testing.T) {
	a := []byte(`<a xmlns='urn:x'><b c='1'> hi </b></a>`)
	if m := missingFacts(t, a, []byte(`<p:a xmlns:p='urn:x'><p:b c="1">hi</p:b></p:a>`)); len(m) != 0 {
		t.Fatalf("missing %v", m)
	}
	if m := missingFacts(t, a, []byte(`<a xmlns='urn:x'><b c='2'>hi</b></a>`)); len(m) != 1 {
		t.Fatalf("want one missing fact, got %v", m)
	}
}
