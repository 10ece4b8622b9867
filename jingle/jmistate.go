package jingle

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Implementation constants of the XEP-0353 state machine.
const (
	// DefaultRingTimeout is how long a proposal may ring unanswered
	// before [Proposal.Expired] reports it.
	DefaultRingTimeout = 45 * time.Second
	// MaxProposalDevices bounds the callee devices a caller tracks as
	// ringing for one proposal (a peer controls how many answer).
	MaxProposalDevices = 32
)

// ProposalState is where a XEP-0353 proposal stands.
type ProposalState int

// Proposal states. Rejected, Retracted, Finished and AnsweredElsewhere
// are terminal.
const (
	ProposalProposed ProposalState = iota + 1
	ProposalRinging
	// ProposalProceeding: a callee device said proceed (caller side), or
	// we did (callee side); the Jingle session follows.
	ProposalProceeding
	ProposalRejected
	ProposalRetracted
	ProposalFinished
	// ProposalAnsweredElsewhere: callee side, another of our own devices
	// took the call.
	ProposalAnsweredElsewhere
)

var proposalStateNames = map[ProposalState]string{
	ProposalProposed: "proposed", ProposalRinging: "ringing", ProposalProceeding: "proceeding",
	ProposalRejected: "rejected", ProposalRetracted: "retracted", ProposalFinished: "finished",
	ProposalAnsweredElsewhere: "answered-elsewhere",
}

func (s ProposalState) String() string {
	if n, ok := proposalStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("ProposalState(%d)", int(s))
}

// Terminal reports whether no message changes the state any more.
func (s ProposalState) Terminal() bool {
	return s == ProposalRejected || s == ProposalRetracted || s == ProposalFinished || s == ProposalAnsweredElsewhere
}

// Sentinels of the JMI state machine; every error a [Proposal] returns is
// a *[JMIError] wrapping one of them. JMI messages get no error reply:
// the caller drops the message (and may tell the sender, e.g. that the
// call is over).
var (
	// ErrJMIUnexpected: the message cannot occur in this state or from
	// this side (a proceed after a retract, a retract from the callee).
	ErrJMIUnexpected = errors.New("jingle: unexpected JMI message")
	// ErrJMIWrongSender: the message is from neither the other party nor
	// one of our own devices, or is about another id.
	ErrJMIWrongSender = errors.New("jingle: JMI message from the wrong sender")
)

// JMIError says which message a [Proposal] refused and why.
type JMIError struct {
	Err   error // ErrJMIUnexpected or ErrJMIWrongSender
	Kind  JMIKind
	ID    string
	From  string // "" for a message we send
	State ProposalState
}

func (e *JMIError) Error() string {
	s := fmt.Sprintf("%v: %s for %q in state %s", e.Err, e.Kind, e.ID, e.State)
	if e.From != "" {
		s += " from " + e.From
	}
	return s
}

// Unwrap returns the sentinel.
func (e *JMIError) Unwrap() error { return e.Err }

// ProposalOutcome says what a message did and whom to tell.
type ProposalOutcome struct {
	State ProposalState // the state after the message
	// Winner (caller side) is the callee device whose proceed came first:
	// the one to send the session-initiate to. Set from the deciding
	// proceed on.
	Winner string
	// AnsweredElsewhere (caller side) lists callee devices to tell that
	// the call was answered on another device: on the deciding proceed,
	// the devices that rang other than the winner; on a later proceed,
	// its sender.
	AnsweredElsewhere []string
	// StopRinging (callee side): stop ringing; OtherDevice says which of
	// our own devices took or rejected the call, "" when the caller
	// retracted.
	StopRinging bool
	OtherDevice string
	// Ignored: a duplicate or late message that changes nothing.
	Ignored bool
	// Reason of a reject, retract or finish.
	Reason *Reason
}

// ProposalOption configures a [Proposal].
type ProposalOption func(*Proposal) error

// WithRingTimeout sets how long the proposal may ring before
// [Proposal.Expired] reports it; d must be positive. The default is
// DefaultRingTimeout.
func WithRingTimeout(d time.Duration) ProposalOption {
	return func(p *Proposal) error {
		if d <= 0 {
			return fmt.Errorf("jingle: ring timeout %v is not positive", d)
		}
		p.timeout = d
		return nil
	}
}

