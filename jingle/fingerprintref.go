package jingle

import "encoding/xml"

// FingerprintRef is one fingerprint-like element of a <jingle/>: a
// XEP-0320 <fingerprint/> or an element named fingerprint in any other
// namespace (such as Conversations' OMEMO-encrypted one), wherever it
// sits. It is a plain value, safe for concurrent reads.
type FingerprintRef struct {
	// Content and Creator name the content the element belongs to; both
	// are empty for an element outside every content (a session-info
	// payload or a reason).
	Content string
	Creator Creator
	// Path locates the element like [ParseError.Field], e.g.
	// "jingle/content/transport/fingerprint".
	Path string
	// Name is the namespace and local name of the element.
	Name xml.Name
	// Fingerprint is the parsed XEP-0320 fingerprint (lower-case hash
	// name, trimmed value) when Name is
	// {urn:xmpp:jingle:apps:dtls:0}fingerprint, and nil otherwise.
	Fingerprint *Fingerprint
	// Raw is the element verbatim when it is in another namespace; its
	// zero value otherwise.
	Raw Raw
}

// Fingerprints returns every fingerprint-like element of j, in document
// order per content and then those outside the contents: the XEP-0320
// fingerprint of each ICE-UDP transport, the one of the ICE-UDP transport
// inside a XEP-0343 data channel transport, and every element named
// fingerprint in another namespace, however deeply nested in elements
// kept as [Raw]. Policy uses it to require exactly one fingerprint per
// content, and that one a XEP-0320 fingerprint in the protected stanza:
// an offer whose contents carry none, or another one besides it (an
// OMEMO-encrypted one, a second XEP-0320 one), is then classified rather
// than half-read.
//
// On a value returned by [Parse] it cannot fail. For a value built by hand
// it returns a *[ParseError] when the inner XML of a Raw is not a
// balanced fragment or a XEP-0320 fingerprint kept in one is malformed.
func (j *Jingle) Fingerprints() ([]FingerprintRef, error) {
	w := fpWalker{}
	for i := range j.Contents {
		c := &j.Contents[i]
		w.content, w.creator = c.Name, c.Creator
		const base = "jingle/content"
		if d := c.Description; d != nil {
			w.raws(d.Other, base+"/description")
			for _, s := range d.Sources {
				w.raws(s.Other, base+"/description/source")
			}
		}
		if t := c.Transport; t != nil {
			w.transport(t, base+"/transport")
		}
		w.raws(c.Other, base)
	}
	w.content, w.creator = "", ""
	w.raws(j.Info, "jingle")
	if j.Reason != nil {
		w.raws(j.Reason.Extra, "jingle/reason")
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.out, nil
}

type fpWalker struct {
	content string
	creator Creator
	out     []FingerprintRef
	err     *ParseError
}

func (w *fpWalker) add(path string, name xml.Name, f *Fingerprint, r Raw) {
	w.out = append(w.out, FingerprintRef{Content: w.content, Creator: w.creator, Path: path, Name: name, Fingerprint: f, Raw: r})
}

func (w *fpWalker) transport(t *Transport, path string) {
	if t.Fingerprint != nil {
		f := *t.Fingerprint
		w.add(path+"/fingerprint", xml.Name{Space: NSDTLS, Local: "fingerprint"}, &f, Raw{})
	}
	w.raws(t.Other, path)
}

func (w *fpWalker) raws(rs []Raw, parent string) {
	for _, r := range rs {
		if w.err != nil {
			return
		}
		n, err := nodeOfRaw(r)
		if err != nil {
			w.err = &ParseError{Field: parent + "/" + r.XMLName.Local, Reason: "inner XML: " + err.Field + ": " + err.Reason}
			return
		}
		w.node(n, parent+"/"+r.XMLName.Local)
	}
}

// node reports n and its descendants.
func (w *fpWalker) node(n *node, path string) {
	if n.name.Local == "fingerprint" {
		if n.name.Space == NSDTLS {
			p := &parser{}
			f := p.fingerprint(n, path)
			if p.err != nil {
				w.err = p.err
				return
			}
			w.add(path, n.name, f, Raw{})
		} else {
			w.add(path, n.name, nil, rawOf(n))
		}
	}
	for _, k := range n.kids {
		w.node(k, path+"/"+k.name.Local)
		if w.err != nil {
			return
		}
	}
}

// nodeOfRaw rebuilds the tree of a Raw from its inner XML.
func nodeOfRaw(r Raw) (*node, *ParseError) {
	n := &node{name: r.XMLName, attrs: r.Attrs}
	if len(r.Inner) == 0 {
		return n, nil
	}
	frag, err := parseFragment(r.XMLName.Space, r.Inner)
	if err != nil {
		return nil, err
	}
	n.kids, n.items = frag.kids, frag.items
	return n, nil
}
