package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// Calls of local clients, phase 2 (docs/protocol.md §22.11): the front is
// the loopback peer of a client's plain XEP-0167 call with XEP-0320
// DTLS-SRTP. A call the client places to a contact with a certified
// securejingle device is not sent upstream: the front answers it with a
// local leg of its own (call_local.go, the web app's relay path) and
// places the call to the contact as a protected, bound session; media is
// relayed leg to leg. An incoming protected call is offered to every
// connected client as a plain session-initiate from the caller's device,
// whose first session-accept answers it. Nothing of the client's session
// (fingerprint, candidates, codecs) leaves the machine.

// Bounds of the front's calls (implementation constants).
const (
	// maxFrontCalls bounds the sessions the front holds with clients,
	// all clients together (the local legs are bounded by the call
	// table too: one leg per session).
	maxFrontCalls = 16
	// maxRingClients bounds the clients one incoming call rings.
	maxRingClients = 4
	// frontCallQueue bounds the client's requests waiting for one
	// session's goroutine (trickled candidates mostly).
	frontCallQueue = 32
	// maxFrontIQs bounds the front's requests to clients waiting for
	// their answer (kept frontIQTTL, past the session's end: the
	// answer to its last session-terminate is the front's too).
	maxFrontIQs = 64
	frontIQTTL  = 2 * time.Minute
	// maxFrontRung bounds the incoming calls remembered as offered to the
	// clients (each is offered once).
	maxFrontRung = 64
)

// frontCalls is the front's table of client sessions (guarded by
// Front.mu).
type frontCalls struct {
	bySID  map[frontCallKey]*frontCall
	byCall map[string][]*frontCall // gateway call id → the sessions of it
	iqs    map[string]frontIQ      // ids of our requests to clients
	// rung are the incoming calls offered to the clients, and when.
	rung map[string]time.Time
	// ringSlot: the incoming call holds one local-leg slot of the call
	// table for its rings, until a client's leg takes it or no client
	// of it is left.
	ringSlot map[string]bool
	// declined: a client declined the incoming call; the last client
	// of it to go declines it.
	declined map[string]bool
}

// frontIQ is a request of the front's to a client awaiting its answer.
type frontIQ struct {
	fc     *frontCall
	action jingle.Action
	at     time.Time
}

type frontCallKey struct {
	c   *frontClient
	sid string
}

// frontCall is one Jingle session between a local client and the front.
type frontCall struct {
	f        *Front
	c        *frontClient
	sid      string
	peer     jid.JID // who the client talks to: the JID it called, or the caller's device
	outgoing bool    // the client placed the call
	reqs     chan frontReq
	kick     chan struct{} // the gateway's call changed
	callID   string        // set by the session's goroutine before it registers byCall
}

// Errors of a client to the front's requests that end its session: to
// the session-initiate (incoming) and to the session-accept (outgoing).
// An error to anything else (a session-info it does not understand,
// XEP-0166 §7.2) ends nothing.
func endsSession(a jingle.Action) bool {
	return a == jingle.ActionSessionInitiate || a == jingle.ActionSessionAccept
}

// frontReq is a Jingle request of the client in a session, or (iqErr) the
// client's error answer to our session-initiate.
type frontReq struct {
	j     *jingle.Jingle
	iqErr bool
}

