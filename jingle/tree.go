package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the generic XML layer under every element of the
// package: a strict, bounded reader that resolves namespaces itself (so an
// undeclared prefix is an error rather than a silently wrong namespace,
// which encoding/xml would give), and a canonical writer that declares
// every namespace explicitly, so that the inner XML of an element kept
// verbatim ([Raw]) is self-contained.

const nsXML = "http://www.w3.org/XML/1998/namespace"

// node is one element of a parsed tree.
type node struct {
	name  xml.Name   // resolved namespace and local name
	attrs []xml.Attr // resolved names, namespace declarations removed
	kids  []*node    // element children in order
	// items is the ordered content: text runs and children. A text item
	// has kid == nil.
	items []item
	// inner is canonical inner XML written verbatim after items (only for
	// elements built from a [Raw] by the serializer).
	inner []byte
}

type item struct {
	text string
	kid  *node
}

// text returns the concatenated character data directly inside n.
func (n *node) text() string {
	var b strings.Builder
	for _, it := range n.items {
		if it.kid == nil {
			b.WriteString(it.text)
		}
	}
	return b.String()
}

// hasText reports whether n holds character data other than whitespace.
func (n *node) hasText() bool {
	for _, it := range n.items {
		if it.kid == nil && strings.TrimSpace(it.text) != "" {
			return true
		}
	}
	return false
}

func (n *node) addKid(k *node) {
	n.kids = append(n.kids, k)
	n.items = append(n.items, item{kid: k})
}

func (n *node) addText(s string) {
	if s == "" {
		return
	}
	if l := len(n.items); l > 0 && n.items[l-1].kid == nil {
		n.items[l-1].text += s
		return
	}
	n.items = append(n.items, item{text: s})
}

// scope is one level of namespace declarations.
type scope struct {
	raw      xml.Name // the element name as written, to match its end tag
	def      string   // default namespace in effect
	prefixes map[string]string
}

func (s *scope) lookup(stack []scope, prefix string) (string, bool) {
	for i := len(stack) - 1; i >= 0; i-- {
		if u, ok := stack[i].prefixes[prefix]; ok {
			return u, true
		}
	}
	return "", false
}

// parseTree reads exactly one element from b: no prolog, comments,
// processing instructions or directives (RFC 6120 §11.1 forbids them in
// XMPP), and nothing but whitespace after the element.
func parseTree(b []byte, root string) (*node, error) {
	if len(b) > MaxElementSize {
		return nil, &ParseError{Field: root, Reason: "element larger than " + strconv.Itoa(MaxElementSize) + " bytes"}
	}
	if !utf8.Valid(b) {
		return nil, &ParseError{Field: "xml", Reason: "invalid UTF-8"}
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var (
		stack []scope
		nodes []*node
		top   *node
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &ParseError{Field: "xml", Reason: "line " + strconv.Itoa(se.Line) + ": " + se.Msg}
			}
			return nil, &ParseError{Field: "xml", Reason: err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if top != nil && len(stack) == 0 {
				return nil, &ParseError{Field: root, Reason: "trailing data after the element"}
			}
			if len(stack) >= MaxDepth {
				return nil, &ParseError{Field: root, Reason: "elements nested deeper than " + strconv.Itoa(MaxDepth)}
			}
			sc := scope{raw: t.Name}
			if len(stack) > 0 {
				sc.def = stack[len(stack)-1].def
			}
			n := &node{}
			// Declarations first: they apply to the element's own name and
			// attributes.
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					sc.def = a.Value
				case a.Name.Space == "xmlns":
					if a.Name.Local == "xml" || a.Name.Local == "xmlns" || a.Value == "" {
						return nil, &ParseError{Field: "xml", Reason: "invalid namespace declaration xmlns:" + a.Name.Local}
					}
					if sc.prefixes == nil {
						sc.prefixes = map[string]string{}
					}
					sc.prefixes[a.Name.Local] = a.Value
				}
			}
			stack = append(stack, sc)
			ns, ok := resolve(stack, t.Name.Space, true)
			if !ok {
				return nil, &ParseError{Field: "xml", Reason: "undeclared namespace prefix " + t.Name.Space}
			}
			n.name = xml.Name{Space: ns, Local: t.Name.Local}
			for _, a := range t.Attr {
				if (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Name.Space == "xmlns" {
					continue
				}
				ans := ""
				if a.Name.Space != "" {
					u, ok := resolve(stack, a.Name.Space, false)
					if !ok {
						return nil, &ParseError{Field: "xml", Reason: "undeclared namespace prefix " + a.Name.Space}
					}
					ans = u
				}
				name := xml.Name{Space: ans, Local: a.Name.Local}
				for _, o := range n.attrs {
					if o.Name == name {
						return nil, &ParseError{Field: "xml", Reason: "duplicate attribute " + a.Name.Local + " on " + t.Name.Local}
					}
				}
				n.attrs = append(n.attrs, xml.Attr{Name: name, Value: a.Value})
			}
			if len(nodes) > 0 {
				nodes[len(nodes)-1].addKid(n)
			} else {
				top = n
			}
			nodes = append(nodes, n)
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1].raw != t.Name {
				return nil, &ParseError{Field: "xml", Reason: "mismatched end tag " + t.Name.Local}
			}
			stack = stack[:len(stack)-1]
			nodes = nodes[:len(nodes)-1]
		case xml.CharData:
			if len(nodes) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					if top == nil {
						return nil, &ParseError{Field: root, Reason: "text before the element"}
					}
					return nil, &ParseError{Field: root, Reason: "trailing data after the element"}
				}
				continue
			}
			nodes[len(nodes)-1].addText(string(t))
		case xml.Comment:
			return nil, &ParseError{Field: "xml", Reason: "comments are not allowed in XMPP"}
		case xml.ProcInst:
			return nil, &ParseError{Field: "xml", Reason: "processing instructions are not allowed in XMPP"}
		case xml.Directive:
			return nil, &ParseError{Field: "xml", Reason: "directives (DTDs) are not allowed in XMPP"}
		}
	}
	if len(stack) != 0 {
		return nil, &ParseError{Field: "xml", Reason: "unexpected end of input"}
	}
	if top == nil {
		return nil, &ParseError{Field: root, Reason: "no element"}
	}
	return top, nil
}

