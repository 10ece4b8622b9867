package jingle

import (
	"fmt"
	"strings"
	"time"
)

// DefaultPendingTimeout is how long a session may stay pending (initiated,
// not accepted) before [Session.Expired] reports it (implementation
// constant).
const DefaultPendingTimeout = 60 * time.Second

// State is the state of a Jingle session (XEP-0166 §5.1).
type State int

// Session states. A Session is created pending (the session-initiate is
// what creates it) and ENDED is terminal.
const (
	StatePending State = iota + 1
	StateActive
	StateEnded
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateActive:
		return "active"
	case StateEnded:
		return "ended"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Stanza error conditions (RFC 6120 §8.3.3) an [ActionError] carries.
const (
	CondBadRequest        = "bad-request"
	CondConflict          = "conflict"
	CondItemNotFound      = "item-not-found"
	CondNotAcceptable     = "not-acceptable"
	CondUnexpectedRequest = "unexpected-request"
)

// ActionError is why a [Session] refused a Jingle action: the stanza error
// condition and the Jingle condition (XEP-0166 §10) to answer the IQ-set
// with, which [ActionError.Payload] serializes. The same error is returned
// by Send for an action we must not send; it is then a local mistake, not
// something to put on the wire.
//
//   - out of order for the state machine, or the wrong party for the
//     action (a session-accept from the initiator, a content-accept of
//     one's own content-add): unexpected-request + out-of-order;
//   - an unknown or ended sid, or a stanza from another JID than the
//     session's peer: item-not-found + unknown-session (a session is the
//     pair of peer and sid: for anyone else it does not exist);
//   - a lost tie-break (XEP-0166 §7.2.16): conflict + tie-break;
//   - a malformed element, an unknown content or a creator that does not
//     match its sender: bad-request; too many contents: not-acceptable.
type ActionError struct {
	Action    Action
	SID       string
	Condition string         // RFC 6120 stanza error condition, one of the Cond constants
	Jingle    ErrorCondition // XEP-0166 §10 condition, "" for none
	Detail    string         // human-readable cause
	Err       error          // underlying error (a validation error), if any
}

func (e *ActionError) Error() string {
	var b strings.Builder
	b.WriteString("jingle: ")
	b.WriteString(string(e.Action))
	b.WriteString(" refused: ")
	b.WriteString(e.Condition)
	if e.Jingle != "" {
		b.WriteString(" (")
		b.WriteString(string(e.Jingle))
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *ActionError) Unwrap() error { return e.Err }

// Payload is the <error/> child of the IQ error reply (see [ErrorPayload]).
func (e *ActionError) Payload() []byte { return ErrorPayload(e.Condition, e.Jingle) }

func outOfOrder(j *Jingle, format string, args ...any) *ActionError {
	return &ActionError{Action: j.Action, SID: j.SID, Condition: CondUnexpectedRequest, Jingle: ErrOutOfOrder, Detail: fmt.Sprintf(format, args...)}
}

func unknownSession(j *Jingle, format string, args ...any) *ActionError {
	return &ActionError{Action: j.Action, SID: j.SID, Condition: CondItemNotFound, Jingle: ErrUnknownSession, Detail: fmt.Sprintf(format, args...)}
}

func badRequest(j *Jingle, format string, args ...any) *ActionError {
	return &ActionError{Action: j.Action, SID: j.SID, Condition: CondBadRequest, Detail: fmt.Sprintf(format, args...)}
}

func tieBreak(j *Jingle, format string, args ...any) *ActionError {
	return &ActionError{Action: j.Action, SID: j.SID, Condition: CondConflict, Jingle: ErrTieBreak, Detail: fmt.Sprintf(format, args...)}
}

// ContentKey names a content in a session: XEP-0166 §7.3 makes creator and
// name together unique.
type ContentKey struct {
	Creator Creator
	Name    string
}

func keyOf(c *Content) ContentKey {
	cr := c.Creator
	if cr == "" {
		cr = CreatorInitiator // the default of XEP-0166 §7.3
	}
	return ContentKey{cr, c.Name}
}

// ContentStatus is where a content stands in its negotiation.
type ContentStatus int

// Content statuses.
const (
	// ContentOffered: in the session-initiate, not yet accepted.
	ContentOffered ContentStatus = iota + 1
	// ContentAdding: in a content-add, awaiting content-accept or -reject.
	ContentAdding
	// ContentActive: accepted (session-accept or content-accept).
	ContentActive
)

// Event says what an accepted action did, beyond the state change.
type Event struct {
	Action Action
	State  State // the state after the action
	// Contents the action accepted (session-accept, content-accept),
	// added (content-add, pending), removed (content-reject,
	// content-remove, and the offered contents a session-accept left
	// out), or changed the senders of (content-modify).
	Accepted, Added, Removed, Modified []ContentKey
	// Dropped are the responder's pending content-adds or
	// transport-replaces that an initiator's content-add or
	// transport-replace overruled (XEP-0166 §7.2.16, existing session;
	// the rule holds whenever the responder's action is still pending, as
	// the responder cannot tell a crossing action from a later one). On
	// the responder's side they are its own: forget them, the initiator
	// answers them with a tie-break error.
	Dropped []ContentKey
	// ICERestart lists the contents whose transport-info carried a new
	// ufrag/pwd of the sender: an ICE restart (XEP-0176 §2.4) to answer
	// with new credentials of our own.
	ICERestart []ContentKey
	// Empty: no content is left after a content-reject or content-remove;
	// the receiver SHOULD terminate (XEP-0166 §7.2.4, §7.2.5).
	Empty bool
	// Ping: an empty session-info (XEP-0166 §6.8), answer with a result.
	Ping bool
	// Reason of a session-terminate.
	Reason *Reason
}

// SessionOption configures a [Session].
type SessionOption func(*Session) error

// WithPendingTimeout sets how long the session may stay pending before
// [Session.Expired] reports it; d must be positive. The default is
// DefaultPendingTimeout.
func WithPendingTimeout(d time.Duration) SessionOption {
	return func(s *Session) error {
		if d <= 0 {
			return fmt.Errorf("jingle: pending timeout %v is not positive", d)
		}
		s.timeout = d
		return nil
	}
}

type contentState struct {
	content Content // as last negotiated (application, transport, senders)
	status  ContentStatus
	addedBy Creator // who sent the content-add (ContentAdding)
	replace Creator // who sent an unanswered transport-replace, "" for none
}

// Session is the XEP-0166 state machine of one session, seen from one
// party: it checks every action we send ([Session.Send]) and receive
// ([Session.Receive]) against the state, the roles and the contents, and
// keeps the content bookkeeping (pending content-adds, transport-replaces,
// each party's ICE credentials). It is pure: no goroutines, no timers, no
// I/O; time is passed in ([Session.Expired]).
//
// A Session is made by [NewInitiator] or [NewResponder]; its zero value is
// not usable. It is not safe for concurrent use.
type Session struct {
	sid         string
	role        Creator
	local, peer string
	state       State
	created     time.Time
	timeout     time.Duration
	contents    map[ContentKey]*contentState
	order       []ContentKey
	ufrag, pwd  map[iceSlot]string // last ICE credentials of each party per content
	reason      *Reason
	endedByPeer bool
}

// NewInitiator starts the session of a session-initiate we are about to
// send to peer (a full JID) from local (our full JID), at now. The element
// must be valid ([Jingle.Validate]) with contents created by the
// initiator; it is not sent by this call. The error is an *[ActionError]
// (bad-request) or, for a bad option, a plain error.
func NewInitiator(local, peer string, initiate *Jingle, now time.Time, opts ...SessionOption) (*Session, error) {
	return newSession(CreatorInitiator, local, peer, initiate, now, opts)
}

// NewResponder starts the session of a session-initiate received from
// from (the initiator's full JID: XEP-0166 §7.1 says to treat it, not the
// initiator attribute, as the initiator) by local, at now. An error is an
// *[ActionError] to answer the IQ with (bad-request for a malformed
// element) or, for a bad option, a plain error. Before calling it for a
// session-initiate from a peer we have a pending outgoing session with,
// ask that session's [Session.TieBreak].
func NewResponder(local, from string, initiate *Jingle, now time.Time, opts ...SessionOption) (*Session, error) {
	return newSession(CreatorResponder, local, from, initiate, now, opts)
}

func newSession(role Creator, local, peer string, j *Jingle, now time.Time, opts []SessionOption) (*Session, error) {
	s := &Session{
		sid: j.SID, role: role, local: local, peer: peer, state: StatePending,
		created: now, timeout: DefaultPendingTimeout,
		contents: map[ContentKey]*contentState{},
		ufrag:    map[iceSlot]string{}, pwd: map[iceSlot]string{},
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if j.Action != ActionSessionInitiate {
		return nil, badRequest(j, "a session starts with session-initiate, not %s", j.Action)
	}
	if err := j.Validate(); err != nil {
		return nil, &ActionError{Action: j.Action, SID: j.SID, Condition: CondBadRequest, Detail: "invalid element", Err: err}
	}
	for i := range j.Contents {
		c := &j.Contents[i]
		k := keyOf(c)
		if k.Creator != CreatorInitiator {
			return nil, badRequest(j, "content %q of a session-initiate created by %s", c.Name, k.Creator)
		}
		if _, dup := s.contents[k]; dup {
			return nil, badRequest(j, "content %q twice", c.Name)
		}
		s.contents[k] = &contentState{content: cloneContent(c), status: ContentOffered}
		s.order = append(s.order, k)
		s.noteCredentials(CreatorInitiator, k, c.Transport)
	}
	return s, nil
}

// SID returns the session id.
func (s *Session) SID() string { return s.sid }

// Role returns our role: the author of the SDP in what we send (see
// [SDPToJingleAs]).
func (s *Session) Role() Creator { return s.role }

// PeerRole returns the peer's role: the author of the SDP in what we
// receive.
func (s *Session) PeerRole() Creator { return other(s.role) }

// Local and Peer return the full JIDs the session was made with.
func (s *Session) Local() string { return s.local }

// Peer returns the peer's full JID.
func (s *Session) Peer() string { return s.peer }

// State returns the current state.
func (s *Session) State() State { return s.state }

// Created returns when the session was made.
func (s *Session) Created() time.Time { return s.created }

// Reason returns the reason the session ended with (nil while it runs) and
// whether the peer ended it.
func (s *Session) Reason() (r *Reason, byPeer bool) { return s.reason, s.endedByPeer }

// Contents returns the contents of the session in the order they came,
// with their status; removed and rejected ones are gone.
func (s *Session) Contents() []Content {
	out := make([]Content, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, cloneContent(&s.contents[k].content))
	}
	return out
}

// Status returns the status of the content k, and false if the session
// has no such content.
func (s *Session) Status(k ContentKey) (ContentStatus, bool) {
	cs, ok := s.contents[k]
	if !ok {
		return 0, false
	}
	return cs.status, true
}

// Expired reports whether the session is still pending DefaultPendingTimeout
// (or WithPendingTimeout) after it was made, with the reason to terminate
// it with: timeout ("a request has not been answered", XEP-0166 §7.4).
// The caller sends the session-terminate (through [Session.Send]).
func (s *Session) Expired(now time.Time) (ReasonCondition, bool) {
	if s.state == StatePending && !now.Before(s.created.Add(s.timeout)) {
		return ReasonTimeout, true
	}
	return "", false
}

// End ends the session locally without a session-terminate: the peer
// answered our session-initiate with an error, or is gone. It is a no-op
// on an ended session.
func (s *Session) End(reason ReasonCondition) {
	if s.state == StateEnded {
		return
	}
	s.state = StateEnded
	s.reason = &Reason{Condition: reason}
}

// WithdrawReplace forgets our transport-replace j (sent through
// [Session.Send]) whose IQ failed: the peer answered it with an error, or
// no answer came. The contents of j no longer have our replace pending,
// so that another one may go out; a transport-accept or -reject of the
// withdrawn one that still arrives is then out of order. An error (and
// no change) when j is not a transport-replace of ours still pending.
func (s *Session) WithdrawReplace(j *Jingle) error {
	if j.Action != ActionTransportReplace || j.SID != s.sid {
		return badRequest(j, "not a transport-replace of session %q", s.sid)
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		if cs, ok := s.contents[k]; !ok || cs.replace != s.role {
			return outOfOrder(j, "content %q has no transport-replace of ours pending", k.Name)
		}
	}
	for i := range j.Contents {
		s.contents[keyOf(&j.Contents[i])].replace = ""
	}
	return nil
}

// Send checks an action we are about to send and applies it: the session
// ends as soon as we send session-terminate (XEP-0166 §6.7). An error is
// an *[ActionError] saying why the action must not be sent; the session is
// unchanged then.
func (s *Session) Send(j *Jingle) (Event, error) {
	return s.apply(s.role, j)
}

// Receive checks an action received from from (a full JID) and applies
// it. An error is an *[ActionError] to answer the IQ-set with (see
// [ActionError.Payload]); the session is unchanged then. On success
// answer with an empty IQ result; the Event says what changed.
func (s *Session) Receive(from string, j *Jingle) (Event, error) {
	if from != s.peer {
		return Event{}, unknownSession(j, "no session %q with %s", j.SID, from)
	}
	return s.apply(other(s.role), j)
}

// TieBreak decides, on our pending outgoing session s, a session-initiate
// j received from from while s waits for its session-accept (XEP-0166
// §7.2.16, "no existing session"). It applies when from is s's peer, j
// asks for the same application types as s (the same set of description
// namespaces: RTP audio and video are one application) and s is still
// pending; otherwise it returns TieBreakNone and j is an ordinary
// session-initiate. The session-initiate with the lower sid (i;octet,
// byte-wise) overrules the other; equal sids go to the lower JID.
//
// TieBreakOurs: answer j with the returned *ActionError (conflict +
// tie-break) and keep s. TieBreakTheirs: s is over (ended here with reason
// alternative-session naming j's sid; send nothing for it, the peer
// answers our session-initiate with a tie-break error) and j is answered
// as usual, e.g. with [NewResponder].
func (s *Session) TieBreak(from string, j *Jingle) (TieBreakResult, *ActionError) {
	if s.role != CreatorInitiator || s.state != StatePending || from != s.peer || j.Action != ActionSessionInitiate {
		return TieBreakNone, nil
	}
	if !sameApplications(s.applications(), applicationsOf(j.Contents)) {
		return TieBreakNone, nil
	}
	ours := s.sid < j.SID || s.sid == j.SID && s.local < s.peer
	if ours {
		return TieBreakOurs, tieBreak(j, "our session-initiate %q overrules %q", s.sid, j.SID)
	}
	s.state = StateEnded
	s.reason = &Reason{Condition: ReasonAlternativeSession, AlternativeSID: j.SID}
	return TieBreakTheirs, nil
}

// TieBreakResult is the outcome of [Session.TieBreak] and
// [Proposal.TieBreak].
type TieBreakResult int

// Tie-break outcomes.
const (
	TieBreakNone   TieBreakResult = iota // no tie: handle the message as usual
	TieBreakOurs                         // ours overrules: refuse theirs
	TieBreakTheirs                       // theirs overrules: ours is over
)

func (r TieBreakResult) String() string {
	switch r {
	case TieBreakNone:
		return "none"
	case TieBreakOurs:
		return "ours"
	case TieBreakTheirs:
		return "theirs"
	}
	return fmt.Sprintf("TieBreakResult(%d)", int(r))
}

func (s *Session) applications() map[string]bool {
	cs := make([]Content, 0, len(s.order))
	for _, k := range s.order {
		cs = append(cs, s.contents[k].content)
	}
	return applicationsOf(cs)
}

func applicationsOf(cs []Content) map[string]bool {
	apps := map[string]bool{}
	for i := range cs {
		if cs[i].Description != nil {
			apps[NSRTP] = true
		}
		for _, r := range cs[i].Other {
			if r.XMLName.Local == "description" {
				apps[r.XMLName.Space] = true
			}
		}
	}
	return apps
}

func sameApplications(a, b map[string]bool) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func other(c Creator) Creator {
	if c == CreatorInitiator {
		return CreatorResponder
	}
	return CreatorInitiator
}

// apply checks j sent by the party in role by and applies it on success.
// Checks come first, changes last, so that a refused action changes
// nothing.
func (s *Session) apply(by Creator, j *Jingle) (Event, error) {
	if j.SID != s.sid {
		return Event{}, unknownSession(j, "sid %q is not this session's %q", j.SID, s.sid)
	}
	if s.state == StateEnded {
		return Event{}, unknownSession(j, "session %q has ended", s.sid)
	}
	if err := j.Validate(); err != nil {
		return Event{}, &ActionError{Action: j.Action, SID: j.SID, Condition: CondBadRequest, Detail: "invalid element", Err: err}
	}
	ev := Event{Action: j.Action}
	var err *ActionError
	switch j.Action {
	case ActionSessionInitiate:
		err = outOfOrder(j, "session %q already exists", s.sid)
	case ActionSessionAccept:
		err = s.sessionAccept(by, j, &ev)
	case ActionSessionTerminate:
		s.state = StateEnded
		s.reason = cloneReason(j.Reason)
		s.endedByPeer = by != s.role
		ev.Reason = cloneReason(j.Reason)
	case ActionSessionInfo:
		ev.Ping = len(j.Info) == 0 && len(j.Contents) == 0
	case ActionDescriptionInfo, ActionSecurityInfo:
		err = s.known(j)
	case ActionTransportInfo:
		err = s.transportInfo(by, j, &ev)
	case ActionContentAdd:
		err = s.contentAdd(by, j, &ev)
	case ActionContentAccept, ActionContentReject:
		err = s.contentAnswer(by, j, &ev)
	case ActionContentRemove:
		err = s.contentRemove(j, &ev)
	case ActionContentModify:
		err = s.contentModify(j, &ev)
	case ActionTransportReplace:
		err = s.transportReplace(by, j, &ev)
	case ActionTransportAccept, ActionTransportReject:
		err = s.transportAnswer(by, j)
	default:
		err = badRequest(j, "unknown action")
	}
	if err != nil {
		return Event{}, err
	}
	ev.State = s.state
	return ev, nil
}

// known checks that every content of j is one of the session.
func (s *Session) known(j *Jingle) *ActionError {
	for i := range j.Contents {
		if _, ok := s.contents[keyOf(&j.Contents[i])]; !ok {
			return badRequest(j, "unknown content %s/%q", keyOf(&j.Contents[i]).Creator, j.Contents[i].Name)
		}
	}
	return nil
}

func (s *Session) sessionAccept(by Creator, j *Jingle, ev *Event) *ActionError {
	if s.state != StatePending {
		return outOfOrder(j, "session %q is %s", s.sid, s.state)
	}
	if by != CreatorResponder {
		return outOfOrder(j, "only the responder accepts a session")
	}
	in := map[ContentKey]bool{}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		cs, ok := s.contents[k]
		if !ok {
			return badRequest(j, "session-accept of unknown content %s/%q", k.Creator, k.Name)
		}
		if cs.status == ContentAdding && cs.addedBy != CreatorInitiator {
			return outOfOrder(j, "content %q is the responder's own content-add", k.Name)
		}
		in[k] = true
	}
	for i := range j.Contents {
		c := &j.Contents[i]
		k := keyOf(c)
		cs := s.contents[k]
		cs.status = ContentActive
		cs.content = mergeContent(cs.content, c)
		s.noteCredentials(by, k, c.Transport)
		ev.Accepted = append(ev.Accepted, k)
	}
	// Offered contents the answer leaves out are rejected.
	for _, k := range append([]ContentKey(nil), s.order...) {
		if cs := s.contents[k]; !in[k] && cs.status == ContentOffered {
			s.remove(k)
			ev.Removed = append(ev.Removed, k)
		}
	}
	s.state = StateActive
	return nil
}

func (s *Session) transportInfo(by Creator, j *Jingle, ev *Event) *ActionError {
	if err := s.known(j); err != nil {
		return err
	}
	for i := range j.Contents {
		c := &j.Contents[i]
		k := keyOf(c)
		if c.Transport == nil {
			continue // another transport namespace, kept in Other
		}
		if s.noteCredentials(by, k, c.Transport) {
			ev.ICERestart = append(ev.ICERestart, k)
		}
	}
	return nil
}

// iceSlot keys the credentials of one party for one content.
type iceSlot struct {
	by Creator
	k  ContentKey
}

func iceKey(by Creator, k ContentKey) iceSlot { return iceSlot{by, k} }

// noteCredentials records the ICE credentials t carries for party by and
// content k, and reports whether they replace different ones (an ICE
// restart).
func (s *Session) noteCredentials(by Creator, k ContentKey, t *Transport) bool {
	if t == nil || t.Ufrag == "" && t.Pwd == "" {
		return false
	}
	key := iceKey(by, k)
	oldU, had := s.ufrag[key]
	oldP := s.pwd[key]
	s.ufrag[key], s.pwd[key] = t.Ufrag, t.Pwd
	return had && (oldU != t.Ufrag || oldP != t.Pwd)
}

// Credentials returns the last ICE ufrag and pwd party by sent for the
// content k ("" when none yet).
func (s *Session) Credentials(by Creator, k ContentKey) (ufrag, pwd string) {
	key := iceKey(by, k)
	return s.ufrag[key], s.pwd[key]
}

func (s *Session) contentAdd(by Creator, j *Jingle, ev *Event) *ActionError {
	if len(s.contents)+len(j.Contents) > MaxContents {
		return &ActionError{Action: j.Action, SID: j.SID, Condition: CondNotAcceptable, Detail: fmt.Sprintf("more than %d contents", MaxContents)}
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		if k.Creator != by {
			return badRequest(j, "content %q added by the %s with creator %s (XEP-0166 §7.3)", k.Name, by, k.Creator)
		}
		if _, dup := s.contents[k]; dup {
			return badRequest(j, "content %s/%q exists", k.Creator, k.Name)
		}
	}
	// Crossing content-adds: the initiator's overrules (XEP-0166 §7.2.16,
	// existing session). The responder cannot tell a crossing content-add
	// from a later one, so the rule holds on both sides whenever the other
	// party's content-add is pending: the initiator's drops the
	// responder's, the responder's waits for the initiator's to be
	// answered.
	var dropped []ContentKey
	for _, k := range s.order {
		cs := s.contents[k]
		if cs.status != ContentAdding || cs.addedBy == by {
			continue
		}
		switch {
		case by == CreatorInitiator:
			dropped = append(dropped, k)
		case by == s.role:
			return outOfOrder(j, "answer the initiator's content-add of %q first", k.Name)
		default:
			return tieBreak(j, "our content-add of %q is pending", k.Name)
		}
	}
	for _, k := range dropped {
		s.remove(k)
	}
	ev.Dropped = dropped
	for i := range j.Contents {
		c := &j.Contents[i]
		k := keyOf(c)
		s.contents[k] = &contentState{content: cloneContent(c), status: ContentAdding, addedBy: by}
		s.order = append(s.order, k)
		s.noteCredentials(by, k, c.Transport)
		ev.Added = append(ev.Added, k)
	}
	return nil
}

func (s *Session) contentAnswer(by Creator, j *Jingle, ev *Event) *ActionError {
	if err := s.known(j); err != nil {
		return err
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		cs := s.contents[k]
		if cs.status != ContentAdding || cs.addedBy == by {
			return outOfOrder(j, "content %q has no content-add of the other party pending", k.Name)
		}
	}
	for i := range j.Contents {
		c := &j.Contents[i]
		k := keyOf(c)
		if j.Action == ActionContentAccept {
			cs := s.contents[k]
			cs.status = ContentActive
			cs.content = mergeContent(cs.content, c)
			s.noteCredentials(by, k, c.Transport)
			ev.Accepted = append(ev.Accepted, k)
		} else {
			s.remove(k)
			ev.Removed = append(ev.Removed, k)
		}
	}
	ev.Empty = len(s.contents) == 0
	return nil
}

func (s *Session) contentRemove(j *Jingle, ev *Event) *ActionError {
	if err := s.known(j); err != nil {
		return err
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		s.remove(k)
		ev.Removed = append(ev.Removed, k)
	}
	ev.Empty = len(s.contents) == 0
	return nil
}

func (s *Session) contentModify(j *Jingle, ev *Event) *ActionError {
	if err := s.known(j); err != nil {
		return err
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		if s.contents[k].status == ContentAdding {
			return outOfOrder(j, "content %q is not accepted yet", k.Name)
		}
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		s.contents[k].content.Senders = j.Contents[i].Senders
		ev.Modified = append(ev.Modified, k)
	}
	return nil
}

func (s *Session) transportReplace(by Creator, j *Jingle, ev *Event) *ActionError {
	if err := s.known(j); err != nil {
		return err
	}
	var dropped []ContentKey
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		cs := s.contents[k]
		if cs.status == ContentAdding {
			return outOfOrder(j, "content %q is not accepted yet", k.Name)
		}
		switch cs.replace {
		case "":
		case by:
			return outOfOrder(j, "a transport-replace of %q is already pending", k.Name)
		default: // the same rule as for content-add
			switch {
			case by == CreatorInitiator:
				dropped = append(dropped, k)
			case by == s.role:
				return outOfOrder(j, "answer the initiator's transport-replace of %q first", k.Name)
			default:
				return tieBreak(j, "our transport-replace of %q is pending", k.Name)
			}
		}
	}
	ev.Dropped = dropped
	for i := range j.Contents {
		s.contents[keyOf(&j.Contents[i])].replace = by
	}
	return nil
}