// clientJingle handles the client's Jingle IQ set m: it reports whether
// the front took it (answered; nothing goes upstream). A session of the
// front's is served by its goroutine; a session-initiate of a call to a
// contact the gateway can protect starts one; anything else goes on as
// before phase 2 (see plainCallOut for calls to other contacts).
func (c *frontClient) clientJingle(m *Stanza) bool {
	ch := m.Child(nsJingle, "jingle")
	if ch == nil {
		return false
	}
	f := c.f
	sid := attrOf(ch.Raw, "sid")
	key := m.To.String() + "\x00" + sid
	if c.plainSessions.has(key, f.g.now()) {
		return false // a plain session policy let through (plainSession)
	}
	j, err := jingle.Parse(ch.Raw)
	if err == nil {
		err = j.Validate()
	}
	if err == nil && len(m.Children) != 1 {
		err = errors.New("the IQ carries other elements next to <jingle/>")
	}
	if err != nil {
		if fc := f.callOf(c, sid); fc != nil {
			c.forward(fc.iqAnswer(m, (&StanzaError{Type: "modify", Condition: "bad-request"}).element()))
			return true
		}
		if !c.protectable(m.To) {
			c.plainSession(m.To, sid)
			return false // to a plain contact, as without the gateway
		}
		// Jingle we cannot read, to a contact with securejingle (or one
		// we could not look up): never sent around the protection.
		c.f.log.Info("local client: Jingle the front cannot read, not sent", "jid", c.jid.String(), "to", m.To.String(), "err", err)
		c.refuseCall(m, "The Jingle request was not sent: securejingle could not read it ("+policy.BoundDetail(err.Error())+"), and nothing of it goes in clear to "+policy.ShowJID(m.To.Bare().String())+", who uses securejingle.")
		return true
	}
	if fc := f.callOf(c, j.SID); fc != nil {
		if j.Action == jingle.ActionSessionInitiate {
			c.forward(fc.iqAnswer(m, jingleError("unexpected-request", jingle.ErrOutOfOrder).element()))
			return true
		}
		select {
		case fc.reqs <- frontReq{j: j}:
			c.forward(fc.iqAnswer(m))
		default:
			c.forward(fc.iqAnswer(m, (&StanzaError{Type: "wait", Condition: "resource-constraint"}).element()))
		}
		return true
	}
	if m.To.Localpart() == "" || m.To.Bare().String() == f.g.bare() {
		// Servers and components, and the account's own resources
		// (calls between them are not placed through the engine).
		return false
	}
	if j.Action == jingle.ActionSessionInitiate && jingleKind(ch.Raw) != policy.KindMediaCall {
		// Another application (a file offer clientFileStanza let
		// through): its session is plain, as policy decided.
		c.plainSession(m.To, sid)
		return false
	}
	initiate := j.Action == jingle.ActionSessionInitiate
	err = c.lookupPlain(m.To)
	switch {
	case errors.Is(err, ErrNoE2E):
		if !initiate {
			// A session of no one known to a plain contact (one begun
			// before this daemon ran, say): as without the gateway.
			return false
		}
		if c.plainCallOut(m, j) {
			return true
		}
		c.plainSession(m.To, sid)
		return false
	case !initiate:
		// A request of no session of ours to a contact with
		// securejingle (a late transport-info of a refused or ended
		// call, say): its candidates must not go out in clear, and
		// such a contact has no plain session with the client (its
		// unprotected Jingle is refused, §22.4).
		c.forward(build("iq", map[string]string{"type": "error", "id": m.ID, "from": m.To.String(), "to": c.jid.String()},
			jingleError("item-not-found", jingle.ErrUnknownSession).element()))
		return true
	case err != nil:
		// The contact runs securejingle (or we could not tell): the
		// call is never set up around the protection.
		c.refuseCall(m, "The call was not placed: "+policy.ShowJID(m.To.Bare().String())+" uses securejingle, but securejingle could not get a usable device of it yet ("+policy.BoundDetail(err.Error())+"). Nothing was sent in clear; try again in a moment.")
		return true
	}
	fc, ok := f.addCall(c, j.SID, m.To, true)
	if !ok {
		c.refuseCall(m, "The call was not placed: securejingle already holds as many calls of local clients as it allows. Hang up another call first.")
		return true
	}
	c.forward(fc.iqAnswer(m))
	go fc.runOutgoing(j)
	return true
}

// protectable reports whether to is an account other than ours with
// securejingle, or one the front could not tell about (the lookup of its
// keys failed): Jingle and JMI to it are the front's, never sent in clear.
func (c *frontClient) protectable(to jid.JID) bool {
	if to.Localpart() == "" || to.Bare().String() == c.f.g.bare() {
		return false
	}
	return !errors.Is(c.lookupPlain(to), ErrNoE2E)
}

