package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/jingle"
)

// Bounds of the call channel (implementation constants). Every count a
// peer can raise is capped.
const (
	maxActiveCalls      = 4                  // calls not yet ended, both directions
	maxIncomingCalls    = maxActiveCalls - 1 // incoming ones: one slot stays for a call the user places
	maxCallsPerPeer     = 2                  // incoming calls of one peer account not yet ended
	maxCallHistory      = 32                 // ended calls kept for Calls()
	proposeBurst        = 6                  // proposes of one peer account accepted in a row
	proposeEvery        = 10 * time.Second   // and one more per this
	maxProposeBuckets   = 256                // peer accounts tracked for the propose rate
	callQueueSize       = 128
	maxPendingCands     = 2 * jingle.MaxCandidates // remote candidates buffered before the remote description
	defaultAcceptWait   = 30 * time.Second         // session-initiate sent → session-accept
	defaultInitiateWait = 30 * time.Second         // proceed sent → session-initiate
	defaultConnectWait  = 30 * time.Second         // descriptions exchanged → DTLS connected
	callSendTimeout     = 10 * time.Second         // one signaling stanza and its response
)

// sigState is where a call's Jingle session stands; it decides which
// Jingle actions a peer may send (XEP-0166 §6).
type sigState int

const (
	sigNone      sigState = iota // JMI only: no Jingle yet
	sigProceeded                 // callee: proceed sent, waiting for session-initiate
	sigInitiated                 // caller: session-initiate sent; callee: received
	sigActive                    // session-accept sent or received
	sigEnded
)

// call is one call. Its protocol runs on one goroutine (run), fed by q
// (the IQ handler on the read loop and the JMI handler on the worker
// validate under mu and queue, each message in a slot reserved before
// anything changed), by api (the API's requests, which may wait) and by
// kick (pion's events, coalesced in pev).
type call struct {
	g        *Gateway
	id       string
	outgoing bool
	peer     string // bare JID

	ctx    context.Context
	cancel context.CancelFunc
	q      chan callMsg  // from the read loop and the worker; every message holds a slot
	slots  chan struct{} // the slots of q: one taken per queued message
	api    chan callMsg  // requests of the API (postWait)
	kick   chan struct{} // pion reported something in pev
	done   chan struct{} // closed when the call has ended and run returned

	mu         sync.Mutex
	info       CallInfo
	sig        sigState
	bound      bool    // the peer device is fixed (proceed received / propose accepted)
	boundFull  jid.JID // that device's full JID
	boundDev   uint32
	media      CallMedia // what we send and record
	answering  bool      // AnswerCall or DeclineCall was called
	ended      bool
	sess       *jingle.Session  // the XEP-0166 session once initiated (under mu)
	prop       *jingle.Proposal // the XEP-0353 proposal (under mu once the call runs: the worker's tie-break uses it)
	leg        *mediaPeer       // the media leg once created
	local      *localLeg        // the local peer's leg of a relayed call (set before the call runs, or by its answer)
	peerMuted  [2]bool          // the peer's mute state (session-info), audio and video
	localCands []remoteCand     // gathered, not yet sent
	pev        pionEvents       // pion's events not yet handled
}

// pionEvents are what pion's callbacks report to the call's goroutine,
// coalesced: the latest state of each kind wins, so that a full queue
// never loses one and the callbacks never block.
type pionEvents struct {
	pc         webrtc.PeerConnectionState // latest connection state (Unknown: none new)
	ice        webrtc.ICEConnectionState  // latest ICE state (Unknown: none new)
	dtlsFailed bool
	cands      bool // local candidates were gathered
	local      bool // the local leg ended (call_local.go)
	localUp    bool // the local leg connected
}

