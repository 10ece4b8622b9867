package gateway

// The goroutine of one call: JMI progress, the Jingle session (offer,
// answer, trickle, ICE restart, terminate), the media leg and the DTLS
// binding check. Only this goroutine changes the session; handlers on the
// read loop and the worker validate and queue.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
	"github.com/securejingle/securejingle/srtp"
)

// callRun is the state only the call's goroutine touches.
type callRun struct {
	leg          *mediaPeer
	binding      dtls.Binding
	trickleReady bool           // our session-initiate/accept was acknowledged
	remoteCands  []remoteCand   // before the remote description
	candsTaken   int            // remote candidates used, across ICE restarts
	ufragCands   map[string]int // of those, per ICE ufrag of the peer
	iceLoopback  []netip.Addr   // loopback addresses of our STUN/TURN servers
	remoteSDP    string         // the peer's last description, for ICE restarts
	remoteUfrag  string
	oldUfrags    map[string]bool // the peer's credentials before an ICE restart
	restarting   bool            // we sent new ICE credentials and wait for the peer's
	reconnecting bool            // a connected call lost its media path (CallReconnecting)
	outage       *time.Timer     // ends a reconnecting call (Config.CallOutageTimeout)
	retry        *time.Timer     // the caller's next ICE restart while reconnecting
	retryWait    time.Duration   // the wait before the restart after that one
	connected    bool
	failed       bool // the leg failed; reported once
	timer        *time.Timer
	timerReason  jingle.ReasonCondition
	timerDetail  string
	over         bool
	sessionID    uint64
	muted        [2]bool // what we hold back (MuteCall): audio, video

	// duration ends the call CallMedia.Duration after its first connect;
	// armed once, never by a reconnect (timer is for the steps).
	duration *time.Timer
}

type remoteCand struct{ mid, line string }

// localCandidates are gathered by pion (its goroutine) and sent by the
// call's goroutine.
func (c *call) addLocalCandidate(mid, line string) {
	c.mu.Lock()
	if len(c.localCands) >= jingle.MaxCandidates {
		c.mu.Unlock()
		return
	}
	c.localCands = append(c.localCands, remoteCand{mid, line})
	c.mu.Unlock()
	c.notePion(func(e *pionEvents) { e.cands = true })
}

func (c *call) takeLocalCandidates() []remoteCand {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.localCands
	c.localCands = nil
	return out
}

func (c *call) peerConn() *mediaPeer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leg
}

func (c *call) refreshStats(p *mediaPeer) {
	s := p.stats()
	files := p.files()
	c.mu.Lock()
	l := c.local
	c.mu.Unlock()
	var toPeer, toLocal uint64
	if l != nil {
		toPeer, toLocal = l.relayed()
	}
	c.mu.Lock()
	c.info.BytesSent, c.info.BytesReceived = s.bytesSent, s.bytesReceived
	c.info.PacketsSent, c.info.PacketsReceived = s.packetsSent, s.packetsReceived
	c.info.Recordings = files
	c.info.RelayedToPeer, c.info.RelayedToLocal = toPeer, toLocal
	c.mu.Unlock()
}

func (c *call) setTimer(r *callRun, d time.Duration, why jingle.ReasonCondition, detail string) {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timerReason, r.timerDetail = why, detail
	r.timer = time.NewTimer(d)
}

func (c *call) stopTimer(r *callRun) {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.timerReason, r.timerDetail = "", ""
}

func (c *call) timerC(r *callRun) <-chan time.Time { return timerChan(r.timer) }