// lookupPlain looks up to's devices as chat does (chatTargets, bounded
// by frontLookupTimeout): nil when one can be encrypted to, ErrNoE2E
// only for a plain contact, one with no device stored or advertised (a
// contact whose stored devices are all unusable now, or whose keys the
// server hides, is not plain: its error is ErrUnusableKeys).
func (c *frontClient) lookupPlain(to jid.JID) error {
	g := c.f.g
	ctx, cancel := context.WithTimeout(c.life, frontLookupTimeout)
	defer cancel()
	_, err := g.chatTargets(ctx, to.Bare())
	if errors.Is(err, ErrNoE2E) && g.peerFacts(policy.KindMediaCall, policy.DirectionOutgoing, to.Bare().String()).PeerSupportsE2E {
		return ErrUnusableKeys
	}
	return err
}

// Bounds of frontClient.plainSessions (implementation constants).
const (
	maxPlainSessions = 256
	plainSessionTTL  = 2 * time.Hour
)

// plainSession records that the client's Jingle session sid with peer is
// plain (policy let its offer through, either way): its later Jingle
// passes without a lookup of the peer's keys.
func (c *frontClient) plainSession(peer jid.JID, sid string) {
	if sid == "" {
		return
	}
	c.plainSessions.add(peer.String()+"\x00"+sid, maxPlainSessions, plainSessionTTL, c.f.g.now())
}

// plainCallOut applies policy to the client's plain call (session-initiate
// j in m) to a contact without securejingle: it goes upstream as it is
// unless policy refuses it (reported: false; refused: true).
func (c *frontClient) plainCallOut(m *Stanza, j *jingle.Jingle) bool {
	g := c.f.g
	cl := classifyOffer(j, policy.SignalingUnprotected)
	f := g.peerFacts(policy.KindMediaCall, policy.DirectionOutgoing, m.To.Bare().String())
	f.Protection, f.Signaling, f.StanzaType = cl.prot, policy.SignalingUnprotected, "set"
	d := g.policy.Decide(f)
	if f.PeerSupportsE2E && d.Action != policy.ActionRefuse {
		// The contact advertises securejingle but no device of it can
		// be used: a call in clear would be a downgrade the server
		// forces by withholding bundles. Never, whatever the rules say
		// (as for chat, §22.3).
		d = policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityWarning, Rule: ruleFrontNoDevice,
			Message: policy.ShowJID(m.To.Bare().String()) + " uses securejingle, but none of its devices can be called yet (its keys are not fetched, or were refused), so the call was not placed in clear. Try again in a moment; `securejingle peers` shows its devices."}
	}
	if d.Action == policy.ActionAllow {
		return false
	}
	d.Detail = policy.BoundDetail("call from local client " + c.jid.String() + " to " + m.To.String() + ": " + cl.why)
	g.report(f, d)
	if d.Action != policy.ActionRefuse {
		return false
	}
	c.refuseCall(m, "The call was not placed, because it could not be end-to-end protected: "+d.Message)
	return true
}

// refuseCall answers the client's session-initiate m with a
// policy-violation error carrying text, and tells the client why.
func (c *frontClient) refuseCall(m *Stanza, text string) {
	c.forward(build("iq", map[string]string{"type": "error", "id": m.ID, "from": m.To.String(), "to": c.jid.String()}, policyViolation(text)))
	c.enqueue(c.f.notice(c.jid, text))
}

// clientIQAnswer consumes the client's answer m to a request of the
// front's (reports whether it was one): an error to a session-initiate
// ends that client's part of the call.
func (c *frontClient) clientIQAnswer(m *Stanza) bool {
	f := c.f
	f.mu.Lock()
	q, ok := f.calls.iqs[m.ID]
	ok = ok && q.fc.c == c
	if ok {
		delete(f.calls.iqs, m.ID)
	}
	f.mu.Unlock()
	if !ok {
		return false
	}
	if m.Type == "error" && endsSession(q.action) {
		select {
		case q.fc.reqs <- frontReq{iqErr: true}:
		default:
		}
	}
	return true
}

// callOf returns the front's session sid with client c, or nil.
func (f *Front) callOf(c *frontClient, sid string) *frontCall {
	if sid == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls.bySID[frontCallKey{c, sid}]
}

