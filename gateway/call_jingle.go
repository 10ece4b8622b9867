package gateway

// Jingle (XEP-0166) requests of calls, inside protected IQs. The handler
// runs on the read loop: it parses, checks that the request comes from the
// device the call is bound to and fits the session's state, classifies
// offers and answers for policy, answers at once and queues the work for
// the call's goroutine.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// jingleError is a protected Jingle error response (XEP-0166 §10).
func jingleError(cond string, jc jingle.ErrorCondition) *StanzaError {
	e := &StanzaError{Type: "cancel", Condition: cond}
	switch cond {
	case "unexpected-request", "resource-constraint":
		e.Type = "wait"
	case "bad-request":
		e.Type = "modify"
	}
	if jc != "" {
		e.App = []byte(`<` + string(jc) + ` xmlns="` + jingle.NSErrors + `"/>`)
	}
	return e
}

var (
	errUnknownSession = func() error { return jingleError("item-not-found", jingle.ErrUnknownSession) }
	errOutOfOrder     = func() error { return jingleError("unexpected-request", jingle.ErrOutOfOrder) }
	errSecurity       = func() error { return jingleError("not-acceptable", jingle.ErrSecurityRequired) }
)

// initCalls sets up the call channel of a new gateway.
func (g *Gateway) initCalls() {
	g.calls = newCallTable()
	g.HandleIQ(xml.Name{Space: jingle.NS, Local: "jingle"}, g.handleJingleIQ)
}

// handleJingleIQ is the InnerIQHandler of protected Jingle.
func (g *Gateway) handleJingleIQ(req InnerIQ) ([]byte, error) {
	if req.Type != "set" {
		return nil, jingleError("bad-request", "")
	}
	j, err := jingle.Parse(req.Payload)
	if err == nil {
		err = j.Validate()
	}
	if err != nil {
		g.log.Info("bad protected Jingle", "from", req.From.String(), "err", err)
		return nil, jingleError("bad-request", "")
	}
	c := g.calls.get(j.SID)
	if c == nil {
		return nil, errUnknownSession()
	}
	c.mu.Lock()
	bound, dev, peer, sig, outgoing, ended := c.bound, c.boundDev, c.peer, c.sig, c.outgoing, c.ended
	c.mu.Unlock()
	if req.Peer == nil || req.Peer.JID != peer || req.From.Bare().String() != peer || !bound || req.Peer.ID != dev {
		// The session is bound to the device that proceeded (or proposed):
		// nobody else may speak in it.
		f := g.peerFacts(policy.KindMediaCall, policy.DirectionIncoming, req.From.Bare().String())
		f.Protection, f.Signaling, f.StanzaType = policy.ProtectionE2EUnverified, policy.SignalingProtected, "set"
		if req.Peer != nil {
			f.PeerDevice = req.Peer.ID
		}
		g.queueAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "call-binding",
			Message: "Call signaling for a call with another device arrived from " + policy.ShowJID(req.From.Bare().String()) + "; it was refused.",
			Detail:  fmt.Sprintf("%s for session %s from %s (device %d), bound to %s device %d", j.Action, j.SID, req.From, f.PeerDevice, peer, dev)})
		return nil, errUnknownSession()
	}
	if ended || sig == sigEnded {
		return nil, errUnknownSession()
	}
	m := callMsg{kind: msgJingle, jingle: j, from: req.From, device: req.Peer.ID}
	switch j.Action {
	case jingle.ActionContentAdd, jingle.ActionContentModify, jingle.ActionContentAccept, jingle.ActionContentReject, jingle.ActionContentRemove,
		jingle.ActionTransportReplace, jingle.ActionTransportAccept, jingle.ActionTransportReject,
		jingle.ActionDescriptionInfo, jingle.ActionSecurityInfo:
		// A call's contents and transports are fixed by its offer and
		// answer: such a request is refused before it reaches the
		// session, which must not learn of a change the media leg never
		// makes.
		return nil, jingleError("feature-not-implemented", "")
	}
	informational := j.Action == jingle.ActionSessionInfo
	// The slot in the call's queue first: a request the goroutine would
	// not hear of must change no state.
	if !informational && !c.reserve() {
		return nil, jingleError("resource-constraint", "")
	}
	queued := informational
	defer func() {
		if !queued {
			c.unreserve()
		}
	}()
	switch j.Action {
	case jingle.ActionSessionInitiate, jingle.ActionSessionAccept:
		if j.Action == jingle.ActionSessionInitiate && (outgoing || sig != sigProceeded) ||
			j.Action == jingle.ActionSessionAccept && (!outgoing || sig != sigInitiated) {
			break // out of order: the session machine says so
		}
		if !g.classifySession(c, j, &m) {
			c.refuse(m)
			queued = true
			return nil, errSecurity()
		}
	}
	// The XEP-0166 state machine (jingle.Session) decides whether the
	// action fits; the callee's session starts with the session-initiate
	// of the device that proceeded.
	c.mu.Lock()
	var ev jingle.Event
	switch {
	case c.sig != sig || c.ended:
		err = errOutOfOrder()
	case c.sess == nil && j.Action == jingle.ActionSessionInitiate && !outgoing && sig == sigProceeded:
		c.sess, err = jingle.NewResponder(g.JID().String(), req.From.String(), j, g.now())
		ev = jingle.Event{Action: j.Action, State: jingle.StatePending}
	case c.sess == nil:
		err = errOutOfOrder() // no session yet: nothing but a session-initiate after our proceed
	default:
		ev, err = c.sess.Receive(req.From.String(), j)
	}
	if err == nil {
		switch ev.State {
		case jingle.StatePending:
			c.sig = sigInitiated
		case jingle.StateActive:
			c.sig = sigActive
		case jingle.StateEnded:
			c.sig = sigEnded
		}
	}
	c.mu.Unlock()
	var ae *jingle.ActionError
	switch {
	case errors.As(err, &ae):
		return nil, jingleError(ae.Condition, ae.Jingle)
	case err != nil:
		return nil, err
	}
	if informational {
		c.peerMuteInfo(j) // mute, unmute; ringing, hold and pings change nothing
		return nil, nil
	}
	m.iceRestart = len(ev.ICERestart) > 0
	c.send(m)
	queued = true
	return nil, nil
}