// Proposal is the XEP-0353 state machine of one call id, on the caller's
// side (we sent the propose to the callee's bare JID, several of its
// devices may ring and answer: the first proceed wins) or on the
// callee's (a propose reached all our devices: when another of them takes
// or rejects the call, this one stops ringing). It is pure: no goroutines,
// no timers; time is passed in ([Proposal.Expired]).
//
// A Proposal is made by [NewOutgoingProposal] or [NewIncomingProposal]; its
// zero value is not usable. It is not safe for concurrent use.
type Proposal struct {
	id      string
	caller  bool
	local   string // our full JID
	peer    string // caller side: the callee's bare JID; callee side: the caller's full JID
	state   ProposalState
	created time.Time
	timeout time.Duration
	ringing []string
	winner  string
	reason  *Reason
}

// NewOutgoingProposal tracks the propose we send from local (our full
// JID) to peer (the callee's bare JID) at now.
func NewOutgoingProposal(local, peer string, propose *JMI, now time.Time, opts ...ProposalOption) (*Proposal, error) {
	return newProposal(true, local, bareJID(peer), propose, now, opts)
}

// NewIncomingProposal tracks a propose that local (our full JID) received
// from from (the caller's full JID) at now: the device rings until
// something else happens.
func NewIncomingProposal(local, from string, propose *JMI, now time.Time, opts ...ProposalOption) (*Proposal, error) {
	return newProposal(false, local, from, propose, now, opts)
}

