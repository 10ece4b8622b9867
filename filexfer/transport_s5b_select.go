package filexfer

import (
	"errors"
	"fmt"
)

// ErrS5BNegotiation is matched by the errors of [S5BNomination] for a
// transport-info that does not fit the negotiation: a second
// candidate-used or candidate-error from the same party, a cid that was
// never offered, an activated or proxy-error where none can come. A Jingle
// peer answers it with bad-request (XEP-0166 §7.2) or out-of-order.
var ErrS5BNegotiation = errors.New("filexfer: SOCKS5 negotiation out of order")

// S5BState is the state of a XEP-0260 negotiation; the zero value is
// S5BPending.
type S5BState int

// The states of an [S5BNomination].
const (
	// S5BPending: one or both candidate reports are still missing.
	S5BPending S5BState = iota
	// S5BReady: the nominated candidate's connection carries the stream.
	S5BReady
	// S5BMustActivate: the nominated candidate is a proxy we offered; we
	// connect to it, activate the stream (XEP-0065 §6.3.5), send
	// <activated cid/> and call [S5BNomination.LocalActivated] — or send
	// <proxy-error/> and call [S5BNomination.ProxyError].
	S5BMustActivate
	// S5BAwaitActivation: the nominated candidate is a proxy the peer
	// offered; no byte may be sent until its <activated cid/> arrives
	// ([S5BNomination.RemoteActivated]).
	S5BAwaitActivation
	// S5BFailed: both parties sent candidate-error, or a proxy failed;
	// the initiator replaces the transport (IBB) or ends the session.
	S5BFailed
)

var s5bStateNames = [...]string{"pending", "ready", "must-activate", "await-activation", "failed"}

// String returns the state's name.
func (s S5BState) String() string {
	if s < 0 || int(s) >= len(s5bStateNames) {
		return "S5BState(" + fmt.Sprint(int(s)) + ")"
	}
	return s5bStateNames[s]
}

// S5BNomination applies the XEP-0260 §2.4 candidate selection rule for
// one side of a negotiation. Each party tries the other's candidates and
// reports one candidate-used (cid) or candidate-error; once both reports
// are in:
//
//   - both candidate-error: the negotiation failed;
//   - one candidate-used: that candidate is nominated;
//   - two candidate-used: the one with the higher priority is nominated,
//     and on equal priority the one the initiator chose (in its
//     candidate-used) wins.
//
// A nominated proxy candidate is usable only once the party that offered
// it has activated it and said so with <activated cid/>. The gateway
// feeds the type our reports and the peer's transport-info and acts on
// [S5BNomination.State]; the type does no I/O. The zero value is not
// usable; use [NewS5BNomination]. It is not safe for concurrent use.
type S5BNomination struct {
	initiator bool
	local     []S5BCandidate // ours: the peer connects to them
	remote    []S5BCandidate // the peer's: we connect to them

	localDone, remoteDone bool
	localUsed, remoteUsed *S5BCandidate // nil with candidate-error

	nominated *S5BCandidate
	ours      bool // nominated is one of local
	state     S5BState
}

// NewS5BNomination starts the selection for our side; initiator says
// whether we are the Jingle initiator. local are the candidates we
// offered, remote those the peer offered (either may be empty). The
// slices are copied.
func NewS5BNomination(initiator bool, local, remote []S5BCandidate) *S5BNomination {
	return &S5BNomination{
		initiator: initiator,
		local:     append([]S5BCandidate(nil), local...),
		remote:    append([]S5BCandidate(nil), remote...),
	}
}

func findCID(cs []S5BCandidate, cid string) *S5BCandidate {
	for i := range cs {
		if cs[i].CID == cid {
			return &cs[i]
		}
	}
	return nil
}

func negErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrS5BNegotiation}, args...)...)
}

// LocalUsed records our candidate-used: we connected to the peer's
// candidate cid.
func (n *S5BNomination) LocalUsed(cid string) error {
	if n.localDone {
		return negErr("we already reported a candidate")
	}
	c := findCID(n.remote, cid)
	if c == nil {
		return negErr("the peer offered no candidate %q", truncate(cid))
	}
	n.localDone, n.localUsed = true, c
	n.decide()
	return nil
}