func resolve(stack []scope, prefix string, element bool) (string, bool) {
	switch prefix {
	case "":
		if element {
			return stack[len(stack)-1].def, true
		}
		return "", true
	case "xml":
		return nsXML, true
	}
	return (&scope{}).lookup(stack, prefix)
}

// writer is the canonical serializer: default namespaces only (xmlns on an
// element whose namespace differs from its parent's), attributes in a
// namespace get a prefix declared on their own element, single quotes,
// self-closing empty elements.
type writer struct {
	b bytes.Buffer
}

// element writes n with parentNS as the default namespace in effect.
func (w *writer) element(n *node, parentNS string) {
	w.b.WriteByte('<')
	w.b.WriteString(n.name.Local)
	if n.name.Space != parentNS {
		w.attr("xmlns", n.name.Space)
	}
	w.attrs(n.attrs)
	if len(n.items) == 0 && len(n.inner) == 0 {
		w.b.WriteString("/>")
		return
	}
	w.b.WriteByte('>')
	w.content(n, n.name.Space)
	w.b.Write(n.inner)
	w.b.WriteString("</")
	w.b.WriteString(n.name.Local)
	w.b.WriteByte('>')
}

func (w *writer) content(n *node, ns string) {
	for _, it := range n.items {
		if it.kid != nil {
			w.element(it.kid, ns)
		} else {
			escapeText(&w.b, it.text)
		}
	}
}

func (w *writer) attrs(as []xml.Attr) {
	np := 0
	for _, a := range as {
		switch a.Name.Space {
		case "":
			w.attr(a.Name.Local, a.Value)
		case nsXML:
			w.attr("xml:"+a.Name.Local, a.Value)
		default:
			p := "a" + strconv.Itoa(np)
			np++
			w.attr("xmlns:"+p, a.Name.Space)
			w.attr(p+":"+a.Name.Local, a.Value)
		}
	}
}

func (w *writer) attr(name, value string) {
	w.b.WriteByte(' ')
	w.b.WriteString(name)
	w.b.WriteString("='")
	escapeAttr(&w.b, value)
	w.b.WriteByte('\'')
}

func escapeText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

func escapeAttr(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

// rawOf keeps n verbatim: its name, attributes and canonical inner XML.
func rawOf(n *node) Raw {
	r := Raw{XMLName: n.name}
	if len(n.attrs) > 0 {
		r.Attrs = append([]xml.Attr(nil), n.attrs...)
	}
	if len(n.items) > 0 {
		var w writer
		w.content(n, n.name.Space)
		r.Inner = w.b.Bytes()
	}
	return r
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
