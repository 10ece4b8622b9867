package localxmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Stanza is one top-level XMPP stanza as the server routes it: the exact
// bytes that will be written to the recipient's stream (Raw) plus the
// attributes that routing looks at, parsed from Raw.
//
// Raw is in the canonical form produced by this package: the root element is
// in the jabber:client namespace and carries no xmlns attribute, and every
// child that changes namespace declares it with a default xmlns attribute.
//
// Routing uses the parsed fields and delivers Raw, so a hook that wants to
// change where a stanza goes must keep both consistent; [ParseStanza] does.
// A hostile test may deliberately make them disagree to mis-route a stanza.
//
// The zero value is not a valid stanza. Stanza values are immutable once
// built; they are safe to share between goroutines as long as nobody
// modifies Raw in place.
type Stanza struct {
	// Name is "message", "presence" or "iq".
	Name string
	// From and To are the parsed 'from' and 'to' attributes (zero when absent).
	From, To jid.JID
	// Type and ID are the 'type' and 'id' attributes ("" when absent).
	Type, ID string
	// Raw is the serialised stanza.
	Raw []byte

	el *element
}

// ParseStanza parses one stanza from raw. The root element must be message,
// presence or iq, in the jabber:client namespace or in no namespace; the
// input must contain exactly that one element (surrounding whitespace is
// allowed). The returned Stanza's Raw is the canonical serialisation, which
// may differ from raw in namespace declarations, quoting and escaping.
func ParseStanza(raw []byte) (Stanza, error) {
	if len(raw) > maxStanzaSize {
		return Stanza{}, errTooLarge
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.DefaultSpace = stanza.NSClient
	var root *element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Stanza{}, fmt.Errorf("localxmpp: parsing stanza: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil {
				return Stanza{}, errors.New("localxmpp: parsing stanza: trailing element")
			}
			root, err = readElement(d, t, maxStanzaSize)
			if err != nil {
				return Stanza{}, err
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return Stanza{}, errors.New("localxmpp: parsing stanza: character data outside the element")
			}
		case xml.Comment:
			// Allowed around the element (the XEP examples carry one).
		case xml.ProcInst:
			if t.Target != "xml" || root != nil {
				return Stanza{}, errors.New("localxmpp: parsing stanza: processing instruction")
			}
		default:
			return Stanza{}, fmt.Errorf("localxmpp: parsing stanza: unexpected %T", tok)
		}
	}
	if root == nil {
		return Stanza{}, errors.New("localxmpp: parsing stanza: no element")
	}
	return stanzaFromElement(root)
}

// StanzaFromTokens reads one stanza element from r (which must start with
// the element's start tag, or be positioned just after it when start is not
// nil) and returns it as a Stanza. It is meant for client-side handlers in
// tests that receive a stanza from mellium's Serve.
func StanzaFromTokens(start *xml.StartElement, r xml.TokenReader) (Stanza, error) {
	var st xml.StartElement
	if start != nil {
		st = *start
	} else {
		for {
			tok, err := r.Token()
			if err != nil {
				return Stanza{}, fmt.Errorf("localxmpp: reading stanza: %w", err)
			}
			if s, ok := tok.(xml.StartElement); ok {
				st = s
				break
			}
		}
	}
	if st.Name.Space == "" {
		st.Name.Space = stanza.NSClient
	}
	el, err := readElement(r, st, maxStanzaSize)
	if err != nil {
		return Stanza{}, err
	}
	return stanzaFromElement(el)
}

// TokenReader returns the stanza as an XML token stream, for example to pass
// it to mellium's Session.Send.
func (s Stanza) TokenReader() xml.TokenReader {
	d := xml.NewDecoder(bytes.NewReader(s.Raw))
	d.DefaultSpace = stanza.NSClient
	return d
}

// String returns Raw as a string, for logs and test failure messages.
func (s Stanza) String() string { return string(s.Raw) }

func stanzaFromElement(el *element) (Stanza, error) {
	if el.name.Space != stanza.NSClient || (el.name.Local != "message" && el.name.Local != "presence" && el.name.Local != "iq") {
		return Stanza{}, errNotStanza
	}
	st := Stanza{Name: el.name.Local, el: el}
	var err error
	// An empty address counts as absent: mellium's Serve blanks a 'from'
	// equal to the session's own bare JID instead of removing it.
	if v, _ := el.attr("from"); v != "" {
		if st.From, err = jid.Parse(v); err != nil {
			return Stanza{}, fmt.Errorf("localxmpp: bad from: %w", err)
		}
	}
	if v, _ := el.attr("to"); v != "" {
		if st.To, err = jid.Parse(v); err != nil {
			return Stanza{}, fmt.Errorf("localxmpp: bad to: %w", err)
		}
	}
	st.Type, _ = el.attr("type")
	st.ID, _ = el.attr("id")
	st.Raw = el.marshal(stanza.NSClient)
	return st, nil
}

var (
	errNotStanza = errors.New("localxmpp: not a stanza")
	errTooLarge  = errors.New("localxmpp: stanza too large")
	errTooDeep   = errors.New("localxmpp: stanza nested too deeply")
)

// element is a minimal XML tree: enough to re-address, wrap and store
// stanzas without re-encoding through encoding/xml (whose encoder mangles
// prefixed namespace declarations read back from a decoder).
type element struct {
	name     xml.Name
	attrs    []xml.Attr // namespace declarations removed
	children []node
}

// node is either *element or xml.CharData.
type node any

