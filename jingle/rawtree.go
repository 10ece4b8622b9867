package jingle

import (
	"encoding/xml"
	"strconv"
)

// This file lets packages that implement the applications and transports
// kept in [Raw] (file transfer, bytestreams, data channels, JET) read and
// build those elements with the strict reader and canonical writer of
// this package instead of a parser of their own.

// Children reads the content of r with the strict reader of [Parse]: its
// child elements in order, each as a Raw in canonical form, and the
// character data directly inside r, concatenated (whitespace included).
// Elements of every namespace are returned, those this package parses
// itself too (the ICE-UDP transport inside a XEP-0343 data channel
// transport, say): the caller decides what belongs where. A Raw that came
// from [Parse] always reads; for one built by hand the error is a
// *[ParseError] when its inner XML is not a balanced fragment that
// declares what it uses.
func (r Raw) Children() (kids []Raw, text string, err error) {
	if len(r.Inner) == 0 {
		return nil, "", nil
	}
	frag, perr := parseFragment(r.XMLName.Space, r.Inner)
	if perr != nil {
		return nil, "", perr
	}
	if len(frag.kids) > 0 {
		kids = make([]Raw, 0, len(frag.kids))
		for _, k := range frag.kids {
			kids = append(kids, rawOf(k))
		}
	}
	return kids, frag.text(), nil
}

// NewRaw builds the element name with the attributes attrs (unqualified
// or in a namespace; no namespace declarations), the character data text
// and then the children kids, with Inner in canonical form. It applies
// the checks of [Jingle.Marshal] to what it writes: names that are XML
// names without a colon, no namespace declarations among the attributes,
// at most [MaxAttrs] attributes per element, children whose inner XML is
// a balanced fragment; every error is a *[MarshalError]. Where the result
// may be placed is checked when the element that holds it is marshaled.
func NewRaw(name xml.Name, attrs []xml.Attr, text string, kids ...Raw) (Raw, error) {
	n := &node{name: name}
	if len(attrs) > 0 {
		n.attrs = append([]xml.Attr(nil), attrs...)
	}
	n.addText(text)
	addRaw(n, kids)
	w := writer{check: true, path: []string{name.Local}}
	w.checkNames(n)
	if w.err == nil {
		w.content(n, name.Space)
	}
	if w.err != nil {
		return Raw{}, marshalError(w.err)
	}
	r := Raw{XMLName: name, Attrs: n.attrs}
	if w.b.Len() > 0 {
		r.Inner = w.b.Bytes()
	}
	if len(r.Inner) > MaxElementSize {
		return Raw{}, marshalError(&ParseError{Field: name.Local, Reason: "inner XML larger than " + strconv.Itoa(MaxElementSize) + " bytes"})
	}
	return r, nil
}

// Equal reports whether r and o are the same element: the same name, the
// same attributes in the same order and the same inner XML once both are
// in canonical form (so prefix spelling and quoting do not matter). A Raw
// whose inner XML does not parse equals nothing.
func (r Raw) Equal(o Raw) bool {
	if r.XMLName != o.XMLName || len(r.Attrs) != len(o.Attrs) {
		return false
	}
	for i := range r.Attrs {
		if r.Attrs[i] != o.Attrs[i] {
			return false
		}
	}
	a, err := canonicalInner(r.XMLName.Space, r.Inner)
	if err != nil {
		return false
	}
	b, err := canonicalInner(o.XMLName.Space, o.Inner)
	if err != nil {
		return false
	}
	return string(a) == string(b)
}

// Raw returns t as an XEP-0176 <transport/> element, for nesting inside an
// element of another namespace that wraps one (the XEP-0343
// webrtc-datachannel transport). Placed directly in [Content.Other] it is
// refused by Marshal: a content's own ICE-UDP transport is
// [Content.Transport]. Raw does not check t; [TransportFromRaw] on the
// result, or marshaling the element that holds it, does.
func (t *Transport) Raw() Raw { return rawOf(t.node()) }

// TransportFromRaw reads an XEP-0176 <transport
// xmlns='urn:xmpp:jingle:transports:ice-udp:1'/> kept as a Raw (the one
// inside a XEP-0343 data channel transport) with the strictness of
// [Parse] for a content's own transport. Every error is a *[ParseError].
func TransportFromRaw(r Raw) (*Transport, error) {
	const path = "transport"
	if r.XMLName.Space != NSICEUDP || r.XMLName.Local != "transport" {
		return nil, &ParseError{Field: path, Reason: "element is " + fmtName(r.XMLName) + ", want {" + NSICEUDP + "}transport"}
	}
	n, perr := nodeOfRaw(r)
	if perr != nil {
		return nil, perr
	}
	p := &parser{}
	t := p.transport(n, path)
	if p.err != nil {
		return nil, p.err
	}
	if err := checkCanonicalSize(path, t.node()); err != nil {
		return nil, err
	}
	return t, nil
}
