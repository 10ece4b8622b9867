package gateway

// XEP-0353 Jingle Message Initiation for calls, every message protected:
// propose to the peer's bare JID (each certified device, and our own other
// devices through the targets of SendProtectedMessage and carbons),
// ringing, proceed to the caller's device, accept to our own account,
// reject, retract and finish.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// nsCall qualifies securejingle's own markers in call signaling.
const nsCall = e2e.NS + ":call"

// answeredElsewhere marks the <reason/> of the retract a caller sends to a
// device whose proceed came after another device's: the call was answered
// elsewhere (XEP-0353 has no condition for it; the reason's condition is
// cancel, as a retract's SHOULD be).
var answeredElsewhere = jingle.Raw{XMLName: xml.Name{Space: nsCall, Local: "answered-elsewhere"}}

// answeredElsewhereFor is the marker for the device with id dev (if
// known): its 'device' attribute, inside the protected message, names the
// one device the retract is for.
func answeredElsewhereFor(dev uint32, known bool) jingle.Raw {
	m := answeredElsewhere
	if known {
		m.Attrs = []xml.Attr{{Name: xml.Name{Local: "device"}, Value: strconv.FormatUint(uint64(dev), 10)}}
	}
	return m
}

// answeredElsewhereMine reports whether the marker m is for the device
// with id own: it names own, or no device at all. A 'device' attribute
// that is not a canonical decimal uint32 is for no device.
func answeredElsewhereMine(m jingle.Raw, own uint32) bool {
	for _, a := range m.Attrs {
		if a.Name.Space == "" && a.Name.Local == "device" {
			v, err := strconv.ParseUint(a.Value, 10, 32)
			return err == nil && strconv.FormatUint(v, 10) == a.Value && uint32(v) == own
		}
	}
	return true
}

// tieBreakLost is the Detail of a call that lost a tie-break.
const tieBreakLost = "both sides called at once; the other call won the tie-break"

// End reasons that are not XEP-0166 conditions.
const reasonAnsweredElsewhere = "answered-elsewhere"

// newCallID returns a UUIDv4, as XEP-0353 recommends for the session id.
func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// normMedia fills in what a CallMedia implies: a file means that medium.
func normMedia(m CallMedia) CallMedia {
	if m.AudioFile != "" {
		m.Audio = true
	}
	if m.VideoFile != "" {
		m.Video = true
	}
	return m
}

func mediaNames(m CallMedia) []string {
	var out []string
	if m.Audio {
		out = append(out, "audio")
	}
	if m.Video {
		out = append(out, "video")
	}
	return out
}

// certifiedDevices returns the devices of bare the engine would encrypt a
// call's signaling to.
func (g *Gateway) certifiedDevices(bare string) []e2e.Device {
	ds, err := g.eng.Devices(bare)
	if err != nil {
		return nil
	}
	var out []e2e.Device
	for _, d := range ds {
		if g.eng.CanSeal(d) == nil {
			out = append(out, d)
		}
	}
	return out
}

// trustOf returns the trust level name of a peer account and whether the
// user verified it.
func (g *Gateway) trustOf(bare string) (string, bool) {
	if g.cfg.Trust == nil {
		return trust.Unknown.String(), false
	}
	rec, err := g.cfg.Trust.Lookup(bare)
	if err != nil {
		return trust.Unknown.String(), false
	}
	return rec.Level.String(), rec.Level == trust.Verified
}

// newCall builds a call (not yet registered or running).
func (g *Gateway) newCall(id string, outgoing bool, peer string, media []string) *call {
	ctx, cancel := context.WithCancel(g.runCtx)
	c := &call{g: g, id: id, outgoing: outgoing, peer: peer, ctx: ctx, cancel: cancel,
		q: make(chan callMsg, callQueueSize), slots: make(chan struct{}, callQueueSize),
		api: make(chan callMsg), kick: make(chan struct{}, 1), done: make(chan struct{})}
	dir := CallIncoming
	if outgoing {
		dir = CallOutgoing
	}
	tl, verified := g.trustOf(peer)
	c.info = CallInfo{ID: id, Direction: dir, Peer: peer, Media: media, State: CallProposed,
		Trust: tl, Verified: verified, Binding: BindingPending, RelayOnly: g.cfg.RelayOnly, Created: g.now()}
	return c
}

