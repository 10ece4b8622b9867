package localxmpp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const examplesDir = "../../../shared/testdata/xep-examples"

func exampleFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("XEP examples not available")
	}
	return files
}

// TestParseXEPExamples parses every example stanza from the XEPs and checks
// that the canonical form is a fixed point and keeps the addressing.
func TestParseXEPExamples(t *testing.T) {
	parsed := 0
	for _, f := range exampleFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		st, err := ParseStanza(raw)
		if err != nil {
			continue // fragments and multi-stanza examples
		}
		parsed++
		again, err := ParseStanza(st.Raw)
		if err != nil {
			t.Errorf("%s: canonical form does not parse: %v\n%s", f, err, st.Raw)
			continue
		}
		if !bytes.Equal(again.Raw, st.Raw) || !again.From.Equal(st.From) || !again.To.Equal(st.To) ||
			again.Type != st.Type || again.ID != st.ID || again.Name != st.Name {
			t.Errorf("%s: not a fixed point:\n%s\n%s", f, st.Raw, again.Raw)
		}
	}
	if parsed < 100 {
		t.Errorf("only %d examples parsed as stanzas", parsed)
	}
}

func TestParseStanzaRejects(t *testing.T) {
	for _, raw := range []string{
		"",
		"<message><body>x</message>",
		"<message/><message/>",
		"<foo/>",
		"<message xmlns='jabber:server'/>",
		"<message to='@@'/>",
		"text<message/>",
		"<!DOCTYPE x><message/>",
	} {
		if _, err := ParseStanza([]byte(raw)); err == nil {
			t.Errorf("accepted %q", raw)
		}
	}
	if _, err := ParseStanza([]byte("<foo/>")); !errors.Is(err, errNotStanza) {
		t.Errorf("non-stanza: %v", err)
	}
}

func TestCanonicalNamespaces(t *testing.T) {
	in := `<iq type='set' xmlns:p='urn:p'><p:query xml:lang='en' p:a='1'><x xmlns=''/></p:query></iq>`
	st, err := ParseStanza([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `<iq type='set'><query xmlns='urn:p' xml:lang='en' xmlns:a0='urn:p' a0:a='1'><x xmlns=''/></query></iq>`
	if string(st.Raw) != want {
		t.Errorf("got  %s\nwant %s", st.Raw, want)
	}
}

func FuzzParseStanza(f *testing.F) {
	// The repository's copy of XEP examples: the shared directory of
	// exampleFiles may be absent, and a fuzz target must not run seedless.
	files, _ := filepath.Glob("../../testdata/xmpp-stanzas/*.xml")
	if len(files) == 0 {
		f.Fatal("no seeds in ../../testdata/xmpp-stanzas")
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := ParseStanza(raw)
		if err != nil {
			return
		}
		again, err := ParseStanza(st.Raw)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%q", err, st.Raw)
		}
		if !bytes.Equal(again.Raw, st.Raw) {
			t.Fatalf("not a fixed point:\n%q\n%q", st.Raw, again.Raw)
		}
		if again.Name != st.Name || again.Type != st.Type || again.ID != st.ID || !again.From.Equal(st.From) || !again.To.Equal(st.To) {
			t.Fatalf("round trip changed the addressing:\n%q\n%q", st.Raw, again.Raw)
		}
		// Reading it back from its token stream, as test clients do,
		// gives the same bytes.
		fromTokens, err := StanzaFromTokens(nil, st.TokenReader())
		if err != nil || !bytes.Equal(fromTokens.Raw, st.Raw) {
			t.Fatalf("token round trip (%v):\n%q\n%q", err, st.Raw, fromTokens.Raw)
		}
	})
}