// callTestHooks let tests play a misbehaving peer or a MITM. Set before
// Run; never changed after.
type callTestHooks struct {
	loopback       bool                     // loopback UDP4 host candidates only
	mutateOutgoing func(j *jingle.Jingle)   // rewrites our session-initiate/accept before it is sent
	cert           func() *dtls.Certificate // the certificate the leg presents (a MITM: another than signaled)
	noPionCheck    bool                     // pion skips its own fingerprint check
	initiateWait   time.Duration
	acceptWait     time.Duration
	connectWait    time.Duration
	// durationArmed sees every arming of the CallMedia.Duration timer
	// (on the call's goroutine).
	durationArmed func(d time.Duration)
	// beforeBinding runs on the call's goroutine when DTLS is up, just
	// before the binding check.
	beforeBinding func(leg *mediaPeer)
	// iceState sees every ICE connection state of a call's leg (runs on
	// pion's goroutine; must not block).
	iceState func(id string, s webrtc.ICEConnectionState)
	// localConnectWait replaces defaultLocalConnectWait.
	localConnectWait time.Duration
	// iceNow replaces the leg's current ICE state where the call's
	// goroutine reads it (onPion): a test that plays an outage decides
	// what holds, whatever the real path does meanwhile.
	iceNow func() webrtc.ICEConnectionState
}

// callMsg is one unit of work for a call's goroutine.
type callMsg struct {
	kind    callMsgKind
	media   CallMedia
	jmi     *jingle.JMI
	from    jid.JID
	device  uint32
	own     bool // JMI from another device of our own account
	jingle  *jingle.Jingle
	reason  jingle.ReasonCondition
	detail  string
	binding dtls.Binding
	local   *localLeg // msgAnswer of AnswerLocalCall
	mute    [2]bool   // msgMute: audio, video
	// iceRestart: the transport-info carried new credentials of the peer.
	iceRestart bool
	replyTo    chan error
}

type callMsgKind int

const (
	msgAnswer callMsgKind = iota + 1
	msgDecline
	msgHangUp
	msgJMI
	msgJingle
	msgTieBreak   // the call lost a tie-break: send jmi (its retract) and end
	msgRestartICE // tests: restart ICE now
	msgMute       // MuteCall
	msgNop        // tests: a barrier behind what is queued
)

// callTable holds the calls of a gateway.
type callTable struct {
	mu    sync.Mutex
	calls map[string]*call
	order []string       // ids, oldest first
	wg    sync.WaitGroup // call goroutines and background sends
	sem   chan struct{}  // bounds background sends and alerts
	stop  bool           // the gateway stopped: no new goroutines
	// proposes is the propose rate of each roster contact; strangers
	// share the "" bucket.
	proposes map[string]*proposeBucket
	locals   int // local legs that exist (at most maxActiveCalls)
}

// takeLocal takes a slot for a local leg; false when maxActiveCalls
// exist (each call has at most one).
func (t *callTable) takeLocal() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locals >= maxActiveCalls {
		return false
	}
	t.locals++
	return true
}

// takeLocalRing takes the slot of a ringing call's local legs in gateway
// mode (front_call.go): never the last one, which stays for a call the
// user places.
func (t *callTable) takeLocalRing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locals >= maxActiveCalls-1 {
		return false
	}
	t.locals++
	return true
}

// giveLocal gives back a slot of takeLocal.
func (t *callTable) giveLocal() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.locals--
}

// proposeBucket is a token bucket of proposeBurst tokens, refilled one
// per proposeEvery.
type proposeBucket struct {
	tokens float64
	at     time.Time
}