// readElement reads the content of the element whose start tag has just been
// consumed, up to and including its end tag. limit bounds the serialised
// size of the element.
func readElement(r xml.TokenReader, start xml.StartElement, limit int) (*element, error) {
	size := 0
	root := newElement(start, &size)
	stack := []*element{root}
	for len(stack) > 0 {
		if size > limit {
			return nil, errTooLarge
		}
		tok, err := r.Token()
		if tok == nil || (err != nil && err != io.EOF) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		// A TokenReader may return the last token together with io.EOF;
		// the loop condition catches an element that is still open.
		if err == io.EOF {
			if _, ok := tok.(xml.EndElement); !ok || len(stack) != 1 {
				return nil, io.ErrUnexpectedEOF
			}
		}
		cur := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, errTooDeep
			}
			child := newElement(t, &size)
			cur.children = append(cur.children, child)
			stack = append(stack, child)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			size += len(t)
			cur.children = append(cur.children, xml.CharData(bytes.Clone(t)))
		case xml.Comment:
			// Comments carry no meaning in XMPP; drop them.
		default:
			return nil, fmt.Errorf("localxmpp: disallowed %T in stanza", tok)
		}
	}
	return root, nil
}

func newElement(start xml.StartElement, size *int) *element {
	el := &element{name: start.Name}
	*size += len(start.Name.Local) + len(start.Name.Space) + 5
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		*size += len(a.Name.Local) + len(a.Name.Space) + len(a.Value) + 4
		el.attrs = append(el.attrs, a)
	}
	return el
}

func (e *element) attr(local string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// setAttr sets (or with value "" removes) an unqualified attribute.
func (e *element) setAttr(local, value string) {
	for i, a := range e.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			if value == "" {
				e.attrs = append(e.attrs[:i:i], e.attrs[i+1:]...)
			} else {
				e.attrs[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.attrs = append(e.attrs, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// child returns the first child element with the given name.
func (e *element) child(space, local string) *element {
	for _, c := range e.children {
		if ce, ok := c.(*element); ok && ce.name.Local == local && ce.name.Space == space {
			return ce
		}
	}
	return nil
}

// elements returns the child elements.
func (e *element) elements() []*element {
	var out []*element
	for _, c := range e.children {
		if ce, ok := c.(*element); ok {
			out = append(out, ce)
		}
	}
	return out
}

// text returns the concatenated character data directly inside e.
func (e *element) text() string {
	var b []byte
	for _, c := range e.children {
		if cd, ok := c.(xml.CharData); ok {
			b = append(b, cd...)
		}
	}
	return string(b)
}

// clone makes a deep copy, so that re-addressing a copy leaves the original
// untouched.
func (e *element) clone() *element {
	c := &element{name: e.name, attrs: append([]xml.Attr(nil), e.attrs...)}
	for _, ch := range e.children {
		if ce, ok := ch.(*element); ok {
			c.children = append(c.children, ce.clone())
		} else {
			c.children = append(c.children, ch)
		}
	}
	return c
}

const xmlURL = "http://www.w3.org/XML/1998/namespace"

// marshal serialises e, assuming the enclosing default namespace is parentNS.
func (e *element) marshal(parentNS string) []byte {
	var b bytes.Buffer
	e.write(&b, parentNS)
	return b.Bytes()
}

func (e *element) write(b *bytes.Buffer, parentNS string) {
	b.WriteByte('<')
	b.WriteString(e.name.Local)
	if e.name.Space != parentNS {
		b.WriteString(" xmlns='")
		escape(b, e.name.Space)
		b.WriteByte('\'')
	}
	prefixes := 0
	for _, a := range e.attrs {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case xmlURL:
			b.WriteString("xml:")
		default:
			p := "a" + strconv.Itoa(prefixes)
			prefixes++
			b.WriteString("xmlns:" + p + "='")
			escape(b, a.Name.Space)
			b.WriteString("' " + p + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString("='")
		escape(b, a.Value)
		b.WriteByte('\'')
	}
	if len(e.children) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, c := range e.children {
		switch c := c.(type) {
		case *element:
			c.write(b, e.name.Space)
		case xml.CharData:
			escape(b, string(c))
		}
	}
	b.WriteString("</")
	b.WriteString(e.name.Local)
	b.WriteByte('>')
}

func escape(b *bytes.Buffer, s string) {
	// xml.EscapeText only fails when the writer fails; bytes.Buffer does not.
	_ = xml.EscapeText(b, []byte(s))
}

// el builds an element; attrs alternate name, value.
func el(space, local string, attrs ...string) *element {
	e := &element{name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.setAttr(attrs[i], attrs[i+1])
	}
	return e
}

func (e *element) add(children ...node) *element {
	e.children = append(e.children, children...)
	return e
}

// mustStanza turns a server-built element into a Stanza; server-built
// elements always carry valid JIDs, so a failure is a bug.
func mustStanza(e *element) Stanza {
	st, err := stanzaFromElement(e)
	if err != nil {
		panic("localxmpp: internal error building stanza: " + err.Error())
	}
	return st
}

// element returns the stanza's tree, parsing Raw again when the Stanza was
// built by hand (by a hook) rather than by this package.
func (s Stanza) element() (*element, error) {
	if s.el != nil && bytes.Equal(s.el.marshal(stanza.NSClient), s.Raw) {
		return s.el, nil
	}
	p, err := ParseStanza(s.Raw)
	if err != nil {
		return nil, err
	}
	return p.el, nil
}

// readdressed returns a copy of s whose 'to' attribute is set to to (and
// 'from' to from when from is not zero), with Raw re-serialised.
func readdressed(e *element, from, to jid.JID) Stanza {
	c := e.clone()
	if !from.Equal(jid.JID{}) {
		c.setAttr("from", from.String())
	}
	if !to.Equal(jid.JID{}) {
		c.setAttr("to", to.String())
	}
	return mustStanza(c)
}