// timerChan is t's channel, nil (never ready) without a timer.
func timerChan(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// stopOutage stops the timers of an outage.
func (r *callRun) stopOutage() {
	for _, t := range []**time.Timer{&r.outage, &r.retry} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
}

func (c *call) ringTimeout() time.Duration { return c.g.ringTimeout() }

// ringTimeout is Config.RingTimeout or its default.
func (g *Gateway) ringTimeout() time.Duration {
	if d := g.cfg.RingTimeout; d > 0 {
		return d
	}
	return DefaultRingTimeout
}

func (c *call) wait(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (c *call) run() {
	g := c.g
	defer g.calls.wg.Done()
	defer close(c.done)
	r := &callRun{sessionID: uint64(time.Now().UnixNano()) & (1<<62 - 1)}
	defer c.stopTimer(r)
	defer func() {
		if r.duration != nil {
			r.duration.Stop()
		}
	}()
	defer r.stopOutage()
	if c.outgoing {
		c.setTimer(r, c.ringTimeout(), jingle.ReasonTimeout, "nobody answered the call")
	} else {
		c.setTimer(r, c.ringTimeout(), jingle.ReasonTimeout, "the call was not answered")
	}
	for !r.over {
		select {
		case <-c.ctx.Done():
			c.stopped(r)
		case <-c.timerC(r):
			r.timer = nil
			c.timeout(r)
		case <-durationC(r):
			c.hangUp(r, jingle.ReasonSuccess, "") // CallMedia.Duration ran out
		case <-timerChan(r.outage):
			r.outage = nil
			c.terminate(r, jingle.ReasonConnectivityError, fmt.Sprintf("the media connection was lost for %v and did not come back: check the network, or configure a TURN server", c.outageTimeout()))
		case <-timerChan(r.retry):
			r.retry = nil
			c.retryRestart(r)
		case m := <-c.q:
			<-c.slots
			if c.pionFirst(r); !r.over {
				c.handle(r, m)
			}
		case m := <-c.api:
			if c.pionFirst(r); r.over {
				m.replyTo <- ErrCallState
				continue
			}
			m.replyTo <- c.handle(r, m)
		case <-c.kick:
			c.onPion(r, c.takePion())
		}
	}
	// Whoever waits in postWait sees done.
}

// pionFirst handles the pion events noted before a message, so that a
// message sees the effects of every event that happened before it.
func (c *call) pionFirst(r *callRun) {
	if e := c.takePion(); e != (pionEvents{}) {
		c.onPion(r, e)
	}
}

// onPion handles pion's coalesced events: the connection first (the
// binding check), then the path, then failures.
func (c *call) onPion(r *callRun, e pionEvents) {
	if e.localUp {
		c.localConnected(r)
	}
	if e.local {
		c.localEnded(r)
		return
	}
	if e.cands {
		c.flushCandidates(r)
	}
	if e.pc == webrtc.PeerConnectionStateConnected {
		c.onConnected(r)
	}
	ice := e.ice
	if ice != webrtc.ICEConnectionStateUnknown && r.leg != nil {
		ice = r.leg.pc.ICEConnectionState() // what holds now, whatever the order of the callbacks
		if h := c.g.callHooks.iceNow; h != nil {
			ice = h()
		}
	}
	switch ice {
	case webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateFailed, webrtc.ICEConnectionStateChecking:
		// Checking after the first connect: an ICE restart, ours or the
		// peer's, looks for a new path.
		c.lostPath(r)
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		c.pathBack(r)
	}
	if e.pc == webrtc.PeerConnectionStateFailed || e.pc == webrtc.PeerConnectionStateClosed || e.dtlsFailed {
		// After a fatal DTLS alert pion may close the connection itself;
		// a close of ours comes after the call ended and is ignored.
		c.onFailed(r)
	}
}

// Backoff of the ICE restarts while a call reconnects (implementation
// constants). pion gives up on the candidate pairs of one restart after
// about 1.6 s of checks: a path that comes back later needs another.
const (
	iceRetryFirst = 2 * time.Second
	iceRetryMax   = 8 * time.Second
)

// DefaultCallOutage is the default of Config.CallOutageTimeout.
const DefaultCallOutage = 30 * time.Second

func (c *call) outageTimeout() time.Duration {
	if d := c.g.cfg.CallOutageTimeout; d > 0 {
		return d
	}
	return DefaultCallOutage
}

// lostPath: ICE of a connected call lost its path (or restarts). The call
// is reconnecting: the caller restarts ICE now and again with backoff
// (XEP-0176 §7.1: the offerer restarts; the callee waits for it), and
// either side ends the call with connectivity-error when the outage
// lasts longer than Config.CallOutageTimeout. DTLS, SRTP and the
// binding are those of the first connect.
func (c *call) lostPath(r *callRun) {
	if !r.connected || r.over || r.reconnecting {
		return
	}
	r.reconnecting = true
	r.outage = time.NewTimer(c.outageTimeout())
	c.setState(CallReconnecting)
	if c.outgoing {
		r.retryWait = iceRetryFirst
		c.retryRestart(r)
	}
}

// retryRestart restarts ICE (the caller, while reconnecting) and
// schedules the next restart. A restart waits for the peer's answer only
// until the next retry: an answer the server dropped (or a peer that never
// answers) must not stop the restarts for the rest of the outage
// (TestReviewICERestartAnswerLost).
func (c *call) retryRestart(r *callRun) {
	if !r.reconnecting || r.over {
		return
	}
	if err := c.restartICE(r); err != nil {
		c.g.log.Info("ICE restart", "call", c.id, "err", err)
	}
	r.retry = time.NewTimer(r.retryWait)
	r.retryWait = min(2*r.retryWait, iceRetryMax)
}

// pathBack: ICE connected again; the call is connected.
func (c *call) pathBack(r *callRun) {
	if !r.reconnecting || r.over {
		return
	}
	r.reconnecting = false
	r.stopOutage()
	c.setState(CallConnected)
}

// stopped ends the call because the gateway stops: a best-effort
// terminate, then the local end.
func (c *call) stopped(r *callRun) {
	c.mu.Lock()
	sig := c.sig
	c.mu.Unlock()
	if sig >= sigInitiated && sig < sigEnded {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), time.Second)
		c.sendTerminateCtx(ctx, reason(jingle.ReasonGone, "the gateway stopped"))
		cancel()
	}
	c.finish(r, string(jingle.ReasonGone), "this gateway stopped")
}

func (c *call) handle(r *callRun, m callMsg) error {
	switch m.kind {
	case msgAnswer:
		return c.answer(r, m.media, m.local)
	case msgDecline:
		c.sendJMI(c.boundFull.Bare(), jingle.JMIReject, reason(jingle.ReasonDecline, ""))
		c.finish(r, string(jingle.ReasonDecline), "")
	case msgHangUp:
		c.hangUp(r, m.reason, m.detail)
	case msgJMI:
		c.onJMI(r, m)
	case msgJingle:
		c.onJingle(r, m)
	case msgTieBreak:
		// Their call is registered already; ours is retracted (its
		// proposal says so since the tie-break).
		if err := c.sendJMIRaw(jid.MustParse(c.peer), m.jmi); err != nil {
			c.g.log.Info("tie-break retract", "call", c.id, "err", err)
		}
		c.finish(r, string(jingle.ReasonExpired), tieBreakLost)
	case msgRestartICE:
		return c.restartICE(r)
	case msgMute:
		return c.setMute(r, m.mute)
	case msgNop:
	}
	return nil
}

// timeout handles the running timer.
func (c *call) timeout(r *callRun) {
	why, detail := r.timerReason, r.timerDetail
	c.mu.Lock()
	sig, state, outgoing, bound := c.sig, c.info.State, c.outgoing, c.bound
	c.mu.Unlock()
	switch {
	case outgoing && sig == sigNone:
		c.sendJMI(jid.MustParse(c.peer), jingle.JMIRetract, reason(jingle.ReasonCancel, "timeout"))
		c.finish(r, string(why), detail)
	case !outgoing && (state == CallRinging || sig == sigNone) && bound:
		c.sendJMI(c.boundFull.Bare(), jingle.JMIReject, reason(jingle.ReasonTimeout, ""))
		c.finish(r, string(why), detail)
	default:
		c.terminate(r, why, detail)
	}
}

// hangUp ends the call from our side, in whatever state it is.
func (c *call) hangUp(r *callRun, why jingle.ReasonCondition, detail string) {
	c.mu.Lock()
	sig, outgoing, bound, state := c.sig, c.outgoing, c.bound, c.info.State
	c.mu.Unlock()
	switch {
	case outgoing && sig == sigNone:
		if why == "" {
			why = jingle.ReasonCancel
		}
		rs := reason(why, "")
		c.sendJMI(jid.MustParse(c.peer), jingle.JMIRetract, rs)
		if bound {
			// A device proceeded but we gave up before the session.
			c.sendJMI(c.boundFull, jingle.JMIFinish, rs)
		}
	case !outgoing && state == CallRinging:
		if why == "" {
			why = jingle.ReasonDecline
		}
		c.sendJMI(c.boundFull.Bare(), jingle.JMIReject, reason(why, ""))
	case !outgoing && sig == sigProceeded:
		if why == "" {
			why = jingle.ReasonCancel
		}
		c.sendJMI(c.boundFull.Bare(), jingle.JMIFinish, reason(why, ""))
	default:
		if why == "" {
			why = jingle.ReasonSuccess
			if !r.connected {
				why = jingle.ReasonCancel
			}
		}
		c.terminate(r, why, detail)
		return
	}
	c.finish(r, string(why), detail)
}

