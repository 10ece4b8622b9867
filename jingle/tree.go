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

const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

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
			// Bound the attributes before any work that grows with their
			// number (the duplicate check below is quadratic).
			if len(t.Attr) > MaxAttrs {
				return nil, &ParseError{Field: root, Reason: "element " + truncate(t.Name.Local) + " has more than " + strconv.Itoa(MaxAttrs) + " attributes"}
			}
			sc := scope{raw: t.Name}
			if len(stack) > 0 {
				sc.def = stack[len(stack)-1].def
			}
			n := &node{}
			// Declarations first: they apply to the element's own name and
			// attributes.
			seenDefault := false
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					if seenDefault {
						return nil, &ParseError{Field: "xml", Reason: "duplicate namespace declaration xmlns on " + truncate(t.Name.Local)}
					}
					seenDefault = true
					if a.Value == nsXML || a.Value == nsXMLNS {
						return nil, &ParseError{Field: "xml", Reason: "reserved namespace " + a.Value + " declared as default"}
					}
					sc.def = a.Value
				case a.Name.Space == "xmlns":
					if a.Name.Local == "xml" || a.Name.Local == "xmlns" || a.Value == "" || a.Value == nsXML || a.Value == nsXMLNS {
						return nil, &ParseError{Field: "xml", Reason: "invalid namespace declaration xmlns:" + truncate(a.Name.Local)}
					}
					if _, dup := sc.prefixes[a.Name.Local]; dup {
						return nil, &ParseError{Field: "xml", Reason: "duplicate namespace declaration xmlns:" + truncate(a.Name.Local) + " on " + truncate(t.Name.Local)}
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
				return nil, &ParseError{Field: "xml", Reason: "undeclared namespace prefix " + truncate(t.Name.Space)}
			}
			if strings.Contains(t.Name.Local, ":") {
				return nil, &ParseError{Field: "xml", Reason: "element name " + truncate(t.Name.Local) + " is not a qualified name"}
			}
			n.name = xml.Name{Space: ns, Local: t.Name.Local}
			for _, a := range t.Attr {
				if (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Name.Space == "xmlns" {
					continue
				}
				if strings.Contains(a.Name.Local, ":") {
					return nil, &ParseError{Field: "xml", Reason: "attribute name " + truncate(a.Name.Local) + " is not a qualified name"}
				}
				ans := ""
				if a.Name.Space != "" {
					u, ok := resolve(stack, a.Name.Space, false)
					if !ok {
						return nil, &ParseError{Field: "xml", Reason: "undeclared namespace prefix " + truncate(a.Name.Space)}
					}
					ans = u
				}
				name := xml.Name{Space: ans, Local: a.Name.Local}
				for _, o := range n.attrs {
					if o.Name == name {
						return nil, &ParseError{Field: "xml", Reason: "duplicate attribute " + truncate(a.Name.Local) + " on " + truncate(t.Name.Local)}
					}
				}
				n.attrs = append(n.attrs, xml.Attr{Name: name, Value: a.Value})
			}
			// What is accepted must also fit the bound in canonical form,
			// where each namespace of an attribute is declared on the
			// element itself.
			if canonicalAttrCount(n.attrs) > MaxAttrs {
				return nil, &ParseError{Field: root, Reason: "element " + truncate(t.Name.Local) + " has more than " + strconv.Itoa(MaxAttrs) + " attributes in canonical form"}
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

// canonicalAttrCount is the number of attributes the writer puts on an
// element with these (resolved) attributes: its own default namespace
// declaration, one declaration per namespace of an attribute, and the
// attributes.
func canonicalAttrCount(as []xml.Attr) int {
	n := 1 + len(as)
	for i, a := range as {
		if a.Name.Space == "" || a.Name.Space == nsXML {
			continue
		}
		first := true
		for _, o := range as[:i] {
			if o.Name.Space == a.Name.Space {
				first = false
				break
			}
		}
		if first {
			n++
		}
	}
	return n
}

// writer is the canonical serializer: default namespaces only (xmlns on an
// element whose namespace differs from its parent's), attributes in a
// namespace get a prefix declared on their own element (one per
// namespace), single quotes, self-closing empty elements.
//
// With check set (the Marshal and Validate path, for values that may
// have been built by hand) it also refuses what would not serialize to
// the structure the value describes: element and attribute names that
// are not XML names without a colon, namespace declarations disguised as
// attributes, reserved namespaces, and inner XML of a [Raw] that is not a
// balanced fragment; the inner XML of a Raw is written in its canonical
// form. The first such problem is kept in err and the output is then
// meaningless.
type writer struct {
	b     bytes.Buffer
	check bool
	err   *ParseError
	path  []string
}

func (w *writer) fail(field, reason string) {
	if w.err == nil {
		w.err = &ParseError{Field: field, Reason: reason}
	}
}

func (w *writer) here() string { return strings.Join(w.path, "/") }

// element writes n with parentNS as the default namespace in effect.
func (w *writer) element(n *node, parentNS string) {
	if w.err != nil {
		return
	}
	if w.check {
		w.path = append(w.path, n.name.Local)
		defer func() { w.path = w.path[:len(w.path)-1] }()
		w.checkNames(n)
		if w.err != nil {
			return
		}
	}
	w.b.WriteByte('<')
	w.b.WriteString(n.name.Local)
	if n.name.Space != parentNS {
		w.attr("xmlns", n.name.Space)
	}
	w.attrs(n.attrs)
	var inner *node
	if len(n.inner) > 0 && w.check {
		frag, err := parseFragment(n.name.Space, n.inner)
		if err != nil {
			w.fail(w.here(), "inner XML of a Raw is not a balanced XML fragment: "+err.Field+": "+err.Reason)
			return
		}
		inner = frag
	}
	if len(n.items) == 0 && len(n.inner) == 0 || inner != nil && len(n.items) == 0 && len(inner.items) == 0 {
		w.b.WriteString("/>")
		return
	}
	w.b.WriteByte('>')
	w.content(n, n.name.Space)
	if inner != nil {
		w.content(inner, n.name.Space)
	} else {
		w.b.Write(n.inner)
	}
	w.b.WriteString("</")
	w.b.WriteString(n.name.Local)
	w.b.WriteByte('>')
}

// checkNames refuses names that would change the structure of the output.
func (w *writer) checkNames(n *node) {
	if !isNCName(n.name.Local) {
		w.fail(w.here(), "element name "+strconv.Quote(truncate(n.name.Local))+" is not an XML name without a colon")
		return
	}
	if n.name.Space == nsXML || n.name.Space == nsXMLNS {
		w.fail(w.here(), "element in the reserved namespace "+n.name.Space)
		return
	}
	if len(n.attrs) > MaxAttrs {
		w.fail(w.here(), "more than "+strconv.Itoa(MaxAttrs)+" attributes")
		return
	}
	for _, a := range n.attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == "xmlns", a.Name.Space == nsXMLNS:
			w.fail(w.here()+"@"+truncate(a.Name.Local), "namespace declarations are not attributes: set the namespace in the name")
			return
		case !isNCName(a.Name.Local):
			w.fail(w.here(), "attribute name "+strconv.Quote(truncate(a.Name.Local))+" is not an XML name without a colon")
			return
		}
	}
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
	var spaces []string // namespaces of attributes, in order of first use; prefix "a<index>"
	for _, a := range as {
		switch a.Name.Space {
		case "":
			w.attr(a.Name.Local, a.Value)
		case nsXML:
			w.attr("xml:"+a.Name.Local, a.Value)
		default:
			i := 0
			for i < len(spaces) && spaces[i] != a.Name.Space {
				i++
			}
			p := "a" + strconv.Itoa(i)
			if i == len(spaces) {
				spaces = append(spaces, a.Name.Space)
				w.attr("xmlns:"+p, a.Name.Space)
			}
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

// parseFragment reads inner XML kept by a [Raw] of namespace space, with
// the strict reader, as the content of a wrapper element: it must be a
// balanced fragment that declares what it uses, with space as the default
// namespace.
func parseFragment(space string, inner []byte) (*node, *ParseError) {
	var b bytes.Buffer
	b.Grow(len(inner) + len(space) + 20)
	b.WriteString("<r xmlns='")
	escapeAttr(&b, space)
	b.WriteString("'>")
	b.Write(inner)
	b.WriteString("</r>")
	n, err := parseTree(b.Bytes(), "raw")
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, &ParseError{Field: "raw", Reason: err.Error()}
	}
	return n, nil
}

// canonicalInner returns the canonical form of the inner XML of a Raw of
// namespace space.
func canonicalInner(space string, inner []byte) ([]byte, *ParseError) {
	if len(inner) == 0 {
		return nil, nil
	}
	n, err := parseFragment(space, inner)
	if err != nil {
		return nil, err
	}
	var w writer
	w.content(n, space)
	return w.b.Bytes(), nil
}

// isNCName reports whether s is an XML name without a colon (Namespaces
// in XML 1.0 §3, NCName).
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == ':' || !isNameChar(r, i == 0) {
			return false
		}
	}
	return true
}

// isNameChar implements NameStartChar and NameChar of XML 1.0 §2.3.
func isNameChar(r rune, start bool) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == ':',
		r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	case start:
		return false
	case r == '-', r == '.', r >= '0' && r <= '9', r == 0xB7,
		r >= 0x300 && r <= 0x36F, r >= 0x203F && r <= 0x2040:
		return true
	}
	return false
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