// startCall runs the call's goroutine; false when the gateway stopped.
func (g *Gateway) startCall(c *call) bool {
	if !g.calls.begin() {
		c.cancel()
		return false
	}
	go c.run()
	return true
}

// placeCall places the call; local is the local peer's leg of
// PlaceLocalCall (nil otherwise), which the call owns once it runs.
func (g *Gateway) placeCall(ctx context.Context, to jid.JID, m CallMedia, local *localLeg) (CallInfo, error) {
	m = normMedia(m)
	if !m.Audio && !m.Video {
		return CallInfo{}, ErrNoMedia
	}
	if !g.eng.Certified() {
		return CallInfo{}, ErrDeviceNotCertified
	}
	g.mu.Lock()
	online := g.sess != nil
	g.mu.Unlock()
	if !online {
		return CallInfo{}, ErrOffline
	}
	bare := to.Bare().String()
	if bare == g.bare() {
		return CallInfo{}, fmt.Errorf("%w: a call goes to another account than your own", ErrCallState)
	}
	if len(g.certifiedDevices(bare)) == 0 && !g.onRoster(bare) {
		// A stranger: their bundles may be in PEP (opportunistic path).
		g.DiscoverBundles(ctx, to.Bare())
	}
	if len(g.certifiedDevices(bare)) == 0 {
		return CallInfo{}, fmt.Errorf("%w (%s)", ErrPeerNotCertified, policy.ShowJID(bare))
	}
	f := g.peerFacts(policy.KindMediaCall, policy.DirectionOutgoing, bare)
	f.Protection, f.Signaling = policy.ProtectionE2EBound, policy.SignalingProtected
	if d := g.decide(ctx, f); d.Action == policy.ActionRefuse {
		return CallInfo{}, &CallRefusedError{Rule: d.Rule, Message: d.Message}
	}
	c := g.newCall(newCallID(), true, bare, mediaNames(m))
	c.media = m
	c.local = local
	prop := &jingle.JMI{Kind: jingle.JMIPropose, ID: c.id}
	for _, k := range mediaNames(m) {
		prop.Descriptions = append(prop.Descriptions, jingle.Description{Media: k})
	}
	var err error
	if c.prop, err = jingle.NewOutgoingProposal(g.JID().String(), bare, prop, g.now(), jingle.WithRingTimeout(c.ringTimeout())); err != nil {
		c.cancel()
		return CallInfo{}, err
	}
	if err := g.calls.add(c); err != nil {
		c.cancel()
		return CallInfo{}, err
	}
	if local != nil {
		local.attach(c)
	}
	if !g.startCall(c) {
		c.finishUnstarted()
		return CallInfo{}, ErrOffline
	}
	// The state as proposed: an answer may overtake the return.
	c.update(func(*CallInfo) {})
	proposed := c.snapshot()
	if err := c.sendJMIWith(ctx, to.Bare(), prop); err != nil {
		c.postWait(context.WithoutCancel(ctx), callMsg{kind: msgHangUp, reason: jingle.ReasonFailedApplication, detail: "the call proposal could not be sent: " + err.Error()})
		<-c.done
		return CallInfo{}, err
	}
	return proposed, nil
}

func (g *Gateway) answerCall(ctx context.Context, id string, m CallMedia, local *localLeg) error {
	c := g.calls.get(id)
	if c == nil {
		return ErrUnknownCall
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return ErrUnknownCall
	}
	if c.outgoing || c.answering || c.info.State != CallRinging {
		c.mu.Unlock()
		return ErrCallState
	}
	c.answering = true
	c.mu.Unlock()
	return c.postAnswer(ctx, callMsg{kind: msgAnswer, media: m, local: local})
}