// terminate ends an existing Jingle session: the media leg goes quiet
// at once (nothing more is played, recorded or counted), then the
// session-terminate (protected) and a JMI finish to the peer, each with
// its deadline, then the local end closes the leg. The leg is closed
// only after the terminate so that the peer learns the end reason from
// it rather than from the DTLS close; a server that holds the terminate
// delays only that close (TestReviewHangUpMediaOutlivesDroppedTerminate).
func (c *call) terminate(r *callRun, why jingle.ReasonCondition, detail string) {
	c.mu.Lock()
	leg := c.leg
	c.mu.Unlock()
	if leg != nil {
		c.refreshStats(leg) // what was sent and received until the end
		leg.quiesce()
	}
	if c.local != nil {
		c.local.quiesce()
	}
	c.sendTerminate(reason(why, ""))
	c.sendJMI(c.boundFull.Bare(), jingle.JMIFinish, reason(why, ""))
	c.finish(r, string(why), detail)
}

func (c *call) sendTerminate(rs *jingle.Reason) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), callSendTimeout)
	defer cancel()
	c.sendTerminateCtx(ctx, rs)
}

func (c *call) sendTerminateCtx(ctx context.Context, rs *jingle.Reason) {
	if c.claimTerminate() {
		c.sendTerminateIQ(ctx, rs)
	}
}

// claimTerminate marks the session ended and reports whether a
// session-terminate is due (a session exists and none was sent).
func (c *call) claimTerminate() bool {
	c.mu.Lock()
	sig := c.sig
	c.sig = sigEnded
	c.mu.Unlock()
	return sig >= sigInitiated && sig != sigEnded
}

// sendTerminateIQ sends the session-terminate claimed by claimTerminate.
func (c *call) sendTerminateIQ(ctx context.Context, rs *jingle.Reason) {
	j := &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: c.id, Reason: rs}
	if _, err := c.sendJingleCtx(ctx, j); err != nil {
		c.g.log.Info("session-terminate", "call", c.id, "err", err)
	}
}

// finish ends the call locally: closes the media leg (recordings are
// complete then), records the reason and publishes the final state.
func (c *call) finish(r *callRun, why, detail string) {
	if r.over {
		return
	}
	r.over = true
	c.stopTimer(r)
	r.stopOutage()
	if l := c.local; l != nil {
		// Nothing of the remote leg reaches the browser while that leg
		// closes (its graceful close can take a moment).
		l.quiesce()
	}
	c.mu.Lock()
	leg := c.leg
	c.sig = sigEnded
	c.mu.Unlock()
	if leg != nil {
		c.refreshStats(leg) // the counters are gone once it is closed
		leg.close()
		files := leg.files()
		c.mu.Lock()
		c.info.Recordings = files
		c.mu.Unlock()
	}
	if l := c.local; l != nil {
		l.close()
	}
	c.cancel()
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.update(func(in *CallInfo) {
		if in.LocalLeg != "" {
			in.LocalLeg = LocalLegEnded
		}
		in.State, in.EndReason, in.Ended = CallEnded, why, c.g.now()
		if detail != "" {
			in.Detail = detail
		}
	})
}

// onJMI handles the JMI of the peer (or of our own other devices),
// through the XEP-0353 state machine (jingle.Proposal).
func (c *call) onJMI(r *callRun, m callMsg) {
	j := m.jmi
	if !c.outgoing && !m.own && j.Kind == jingle.JMIPropose {
		c.ringing(r, j) // the propose that made this call
		return
	}
	c.mu.Lock()
	bound, boundFull, boundDev := c.bound, c.boundFull, c.boundDev
	c.mu.Unlock()
	if bound && !m.own && m.device != boundDev && (!c.outgoing || m.from.Equal(boundFull)) {
		// The state machine knows devices by full JID; the device behind
		// a resource is what the server's presence says. What it would
		// take for the bound device's reject, finish or retract must be
		// sent by that device.
		c.g.log.Info("JMI from another device than the call's", "call", c.id, "from", m.from.String(), "device", m.device, "bound", boundDev)
		return
	}
	if !c.outgoing && j.Kind == jingle.JMIRetract && j.Reason != nil {
		if mk := findRaw(j.Reason.Extra, answeredElsewhere.XMLName); mk != nil {
			c.mu.Lock()
			sig := c.sig
			c.mu.Unlock()
			if sig >= sigInitiated || !answeredElsewhereMine(*mk, c.g.eng.Device()) {
				// Sealed for every device of our account: the server
				// may hand a copy meant for a late device to the one
				// that won. Ours has a session: it was answered here.
				c.g.log.Info("answered-elsewhere retract not for this device ignored", "call", c.id, "sig", int(sig))
				return
			}
		}
	}
	c.mu.Lock()
	out, err := c.prop.Receive(m.from.String(), j)
	c.mu.Unlock()
	if err != nil {
		c.g.log.Info("JMI refused", "call", c.id, "err", err)
		return
	}
	for _, d := range out.AnsweredElsewhere {
		// XEP-0353: the initiator disavows its intent towards a device
		// that answered after another; the marker says why and names the
		// device it is for (the message is sealed for every device of
		// the account).
		if to, err := jid.Parse(d); err == nil {
			dev, ok := m.device, to.Equal(m.from)
			if !ok {
				dev, ok = c.g.deviceOf(to)
			}
			c.sendJMIRaw(to, &jingle.JMI{Kind: jingle.JMIRetract, ID: c.id, Reason: reason(jingle.ReasonCancel, "answered elsewhere", answeredElsewhereFor(dev, ok))})
		}
	}
	if out.Ignored {
		return
	}
	c.mu.Lock()
	bound, state := c.bound, c.info.State
	c.mu.Unlock()
	switch out.State {
	case jingle.ProposalRinging:
		if c.outgoing && state == CallProposed {
			c.setState(CallRinging)
		}
	case jingle.ProposalProceeding:
		if c.outgoing && !bound && out.Winner == m.from.String() {
			c.proceeded(r, m.from, m.device)
		}
	case jingle.ProposalAnsweredElsewhere:
		c.finish(r, reasonAnsweredElsewhere, "answered on another of your devices ("+m.from.Resourcepart()+")")
	case jingle.ProposalRejected:
		why, detail := endReason(out.Reason, jingle.ReasonDecline)
		switch {
		case out.OtherDevice != "":
			detail = "declined on another of your devices (" + m.from.Resourcepart() + ")"
		case why == string(jingle.ReasonExpired):
			detail = tieBreakLost
		}
		c.finish(r, why, detail)
	case jingle.ProposalRetracted:
		why, detail := endReason(out.Reason, jingle.ReasonCancel)
		if out.Reason != nil && hasRaw(out.Reason.Extra, answeredElsewhere.XMLName) {
			why, detail = reasonAnsweredElsewhere, "the call was answered on another device"
		}
		c.sendTerminate(reason(jingle.ReasonCancel, ""))
		c.finish(r, why, detail)
	case jingle.ProposalFinished:
		why, detail := endReason(out.Reason, jingle.ReasonSuccess)
		c.sendTerminate(reason(jingle.ReasonCondition(why), ""))
		c.finish(r, why, detail)
	}
}

