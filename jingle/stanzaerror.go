package jingle

import "strings"

// stanzaErrorTypes gives the error type each RFC 6120 §8.3.3 condition is
// sent with. Where XEP-0166 §10 shows an example, its type is used
// (unexpected-request+out-of-order is "wait", feature-not-implemented+
// unsupported-info is "modify").
var stanzaErrorTypes = map[string]string{
	"bad-request":             "modify",
	"conflict":                "cancel",
	"feature-not-implemented": "modify",
	"forbidden":               "auth",
	"gone":                    "cancel",
	"internal-server-error":   "cancel",
	"item-not-found":          "cancel",
	"jid-malformed":           "modify",
	"not-acceptable":          "cancel",
	"not-allowed":             "cancel",
	"not-authorized":          "auth",
	"policy-violation":        "modify",
	"recipient-unavailable":   "wait",
	"redirect":                "modify",
	"registration-required":   "auth",
	"remote-server-not-found": "cancel",
	"remote-server-timeout":   "wait",
	"resource-constraint":     "wait",
	"service-unavailable":     "cancel",
	"subscription-required":   "auth",
	"undefined-condition":     "cancel",
	"unexpected-request":      "wait",
}

var jingleErrors = map[ErrorCondition]bool{
	ErrOutOfOrder: true, ErrTieBreak: true, ErrUnknownSession: true,
	ErrUnsupportedInfo: true, ErrSecurityRequired: true,
}

// Known reports whether c is one of the conditions of XEP-0166 §10.
func (c ErrorCondition) Known() bool { return jingleErrors[c] }

// StanzaCondition returns the stanza error condition XEP-0166 §10 pairs
// with c: unexpected-request for out-of-order, conflict for tie-break,
// item-not-found for unknown-session, feature-not-implemented for
// unsupported-info and not-acceptable for security-required.
func (c ErrorCondition) StanzaCondition() string {
	switch c {
	case ErrOutOfOrder:
		return "unexpected-request"
	case ErrTieBreak:
		return "conflict"
	case ErrUnknownSession:
		return "item-not-found"
	case ErrUnsupportedInfo:
		return "feature-not-implemented"
	case ErrSecurityRequired:
		return "not-acceptable"
	}
	return "undefined-condition"
}

// ErrorPayload returns the <error/> child of an IQ error reply (RFC 6120
// §8.3) with the stanza condition stanzaCond and, unless jc is empty, the
// Jingle condition jc of XEP-0166 §10, e.g.
//
//	<error type='wait'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><out-of-order xmlns='urn:xmpp:jingle:errors:1'/></error>
//
// The <error/> carries no namespace of its own: it inherits the stanza's
// (jabber:client). An unknown stanzaCond or jc is a programming error and
// panics.
func ErrorPayload(stanzaCond string, jc ErrorCondition) []byte {
	typ, ok := stanzaErrorTypes[stanzaCond]
	if !ok {
		panic("jingle: ErrorPayload: unknown stanza error condition " + stanzaCond)
	}
	if jc != "" && !jc.Known() {
		panic("jingle: ErrorPayload: unknown Jingle error condition " + string(jc))
	}
	var b strings.Builder
	b.WriteString("<error type='")
	b.WriteString(typ)
	b.WriteString("'><")
	b.WriteString(stanzaCond)
	b.WriteString(" xmlns='" + NSStanzas + "'/>")
	if jc != "" {
		b.WriteString("<")
		b.WriteString(string(jc))
		b.WriteString(" xmlns='" + NSErrors + "'/>")
	}
	b.WriteString("</error>")
	return []byte(b.String())
}

// StanzaError is the content of a stanza <error/> as far as Jingle needs
// it (RFC 6120 §8.3, XEP-0166 §10). The zero value means "no error".
type StanzaError struct {
	Type      string         // cancel, continue, modify, auth, wait
	Condition string         // the RFC 6120 §8.3.3 condition
	Text      string         // <text/>, if any
	Jingle    ErrorCondition // the XEP-0166 §10 condition, if any
}

// ParseStanzaError reads an <error/> element (in any namespace, as it
// inherits the stanza's) or an <iq type='error'/> holding one. It fails,
// with an error matching [ErrMalformed], for input that is not such an
// element, has no defined stanza condition, or exceeds the size limits.
func ParseStanzaError(b []byte) (StanzaError, error) {
	n, err := parseTree(b, "error")
	if err != nil {
		return StanzaError{}, err
	}
	if n.name.Local == "iq" {
		var found *node
		for _, k := range n.kids {
			if k.name.Local == "error" && k.name.Space == n.name.Space {
				found = k
				break
			}
		}
		if found == nil {
			return StanzaError{}, &ParseError{Field: "iq", Reason: "no error child"}
		}
		n = found
	}
	if n.name.Local != "error" {
		return StanzaError{}, &ParseError{Field: "error", Reason: "root is " + fmtName(n.name) + ", want error"}
	}
	var se StanzaError
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == "type" {
			se.Type = a.Value
		}
	}
	switch se.Type {
	case "cancel", "continue", "modify", "auth", "wait":
	default:
		return StanzaError{}, &ParseError{Field: "error@type", Reason: "unknown error type " + truncate(se.Type)}
	}
	for _, k := range n.kids {
		switch k.name.Space {
		case NSStanzas:
			if k.name.Local == "text" {
				se.Text = strings.TrimSpace(k.text())
				continue
			}
			if _, ok := stanzaErrorTypes[k.name.Local]; ok && se.Condition == "" {
				se.Condition = k.name.Local
			}
		case NSErrors:
			if c := ErrorCondition(k.name.Local); c.Known() && se.Jingle == "" {
				se.Jingle = c
			}
		}
	}
	if se.Condition == "" {
		return StanzaError{}, &ParseError{Field: "error", Reason: "no defined stanza error condition"}
	}
	return se, nil
}

// ParseErrorCondition returns the XEP-0166 §10 condition (out-of-order,
// tie-break, unknown-session, unsupported-info, security-required) of an
// <error/> element (see [ParseStanzaError] for what is accepted), and
// false when there is none or the element is malformed.
func ParseErrorCondition(errorElement []byte) (ErrorCondition, bool) {
	se, err := ParseStanzaError(errorElement)
	if err != nil || se.Jingle == "" {
		return "", false
	}
	return se.Jingle, true
}