// postAnswer hands an answer or decline to the call's goroutine; one the
// goroutine did not take (the request ended first) is undone, so that
// the call can still be answered or declined.
func (c *call) postAnswer(ctx context.Context, m callMsg) error {
	taken, err := c.postWaitTaken(ctx, m)
	if !taken {
		c.mu.Lock()
		c.answering = false
		c.mu.Unlock()
	}
	return err
}

func (g *Gateway) declineCall(ctx context.Context, id string) error {
	c := g.calls.get(id)
	if c == nil {
		return ErrUnknownCall
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return ErrUnknownCall
	}
	if c.outgoing || c.answering {
		c.mu.Unlock()
		return ErrCallState
	}
	c.answering = true
	c.mu.Unlock()
	return c.postAnswer(ctx, callMsg{kind: msgDecline})
}

func (g *Gateway) hangUp(ctx context.Context, id string) error {
	c := g.calls.get(id)
	if c == nil {
		return ErrUnknownCall
	}
	if c.isEnded() {
		return ErrUnknownCall
	}
	err := c.postWait(ctx, callMsg{kind: msgHangUp})
	if err == nil {
		// The call's info is final once its goroutine returned.
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// sendJMI sends a JMI element of this call, protected, to to, if the
// XEP-0353 state machine lets it (a finish after the peer's finish, a
// retract once a device proceeded are not sent). It runs on the call's
// goroutine.
func (c *call) sendJMI(to jid.JID, kind jingle.JMIKind, reason *jingle.Reason) error {
	m := c.prepareJMI(kind, reason)
	if m == nil {
		return nil
	}
	return c.sendJMIRaw(to, m)
}

// prepareJMI builds a JMI element of the call and passes it through the
// proposal machine; nil if the machine refuses it (nothing to send).
func (c *call) prepareJMI(kind jingle.JMIKind, reason *jingle.Reason) *jingle.JMI {
	m := &jingle.JMI{Kind: kind, ID: c.id, Reason: reason}
	if c.prop != nil {
		c.mu.Lock()
		_, err := c.prop.Send(m)
		c.mu.Unlock()
		if err != nil {
			c.g.log.Debug("JMI not sent", "call", c.id, "err", err)
			return nil
		}
	}
	return m
}

// sendJMIRaw sends m without the state machine: a message to a device
// that is not the call's (the retract of a late proceed).
func (c *call) sendJMIRaw(to jid.JID, m *jingle.JMI) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), callSendTimeout)
	defer cancel()
	return c.sendJMIWith(ctx, to, m)
}

func (c *call) sendJMIWith(ctx context.Context, to jid.JID, m *jingle.JMI) error {
	return c.g.sendCallJMI(ctx, to, m)
}

// sendCallJMI sends a JMI element, protected, to to (a bare JID: every
// certified device of the account; a full JID: that device).
func (g *Gateway) sendCallJMI(ctx context.Context, to jid.JID, m *jingle.JMI) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	err = g.SendProtectedMessage(ctx, to, "chat", b, false)
	if errors.Is(err, ErrNoE2E) && to.Bare().String() == g.bare() {
		return nil // no other device of ours to tell
	}
	return err
}

// background runs f on a goroutine with a bounded context, unless too
// many are running (then f is dropped: what it would send is best
// effort). Calls use it for what the read loop and the worker must not
// wait for.
func (g *Gateway) background(f func(ctx context.Context)) {
	select {
	case g.calls.sem <- struct{}{}:
	default:
		g.log.Warn("call: background work dropped")
		return
	}
	if !g.calls.begin() {
		<-g.calls.sem
		return
	}
	go func() {
		defer g.calls.wg.Done()
		defer func() { <-g.calls.sem }()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(g.runCtx), callSendTimeout)
		defer cancel()
		f(ctx)
	}()
}

func reason(cond jingle.ReasonCondition, text string, extra ...jingle.Raw) *jingle.Reason {
	return &jingle.Reason{Condition: cond, Text: text, Extra: extra}
}

