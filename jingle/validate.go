package jingle

import (
	"errors"
	"strconv"
)

// Validate checks j against the rules of its action (XEP-0166 §7.2) and
// against the bounds and enumerations that [Parse] enforces, so that a
// hand-built element can be checked before it is sent. It returns a
// *[ValidationError] matching [ErrInvalid], or nil.
//
// Rules: the action is known and the sid is a non-empty token of at most
// MaxIDLen bytes; content names are unique; session-initiate,
// session-accept and content-add need at least one content, each with an
// application (a description) and a transport; transport-info,
// transport-replace, transport-accept and transport-reject need contents
// with a transport; description-info needs contents with a description;
// content-accept, content-modify, content-reject, content-remove and
// security-info need at least one content, and content-modify a senders
// value; session-terminate needs a reason; groups of a session-initiate
// or session-accept name contents of the element. The initiator attribute
// of a session-initiate is recommended (SHOULD) by XEP-0166 §7.1 but not
// required here.
func (j *Jingle) Validate() error {
	v := validator{action: j.Action}
	known := false
	for _, a := range actions {
		known = known || string(j.Action) == a
	}
	if !known {
		return v.fail("action", "unknown action "+strconv.Quote(truncate(string(j.Action))))
	}
	if j.SID == "" || len(j.SID) > MaxIDLen || !isToken(j.SID) {
		return v.fail("sid", "missing or not a token of at most "+strconv.Itoa(MaxIDLen)+" bytes")
	}
	if len(j.Contents) > MaxContents {
		return v.fail("content", "more than "+strconv.Itoa(MaxContents)+" contents")
	}
	names := map[string]bool{}
	for i := range j.Contents {
		c := &j.Contents[i]
		if c.Name == "" {
			return v.fail(cpath(i), "content without a name")
		}
		if names[c.Name] {
			return v.fail(cpath(i), "duplicate content name "+strconv.Quote(truncate(c.Name)))
		}
		names[c.Name] = true
	}

	needContents := func() error {
		if len(j.Contents) == 0 {
			return v.fail("content", "needs at least one content")
		}
		return nil
	}
	var err error
	switch j.Action {
	case ActionSessionInitiate, ActionSessionAccept, ActionContentAdd:
		if err = needContents(); err != nil {
			return err
		}
		for i := range j.Contents {
			c := &j.Contents[i]
			if !c.HasApplication() {
				return v.fail(cpath(i), "content without an application description")
			}
			if !c.HasTransport() {
				return v.fail(cpath(i), "content without a transport")
			}
			if c.Description != nil && c.Description.Media == "" {
				return v.fail(cpath(i)+"/description", "RTP description without media (XEP-0167)")
			}
		}
	case ActionTransportInfo, ActionTransportReplace, ActionTransportAccept, ActionTransportReject:
		if err = needContents(); err != nil {
			return err
		}
		for i := range j.Contents {
			if !j.Contents[i].HasTransport() {
				return v.fail(cpath(i), "content without a transport")
			}
		}
	case ActionDescriptionInfo:
		if err = needContents(); err != nil {
			return err
		}
		for i := range j.Contents {
			if !j.Contents[i].HasApplication() {
				return v.fail(cpath(i), "content without an application description")
			}
		}
	case ActionContentModify:
		if err = needContents(); err != nil {
			return err
		}
		for i := range j.Contents {
			if j.Contents[i].Senders == "" {
				return v.fail(cpath(i), "content-modify without senders (XEP-0166 §7.2, content-modify)")
			}
		}
	case ActionContentAccept, ActionContentReject, ActionContentRemove, ActionSecurityInfo:
		if err = needContents(); err != nil {
			return err
		}
	case ActionSessionTerminate:
		if j.Reason == nil {
			return v.fail("reason", "session-terminate without a reason (XEP-0166 §6.7)")
		}
	}
	if j.Reason != nil {
		if !j.Reason.Condition.Known() {
			return v.fail("reason", "unknown condition "+strconv.Quote(truncate(string(j.Reason.Condition))))
		}
		if j.Reason.Condition == ReasonAlternativeSession && j.Reason.AlternativeSID == "" {
			return v.fail("reason", "alternative-session without a sid")
		}
	}
	if j.Action == ActionSessionInitiate || j.Action == ActionSessionAccept {
		for gi, g := range j.Groups {
			for _, gc := range g.Contents {
				if !names[gc.Name] {
					return v.fail("group["+strconv.Itoa(gi)+"]", "names content "+strconv.Quote(truncate(gc.Name))+" that the element does not have")
				}
			}
		}
	}
	// Everything Parse enforces (enumerations, ranges, fingerprint syntax,
	// counts, names, the place of every element) is checked by serializing
	// and parsing again; the result must be j itself.
	if _, _, err := encodeAs(j, j.node(), Parse); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			return v.fail(pe.Field, pe.Reason)
		}
		return v.fail("", err.Error())
	}
	return nil
}

type validator struct{ action Action }

func (v validator) fail(field, reason string) error {
	return &ValidationError{Action: v.action, Field: field, Reason: reason}
}

func cpath(i int) string { return "content[" + strconv.Itoa(i) + "]" }

// HasApplication reports whether c carries an application description:
// the XEP-0167 one or a <description/> of another namespace.
func (c *Content) HasApplication() bool {
	if c.Description != nil {
		return true
	}
	for _, r := range c.Other {
		if r.XMLName.Local == "description" {
			return true
		}
	}
	return false
}

// HasTransport reports whether c carries a transport: the XEP-0176 one or
// a <transport/> of another namespace.
func (c *Content) HasTransport() bool {
	if c.Transport != nil {
		return true
	}
	for _, r := range c.Other {
		if r.XMLName.Local == "transport" {
			return true
		}
	}
	return false
}