func findRaw(rs []jingle.Raw, name xml.Name) *jingle.Raw {
	for i := range rs {
		if rs[i].XMLName == name {
			return &rs[i]
		}
	}
	return nil
}

func hasRaw(rs []jingle.Raw, name xml.Name) bool {
	for _, x := range rs {
		if x.XMLName == name {
			return true
		}
	}
	return false
}

// endReason maps a received reason to the call's EndReason and Detail.
func endReason(rs *jingle.Reason, def jingle.ReasonCondition) (string, string) {
	if rs == nil || rs.Condition == "" {
		return string(def), ""
	}
	return string(rs.Condition), policy.BoundDetail(strings.TrimSpace(rs.Text))
}

// ringing: an incoming call rings here; the answerer may take it.
func (c *call) ringing(r *callRun, j *jingle.JMI) {
	c.sendJMI(c.boundFull.Bare(), jingle.JMIRinging, nil)
	c.update(func(*CallInfo) {}) // ringing
	if a := c.g.cfg.CallAnswerer; a != nil {
		m, ok := a(c.snapshot())
		if ok {
			c.mu.Lock()
			taken := c.answering
			c.answering = true
			c.mu.Unlock()
			if !taken {
				c.answer(r, m, nil)
			}
		}
	}
}

// answer takes an incoming ringing call: proceed to the caller's device,
// accept to our own other devices. local is the local peer's leg of
// AnswerLocalCall (nil otherwise); the call owns it from here.
func (c *call) answer(r *callRun, m CallMedia, local *localLeg) error {
	if r.over {
		return ErrUnknownCall
	}
	if local != nil {
		c.mu.Lock()
		c.local = local
		c.mu.Unlock()
		local.attach(c)
	}
	m = normMedia(m)
	if !m.Audio && !m.Video {
		for _, k := range c.snapshot().Media {
			m.Audio = m.Audio || k == "audio"
			m.Video = m.Video || k == "video"
		}
	}
	c.mu.Lock()
	c.media = m
	c.sig = sigProceeded
	c.mu.Unlock()
	if err := c.sendJMI(c.boundFull, jingle.JMIProceed, nil); err != nil {
		c.finish(r, string(jingle.ReasonConnectivityError), "the answer could not be sent: "+err.Error())
		return err
	}
	if err := c.sendJMI(jid.MustParse(c.g.bare()), jingle.JMIAccept, nil); err != nil {
		c.g.log.Info("accept to own devices", "call", c.id, "err", err)
	}
	c.setState(CallConnecting)
	c.setTimer(r, c.wait(c.g.callHooks.initiateWait, defaultInitiateWait), jingle.ReasonTimeout, "the caller did not start the session after the answer")
	return nil
}

// proceeded: the first device that answered gets the call; the caller
// starts the session with it.
func (c *call) proceeded(r *callRun, full jid.JID, device uint32) {
	c.mu.Lock()
	c.bound, c.boundFull, c.boundDev = true, full, device
	c.info.PeerFull, c.info.PeerDevice = full.String(), device
	c.mu.Unlock()
	c.setState(CallConnecting)
	leg, err := c.newLeg(r)
	if err != nil {
		c.hangUp(r, jingle.ReasonFailedApplication, "the call could not be set up here: "+err.Error())
		return
	}
	offer, err := leg.offer()
	if err != nil {
		c.hangUp(r, jingle.ReasonFailedApplication, "no offer: "+err.Error())
		return
	}
	contents, groups, err := jingle.SDPToJingle(offer)
	if err != nil {
		c.hangUp(r, jingle.ReasonFailedApplication, "the offer does not translate to Jingle: "+err.Error())
		return
	}
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: c.id, Initiator: c.g.JID().String(), Contents: contents, Groups: groups}
	c.mu.Lock()
	c.sess, err = jingle.NewInitiator(c.g.JID().String(), full.String(), j, c.g.now())
	if err == nil {
		c.sig = sigInitiated
	}
	c.mu.Unlock()
	if err != nil {
		c.hangUp(r, jingle.ReasonFailedApplication, "the offer is not a valid session-initiate: "+err.Error())
		return
	}
	if err := c.sendSession(r, j); err != nil {
		return
	}
	c.setTimer(r, c.wait(c.g.callHooks.acceptWait, defaultAcceptWait), jingle.ReasonTimeout, "the callee's device did not accept the session")
}

// sendSession sends our session-initiate or session-accept and, once it
// is acknowledged, our candidates. On failure the call is over.
func (c *call) sendSession(r *callRun, j *jingle.Jingle) error {
	if c.g.cfg.RelayOnly {
		relayOnlyTransports(j)
	}
	if h := c.g.callHooks.mutateOutgoing; h != nil {
		h(j)
	}
	_, err := c.sendJingle(j)
	if err != nil {
		why, detail := failReason(err)
		c.mu.Lock()
		c.sig = sigEnded // the peer refused or never saw it: no session to terminate
		c.mu.Unlock()
		c.sendJMI(c.boundFull.Bare(), jingle.JMIFinish, reason(why, ""))
		c.finish(r, string(why), detail)
		return err
	}
	r.trickleReady = true
	c.flushCandidates(r)
	return nil
}