// jmiElement returns the first XEP-0353 child of a message.
func jmiElement(st *Stanza) *Child {
	for i := range st.Children {
		if st.Children[i].Name.Space == jingle.NSJMI {
			return &st.Children[i]
		}
	}
	return nil
}

// handleJMI processes a JMI element that arrived in a protected message
// from peer (authenticated), sealed at sent (the envelope's time). It
// runs on the worker: it never waits.
func (g *Gateway) handleJMI(st *Stanza, raw []byte, peer *e2e.Peer, sent time.Time) {
	m, err := jingle.ParseJMI(raw)
	if err != nil {
		g.log.Info("malformed JMI", "from", st.From.String(), "err", err)
		return
	}
	from := st.From
	if peer.JID == g.bare() {
		g.ownJMI(m, from)
		return
	}
	if peer.JID != from.Bare().String() {
		return
	}
	if to := st.To; to.Resourcepart() != "" && !to.Equal(g.JID()) {
		return // a carbon of what the peer told another device of ours
	}
	// The resource must be the one that runs the authenticated device:
	// the envelope binds only bare JIDs, so a server could move a proceed
	// to another resource.
	if from.Resourcepart() == "" {
		return
	}
	if d, ok := g.deviceOf(from); !ok || d != peer.ID {
		g.log.Info("JMI from a resource that does not run its device", "from", from.String(), "device", peer.ID)
		return
	}
	if m.Kind == jingle.JMIPropose {
		g.incomingPropose(m, from, peer, sent)
		return
	}
	c := g.calls.get(m.ID)
	if c == nil || c.peer != peer.JID {
		return
	}
	c.post(callMsg{kind: msgJMI, jmi: m, from: from, device: peer.ID})
}

// ownJMI handles JMI sent by another device of our own account: its
// accept, proceed or reject for a call ringing here stops the ringing.
func (g *Gateway) ownJMI(m *jingle.JMI, from jid.JID) {
	if from.Equal(g.JID()) {
		return
	}
	switch m.Kind {
	case jingle.JMIAccept, jingle.JMIProceed, jingle.JMIReject:
	default:
		return // our other device's own calls are not ours
	}
	c := g.calls.get(m.ID)
	if c == nil || c.outgoing {
		return
	}
	c.post(callMsg{kind: msgJMI, jmi: m, from: from, own: true})
}

// tieBreak decides a propose m from the device from against our own
// calls to the same account still proposed or ringing (XEP-0353, tie
// breaking; the rule is jingle.Proposal.TieBreak's: the lower id wins).
// It returns the reject to send when one of ours wins. Otherwise every
// call of ours that lost is told to retract and end; the caller has
// registered the incoming call already.
func (g *Gateway) tieBreak(bare string, from jid.JID, m *jingle.JMI) *jingle.JMI {
	// The lowest id first: if ours wins, no other call of ours changed.
	for _, o := range g.calls.outgoingTo(bare) {
		if !o.reserve() {
			continue // over, or its queue is full: the peer's own tie-break rejects it
		}
		o.mu.Lock()
		res, msg := o.prop.TieBreak(from.String(), m)
		o.mu.Unlock()
		switch res {
		case jingle.TieBreakOurs:
			o.unreserve()
			return msg
		case jingle.TieBreakTheirs:
			o.send(callMsg{kind: msgTieBreak, jmi: msg})
		default:
			o.unreserve()
		}
	}
	return nil
}

// callClockSkew is how far the clocks of two devices may differ for the
// age of a propose (implementation constant).
const callClockSkew = 30 * time.Second

// staleErr says why a propose sealed at sent must not ring at now: the
// caller gave up on it (older than the ring timeout), or it claims to be
// from the future, beyond the clock skew allowed either way.
func staleErr(sent, now time.Time, ring time.Duration) error {
	switch age := now.Sub(sent); {
	case age > ring+callClockSkew:
		return fmt.Errorf("gateway: the call proposal was sent %v ago, longer than the ring timeout %v (+%v clock skew): the server held it back", age.Round(time.Second), ring, callClockSkew)
	case age < -callClockSkew:
		return fmt.Errorf("gateway: the call proposal is dated %v ahead of this device's clock: check the clocks", (-age).Round(time.Second))
	}
	return nil
}