func newProposal(caller bool, local, peer string, m *JMI, now time.Time, opts []ProposalOption) (*Proposal, error) {
	if m == nil || m.Kind != JMIPropose || m.ID == "" || len(m.ID) > MaxIDLen {
		return nil, fmt.Errorf("jingle: a proposal starts with a propose with an id of at most %d bytes", MaxIDLen)
	}
	p := &Proposal{id: m.ID, caller: caller, local: local, peer: peer, state: ProposalProposed, created: now, timeout: DefaultRingTimeout}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ID returns the call id (the Jingle sid to come).
func (p *Proposal) ID() string { return p.id }

// Caller reports whether we placed the call.
func (p *Proposal) Caller() bool { return p.caller }

// State returns the current state.
func (p *Proposal) State() ProposalState { return p.state }

// Winner returns the device that took the call: caller side the callee
// device that proceeded first, callee side our own device that did ("" for
// this one, or none yet).
func (p *Proposal) Winner() string { return p.winner }

// Reason returns the reason of the reject, retract or finish that ended
// the proposal, if any.
func (p *Proposal) Reason() *Reason { return p.reason }

// Expired reports whether the proposal is still proposed or ringing
// DefaultRingTimeout (or WithRingTimeout) after it was made, with the
// reason to give: timeout. The caller then retracts (Send a retract); the
// callee stops ringing ([Proposal.End]).
func (p *Proposal) Expired(now time.Time) (ReasonCondition, bool) {
	if (p.state == ProposalProposed || p.state == ProposalRinging) && !now.Before(p.created.Add(p.timeout)) {
		return ReasonTimeout, true
	}
	return "", false
}

// End ends the proposal locally, without a message (timeout on the callee
// side, the Jingle session failed to start): it becomes retracted on the
// caller's side and rejected on the callee's. A no-op once terminal.
func (p *Proposal) End(reason ReasonCondition) {
	if p.state.Terminal() {
		return
	}
	p.reason = &Reason{Condition: reason}
	if p.caller {
		p.state = ProposalRetracted
	} else {
		p.state = ProposalRejected
	}
}

func (p *Proposal) refuse(sentinel error, m *JMI, from string) (ProposalOutcome, error) {
	return ProposalOutcome{State: p.state}, &JMIError{Err: sentinel, Kind: m.Kind, ID: m.ID, From: from, State: p.state}
}

func (p *Proposal) ok(o ProposalOutcome) (ProposalOutcome, error) {
	o.State = p.state
	return o, nil
}

func (p *Proposal) end(s ProposalState, r *Reason) {
	p.state = s
	p.reason = cloneReason(r)
}

// Send checks a message we are about to send and applies it. Caller side:
// retract (while proposed or ringing) and finish (once proceeding).
// Callee side: ringing, proceed or accept (taking the call on this
// device), reject, and finish once proceeding. An error is a *[JMIError];
// the proposal is unchanged then.
func (p *Proposal) Send(m *JMI) (ProposalOutcome, error) {
	if m.ID != p.id {
		return p.refuse(ErrJMIWrongSender, m, "")
	}
	st := p.state
	switch {
	case p.caller && m.Kind == JMIRetract && (st == ProposalProposed || st == ProposalRinging):
		p.end(ProposalRetracted, m.Reason)
	case m.Kind == JMIFinish && st == ProposalProceeding:
		p.end(ProposalFinished, m.Reason)
	case !p.caller && m.Kind == JMIRinging && (st == ProposalProposed || st == ProposalRinging):
		p.state = ProposalRinging
	case !p.caller && (m.Kind == JMIProceed || m.Kind == JMIAccept) && (st == ProposalProposed || st == ProposalRinging):
		p.state, p.winner = ProposalProceeding, ""
	case !p.caller && (m.Kind == JMIProceed || m.Kind == JMIAccept) && st == ProposalProceeding && p.winner == "":
		// accept to our own devices, then proceed to the caller
	case !p.caller && m.Kind == JMIReject && (st == ProposalProposed || st == ProposalRinging):
		p.end(ProposalRejected, m.Reason)
	default:
		return p.refuse(ErrJMIUnexpected, m, "")
	}
	return p.ok(ProposalOutcome{Reason: cloneReason(m.Reason)})
}

// Receive checks a message received from from (a full JID) and applies
// it. An error is a *[JMIError]; the proposal is unchanged then.
func (p *Proposal) Receive(from string, m *JMI) (ProposalOutcome, error) {
	if m.ID != p.id {
		return p.refuse(ErrJMIWrongSender, m, from)
	}
	if p.caller {
		return p.receiveAsCaller(from, m)
	}
	return p.receiveAsCallee(from, m)
}

func (p *Proposal) receiveAsCaller(from string, m *JMI) (ProposalOutcome, error) {
	if bareJID(from) != p.peer || from == p.peer {
		// Only the callee's devices (full JIDs) answer a proposal.
		return p.refuse(ErrJMIWrongSender, m, from)
	}
	st := p.state
	switch m.Kind {
	case JMIRinging:
		switch {
		case st == ProposalProposed || st == ProposalRinging:
			p.state = ProposalRinging
			if !containsString(p.ringing, from) && len(p.ringing) < MaxProposalDevices {
				p.ringing = append(p.ringing, from)
			}
			return p.ok(ProposalOutcome{})
		case st == ProposalProceeding:
			return p.ok(ProposalOutcome{Ignored: true, Winner: p.winner})
		}
	case JMIProceed:
		switch {
		case st == ProposalProposed || st == ProposalRinging:
			p.state, p.winner = ProposalProceeding, from
			var others []string
			for _, d := range p.ringing {
				if d != from {
					others = append(others, d)
				}
			}
			return p.ok(ProposalOutcome{Winner: from, AnsweredElsewhere: others})
		case st == ProposalProceeding && from == p.winner:
			return p.ok(ProposalOutcome{Ignored: true, Winner: p.winner})
		case st == ProposalProceeding || st == ProposalFinished:
			return p.ok(ProposalOutcome{Winner: p.winner, AnsweredElsewhere: []string{from}})
		}
	case JMIReject:
		switch {
		case st == ProposalProposed || st == ProposalRinging:
			p.end(ProposalRejected, m.Reason)
			return p.ok(ProposalOutcome{Reason: cloneReason(m.Reason)})
		case st == ProposalProceeding && from != p.winner:
			return p.ok(ProposalOutcome{Ignored: true, Winner: p.winner})
		case st == ProposalProceeding:
			// The winner changed its mind before the session started.
			p.end(ProposalRejected, m.Reason)
			return p.ok(ProposalOutcome{Reason: cloneReason(m.Reason)})
		}
	case JMIAccept:
		// Meant for the callee's own devices; nothing for us.
		return p.ok(ProposalOutcome{Ignored: true, Winner: p.winner})
	case JMIFinish:
		if st == ProposalProceeding && from == p.winner {
			p.end(ProposalFinished, m.Reason)
			return p.ok(ProposalOutcome{Reason: cloneReason(m.Reason)})
		}
		if st == ProposalFinished && from == p.winner {
			return p.ok(ProposalOutcome{Ignored: true, Winner: p.winner})
		}
	}
	return p.refuse(ErrJMIUnexpected, m, from)
}

func (p *Proposal) receiveAsCallee(from string, m *JMI) (ProposalOutcome, error) {
	st := p.state
	own := bareJID(from) == bareJID(p.local) && from != p.local
	switch {
	case from == p.peer:
		switch {
		case m.Kind == JMIRetract && (st == ProposalProposed || st == ProposalRinging || st == ProposalProceeding):
			p.end(ProposalRetracted, m.Reason)
			return p.ok(ProposalOutcome{StopRinging: true, Reason: cloneReason(m.Reason)})
		case m.Kind == JMIFinish && st == ProposalProceeding:
			p.end(ProposalFinished, m.Reason)
			return p.ok(ProposalOutcome{Reason: cloneReason(m.Reason)})
		case (m.Kind == JMIRetract || m.Kind == JMIFinish) && st.Terminal():
			return p.ok(ProposalOutcome{Ignored: true})
		}
	case own:
		switch {
		case (m.Kind == JMIProceed || m.Kind == JMIAccept) && (st == ProposalProposed || st == ProposalRinging):
			p.state, p.winner = ProposalAnsweredElsewhere, from
			return p.ok(ProposalOutcome{StopRinging: true, OtherDevice: from})
		case m.Kind == JMIReject && (st == ProposalProposed || st == ProposalRinging):
			p.end(ProposalRejected, m.Reason)
			return p.ok(ProposalOutcome{StopRinging: true, OtherDevice: from, Reason: cloneReason(m.Reason)})
		case m.Kind == JMIRinging || m.Kind == JMIPropose:
			return p.ok(ProposalOutcome{Ignored: true})
		case st.Terminal() || st == ProposalProceeding:
			// Late copies, or our other device answered too: the caller
			// picks the first proceed and tells the other.
			return p.ok(ProposalOutcome{Ignored: true})
		}
	default:
		return p.refuse(ErrJMIWrongSender, m, from)
	}
	return p.refuse(ErrJMIUnexpected, m, from)
}

// TieBreak decides, on our outgoing proposal p, a propose received from
// from while p is still proposed or ringing (XEP-0353 "Tie Breaking":
// both parties proposed at the same time). It applies when from is a
// device of p's callee; otherwise it returns TieBreakNone and the propose
// is an ordinary one. The propose with the lower id (i;octet) overrules
// the other; equal ids go to the lower JID.
//
// TieBreakOurs: send the returned reject (tie-break, reason expired) for
// their id to from and keep p. TieBreakTheirs: send the returned retract
// (tie-break, reason expired) for our id to the callee, p is retracted,
// and their propose is handled as usual ([NewIncomingProposal]).
func (p *Proposal) TieBreak(from string, theirs *JMI) (TieBreakResult, *JMI) {
	if !p.caller || (p.state != ProposalProposed && p.state != ProposalRinging) ||
		theirs.Kind != JMIPropose || bareJID(from) != p.peer {
		return TieBreakNone, nil
	}
	reason := &Reason{Condition: ReasonExpired}
	if p.id < theirs.ID || p.id == theirs.ID && bareJID(p.local) < p.peer {
		return TieBreakOurs, &JMI{Kind: JMIReject, ID: theirs.ID, Reason: reason, TieBreak: true}
	}
	p.end(ProposalRetracted, reason)
	return TieBreakTheirs, &JMI{Kind: JMIRetract, ID: p.id, Reason: cloneReason(reason), TieBreak: true}
}

// Migrate handles, on our proceeding incoming proposal p, a new propose
// from the same caller account (XEP-0353 "Tie Breaking", existing
// session): the old call is an orphan the new one continues. It returns
// the finish to send for p (reason expired, migrated to the new id) and
// true, and p is finished; the new propose is then accepted as usual. It
// returns false when the rule does not apply.
func (p *Proposal) Migrate(from string, newPropose *JMI) (*JMI, bool) {
	if p.caller || p.state != ProposalProceeding || newPropose.Kind != JMIPropose ||
		newPropose.ID == p.id || bareJID(from) != bareJID(p.peer) {
		return nil, false
	}
	r := &Reason{Condition: ReasonExpired}
	p.end(ProposalFinished, r)
	return &JMI{Kind: JMIFinish, ID: p.id, Reason: cloneReason(r), MigratedTo: newPropose.ID}, true
}

func bareJID(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