// failReason explains a failed signaling request.
func failReason(err error) (jingle.ReasonCondition, string) {
	var pe *ProtectedError
	var iqe *IQError
	switch {
	case errors.As(err, &pe):
		if jc, ok := jingle.ParseErrorCondition(pe.Payload); ok && jc == jingle.ErrSecurityRequired {
			return jingle.ReasonSecurityError, "the peer's device refused the session as not secure enough"
		}
		return jingle.ReasonFailedApplication, "the peer's device refused the session: " + policy.BoundDetail(string(pe.Payload))
	case errors.As(err, &iqe):
		if iqe.Condition() == "not-acceptable" {
			return jingle.ReasonSecurityError, "the peer's device could not open our protected signaling: the server may have altered it (see the peer's alerts)"
		}
		return jingle.ReasonConnectivityError, "the peer's device did not take the session (" + iqe.Condition() + ")"
	case errors.Is(err, ErrBadResponse):
		return jingle.ReasonSecurityError, "the answer to our protected signaling failed its end-to-end checks: " + err.Error()
	}
	return jingle.ReasonConnectivityError, "signaling failed: " + err.Error()
}

// newLeg creates the media leg of the call.
func (c *call) newLeg(r *callRun) (*mediaPeer, error) {
	g := c.g
	servers := append([]webrtc.ICEServer(nil), g.cfg.ICEServers...)
	if g.cfg.UseServerICE {
		ctx, cancel := context.WithTimeout(c.ctx, callSendTimeout)
		servers = append(servers, g.serverICE(ctx)...)
		cancel()
	}
	r.iceLoopback = iceServerLoopback(servers)
	c.mu.Lock()
	m := c.media
	c.mu.Unlock()
	o := peerOptions{iceServers: servers, relayOnly: g.cfg.RelayOnly, loopback: g.callHooks.loopback || g.cfg.CallLoopbackOnly,
		noPionFingerprintCheck: g.callHooks.noPionCheck, relay: c.local}
	if g.callHooks.cert != nil {
		o.cert = g.callHooks.cert()
	}
	leg, err := g.newMediaPeer(m, o, c.addLocalCandidate, c.onPCState)
	if err != nil {
		return nil, err
	}
	leg.pc.OnICEConnectionStateChange(c.onICEState)
	leg.pc.SCTP().Transport().OnStateChange(c.onDTLSState)
	c.mu.Lock()
	c.leg = leg
	c.info.LocalFingerprint = leg.cert.Fingerprint().String()
	c.mu.Unlock()
	r.leg = leg
	return leg, nil
}

// onPCState, onICEState and onDTLSState are pion's callbacks of the leg
// (on pion's goroutines): they record the state for the call's goroutine.
func (c *call) onPCState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		c.notePion(func(e *pionEvents) { e.pc = s })
	}
}

func (c *call) onICEState(s webrtc.ICEConnectionState) {
	if h := c.g.callHooks.iceState; h != nil {
		h(c.id, s)
	}
	c.notePion(func(e *pionEvents) { e.ice = s })
}

func (c *call) onDTLSState(s webrtc.DTLSTransportState) {
	if s == webrtc.DTLSTransportStateFailed {
		c.notePion(func(e *pionEvents) { e.dtlsFailed = true })
	}
}

// serverICE returns the STUN/TURN services the server announces
// (XEP-0215), when this build has external service discovery.
func (g *Gateway) serverICE(ctx context.Context) []webrtc.ICEServer {
	d, ok := any(g).(interface {
		ExternalServices(context.Context) ([]webrtc.ICEServer, error)
	})
	if !ok {
		return nil
	}
	s, err := d.ExternalServices(ctx)
	if err != nil {
		g.log.Info("external services", "err", err)
	}
	return s
}

// onJingle processes a Jingle request the handler validated.
func (c *call) onJingle(r *callRun, m callMsg) {
	j := m.jingle
	switch j.Action {
	case jingle.ActionSessionInitiate:
		c.onInitiate(r, j, m)
	case jingle.ActionSessionAccept:
		c.onAccept(r, j, m)
	case jingle.ActionTransportInfo:
		c.onTransportInfo(r, j, m.iceRestart)
	case jingle.ActionSessionTerminate:
		why, detail := endReason(j.Reason, jingle.ReasonSuccess)
		c.mu.Lock()
		c.sig = sigEnded
		c.mu.Unlock()
		if !r.connected && r.leg != nil {
			// The peer gave up on a handshake we may not have judged yet:
			// a certificate other than the bound one is still ours to
			// report, whoever noticed the failure first.
			if err := r.binding.CheckPeerConnection(r.leg.pc); errors.Is(err, dtls.ErrBindingMismatch) {
				c.bindingFailed(r, err)
				return
			}
		}
		c.sendJMI(c.boundFull.Bare(), jingle.JMIFinish, reason(jingle.ReasonCondition(why), ""))
		switch {
		case detail != "":
		case why == string(jingle.ReasonSecurityError):
			detail = "the peer ended the call for a security error (its binding check or policy failed)"
		case why == string(jingle.ReasonConnectivityError):
			detail = "the peer ended the call: its media connection failed or was lost and did not come back (check the network, or configure a TURN server)"
		}
		c.finish(r, why, detail)
	}
}

// refused ends a session the handler refused (policy or a bad
// fingerprint): terminate for security-error, alerted already.
func (c *call) refused(r *callRun, m callMsg) {
	c.update(func(in *CallInfo) { in.Binding = BindingFailed })
	c.terminate(r, m.reason, m.detail)
}

