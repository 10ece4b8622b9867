package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
)

// nsClient is the stanza namespace of client streams.
const nsClient = "jabber:client"

// maxStanza bounds a stanza the gateway buffers.
const maxStanza = 512 << 10

// A Stanza is one stanza as raw XML with its routing attributes parsed.
// Children keeps each child element's exact bytes, so signed or
// authenticated payloads are never re-serialised.
type Stanza struct {
	Kind     string // "message", "iq" or "presence"
	ID       string
	Type     string
	From, To jid.JID
	Children []Child
}

// A Child is one child element of a stanza.
type Child struct {
	Name xml.Name
	Raw  []byte // the element's bytes, with its namespace declared on it
}

// Child returns the first child with the given name, or nil.
func (s *Stanza) Child(space, local string) *Child {
	for i := range s.Children {
		if s.Children[i].Name.Space == space && s.Children[i].Name.Local == local {
			return &s.Children[i]
		}
	}
	return nil
}

// Text returns the character data of the first child with the given name.
func (s *Stanza) Text(space, local string) (string, bool) {
	c := s.Child(space, local)
	if c == nil {
		return "", false
	}
	var v struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal(c.Raw, &v); err != nil {
		return "", false
	}
	return v.Text, true
}

// readStanza reads one stanza element from r (the content after start, up
// to and maybe including its end element) and parses it. The element is re-encoded once into bytes so that children
// carry their own namespace declarations.
func readStanza(r xml.TokenReader, start *xml.StartElement) (*Stanza, error) {
	b, err := readRaw(r, start, maxStanza)
	if err != nil {
		return nil, err
	}
	return parseStanza(b)
}

// readRaw is readStanza's reading half: the stanza's bytes, re-encoded
// with every element declaring its namespace, at most limit bytes.
func readRaw(r xml.TokenReader, start *xml.StartElement, limit int) ([]byte, error) {
	var buf bytes.Buffer
	e := xml.NewEncoder(&limitWriter{w: &buf, n: limit})
	st := start.Copy()
	st.Attr = withoutXMLNS(st.Attr)
	if err := e.EncodeToken(st); err != nil {
		return nil, err
	}
	// Readers differ on whether they return the closing tag (mellium's
	// handler reader does, an IQ response's inner reader does not): copy
	// up to it either way and close the element once.
	depth := 0
	for {
		tok, err := r.Token()
		if tok != nil {
			switch t := tok.(type) {
			case xml.StartElement:
				depth++
				t.Attr = withoutXMLNS(t.Attr)
				tok = t
			case xml.EndElement:
				depth--
			}
			if depth < 0 {
				break
			}
			if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
				return nil, err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := e.EncodeToken(st.End()); err != nil {
		return nil, err
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// withoutXMLNS removes default-namespace declarations: the encoder
// declares each element's Name.Space itself, and a second xmlns attribute
// would make the bytes malformed.
func withoutXMLNS(in []xml.Attr) []xml.Attr {
	out := in[:0:0]
	for _, a := range in {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		out = append(out, a)
	}
	return out
}

type limitWriter struct {
	w io.Writer
	n int
}

var errTooLarge = errors.New("gateway: stanza too large")

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errTooLarge
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// parseStanza parses raw stanza bytes.
func parseStanza(b []byte) (*Stanza, error) { return parseStanzaIn(b, "") }

// parseStanzaIn parses raw stanza bytes whose elements without a namespace
// declaration are in space (jabber:client for the canonical stanzas of
// internal/localxmpp, which declare none on the root).
func parseStanzaIn(b []byte, space string) (*Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.DefaultSpace = space
	tok, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	start := tok
	s := &Stanza{Kind: start.Name.Local}
	switch s.Kind {
	case "message", "iq", "presence":
	default:
		return nil, fmt.Errorf("gateway: not a stanza: %s", start.Name.Local)
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" && a.Name.Space != "xmlns" {
			continue
		}
		switch a.Name.Local {
		case "id":
			s.ID = a.Value
		case "type":
			s.Type = a.Value
		case "from":
			if s.From, err = jid.Parse(a.Value); err != nil && a.Value != "" {
				return nil, fmt.Errorf("gateway: bad from: %w", err)
			}
		case "to":
			if s.To, err = jid.Parse(a.Value); err != nil && a.Value != "" {
				return nil, fmt.Errorf("gateway: bad to: %w", err)
			}
		}
	}
	// Children: slice each child's bytes out of the input, then make sure
	// its namespace is declared on it.
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("gateway: malformed stanza: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := d.Skip(); err != nil {
				return nil, fmt.Errorf("gateway: malformed stanza: %w", err)
			}
			raw := b[off:d.InputOffset()]
			s.Children = append(s.Children, Child{Name: t.Name, Raw: withNamespace(raw, t.Name.Space)})
		case xml.EndElement:
			return s, nil
		}
	}
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("gateway: malformed stanza: %w", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			return st, nil
		}
	}
}

