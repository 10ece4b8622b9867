package jingle

import (
	"errors"
	"fmt"
)

// ErrMalformed is matched (with errors.Is) by every error that [Parse],
// [ParseJMI], [ParseDescription] and [ParseReason] return for input that
// is not a well-formed, bounded element of the expected shape. A Jingle
// responder answers such a request with a bad-request stanza error
// (XEP-0166 §6.3.2).
var ErrMalformed = errors.New("jingle: malformed element")

// ErrInvalid is matched (with errors.Is) by every error that
// [Jingle.Validate] returns: the element is well formed but breaks a rule
// of its action (XEP-0166 §7.2).
var ErrInvalid = errors.New("jingle: invalid element")

// ParseError says which part of an element was rejected and why. It
// matches [ErrMalformed] with errors.Is. It is an immutable value once
// returned.
type ParseError struct {
	// Field locates the rejected part as a slash-separated element path
	// from the root, with "@name" for an attribute, e.g.
	// "jingle/content/transport/candidate@port". It is "xml" for input
	// that is not well-formed XML.
	Field string
	// Reason is a short human-readable explanation.
	Reason string
}

// Error returns "jingle: malformed element: <field>: <reason>".
func (e *ParseError) Error() string {
	return fmt.Sprintf("jingle: malformed element: %s: %s", e.Field, e.Reason)
}

// Unwrap returns [ErrMalformed].
func (e *ParseError) Unwrap() error { return ErrMalformed }

// ValidationError says which rule of XEP-0166 §7.2 an element breaks. It
// matches [ErrInvalid] with errors.Is. It is an immutable value once
// returned.
type ValidationError struct {
	Action Action // the action of the element
	Field  string // the offending part, e.g. "content[0]/transport"
	Reason string
}

// Error returns "jingle: invalid <action>: <field>: <reason>".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("jingle: invalid %s: %s", e.Action, e.Reason)
	}
	return fmt.Sprintf("jingle: invalid %s: %s: %s", e.Action, e.Field, e.Reason)
}

// Unwrap returns [ErrInvalid].
func (e *ValidationError) Unwrap() error { return ErrInvalid }