// LocalError records our candidate-error: none of the peer's candidates
// worked (or none is worth trying, see [S5BNomination.WorthTrying]).
func (n *S5BNomination) LocalError() error {
	if n.localDone {
		return negErr("we already reported a candidate")
	}
	n.localDone = true
	n.decide()
	return nil
}

// RemoteUsed records the peer's candidate-used: it connected to our
// candidate cid.
func (n *S5BNomination) RemoteUsed(cid string) error {
	if n.remoteDone {
		return negErr("the peer sent a second candidate-used or candidate-error")
	}
	c := findCID(n.local, cid)
	if c == nil {
		return negErr("candidate-used names %q, which we did not offer", truncate(cid))
	}
	n.remoteDone, n.remoteUsed = true, c
	n.decide()
	return nil
}

// RemoteError records the peer's candidate-error.
func (n *S5BNomination) RemoteError() error {
	if n.remoteDone {
		return negErr("the peer sent a second candidate-used or candidate-error")
	}
	n.remoteDone = true
	n.decide()
	return nil
}

// WorthTrying reports whether we should still try to connect to the
// peer's candidate c: not once we reported, and once the peer reported
// a candidate-used only candidates of higher priority than that one
// (XEP-0260 §2.3: a lower one would lose the nomination anyway).
func (n *S5BNomination) WorthTrying(c S5BCandidate) bool {
	if n.localDone {
		return false
	}
	if n.remoteDone && n.remoteUsed != nil {
		return c.Priority > n.remoteUsed.Priority
	}
	return true
}

func (n *S5BNomination) decide() {
	if !n.localDone || !n.remoteDone {
		return
	}
	l, r := n.localUsed, n.remoteUsed // l is the peer's candidate, r ours
	switch {
	case l == nil && r == nil:
		n.state = S5BFailed
		return
	case r == nil:
		n.nominated, n.ours = l, false
	case l == nil:
		n.nominated, n.ours = r, true
	case l.Priority > r.Priority:
		n.nominated, n.ours = l, false
	case r.Priority > l.Priority:
		n.nominated, n.ours = r, true
	case n.initiator: // equal: the initiator's choice, ours to report
		n.nominated, n.ours = l, false
	default: // equal, and the peer is the initiator: its choice
		n.nominated, n.ours = r, true
	}
	switch {
	case n.nominated.Type != S5BProxy:
		n.state = S5BReady
	case n.ours:
		n.state = S5BMustActivate
	default:
		n.state = S5BAwaitActivation
	}
}

// LocalActivated records that we activated our nominated proxy candidate
// and sent <activated cid/>.
func (n *S5BNomination) LocalActivated() error {
	if n.state != S5BMustActivate {
		return negErr("nothing for us to activate in state %s", n.state)
	}
	n.state = S5BReady
	return nil
}

// RemoteActivated records the peer's <activated cid/>: it must name the
// nominated proxy candidate the peer offered.
func (n *S5BNomination) RemoteActivated(cid string) error {
	if n.state != S5BAwaitActivation || n.nominated.CID != cid {
		return negErr("unexpected activated %q in state %s", truncate(cid), n.state)
	}
	n.state = S5BReady
	return nil
}

// ProxyError records a <proxy-error/> (the peer's, or ours once we sent
// it): the nominated proxy candidate could not be used, and the
// negotiation failed.
func (n *S5BNomination) ProxyError() error {
	if n.state != S5BMustActivate && n.state != S5BAwaitActivation && !(n.state == S5BReady && n.nominated.Type == S5BProxy) {
		return negErr("proxy-error without a nominated proxy candidate (state %s)", n.state)
	}
	n.state = S5BFailed
	return nil
}

// State returns the state of the negotiation.
func (n *S5BNomination) State() S5BState { return n.state }

// Nominated returns the nominated candidate and whether it is one we
// offered (the peer connected to our listener, or both connect to our
// proxy), or false as the last result while nothing is nominated (states
// S5BPending and S5BFailed).
func (n *S5BNomination) Nominated() (c S5BCandidate, ours, ok bool) {
	if n.nominated == nil || n.state == S5BPending || n.state == S5BFailed {
		return S5BCandidate{}, false, false
	}
	return *n.nominated, n.ours, true
}