// incomingPropose makes a call ring, after policy and bounds. sent is the
// time of the propose's envelope.
func (g *Gateway) incomingPropose(m *jingle.JMI, from jid.JID, peer *e2e.Peer, sent time.Time) {
	bare := peer.JID
	if g.calls.get(m.ID) != nil {
		return // a duplicate, or our own id
	}
	if err := staleErr(sent, g.now(), g.ringTimeout()); err != nil {
		// A propose held back (or replayed from a store) rings nothing;
		// its caller stopped waiting long ago.
		g.log.Info("call proposal refused", "from", from.String(), "call", m.ID, "err", err)
		return
	}
	media := slices.DeleteFunc(m.Media(), func(s string) bool { return s != "audio" && s != "video" })
	media = slices.Compact(media)
	f := g.peerFacts(policy.KindMediaCall, policy.DirectionIncoming, bare)
	f.PeerDevice, f.Signaling, f.StanzaType = peer.ID, policy.SignalingProtected, "chat"
	f.Protection = policy.ProtectionE2EBound
	if err := g.eng.CheckDevice(peer.Device); err != nil {
		// The engine opens nothing from an uncertified device; this is
		// the last line should a certificate have expired meanwhile.
		f.Protection = policy.ProtectionE2EUnverified
		g.queueAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "uncertified-call",
			Message: "A call proposal from a device of " + policy.ShowJID(bare) + " that is not certified by their account key was refused.",
			Detail:  fmt.Sprintf("propose %s from %s (device %d): %v", m.ID, from, peer.ID, err)})
		return
	}
	if len(media) == 0 {
		g.log.Info("call proposal without audio or video", "from", from.String())
		return
	}
	rateKey := ""
	if f.OnRoster {
		rateKey = bare
	}
	if !g.calls.allowPropose(rateKey, g.now()) {
		// Dropped without a word: a flood of proposes rings nothing and
		// alerts nobody more.
		g.log.Info("call proposal over the rate limit", "from", from.String(), "call", m.ID)
		return
	}
	send := func(j *jingle.JMI) {
		g.background(func(ctx context.Context) { g.sendCallJMI(ctx, from.Bare(), j) })
	}
	reply := func(r *jingle.Reason) { send(&jingle.JMI{Kind: jingle.JMIReject, ID: m.ID, Reason: r}) }
	d := g.policy.Decide(f)
	if d.Action != policy.ActionAllow {
		g.queueAlert(f, d)
	}
	if d.Action == policy.ActionRefuse {
		if f.OnRoster {
			// A stranger hears nothing: a reject would tell whoever
			// floods proposes that this device is online and refuses.
			reply(reason(jingle.ReasonDecline, ""))
		}
		return
	}
	c := g.newCall(m.ID, false, bare, media)
	var err error
	if c.prop, err = jingle.NewIncomingProposal(g.JID().String(), from.String(), m, g.now(), jingle.WithRingTimeout(c.ringTimeout())); err != nil {
		c.cancel()
		g.log.Info("call proposal refused", "from", from.String(), "err", err)
		return
	}
	c.bound, c.boundFull, c.boundDev = true, from, peer.ID
	c.info.PeerFull, c.info.PeerDevice = from.String(), peer.ID
	c.info.State = CallRinging
	// Registered before the tie-break: should it win, our own call ends
	// only once this one has its place.
	if err := g.calls.add(c); err != nil {
		c.cancel()
		if errors.Is(err, ErrTooManyCalls) {
			reply(reason(jingle.ReasonBusy, ""))
		}
		return
	}
	if rej := g.tieBreak(bare, from, m); rej != nil {
		g.calls.remove(c.id)
		c.cancel()
		send(rej)
		return
	}
	if !g.startCall(c) {
		c.finishUnstarted()
		return
	}
	c.post(callMsg{kind: msgJMI, jmi: m, from: from, device: peer.ID})
}