// addCall registers a session with client c; ok is false beyond
// maxFrontCalls or for a sid c already uses.
func (f *Front) addCall(c *frontClient, sid string, peer jid.JID, outgoing bool) (*frontCall, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.init()
	k := frontCallKey{c, sid}
	if len(f.calls.bySID) >= maxFrontCalls || f.calls.bySID[k] != nil || f.closed {
		return nil, false
	}
	fc := &frontCall{f: f, c: c, sid: sid, peer: peer, outgoing: outgoing,
		reqs: make(chan frontReq, frontCallQueue), kick: make(chan struct{}, 1)}
	f.calls.bySID[k] = fc
	return fc, true
}

// bind records that fc is a session of the gateway's call id.
func (fc *frontCall) bind(id string) {
	f := fc.f
	f.mu.Lock()
	fc.callID = id
	f.calls.byCall[id] = append(f.calls.byCall[id], fc)
	f.mu.Unlock()
	fc.poke()
}

// remove forgets fc (its goroutine ends). Its requests awaiting an
// answer stay (frontIQTTL): the client's answers are still the front's.
func (fc *frontCall) remove() {
	fc.leave(false)
	f := fc.f
	f.mu.Lock()
	delete(f.calls.bySID, frontCallKey{fc.c, fc.sid})
	f.mu.Unlock()
}

// leave takes fc out of its call's sessions (once; later calls do
// nothing) and reports whether the call is to be declined: fc was the
// last of it and a client declined it (explicit: fc's client did). The
// last to leave gives back the call's ring slot if no leg took it.
func (fc *frontCall) leave(explicit bool) (decline bool) {
	f := fc.f
	giveSlot := false
	f.mu.Lock()
	defer func() {
		f.mu.Unlock()
		if giveSlot {
			f.g.calls.giveLocal() // outside f.mu: never f.mu → calls.mu
		}
	}()
	if fc.callID == "" {
		return false
	}
	id := fc.callID
	list := f.calls.byCall[id]
	i := slices.Index(list, fc)
	if i < 0 {
		return false
	}
	list = append(list[:i:i], list[i+1:]...)
	if explicit {
		f.calls.declined[id] = true
	}
	if len(list) > 0 {
		f.calls.byCall[id] = list
		return false
	}
	delete(f.calls.byCall, id)
	if f.calls.ringSlot[id] {
		delete(f.calls.ringSlot, id)
		giveSlot = true
	}
	decline = f.calls.declined[id]
	delete(f.calls.declined, id)
	return decline
}

func (fc *frontCall) poke() {
	select {
	case fc.kick <- struct{}{}:
	default:
	}
}

// callChanged is told of every change of a gateway call (call.update): it
// wakes the sessions of the call, and offers a new incoming call to the
// connected clients. It never blocks.
func (f *Front) callChanged(info *CallInfo) {
	now := time.Now()
	f.mu.Lock()
	for _, fc := range f.calls.byCall[info.ID] {
		fc.poke()
	}
	ring := info.Direction == CallIncoming && info.State == CallRinging && info.LocalLeg == "" && !f.closed
	if ring {
		f.calls.init()
		ring = len(f.calls.byCall[info.ID]) == 0 && f.calls.firstRing(info.ID, now, f.g.ringTimeout())
	}
	f.mu.Unlock()
	if !ring {
		return
	}
	notOffered := func() { // a later change may offer it
		f.mu.Lock()
		delete(f.calls.rung, info.ID)
		f.mu.Unlock()
	}
	peer, err := jid.Parse(info.PeerFull)
	clients := f.snapshot()
	if err != nil || info.PeerFull == "" || len(clients) == 0 {
		notOffered()
		return
	}
	// One slot of the call table's local legs for the call's rings,
	// whatever the number of clients, and never the last one (kept for
	// the user's own call, as maxIncomingCalls keeps one).
	if !f.g.calls.takeLocalRing() {
		f.log.Info("an incoming call is not offered to the local clients: the local legs are in use", "call", info.ID)
		notOffered()
		return
	}
	var fcs []*frontCall
	for _, c := range clients {
		if len(fcs) == maxRingClients {
			break
		}
		fc, ok := f.addCall(c, "sj"+randomID(), peer, false)
		if !ok {
			break
		}
		fcs = append(fcs, fc)
	}
	if len(fcs) == 0 {
		f.g.calls.giveLocal()
		notOffered()
		return
	}
	f.mu.Lock()
	for _, fc := range fcs {
		fc.callID = info.ID
	}
	f.calls.byCall[info.ID] = fcs
	f.calls.ringSlot[info.ID] = true
	f.mu.Unlock()
	kinds := localKinds{}
	for _, m := range info.Media {
		kinds.audio = kinds.audio || m == "audio"
		kinds.video = kinds.video || m == "video"
	}
	for _, fc := range fcs {
		go fc.runIncoming(kinds)
	}
}