// withNamespace returns raw unchanged when it declares its namespace, or
// with xmlns added to its start tag when it inherited it.
func withNamespace(raw []byte, space string) []byte {
	end := bytes.IndexAny(raw, " />")
	if end < 0 {
		return raw
	}
	tagEnd := bytes.IndexByte(raw, '>')
	if bytes.Contains(raw[:tagEnd], []byte("xmlns=")) || space == "" {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(space)+10)
	out = append(out, raw[:end]...)
	out = append(out, ` xmlns="`...)
	out = append(out, escapeAttr(space)...)
	out = append(out, '"')
	return append(out, raw[end:]...)
}

func escapeAttr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&#34;")
}

// build returns stanza bytes for kind with the attributes and the raw
// children given.
func build(kind string, attrs map[string]string, children ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString("<" + kind + ` xmlns="` + nsClient + `"`)
	for _, k := range []string{"id", "type", "to", "from"} {
		if v, ok := attrs[k]; ok && v != "" {
			b.WriteString(" " + k + `="` + escapeAttr(v) + `"`)
		}
	}
	b.WriteString(">")
	for _, c := range children {
		b.Write(c)
	}
	b.WriteString("</" + kind + ">")
	return b.Bytes()
}

// element returns <local xmlns=space attrs>text</local>.
func element(space, local, text string, attrs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("<" + local + ` xmlns="` + escapeAttr(space) + `"`)
	for i := 0; i+1 < len(attrs); i += 2 {
		b.WriteString(" " + attrs[i] + `="` + escapeAttr(attrs[i+1]) + `"`)
	}
	if text == "" {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteString(">")
	xml.EscapeText(&b, []byte(text))
	b.WriteString("</" + local + ">")
	return b.Bytes()
}

// tokens turns raw bytes into a token reader for mellium's Send.
func tokens(b []byte) xml.TokenReader {
	return xml.NewDecoder(bytes.NewReader(b))
}

// xmlURL is the namespace the "xml" prefix is bound to.
const xmlURL = "http://www.w3.org/XML/1998/namespace"

// maxContentDepth bounds the nesting of protected payload elements.
const maxContentDepth = 256

// envelopeContent returns the payload elements of an envelope's <content/>
// (the bytes inside it, whose context is the envelope's default namespace)
// re-encoded so that each element keeps its namespace wherever the bytes
// are put: every top-level element declares its namespace, nested ones
// wherever it differs from their parent's, and namespaced attributes get
// prefixes declared on their element. An element without a namespace
// prefix inside the envelope is in the envelope's namespace, and stays
// there (it does not become a jabber:client element by being dispatched).
// A prefix that is not declared is an error.
func envelopeContent(content []byte) ([]byte, error) {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(`<content xmlns="`+e2e.NS+`">`), bytes.NewReader(content), strings.NewReader(`</content>`)))
	d.Strict = true
	if _, err := d.Token(); err != nil { // the wrapper
		return nil, err
	}
	var out bytes.Buffer
	type frame struct {
		space   string   // the element's namespace
		inScope []string // namespace names declared on it
	}
	stack := []frame{{space: e2e.NS}}
	// How many open elements declare each namespace name (the envelope's
	// own and the xml namespace are always in scope).
	scope := map[string]int{e2e.NS: 1, xmlURL: 1}
	declared := func(space string) bool { return scope[space] > 0 }
	open := false // a start tag is written without its closing '>'
	closeTag := func() {
		if open {
			out.WriteByte('>')
			open = false
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("gateway: protected payload: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			closeTag()
			if len(stack) > maxContentDepth {
				return nil, fmt.Errorf("gateway: protected payload nested deeper than %d elements", maxContentDepth)
			}
			f := frame{space: t.Name.Space}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					f.inScope = append(f.inScope, a.Value)
					scope[a.Value]++
				}
			}
			stack = append(stack, f)
			if !declared(t.Name.Space) {
				return nil, fmt.Errorf("gateway: protected payload: undeclared namespace prefix %q", t.Name.Space)
			}
			out.WriteString("<" + t.Name.Local)
			if len(stack) == 2 || stack[len(stack)-2].space != t.Name.Space {
				out.WriteString(` xmlns="` + escapeAttr(t.Name.Space) + `"`)
			}
			n := 0
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
					continue
				case a.Name.Space == "":
					out.WriteString(" " + a.Name.Local)
				case a.Name.Space == xmlURL:
					out.WriteString(" xml:" + a.Name.Local)
				case !declared(a.Name.Space):
					return nil, fmt.Errorf("gateway: protected payload: undeclared namespace prefix %q", a.Name.Space)
				default:
					n++
					p := "a" + strconv.Itoa(n)
					out.WriteString(" xmlns:" + p + `="` + escapeAttr(a.Name.Space) + `" ` + p + ":" + a.Name.Local)
				}
				out.WriteString(`="` + escapeAttr(a.Value) + `"`)
			}
			open = true
		case xml.EndElement:
			for _, ns := range stack[len(stack)-1].inScope {
				scope[ns]--
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return out.Bytes(), nil // the wrapper's end
			}
			if open {
				out.WriteString("/>")
				open = false
			} else {
				out.WriteString("</" + t.Name.Local + ">")
			}
		case xml.CharData:
			if len(stack) == 1 {
				continue // whitespace between payload elements
			}
			closeTag()
			xml.EscapeText(&out, t)
		}
	}
}