// allowPropose takes a token of the propose rate of key (a roster
// contact's bare JID, or "" for every stranger) at now.
func (t *callTable) allowPropose(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proposes == nil {
		t.proposes = map[string]*proposeBucket{}
	}
	refill := func(b *proposeBucket) {
		if now.After(b.at) {
			b.tokens = min(proposeBurst, b.tokens+float64(now.Sub(b.at))/float64(proposeEvery))
			b.at = now
		}
	}
	b := t.proposes[key]
	if b == nil && len(t.proposes) >= maxProposeBuckets {
		for k, x := range t.proposes {
			if refill(x); x.tokens >= proposeBurst {
				delete(t.proposes, k) // idle: a new bucket is the same
			}
		}
		if len(t.proposes) >= maxProposeBuckets {
			key = ""
			b = t.proposes[key]
		}
	}
	if b == nil {
		b = &proposeBucket{tokens: proposeBurst, at: now}
		t.proposes[key] = b
	}
	refill(b)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// begin accounts for a new call goroutine; false once the gateway stops.
func (t *callTable) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop {
		return false
	}
	t.wg.Add(1)
	return true
}

// shutdown waits for every call goroutine; none starts after it.
func (t *callTable) shutdown() {
	t.mu.Lock()
	t.stop = true
	t.mu.Unlock()
	t.wg.Wait()
}

// maxCallBackground bounds the goroutines that send call replies and
// alerts for the read loop and the worker.
const maxCallBackground = 32

func newCallTable() *callTable {
	return &callTable{calls: map[string]*call{}, sem: make(chan struct{}, maxCallBackground)}
}

// activeLocked counts calls that have not ended: all, the incoming ones,
// and the incoming ones of peer.
func (t *callTable) activeLocked(peer string) (active, incoming, ofPeer int) {
	for _, c := range t.calls {
		c.mu.Lock()
		if !c.ended {
			active++
			if !c.outgoing {
				incoming++
				if c.peer == peer {
					ofPeer++
				}
			}
		}
		c.mu.Unlock()
	}
	return active, incoming, ofPeer
}

// add registers c unless the bounds are reached or the id is taken
// (ErrTooManyCalls, ErrCallState); it
// drops the oldest ended calls beyond the history bound.
func (t *callTable) add(c *call) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.calls[c.id]; ok {
		return ErrCallState
	}
	active, incoming, ofPeer := t.activeLocked(c.peer)
	if active >= maxActiveCalls {
		return ErrTooManyCalls
	}
	// Whatever a peer does (propose and retract, or call an
	// auto-answerer), its calls take maxCallsPerPeer slots, and all
	// peers together leave one for the user's own call.
	if !c.outgoing && (incoming >= maxIncomingCalls || ofPeer >= maxCallsPerPeer) {
		return ErrTooManyCalls
	}
	t.calls[c.id] = c
	t.order = append(t.order, c.id)
	ended := 0
	for _, id := range t.order {
		if x := t.calls[id]; x != nil && x.isEnded() {
			ended++
		}
	}
	for i := 0; ended > maxCallHistory && i < len(t.order); {
		x := t.calls[t.order[i]]
		if x != nil && x.isEnded() {
			delete(t.calls, t.order[i])
			t.order = slices.Delete(t.order, i, i+1)
			ended--
			continue
		}
		i++
	}
	return nil
}

// remove forgets call id (one registered but never started).
func (t *callTable) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.calls, id)
	t.order = slices.DeleteFunc(t.order, func(x string) bool { return x == id })
}

// outgoingTo returns our calls to peer that have not ended, lowest id
// first.
func (t *callTable) outgoingTo(peer string) []*call {
	var out []*call
	for _, c := range t.list() {
		if c.outgoing && c.peer == peer && !c.isEnded() {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *call) int { return strings.Compare(a.id, b.id) })
	return out
}

func (t *callTable) get(id string) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[id]
}

func (t *callTable) list() []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*call, 0, len(t.order))
	for _, id := range t.order {
		if c := t.calls[id]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// finishUnstarted marks a call whose goroutine never ran as ended.
func (c *call) finishUnstarted() {
	c.mu.Lock()
	c.ended = true
	c.info.State, c.info.EndReason, c.info.Ended = CallEnded, string(jingle.ReasonGone), time.Now()
	c.mu.Unlock()
	close(c.done)
}

func (c *call) isEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// snapshot returns a copy of the call's info.
func (c *call) snapshot() CallInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked()
}