// init makes the maps (Front.mu is held).
func (t *frontCalls) init() {
	if t.bySID == nil {
		*t = frontCalls{bySID: map[frontCallKey]*frontCall{}, byCall: map[string][]*frontCall{}, iqs: map[string]frontIQ{},
			rung: map[string]time.Time{}, ringSlot: map[string]bool{}, declined: map[string]bool{}}
	}
}

// firstRing records that the incoming call id is offered to the clients
// now, and reports whether it was not before: each call is offered once
// (a client that declined is not asked again). Records older than twice
// the ring timeout are dropped, and beyond maxFrontRung the oldest.
func (t *frontCalls) firstRing(id string, now time.Time, ring time.Duration) bool {
	if _, ok := t.rung[id]; ok {
		return false
	}
	var oldest string
	for k, at := range t.rung {
		switch {
		case len(t.byCall[k]) > 0:
			// Still offered: never forgotten (it would be offered
			// again); at most maxFrontCalls of them.
		case now.Sub(at) > 2*ring:
			delete(t.rung, k)
		case oldest == "" || at.Before(t.rung[oldest]):
			oldest = k
		}
	}
	if len(t.rung) >= maxFrontRung && oldest != "" {
		delete(t.rung, oldest)
	}
	t.rung[id] = now
	return true
}

// iqAnswer is the answer to the client's IQ m from the session's peer:
// a result, or an error with the error element e.
func (fc *frontCall) iqAnswer(m *Stanza, e ...[]byte) []byte {
	attrs := map[string]string{"type": "result", "id": m.ID, "from": m.To.String(), "to": fc.c.jid.String()}
	if len(e) > 0 {
		attrs["type"] = "error"
	}
	return build("iq", attrs, e...)
}

// send gives the client a Jingle request j of the session, from its peer.
func (fc *frontCall) send(j *jingle.Jingle) {
	j.XMLName = xml.Name{Space: jingle.NS, Local: "jingle"}
	j.SID = fc.sid
	raw, err := xml.Marshal(j)
	if err != nil {
		fc.f.log.Warn("front call: a Jingle request could not be written", "action", string(j.Action), "err", err)
		return
	}
	id := "sjc" + randomID()
	f := fc.f
	now := time.Now()
	f.mu.Lock()
	f.calls.noteIQ(id, frontIQ{fc: fc, action: j.Action, at: now})
	f.mu.Unlock()
	fc.c.enqueue(build("iq", map[string]string{"type": "set", "id": id, "from": fc.peer.String(), "to": fc.c.jid.String()}, raw))
}

// noteIQ records a request awaiting its answer: expired ones are
// dropped first, and beyond maxFrontIQs the oldest (its answer then goes
// upstream as a stray IQ answer: metadata only). Front.mu is held.
func (t *frontCalls) noteIQ(id string, q frontIQ) {
	var oldest string
	for k, x := range t.iqs {
		if q.at.Sub(x.at) > frontIQTTL {
			delete(t.iqs, k)
		} else if oldest == "" || x.at.Before(t.iqs[oldest].at) {
			oldest = k
		}
	}
	if len(t.iqs) >= maxFrontIQs && oldest != "" {
		delete(t.iqs, oldest)
	}
	t.iqs[id] = q
}

// terminate ends the session at the client with why and text.
func (fc *frontCall) terminate(why jingle.ReasonCondition, text string) {
	fc.send(&jingle.Jingle{Action: jingle.ActionSessionTerminate, Reason: &jingle.Reason{Condition: why, Text: boundReason(text)}})
}

