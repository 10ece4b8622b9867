package e2e

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
)

// maxElementSize bounds any element this package parses.
const maxElementSize = 256 << 10

// A shape describes the only structure an element may have: its allowed
// attributes, whether it may hold text, and its allowed children with
// their maximum counts. Anything else is malformed. Elements whose content
// is arbitrary XML (envelope content) set anyContent.
type shape struct {
	attrs      []string
	text       bool
	children   map[string]childShape
	anyContent bool
}

type childShape struct {
	s   *shape
	max int
}

// strictUnmarshal checks data against s (root element in namespace NS) and
// decodes it into v. The input must be a single well-formed element
// (whitespace around it allowed) no larger than maxElementSize, without
// comments, processing instructions or directives, without unknown or
// duplicate attributes or children.
func strictUnmarshal(data []byte, v any, s *shape) error {
	if len(data) > maxElementSize {
		return malformed("element larger than %d bytes", maxElementSize)
	}
	if err := checkShape(data, s); err != nil {
		return err
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return malformed("xml: %v", err)
	}
	return nil
}

func checkShape(data []byte, root *shape) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	seenRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if !seenRoot {
				return malformed("no element")
			}
			return nil
		}
		if err != nil {
			return malformed("xml: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seenRoot {
				return malformed("content after element")
			}
			seenRoot = true
			if t.Name.Space != NS {
				return malformed("element {%s}%s", t.Name.Space, t.Name.Local)
			}
			if err := checkElement(d, t, root); err != nil {
				return err
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return malformed("text outside element")
			}
		default:
			return malformed("comment, directive or processing instruction")
		}
	}
}

// checkElement checks start (already read) and its content against s.
func checkElement(d *xml.Decoder, start xml.StartElement, s *shape) error {
	seen := map[string]bool{}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if a.Name.Space != "" || seen[a.Name.Local] || !contains(s.attrs, a.Name.Local) {
			return malformed("attribute %q on <%s>", a.Name.Local, start.Name.Local)
		}
		seen[a.Name.Local] = true
	}
	if s.anyContent {
		return checkAny(d)
	}
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if err != nil {
			return malformed("xml: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			cs, ok := s.children[t.Name.Local]
			if !ok || t.Name.Space != NS {
				return malformed("child <%s> of <%s>", t.Name.Local, start.Name.Local)
			}
			if counts[t.Name.Local]++; counts[t.Name.Local] > cs.max {
				return malformed("too many <%s> in <%s>", t.Name.Local, start.Name.Local)
			}
			if err := checkElement(d, t, cs.s); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			if !s.text && len(bytes.TrimSpace(t)) != 0 {
				return malformed("text in <%s>", start.Name.Local)
			}
		default:
			return malformed("comment, directive or processing instruction in <%s>", start.Name.Local)
		}
	}
}

// checkAny accepts any well-formed content without comments, directives or
// processing instructions, up to the matching end element.
func checkAny(d *xml.Decoder) error {
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return malformed("xml: %v", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		case xml.CharData:
		default:
			return malformed("comment, directive or processing instruction in content")
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// parseDecimal parses a canonical decimal unsigned integer (no sign, no
// leading zeros, no spaces) of at most bits bits.
func parseDecimal(s string, bits int, what string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil || strconv.FormatUint(v, 10) != s {
		return 0, malformed("%s %q", what, s)
	}
	return v, nil
}