func (c *call) snapshotLocked() CallInfo {
	in := c.info
	in.Media = slices.Clone(in.Media)
	in.Recordings = slices.Clone(in.Recordings)
	in.Muted, in.PeerMuted = slices.Clone(in.Muted), slices.Clone(in.PeerMuted)
	return in
}

// update changes the call's info under the lock and publishes the new
// snapshot as an EventCall.
func (c *call) update(f func(in *CallInfo)) {
	c.mu.Lock()
	f(&c.info)
	snap := c.snapshotLocked()
	c.mu.Unlock()
	c.g.events.publish(Event{Kind: EventCall, From: c.peer, Call: &snap, Detail: snap.Detail})
	if f := c.g.front.Load(); f != nil {
		f.callChanged(&snap) // never blocks (front_call.go)
	}
}

// setState moves the call to st (never out of ended) and publishes it.
func (c *call) setState(st CallState) {
	c.update(func(in *CallInfo) {
		if in.State != CallEnded {
			in.State = st
		}
	})
}

// reserve takes a slot in the call's queue for a message of the read
// loop or the worker, before any state changes for it. It reports false
// when the queue is full or the call is over.
func (c *call) reserve() bool {
	select {
	case <-c.ctx.Done():
		return false
	default:
	}
	select {
	case c.slots <- struct{}{}:
		return true
	default:
		c.g.log.Warn("call queue full", "call", c.id)
		return false
	}
}

// unreserve gives back a slot that reserve took and no message used.
func (c *call) unreserve() { <-c.slots }

// send queues m in a slot reserve took; it never blocks.
func (c *call) send(m callMsg) { c.q <- m }

// post queues m for the call's goroutine without blocking. It reports
// false when the queue is full or the call is over.
func (c *call) post(m callMsg) bool {
	if !c.reserve() {
		return false
	}
	c.send(m)
	return true
}

// notePion records a pion event for the call's goroutine; it never
// blocks and never loses the latest state.
func (c *call) notePion(f func(e *pionEvents)) {
	c.mu.Lock()
	f(&c.pev)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a kick is pending: it takes this event too
	}
}

// takePion returns and clears the pion events not yet handled.
func (c *call) takePion() pionEvents {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.pev
	c.pev = pionEvents{}
	return e
}

// postWait hands m to the call's goroutine and waits for its answer.
func (c *call) postWait(ctx context.Context, m callMsg) error {
	_, err := c.postWaitTaken(ctx, m)
	return err
}

// postWaitTaken is postWait that also says whether the call's goroutine
// took m (when it did not, m has no effect).
func (c *call) postWaitTaken(ctx context.Context, m callMsg) (taken bool, _ error) {
	if err := ctx.Err(); err != nil {
		return false, err // a request already gone does nothing
	}
	m.replyTo = make(chan error, 1)
	select {
	case c.api <- m:
	case <-c.done:
		return false, ErrUnknownCall
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return true, c.waitReply(ctx, m)
}

// waitReply waits for the answer to m, taken by the call's goroutine.
func (c *call) waitReply(ctx context.Context, m callMsg) error {
	select {
	case err := <-m.replyTo:
		return err
	case <-c.done:
		return nil // it ended meanwhile, which is what a hang-up wants
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gateway) callList() []CallInfo {
	cs := g.calls.list()
	out := make([]CallInfo, 0, len(cs))
	for _, c := range cs {
		if p := c.peerConn(); p != nil && !c.isEnded() {
			c.refreshStats(p) // as callInfo: the counters are current
		}
		out = append(out, c.snapshot())
	}
	return out
}

func (g *Gateway) callInfo(id string) (CallInfo, bool) {
	c := g.calls.get(id)
	if c == nil {
		return CallInfo{}, false
	}
	if p := c.peerConn(); p != nil && !c.isEnded() {
		c.refreshStats(p)
	}
	return c.snapshot(), true
}