// boundReason shortens text for a <reason/>'s <text/>.
func boundReason(s string) string {
	if len(s) > jingle.MaxAttrLen {
		s = s[:jingle.MaxAttrLen-3] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// endedReason is the XEP-0166 condition a call's end is told to the
// client with.
func endedReason(info CallInfo) jingle.ReasonCondition {
	r := jingle.ReasonCondition(info.EndReason)
	switch {
	case info.EndReason == "":
		return jingle.ReasonSuccess
	case info.EndReason == reasonAnsweredElsewhere:
		return jingle.ReasonCancel
	case !r.Known():
		return jingle.ReasonGeneralError
	}
	return r
}

// sessionID is a fresh SDP o= session id (below 2^63, JSEP).
func sessionID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

// callWait bounds a client's session from its start to its call's
// connection: the ring, then the connection.
func (g *Gateway) callWait() time.Duration { return g.ringTimeout() + defaultLocalConnectWait }

// runOutgoing serves the client's call (session-initiate j): it places the
// protected call with a local leg answering j, gives the client the
// answer once the callee accepted, and relays the client's requests.
func (fc *frontCall) runOutgoing(j *jingle.Jingle) {
	defer fc.remove()
	c, g := fc.c, fc.f.g
	if n := keepHostCandidates(j.Contents); n > 0 {
		g.log.Info("front call: candidates of the client not on this host dropped", "client", c.jid.String(), "dropped", n)
	}
	offer, err := jingle.JingleToSDPAs(j.Contents, j.Groups, sessionID(), jingle.CreatorInitiator)
	if err != nil {
		fc.fail(jingle.ReasonFailedApplication, "The call was not placed: securejingle could not read its offer ("+policy.BoundDetail(err.Error())+").")
		return
	}
	ctx, cancel := context.WithTimeout(c.life, frontLoginTimeout)
	info, leg, answer, err := g.placeLocalCall(ctx, fc.peer.Bare(), LocalOffer{SDP: offer, Lifetime: c.life, ConnectWait: g.callWait(), Client: true})
	cancel()
	if err != nil {
		why := jingle.ReasonFailedApplication
		var re *CallRefusedError
		if errors.As(err, &re) {
			why = jingle.ReasonDecline
		}
		fc.fail(why, "The call was not placed: "+policy.BoundDetail(err.Error()))
		return
	}
	contents, groups, err := jingle.SDPToJingleAs(answer, jingle.CreatorResponder)
	if err != nil {
		g.HangUp(context.Background(), info.ID)
		fc.fail(jingle.ReasonFailedApplication, "The call was not placed: its answer could not be written as Jingle ("+policy.BoundDetail(err.Error())+").")
		return
	}
	fc.bind(info.ID)
	rang, accepted := false, false
	for {
		select {
		case <-fc.kick:
			info, ok := g.Call(fc.callID)
			if !ok {
				fc.terminate(jingle.ReasonGone, "The call is over.")
				return
			}
			switch info.State {
			case CallRinging:
				if !rang {
					rang = true
					fc.send(jingle.NewSessionInfo(fc.sid, jingle.RTPInfo{Kind: jingle.InfoRinging}))
				}
			case CallConnecting, CallConnected, CallReconnecting:
				if !accepted {
					accepted = true
					fc.send(&jingle.Jingle{Action: jingle.ActionSessionAccept, Initiator: c.jid.String(), Responder: fc.peer.String(), Contents: contents, Groups: groups})
				}
			case CallEnded:
				fc.terminate(endedReason(info), info.Detail)
				return
			}
		case r := <-fc.reqs:
			if fc.clientRequest(r, leg) {
				if r.iqErr {
					// The client refused our session-accept: it is told
					// the session is over, as the contact is.
					fc.terminate(jingle.ReasonFailedApplication, "Your client refused the session-accept; the call was hung up.")
				}
				g.HangUp(context.Background(), fc.callID)
				return
			}
		case <-c.life.Done():
			g.HangUp(context.Background(), fc.callID)
			return
		}
	}
}

// keepHostCandidates drops from contents the candidates the local leg
// does not take, and returns how many: all but UDP host candidates on
// this host's addresses (thisHost). A client on this machine gathers
// its LAN, server-reflexive and relayed candidates too; only its host
// ones can reach the front, the others would make this host probe
// others, and none of them is sent anywhere.
func keepHostCandidates(contents []jingle.Content) (dropped int) {
	for i := range contents {
		t := contents[i].Transport
		if t == nil {
			continue
		}
		kept := t.Candidates[:0]
		for _, c := range t.Candidates {
			a, err := netip.ParseAddr(c.IP)
			if err == nil && c.Type == "host" && strings.EqualFold(c.Protocol, "udp") && thisHost(a) {
				kept = append(kept, c)
			} else {
				dropped++
			}
		}
		t.Candidates = kept
	}
	return dropped
}

// fail ends a session that never became a call, telling the client why.
func (fc *frontCall) fail(why jingle.ReasonCondition, text string) {
	fc.f.g.log.Info("front call failed", "client", fc.c.jid.String(), "peer", fc.peer.String(), "why", text)
	fc.terminate(why, text)
	fc.c.enqueue(fc.f.notice(fc.c.jid, text))
}

// clientRequest applies the client's request r to the session (leg: its
// local leg); it reports whether the client ended the session.
func (fc *frontCall) clientRequest(r frontReq, leg *localLeg) (ended bool) {
	if r.iqErr || r.j.Action == jingle.ActionSessionTerminate {
		return true
	}
	switch r.j.Action {
	case jingle.ActionTransportInfo:
		for _, ct := range r.j.Contents {
			if ct.Transport == nil {
				continue
			}
			for _, cand := range ct.Transport.Candidates {
				if err := leg.addCandidate(ct.Name, jingle.CandidateToSDP(cand)); err != nil {
					fc.f.g.log.Info("front call: a candidate of the client is refused", "client", fc.c.jid.String(), "err", err)
				}
			}
		}
	}
	// session-info (ringing, mute, ...) and the rest: acknowledged,
	// nothing to relay.
	return false
}

// runIncoming offers the ringing incoming call (kinds: its media) to the
// client: a local leg offers, the client's session-accept answers the
// call with it.
func (fc *frontCall) runIncoming(kinds localKinds) {
	defer fc.remove()
	c, g := fc.c, fc.f.g
	ctx, cancel := context.WithTimeout(c.life, localGatherWait)
	// The leg takes no slot of its own: the call's ring slot moves to
	// the leg that answers (accept).
	leg, offer, err := g.newLocalOfferLeg(ctx, LocalOffer{Lifetime: c.life, ConnectWait: g.callWait(), Client: true}, kinds, false)
	cancel()
	if err != nil {
		g.log.Info("front call: an incoming call could not be offered to a local client", "client", c.jid.String(), "err", err)
		fc.declined(false)
		return
	}
	owned := true // the leg is ours until the call takes it
	defer func() {
		if owned {
			leg.close()
		}
	}()
	contents, groups, err := jingle.SDPToJingleAs(offer, jingle.CreatorInitiator)
	if err != nil {
		g.log.Warn("front call: our offer could not be written as Jingle", "err", err)
		fc.declined(false)
		return
	}
	fc.send(&jingle.Jingle{Action: jingle.ActionSessionInitiate, Initiator: fc.peer.String(), Contents: contents, Groups: groups})
	fc.poke() // the call may have changed while the offer was made
	for {
		select {
		case <-fc.kick:
			info, ok := g.Call(fc.callID)
			switch {
			case !ok || info.State == CallEnded:
				fc.terminate(endedReason(info), info.Detail)
				return
			case owned && info.State != CallRinging:
				fc.terminate(jingle.ReasonCancel, "The call was answered elsewhere.")
				return
			}
		case r := <-fc.reqs:
			if owned && !r.iqErr && r.j.Action == jingle.ActionSessionAccept {
				if err := fc.accept(r.j, leg); err != nil {
					fc.fail(jingle.ReasonFailedApplication, "The call could not be answered: "+policy.BoundDetail(err.Error()))
					fc.declined(false)
					return
				}
				owned = false
				continue
			}
			if fc.clientRequest(r, leg) {
				if owned {
					fc.declined(!r.iqErr)
				} else {
					g.HangUp(context.Background(), fc.callID)
				}
				return
			}
		case <-c.life.Done():
			if owned {
				fc.declined(false)
			} else {
				g.HangUp(context.Background(), fc.callID)
			}
			return
		}
	}
}

// accept answers the call with the client's session-accept j on leg.
func (fc *frontCall) accept(j *jingle.Jingle, leg *localLeg) error {
	keepHostCandidates(j.Contents)
	answer, err := jingle.JingleToSDPAs(j.Contents, j.Groups, sessionID(), jingle.CreatorResponder)
	if err != nil {
		return err
	}
	if err := leg.takeAnswer(answer); err != nil {
		return err
	}
	f := fc.f
	f.mu.Lock()
	slot := f.calls.ringSlot[fc.callID]
	delete(f.calls.ringSlot, fc.callID)
	f.mu.Unlock()
	if !slot {
		return errors.New("the call was answered elsewhere")
	}
	leg.ownSlot() // the leg gives the slot back when it closes
	ctx, cancel := context.WithTimeout(fc.c.life, frontLoginTimeout)
	defer cancel()
	return f.g.answerWithLeg(ctx, fc.callID, leg)
}

// declined: this client will not answer the incoming call. When the
// client declined it (explicit: its session-terminate) and no other
// client of the call is left to answer it, nor anything else did, the
// call is declined; a client that could not take it (an error answer,
// a leg that could not be made) leaves it ringing for the user's other
// devices and the web app.
func (fc *frontCall) declined(explicit bool) {
	if !fc.leave(explicit) {
		return
	}
	g := fc.f.g
	if info, ok := g.Call(fc.callID); ok && info.State == CallRinging && info.LocalLeg == "" {
		g.DeclineCall(context.Background(), fc.callID)
	}
}

// FrontCallResource is the resource of the JID the front answers a
// client's XEP-0353 proposal from (the contact's bare JID with it): the
// client then sends its session-initiate there, and the front terminates
// it (the remote device that will answer is not known yet).
const FrontCallResource = "securejingle-call"

// clientJMI handles the client's XEP-0353 message m to a contact the
// gateway can protect (reports whether it took it; nothing goes
// upstream): a propose is answered at once with a proceed from
// FrontCallResource, a retract ends the session it names, and the rest
// (the front offers incoming calls with session-initiate, not JMI) is
// dropped. JMI to other contacts goes on as before, classified by the
// session-initiate that follows.
func (c *frontClient) clientJMI(m *Stanza) bool {
	ch := jmiElement(m)
	if ch == nil || m.To.Localpart() == "" || m.To.Bare().String() == c.f.g.bare() {
		return false
	}
	err := c.lookupPlain(m.To)
	if errors.Is(err, ErrNoE2E) {
		return false
	}
	jm, perr := jingle.ParseJMI(ch.Raw)
	if perr != nil {
		c.f.log.Info("local client: malformed JMI dropped", "jid", c.jid.String(), "err", perr)
		return true
	}
	peer := m.To.Bare()
	switch jm.Kind {
	case jingle.JMIPropose:
		if err != nil {
			c.answerJMI(peer, &jingle.JMI{Kind: jingle.JMIReject, ID: jm.ID, Reason: &jingle.Reason{Condition: jingle.ReasonFailedApplication}})
			c.enqueue(c.f.notice(c.jid, "The call was not placed: "+policy.ShowJID(peer.String())+" uses securejingle, but securejingle could not get a usable device of it yet ("+policy.BoundDetail(err.Error())+"). Nothing was sent in clear; try again in a moment."))
			return true
		}
		full, jerr := peer.WithResource(FrontCallResource)
		if jerr != nil {
			return true
		}
		c.answerJMI(full, &jingle.JMI{Kind: jingle.JMIProceed, ID: jm.ID})
	case jingle.JMIRetract:
		if fc := c.f.callOf(c, jm.ID); fc != nil {
			select {
			case fc.reqs <- frontReq{j: &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: jm.ID}}:
			default:
			}
		}
	}
	return true
}

// answerJMI gives the client a JMI message from from.
func (c *frontClient) answerJMI(from jid.JID, jm *jingle.JMI) {
	raw, err := jm.Marshal()
	if err != nil {
		return
	}
	c.enqueue(build("message", map[string]string{"type": "chat", "id": randomID(), "from": from.String(), "to": c.jid.String()}, raw))
}