func (c *call) onInitiate(r *callRun, j *jingle.Jingle, m callMsg) {
	if m.reason != "" {
		c.refused(r, m)
		return
	}
	r.binding = m.binding
	c.update(func(in *CallInfo) { in.PeerFingerprint = m.binding.Expected.String() })
	leg, err := c.newLeg(r)
	if err != nil {
		c.terminate(r, jingle.ReasonFailedApplication, "the call could not be set up here: "+err.Error())
		return
	}
	c.takeOfferCandidates(r, j.Contents)
	offer, err := jingle.JingleToSDP(j.Contents, j.Groups, r.sessionID)
	if err != nil {
		c.terminate(r, jingle.ReasonFailedApplication, "the caller's offer does not translate to SDP: "+err.Error())
		return
	}
	r.remoteSDP = offer
	answer, err := leg.answer(offer)
	if err != nil {
		c.terminate(r, jingle.ReasonFailedApplication, "the caller's offer was not accepted here: "+err.Error())
		return
	}
	c.applyRemoteCandidates(r)
	contents, groups, err := jingle.SDPToJingleAs(answer, jingle.CreatorResponder)
	if err != nil {
		c.terminate(r, jingle.ReasonFailedApplication, "the answer does not translate to Jingle: "+err.Error())
		return
	}
	acc := &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: c.id, Responder: c.g.JID().String(), Contents: contents, Groups: groups}
	c.mu.Lock()
	c.sig = sigActive
	c.mu.Unlock()
	if err := c.sendSession(r, acc); err != nil {
		return
	}
	c.setTimer(r, c.wait(c.g.callHooks.connectWait, defaultConnectWait), jingle.ReasonConnectivityError, "the media connection did not come up")
}

func (c *call) onAccept(r *callRun, j *jingle.Jingle, m callMsg) {
	if m.reason != "" {
		c.refused(r, m)
		return
	}
	r.binding = m.binding
	c.update(func(in *CallInfo) { in.PeerFingerprint = m.binding.Expected.String() })
	c.takeOfferCandidates(r, j.Contents)
	answer, err := jingle.JingleToSDPAs(j.Contents, j.Groups, r.sessionID, jingle.CreatorResponder)
	if err != nil {
		c.terminate(r, jingle.ReasonFailedApplication, "the callee's answer does not translate to SDP: "+err.Error())
		return
	}
	r.remoteSDP = answer
	if err := r.leg.setAnswer(answer); err != nil {
		c.terminate(r, jingle.ReasonFailedApplication, "the callee's answer was not accepted here: "+err.Error())
		return
	}
	c.applyRemoteCandidates(r)
	c.setTimer(r, c.wait(c.g.callHooks.connectWait, defaultConnectWait), jingle.ReasonConnectivityError, "the media connection did not come up")
}

// onTransportInfo applies trickled candidates and ICE restarts.
func (c *call) onTransportInfo(r *callRun, j *jingle.Jingle, restart bool) {
	for _, ct := range j.Contents {
		t := ct.Transport
		if t == nil {
			continue
		}
		if r.oldUfrags[t.Ufrag] {
			continue // late candidates of the credentials before a restart
		}
		if restart && t.Ufrag != "" && t.Ufrag != r.remoteUfrag {
			c.iceRestartFromPeer(r, t.Ufrag, t.Pwd)
			if t.Ufrag != r.remoteUfrag {
				continue // not taken
			}
		} else if t.Ufrag != "" && r.remoteUfrag == "" {
			r.remoteUfrag = t.Ufrag
		}
		if t.Ufrag != "" && t.Ufrag != r.remoteUfrag {
			continue // candidates of credentials that are not in use
		}
		for _, cand := range t.Candidates {
			if !c.takeRemoteCandidate(r, t.Ufrag, cand) {
				continue
			}
			line := jingle.CandidateToSDP(cand)
			if line == "" {
				continue
			}
			if r.leg == nil || !r.leg.remoteSet() {
				if len(r.remoteCands) < maxPendingCands {
					r.remoteCands = append(r.remoteCands, remoteCand{ct.Name, line})
				}
				continue
			}
			if err := r.leg.addCandidate(ct.Name, line); err != nil {
				c.g.log.Info("remote candidate", "call", c.id, "err", err)
			}
		}
	}
}

// Bounds of the remote candidates (implementation constants).
const (
	maxCandsPerUfrag = jingle.MaxCandidates // of one set of the peer's ICE credentials, all contents
	maxCandsPerCall  = 256                  // of a call, across ICE restarts
)

// takeRemoteCandidate reports whether the peer's candidate cand (of its
// credentials ufrag) is used: its address must be one that reaches the
// peer (candidateAddrErr) and the counts stay within their bounds.
func (c *call) takeRemoteCandidate(r *callRun, ufrag string, cand jingle.Candidate) bool {
	loopbackOK := func(a netip.Addr) bool {
		// The TURN-on-this-host exception is for the peer's relay
		// candidate on that server only: a host, srflx or prflx
		// candidate at loopback would make ICE probe this host's own
		// services.
		return c.g.callHooks.loopback || c.g.cfg.CallLoopbackOnly || cand.Type == "relay" && slices.Contains(r.iceLoopback, a)
	}
	if err := candidateAddrErr(cand.IP, loopbackOK); err != nil {
		c.g.log.Info("remote candidate refused", "call", c.id, "err", err)
		return false
	}
	if ufrag == "" {
		ufrag = r.remoteUfrag
	}
	if r.candsTaken >= maxCandsPerCall || r.ufragCands[ufrag] >= maxCandsPerUfrag {
		c.g.log.Info("remote candidate beyond the bound", "call", c.id, "ufrag", ufrag, "taken", r.candsTaken)
		return false
	}
	if r.ufragCands == nil {
		r.ufragCands = map[string]int{}
	}
	r.candsTaken++
	r.ufragCands[ufrag]++
	return true
}

// takeOfferCandidates keeps, in the transports of an offer or answer,
// the candidates takeRemoteCandidate takes.
func (c *call) takeOfferCandidates(r *callRun, contents []jingle.Content) {
	for i := range contents {
		t := contents[i].Transport
		if t == nil || len(t.Candidates) == 0 {
			continue
		}
		var kept []jingle.Candidate
		for _, cand := range t.Candidates {
			if c.takeRemoteCandidate(r, t.Ufrag, cand) {
				kept = append(kept, cand)
			}
		}
		t.Candidates = kept
	}
}