func (s *Session) transportAnswer(by Creator, j *Jingle) *ActionError {
	if err := s.known(j); err != nil {
		return err
	}
	for i := range j.Contents {
		k := keyOf(&j.Contents[i])
		if r := s.contents[k].replace; r == "" || r == by {
			return outOfOrder(j, "content %q has no transport-replace of the other party pending", k.Name)
		}
	}
	for i := range j.Contents {
		c := &j.Contents[i]
		k := keyOf(c)
		cs := s.contents[k]
		cs.replace = ""
		if j.Action == ActionTransportAccept {
			cs.content.Transport = cloneTransport(c.Transport)
			s.noteCredentials(by, k, c.Transport)
		}
	}
	return nil
}

func (s *Session) remove(k ContentKey) {
	delete(s.contents, k)
	for i, o := range s.order {
		if o == k {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	for _, by := range []Creator{CreatorInitiator, CreatorResponder} {
		delete(s.ufrag, iceKey(by, k))
		delete(s.pwd, iceKey(by, k))
	}
}

// mergeContent takes the answer's application and transport where it has
// them (the negotiated state), keeping the offer's otherwise.
func mergeContent(old Content, answer *Content) Content {
	n := cloneContent(answer)
	if n.Description == nil {
		n.Description = old.Description
	}
	if n.Transport == nil {
		n.Transport = old.Transport
	}
	if n.Senders == "" {
		n.Senders = old.Senders
	}
	if len(n.Other) == 0 {
		n.Other = old.Other
	}
	return n
}

// cloneContent copies the parts the session keeps, so that the caller's
// later changes to its elements do not reach the session.
func cloneContent(c *Content) Content {
	n := *c
	if c.Description != nil {
		d := *c.Description
		d.PayloadTypes = append([]PayloadType(nil), d.PayloadTypes...)
		d.Sources = append([]Source(nil), d.Sources...)
		n.Description = &d
	}
	n.Transport = cloneTransport(c.Transport)
	n.Other = append([]Raw(nil), c.Other...)
	return n
}

func cloneTransport(t *Transport) *Transport {
	if t == nil {
		return nil
	}
	n := *t
	n.Candidates = append([]Candidate(nil), t.Candidates...)
	if t.Fingerprint != nil {
		f := *t.Fingerprint
		n.Fingerprint = &f
	}
	return &n
}

func cloneReason(r *Reason) *Reason {
	if r == nil {
		return nil
	}
	n := *r
	return &n
}
