package jingle

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// parser carries the first error of one parse; every method is a no-op
// once it is set, so decoding code reads straight through.
type parser struct {
	err *ParseError
}

func (p *parser) fail(field, reason string) {
	if p.err == nil {
		p.err = &ParseError{Field: field, Reason: reason}
	}
}

// elem reads the attributes of one known element, tracking which were
// consumed so that an unknown one is reported.
type elem struct {
	p    *parser
	n    *node
	path string
	used []bool
}

func (p *parser) open(n *node, path string) *elem {
	return &elem{p: p, n: n, path: path, used: make([]bool, len(n.attrs))}
}

func (e *elem) field(attr string) string { return e.path + "@" + attr }

// get returns the value of the unqualified attribute local.
func (e *elem) get(local string) (string, bool) {
	return e.getNS("", local)
}

func (e *elem) getNS(space, local string) (string, bool) {
	for i, a := range e.n.attrs {
		if a.Name.Space == space && a.Name.Local == local {
			e.used[i] = true
			if len(a.Value) > MaxAttrLen {
				e.p.fail(e.field(local), "longer than "+strconv.Itoa(MaxAttrLen)+" bytes")
				return "", false
			}
			return a.Value, true
		}
	}
	return "", false
}

// str reads a string attribute of at most max bytes; a present attribute
// must not be empty.
func (e *elem) str(local string, required bool, max int) string {
	v, ok := e.get(local)
	if !ok {
		if required {
			e.p.fail(e.field(local), "required attribute missing")
		}
		return ""
	}
	if v == "" {
		e.p.fail(e.field(local), "empty value")
		return ""
	}
	if len(v) > max {
		e.p.fail(e.field(local), "longer than "+strconv.Itoa(max)+" bytes")
		return ""
	}
	return v
}

// token reads an attribute that must be a token (no whitespace or control
// characters), such as an identifier or a codec name.
func (e *elem) token(local string, required bool, max int) string {
	v := e.str(local, required, max)
	if v != "" && !isToken(v) {
		e.p.fail(e.field(local), "contains whitespace or control characters")
		return ""
	}
	return v
}

// uint reads a decimal attribute in [min, max]. Signs, leading zeros and
// whitespace are refused.
func (e *elem) uint(local string, required bool, min, max uint64) uint64 {
	v, ok := e.get(local)
	if !ok {
		if required {
			e.p.fail(e.field(local), "required attribute missing")
		}
		return 0
	}
	n, ok := parseDecimal(v)
	if !ok {
		e.p.fail(e.field(local), "not a decimal number")
		return 0
	}
	if n < min || n > max {
		e.p.fail(e.field(local), "out of range ["+strconv.FormatUint(min, 10)+", "+strconv.FormatUint(max, 10)+"]")
		return 0
	}
	return n
}

// decimal reads an attribute kept as a string that must be a decimal
// number in [min, max].
func (e *elem) decimal(local string, min, max uint64) string {
	v, ok := e.get(local)
	if !ok {
		return ""
	}
	n, ok := parseDecimal(v)
	if !ok {
		e.p.fail(e.field(local), "not a decimal number")
		return ""
	}
	if n < min || n > max {
		e.p.fail(e.field(local), "out of range ["+strconv.FormatUint(min, 10)+", "+strconv.FormatUint(max, 10)+"]")
		return ""
	}
	return v
}