// candidateAddrErr says why ICE must not try a remote candidate's
// address: a loopback, link-local, unspecified, multicast or broadcast
// address reaches this host or its link, not the peer (a peer naming one
// would make this host probe its own services), and a host name would
// make it resolve a name the peer chose. A loopback address is taken when
// loopbackOK says so: calls on loopback only, or the address of one of
// our own STUN/TURN servers (a TURN server on this host relays there).
func candidateAddrErr(ip string, loopbackOK func(netip.Addr) bool) error {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("gateway: candidate address %q is not an IP address", policy.BoundDetail(ip))
	}
	a = a.Unmap()
	switch {
	case a.IsLoopback() && loopbackOK(a):
		return nil
	case a.IsLoopback(), a.IsLinkLocalUnicast(), a.IsUnspecified(), a.IsMulticast(),
		a.IsInterfaceLocalMulticast(), a.IsLinkLocalMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("gateway: candidate address %s does not reach a peer (loopback, link-local, unspecified, multicast or broadcast)", a)
	}
	return nil
}

// iceServerLoopback returns the loopback addresses that servers (STUN
// and TURN URLs, RFC 7064/7065) name, "localhost" as both.
func iceServerLoopback(servers []webrtc.ICEServer) []netip.Addr {
	var out []netip.Addr
	for _, s := range servers {
		for _, u := range s.URLs {
			_, rest, ok := strings.Cut(u, ":")
			if !ok {
				continue
			}
			rest, _, _ = strings.Cut(rest, "?")
			host := rest
			if h, _, err := net.SplitHostPort(rest); err == nil {
				host = h
			}
			if host == "localhost" {
				out = append(out, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
			} else if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && a.Unmap().IsLoopback() {
				out = append(out, a.Unmap())
			}
		}
	}
	return out
}

func (c *call) applyRemoteCandidates(r *callRun) {
	if r.remoteUfrag == "" {
		r.remoteUfrag = sdpValue(r.remoteSDP, "a=ice-ufrag:")
	}
	for _, rc := range r.remoteCands {
		if err := r.leg.addCandidate(rc.mid, rc.line); err != nil {
			c.g.log.Info("remote candidate", "call", c.id, "err", err)
		}
	}
	r.remoteCands = nil
}

// flushCandidates sends the gathered local candidates, one transport-info
// per content, once our description was acknowledged.
func (c *call) flushCandidates(r *callRun) {
	if !r.trickleReady || r.over || r.leg == nil {
		return
	}
	cands := c.takeLocalCandidates()
	if len(cands) == 0 {
		return
	}
	ufrag, pwd := r.leg.localCredentials()
	byMid := map[string][]jingle.Candidate{}
	var mids []string
	for _, lc := range cands {
		jc, err := jingle.CandidateFromSDP(lc.mid, lc.line)
		if err != nil {
			continue // TCP candidates have no ICE-UDP form
		}
		if c.g.cfg.RelayOnly {
			var ok bool
			if jc, ok = relayOnlyCandidate(jc); !ok {
				continue // relay-only: our own addresses never leave this host
			}
		}
		if _, ok := byMid[lc.mid]; !ok {
			mids = append(mids, lc.mid)
		}
		byMid[lc.mid] = append(byMid[lc.mid], jc)
	}
	for _, mid := range mids {
		j := &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: c.id, Contents: []jingle.Content{{
			Creator: jingle.CreatorInitiator, Name: mid,
			Transport: &jingle.Transport{Ufrag: ufrag, Pwd: pwd, Candidates: byMid[mid]},
		}}}
		if _, err := c.sendJingle(j); err != nil {
			c.g.log.Info("transport-info", "call", c.id, "err", err)
		}
	}
}

// restartICE starts an ICE restart (the offerer's side): new local
// credentials go to the peer in a transport-info without candidates
// (XEP-0176 §7.1); the peer answers with its own. The restart is
// unanswered (r.restarting) only once the credentials were sent: a send
// that fails leaves nothing to wait for. pion takes the new credentials
// when it creates the offer, before they can be sent.
func (c *call) restartICE(r *callRun) error {
	if r.leg == nil || !c.outgoing || !r.leg.remoteSet() {
		return ErrCallState
	}
	r.restarting = false
	if r.leg.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer && r.remoteSDP != "" {
		// The last restart was not answered. pion cannot roll back an
		// offer: its exchange is closed with the peer's last known
		// credentials (checks against them fail harmlessly) so that a
		// new offer may follow.
		if err := r.leg.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.remoteSDP}); err != nil {
			return err
		}
	}
	o, err := r.leg.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return err
	}
	if err := r.leg.pc.SetLocalDescription(o); err != nil {
		return err
	}
	if err := c.sendCredentials(r); err != nil {
		return err
	}
	r.restarting = true
	return nil
}

func (c *call) sendCredentials(r *callRun) error {
	ufrag, pwd := r.leg.localCredentials()
	var contents []jingle.Content
	for _, mid := range sdpMids(r.leg.pc.LocalDescription().SDP) {
		contents = append(contents, jingle.Content{Creator: jingle.CreatorInitiator, Name: mid,
			Transport: &jingle.Transport{Ufrag: ufrag, Pwd: pwd}})
	}
	if len(contents) == 0 {
		return ErrCallState
	}
	_, err := c.sendJingle(&jingle.Jingle{Action: jingle.ActionTransportInfo, SID: c.id, Contents: contents[:1]})
	return err
}

// iceRestartFromPeer applies the peer's new ICE credentials: the callee
// takes them as a new offer and answers with its own credentials; the
// caller takes them as the answer to its restart.
func (c *call) iceRestartFromPeer(r *callRun, ufrag, pwd string) {
	if r.leg == nil || r.remoteSDP == "" || !validICE(ufrag) || !validICE(pwd) {
		return
	}
	sdp := withCredentials(r.remoteSDP, ufrag, pwd)
	if c.outgoing && !r.restarting {
		return // only the offerer restarts here
	}
	if r.oldUfrags == nil {
		r.oldUfrags = map[string]bool{}
	}
	if len(r.oldUfrags) >= 16 {
		return // a peer restarting without end
	}
	r.oldUfrags[r.remoteUfrag] = true
	r.remoteUfrag = ufrag // its candidates count anew (maxCandsPerUfrag)
	if c.outgoing {
		r.restarting = false
		if err := r.leg.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
			c.g.log.Info("ICE restart answer", "call", c.id, "err", err)
			return
		}
		r.remoteSDP = sdp
		return
	}
	if err := r.leg.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.g.log.Info("ICE restart offer", "call", c.id, "err", err)
		return
	}
	r.remoteSDP = sdp
	a, err := r.leg.pc.CreateAnswer(nil)
	if err == nil {
		err = r.leg.pc.SetLocalDescription(a)
	}
	if err == nil {
		err = c.sendCredentials(r)
	}
	if err != nil {
		c.g.log.Info("ICE restart", "call", c.id, "err", err)
	}
}

