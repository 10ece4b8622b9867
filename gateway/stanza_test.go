package gateway

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseStanza: any input either fails to parse or gives a stanza whose
// children are each one well-formed element that declares its namespace.
// Seeded from the XEP example stanzas in ../testdata/xmpp-stanzas; fails
// without them.
func FuzzParseStanza(f *testing.F) {
	files, _ := filepath.Glob("../testdata/xmpp-stanzas/*.xml")
	seeds := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f.Add(bytes.ReplaceAll(b, []byte("<iq "), []byte(`<iq xmlns="jabber:client" `)))
		f.Add(b)
		seeds++
	}
	f.Add(build("message", map[string]string{"type": "chat", "to": "bob@example.org"}, element(nsClient, "body", "hi")))
	if seeds == 0 {
		f.Fatal("no seeds in ../testdata/xmpp-stanzas")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStanza(data)
		if err != nil {
			return
		}
		for _, c := range st.Children {
			d := xml.NewDecoder(bytes.NewReader(c.Raw))
			depth, starts := 0, 0
			for {
				tok, err := d.Token()
				if err != nil {
					break
				}
				switch tok.(type) {
				case xml.StartElement:
					if depth == 0 {
						starts++
					}
					depth++
				case xml.EndElement:
					depth--
				}
			}
			if starts != 1 || depth != 0 {
				t.Fatalf("child %s is not one element: %q", c.Name.Local, c.Raw)
			}
		}
	})
}

func TestParseStanzaXEPExamples(t *testing.T) {
	files, err := filepath.Glob("../../shared/testdata/xep-examples/*.xml")
	if err != nil || len(files) == 0 {
		t.Skip("XEP examples not available")
	}
	parsed := 0
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if st, err := parseStanza(b); err == nil {
			parsed++
			for _, c := range st.Children {
				if _, err := parseStanza(build(st.Kind, nil, c.Raw)); err != nil {
					t.Errorf("%s: child %s does not re-parse: %v", p, c.Name.Local, err)
				}
			}
		}
	}
	if parsed < 100 {
		t.Fatalf("only %d of %d XEP examples parse as stanzas", parsed, len(files))
	}
}