// enum reads an attribute whose value must be one of allowed.
func (e *elem) enum(local string, required bool, allowed ...string) string {
	v, ok := e.get(local)
	if !ok {
		if required {
			e.p.fail(e.field(local), "required attribute missing")
		}
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.p.fail(e.field(local), "unknown value "+strconv.Quote(truncate(v)))
	return ""
}

// done reports the first attribute nobody consumed.
func (e *elem) done() {
	for i, u := range e.used {
		if !u {
			a := e.n.attrs[i]
			name := a.Name.Local
			if a.Name.Space != "" {
				name = "{" + a.Name.Space + "}" + name
			}
			e.p.fail(e.field(name), "unknown attribute")
			return
		}
	}
}

// noText refuses character data other than whitespace.
func (e *elem) noText() {
	if e.n.hasText() {
		e.p.fail(e.path, "unexpected text")
	}
}

// empty refuses any content.
func (e *elem) empty() {
	e.noText()
	if len(e.n.kids) > 0 {
		e.p.fail(e.path+"/"+e.n.kids[0].name.Local, "unexpected child element")
	}
}

// leaf reads an element that may only have attributes: all are consumed
// by the caller before calling leaf.
func (e *elem) leaf() {
	e.empty()
	e.done()
}

func (e *elem) kidPath(k *node) string { return e.path + "/" + k.name.Local }

// count fails when *n exceeds max for the child k.
func (e *elem) count(k *node, n *int, max int) bool {
	*n++
	if *n > max {
		e.p.fail(e.kidPath(k), "more than "+strconv.Itoa(max)+" elements")
		return false
	}
	return true
}

// once fails when a child that may appear once appears again.
func (e *elem) once(k *node, seen *bool) bool {
	if *seen {
		e.p.fail(e.kidPath(k), "duplicate element")
		return false
	}
	*seen = true
	return true
}

// unknown fails for a child in a namespace this package owns but with a
// name it does not define.
func (e *elem) unknown(k *node) {
	e.p.fail(e.kidPath(k), "unknown element {"+k.name.Space+"}"+k.name.Local)
}

// ownNamespaces are the namespaces whose elements this package defines.
// An element of one of them is accepted only where the package defines it
// and is parsed there; anywhere else, including deep inside an element of
// another namespace that is kept verbatim, it is refused, so that a
// XEP-0320 fingerprint, an ICE candidate or a Jingle content can never
// ride along unparsed where code reading the typed fields would not look.
var ownNamespaces = map[string]bool{
	NS: true, NSErrors: true, NSRTP: true, NSRTPInfo: true, NSICEUDP: true, NSDTLS: true,
	NSRTCPFB: true, NSHdrExt: true, NSGrouping: true, NSSSMA: true, NSJMI: true, NSRTPErrors: true,
}

// raw keeps a foreign child verbatim, bounded by MaxExtensions. The child
// must not be in a namespace of this package and must not contain such
// an element (see [ownNamespaces]).
func (e *elem) raw(k *node, n *int, dst *[]Raw) {
	kp := e.kidPath(k)
	if ownNamespaces[k.name.Space] {
		e.p.misplaced(k, kp)
		return
	}
	e.rawOwn(k, n, dst)
}

// rawOwn is raw for a child whose own namespace the caller has allowed
// (XEP-0167 informational payloads in a session-info, XEP-0167 error
// conditions in a reason): its descendants are still checked.
func (e *elem) rawOwn(k *node, n *int, dst *[]Raw) {
	if !e.count(k, n, MaxExtensions) {
		return
	}
	e.p.foreign(k, e.kidPath(k))
	if e.p.err == nil {
		*dst = append(*dst, rawOf(k))
	}
}

// foreign refuses every descendant of n in a namespace of this package.
func (p *parser) foreign(n *node, path string) {
	for _, k := range n.kids {
		kp := path + "/" + k.name.Local
		if ownNamespaces[k.name.Space] {
			p.misplaced(k, kp)
			return
		}
		p.foreign(k, kp)
		if p.err != nil {
			return
		}
	}
}

func (p *parser) misplaced(k *node, path string) {
	p.fail(path, "element "+fmtName(k.name)+" is not allowed here: this package parses that namespace only where its specification puts it")
}

// parseDecimal parses a canonical decimal: digits only, no leading zero
// except for "0".
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func isToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// isICEChar reports whether s consists of RFC 8445 ice-chars
// (ALPHA / DIGIT / "+" / "/").
func isICEChar(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func isNS(k *node, space, local string) bool {
	return k.name.Space == space && k.name.Local == local
}

func name(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

var _ = strings.TrimSpace