var iceChars = regexp.MustCompile(`^[A-Za-z0-9+/]{4,256}$`)

func validICE(s string) bool { return iceChars.MatchString(s) }

// withCredentials returns sdp with new ICE credentials and without its
// candidates (they belong to the old ones).
func withCredentials(sdp, ufrag, pwd string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(sdp, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "a=ice-ufrag:"):
			b.WriteString("a=ice-ufrag:" + ufrag + "\r\n")
		case strings.HasPrefix(t, "a=ice-pwd:"):
			b.WriteString("a=ice-pwd:" + pwd + "\r\n")
		case strings.HasPrefix(t, "a=candidate:"), strings.HasPrefix(t, "a=end-of-candidates"):
		default:
			b.WriteString(l)
		}
	}
	return b.String()
}

func sdpValue(sdp, prefix string) string {
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return v
		}
	}
	return ""
}

func sdpMids(sdp string) []string {
	var out []string
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=mid:"); ok {
			out = append(out, v)
		}
	}
	return out
}

// onConnected runs the binding check when DTLS is up.
func (c *call) onConnected(r *callRun) {
	if r.connected {
		return // back after an ICE restart: DTLS and the binding are unchanged (pathBack)
	}
	if r.leg == nil || r.over {
		return
	}
	if h := c.g.callHooks.beforeBinding; h != nil {
		h(r.leg)
	}
	err := r.binding.CheckPeerConnection(r.leg.pc)
	if err != nil {
		c.bindingFailed(r, err)
		return
	}
	r.leg.admit() // received media is recorded from now on
	if c.local != nil {
		c.local.startRelay() // the local peer's media goes to the checked peer
	}
	r.connected = true
	c.stopTimer(r)
	c.update(func(in *CallInfo) {
		if in.State != CallEnded {
			in.State, in.Connected = CallConnected, c.g.now()
		}
	})
	profile := ""
	if p, ok := srtp.NegotiatedProfile(r.leg.pc); ok {
		profile = srtp.ProfileName(p)
	}
	c.update(func(in *CallInfo) { in.Binding, in.SRTPProfile = BindingPassed, profile })
	if r.muted != [2]bool{} {
		c.sendMute(r.muted, r.muted) // muted before the session existed
	}
	r.leg.startPlayback(c.ctx, nil) // the call goes on after the files end, until hung up or Duration
	c.mu.Lock()
	d := c.media.Duration
	c.mu.Unlock()
	if d > 0 {
		r.duration = time.NewTimer(d)
		if h := c.g.callHooks.durationArmed; h != nil {
			h(d)
		}
	}
}

func durationC(r *callRun) <-chan time.Time {
	if r.duration == nil {
		return nil
	}
	return r.duration.C
}

// onFailed: ICE or DTLS failed. A DTLS handshake with a certificate other
// than the bound one is a security error, whoever noticed it first.
func (c *call) onFailed(r *callRun) {
	if r.over || r.leg == nil || r.failed {
		return
	}
	if err := r.binding.CheckPeerConnection(r.leg.pc); err != nil && errors.Is(err, dtls.ErrBindingMismatch) {
		r.failed = true
		c.bindingFailed(r, err)
		return
	}
	dtlsState := r.leg.pc.SCTP().Transport().State()
	dtlsUp := dtlsState == webrtc.DTLSTransportStateConnected
	if r.connected && dtlsUp && r.leg.pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
		// ICE lost the path of a running call: it reconnects, for a
		// bounded time.
		c.lostPath(r)
		return
	}
	r.failed = true
	const detail = "the media connection failed (ICE or DTLS): check the network, or configure a TURN server"
	if r.connected || dtlsUp || dtlsState == webrtc.DTLSTransportStateClosed {
		// A peer that ends the call closes its DTLS as its terminate
		// goes out, and the close can arrive first: give the terminate
		// a moment to tell the real reason. That holds as soon as the
		// DTLS handshake is through, before this side has seen the
		// call connected (a caller may hang up at once).
		c.setTimer(r, terminateGrace, jingle.ReasonConnectivityError, detail)
		return
	}
	c.terminate(r, jingle.ReasonConnectivityError, detail)
}

// terminateGrace is how long a connected call whose media connection
// closed waits for the peer's session-terminate before it ends with
// connectivity-error.
const terminateGrace = 2 * time.Second

// bindingFailed: the DTLS certificate is not the one the peer's certified
// device signaled. Terminate for security-error and alert.
func (c *call) bindingFailed(r *callRun, err error) {
	if r.leg != nil {
		r.leg.reject() // nothing it received is kept
	}
	c.update(func(in *CallInfo) { in.Binding = BindingFailed })
	f := c.g.peerFacts(policy.KindMediaCall, policy.DirectionIncoming, c.peer)
	if c.outgoing {
		f.Direction = policy.DirectionOutgoing
	}
	f.PeerDevice, f.Protection, f.Signaling = c.boundDev, policy.ProtectionTransportOnly, policy.SignalingProtected
	c.g.notifyNow(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "dtls-binding",
		Message: "The media connection of a call with " + policy.ShowJID(c.peer) + " presented another certificate than the one their device signaled end to end: someone is intercepting it. The call was ended.",
		Detail:  fmt.Sprintf("call %s: %v", c.id, err)})
	c.terminate(r, jingle.ReasonSecurityError, "the peer's DTLS certificate does not match the fingerprint its certified device sent end to end: the media path is intercepted (man in the middle); the call was ended")
}

// localConnected: the local peer's leg is up.
func (c *call) localConnected(r *callRun) {
	if r.over || c.local == nil {
		return
	}
	profile := c.local.srtpProfile()
	c.update(func(in *CallInfo) {
		if in.LocalLeg != LocalLegEnded {
			in.LocalLeg, in.LocalSRTPProfile = LocalLegConnected, profile
		}
	})
}

// localEnded: the local peer's leg closed, failed or never connected;
// the call ends with reason gone (the user is gone from this end) and
// the local leg's reason as the detail.
func (c *call) localEnded(r *callRun) {
	if r.over || c.local == nil {
		return
	}
	c.hangUp(r, jingle.ReasonGone, c.local.deadReason())
}