// refuse ends a session whose initiate or accept was refused: there is no
// session to terminate, the call's goroutine ends the call. m goes into
// the slot the handler reserved.
func (c *call) refuse(m callMsg) {
	c.mu.Lock()
	c.sig = sigEnded
	c.mu.Unlock()
	c.send(m)
}

// classifySession classifies a protected session-initiate or -accept for
// policy and takes its fingerprint for the binding. It reports false when
// the session is refused (m then carries the reason for the call's
// goroutine, which ends the call).
func (g *Gateway) classifySession(c *call, j *jingle.Jingle, m *callMsg) bool {
	cl := classifyOffer(j, policy.SignalingProtected)
	f := g.peerFacts(policy.KindMediaCall, policy.DirectionIncoming, c.peer)
	if c.outgoing {
		f.Direction = policy.DirectionOutgoing
	}
	f.PeerDevice, f.Protection, f.Signaling, f.StanzaType = c.boundDev, cl.prot, policy.SignalingProtected, "set"
	if cl.err != nil {
		g.queueAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "call-fingerprint",
			Message: "A call with " + policy.ShowJID(c.peer) + " was ended: its device signaled unusable DTLS fingerprints.",
			Detail:  fmt.Sprintf("%s for session %s: %v", j.Action, j.SID, cl.err)})
		m.reason, m.detail = jingle.ReasonSecurityError, "the peer's device signaled unusable DTLS fingerprints: "+cl.err.Error()
		return false
	}
	d := g.policy.Decide(f)
	if d.Action != policy.ActionAllow {
		d.Detail = fmt.Sprintf("%s for call %s: %s", j.Action, j.SID, cl.why)
		g.queueAlert(f, d)
	}
	if d.Action == policy.ActionRefuse || cl.prot != policy.ProtectionE2EBound {
		// securejingle sets up DTLS-SRTP bound to the protected
		// fingerprint only; whatever policy says about less, it is not
		// carried out.
		m.reason = jingle.ReasonSecurityError
		m.detail = "the call was refused by policy rule " + d.Rule + ": " + cl.why
		return false
	}
	m.binding = dtls.Binding{SID: c.id, Peer: c.peer, Device: c.boundDev, Expected: cl.fp}
	return true
}

// sendJingle sends j to the call's bound device in a protected IQ and
// returns the response payload.
func (c *call) sendJingle(j *jingle.Jingle) ([]byte, error) {
	ctx, cancel := context.WithTimeout(c.ctx, callSendTimeout)
	defer cancel()
	return c.sendJingleCtx(ctx, j)
}

func (c *call) sendJingleCtx(ctx context.Context, j *jingle.Jingle) ([]byte, error) {
	b, err := j.Marshal()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	to, dev := c.boundFull, c.boundDev
	if c.sess == nil {
		err = ErrCallState
	} else if j.Action != jingle.ActionSessionInitiate {
		// The session machine checks what we send too (the initiate
		// started it).
		_, err = c.sess.Send(j)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp, peer, err := c.g.sendProtectedIQTo(ctx, to, e2e.Device{JID: c.peer, ID: dev}, "set", b, false)
	if err != nil {
		return nil, err
	}
	if peer == nil || peer.JID != c.peer || peer.ID != dev {
		return nil, fmt.Errorf("%w: response from another device", ErrBadResponse)
	}
	return resp, nil
}
