package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/policy"
)

// End-to-end delivery receipts and withheld-message reports. See
// docs/protocol.md, "Delivery receipts" and "Withheld messages".

// nsReceipts is XEP-0184 (message delivery receipts).
const nsReceipts = "urn:xmpp:receipts"

// labelReceiptID separates the hash that names a chat message in receipts.
const labelReceiptID = e2e.ProtocolVersion + "/receipt-id"

// Bounds of delivery tracking.
const (
	// maxTrackedMessages is how many sent chat messages keep their
	// delivery state; older ones are forgotten first.
	maxTrackedMessages = 512
	// maxGapDevices bounds the sender devices with unresolved gaps; at the
	// cap the oldest gap is reported early.
	maxGapDevices = 1024
	// maxReceiptID bounds a receipt's id attribute.
	maxReceiptID = 64
	// maxReceiptsPerMessage bounds the <received/> elements of one
	// receipt message, sent and accepted.
	maxReceiptsPerMessage = 32
	// maxPendingReceipts bounds the receipts waiting to be sent.
	maxPendingReceipts = 1024
	// maxPendingPerDevice bounds those of one sender device (all its
	// full JIDs together), so that one contact flooding us cannot use
	// up the queue and have everyone else's receipts dropped.
	maxPendingPerDevice = 64
	// receiptDelay is how long the first pending receipt waits for
	// others to travel with it.
	receiptDelay = 20 * time.Millisecond
	// DefaultWithheldGrace is how long a gap in a sender's message
	// counters may stay open (a late message fills it) before the missing
	// messages are reported as not delivered.
	DefaultWithheldGrace = time.Minute
)

// receiptID names a chat message by its encrypted blob: the sender sets
// it as the stanza id, and the recipient device, which ignores the stanza
// id (a server may rewrite it), derives it from the blob it opened. A
// server can therefore neither make a receipt confirm another message nor
// forge one (the receipt travels inside the protected channel).
func receiptID(blob []byte) string {
	h := sha256.New()
	h.Write([]byte(labelReceiptID))
	h.Write(blob)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// DeliveryState is how far a sent chat message got.
type DeliveryState string

// Delivery states.
const (
	// DeliverySent: handed to the server, no device has confirmed it yet.
	DeliverySent DeliveryState = "sent"
	// DeliveryDelivered: at least one of the contact's devices decrypted
	// it and sent back a protected receipt (see Delivery.Devices).
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryNotDelivered: the server returned an error for it. (The
	// error is not authenticated; a server can also withhold a message
	// silently, which the recipient reports.)
	DeliveryNotDelivered DeliveryState = "not-delivered"
)

// A Delivery is the delivery state of one chat message we sent.
type Delivery struct {
	ID      string // stanza id, also named by receipts
	To      string // bare JID
	Time    time.Time
	State   DeliveryState
	Devices []DeviceDelivery // the contact's devices it was encrypted to
}

// DeviceDelivery is the state of a message at one recipient device.
type DeviceDelivery struct {
	Device    uint32
	Delivered time.Time // zero until the device's receipt arrived
}

func (d *Delivery) clone() Delivery {
	c := *d
	c.Devices = slices.Clone(d.Devices)
	return c
}

// sentLog keeps the delivery state of the last maxTrackedMessages chat
// messages. It is safe for concurrent use.
type sentLog struct {
	mu    sync.Mutex
	byID  map[string]*Delivery
	order []string // oldest first
}

func newSentLog() *sentLog { return &sentLog{byID: map[string]*Delivery{}} }

func (l *sentLog) add(d *Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byID[d.ID]; ok {
		return
	}
	if len(l.order) >= maxTrackedMessages {
		delete(l.byID, l.order[0])
		l.order = slices.Delete(l.order, 0, 1)
	}
	l.byID[d.ID] = d
	l.order = append(l.order, d.ID)
}

// remove forgets id (a message that could not be sent).
func (l *sentLog) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byID[id]; !ok {
		return
	}
	delete(l.byID, id)
	l.order = slices.DeleteFunc(l.order, func(s string) bool { return s == id })
}

// delivered records a receipt from dev and returns the updated state; ok
// is false when id is unknown, dev is not a device the message was
// encrypted to, or the device had already confirmed it.
func (l *sentLog) delivered(id string, dev e2e.Device, now time.Time) (Delivery, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.byID[id]
	if d == nil || d.To != dev.JID {
		return Delivery{}, false
	}
	for i := range d.Devices {
		if d.Devices[i].Device == dev.ID && d.Devices[i].Delivered.IsZero() {
			d.Devices[i].Delivered = now
			d.State = DeliveryDelivered
			return d.clone(), true
		}
	}
	return Delivery{}, false
}

// bounced records a server error for id.
func (l *sentLog) bounced(id string) (Delivery, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.byID[id]
	if d == nil || d.State != DeliverySent {
		return Delivery{}, false
	}
	d.State = DeliveryNotDelivered
	return d.clone(), true
}

func (l *sentLog) list() []Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Delivery, 0, len(l.order))
	for _, id := range l.order {
		out = append(out, l.byID[id].clone())
	}
	return out
}

// Deliveries returns the delivery state of the most recent chat messages
// sent by this gateway (at most 512), oldest first.
func (g *Gateway) Deliveries() []Delivery { return g.sent.list() }

// Delivery returns the delivery state of the sent chat message id.
func (g *Gateway) Delivery(id string) (Delivery, bool) {
	g.sent.mu.Lock()
	defer g.sent.mu.Unlock()
	d := g.sent.byID[id]
	if d == nil {
		return Delivery{}, false
	}
	return d.clone(), true
}

// receiptBatch is the receipts owed to one sender device (at one full
// JID), in the order their messages opened.
type receiptBatch struct {
	to   jid.JID
	peer e2e.Device
	ids  []string
}

// receiptQueue holds the receipts the worker owes until receiptLoop sends
// them. It is bounded: past maxPendingReceipts a receipt is dropped (the
// message stays "sent" at its sender; never a wrong state).
type receiptQueue struct {
	mu      sync.Mutex
	batches []*receiptBatch
	n       int           // pending ids in all batches
	wake    chan struct{} // cap 1: something is pending
}

// add queues a receipt for id to peer at to. It never blocks.
func (q *receiptQueue) add(to jid.JID, peer e2e.Device, id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= maxPendingReceipts {
		return false
	}
	var b *receiptBatch
	perDevice := 0
	for _, c := range q.batches {
		if c.peer == peer {
			perDevice += len(c.ids)
			if c.to.Equal(to) {
				b = c
			}
		}
	}
	if perDevice >= maxPendingPerDevice {
		return false
	}
	if b == nil {
		b = &receiptBatch{to: to, peer: peer}
		q.batches = append(q.batches, b)
	}
	b.ids = append(b.ids, id)
	q.n++
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// take removes and returns everything pending.
func (q *receiptQueue) take() []*receiptBatch {
	q.mu.Lock()
	defer q.mu.Unlock()
	bs := q.batches
	q.batches, q.n = nil, 0
	return bs
}

// sendReceipt queues the receipt confirming to the sender device that we
// decrypted its chat message blob. The receipt leaves from receiptLoop,
// after the message was handed to the local clients and off the worker:
// its sealing and the store transaction that advances the session never
// delay the delivery of the next message. Receipts are sent only for
// opened <c/> chat messages (see receiptsTo), never for protected stanzas
// (receipts travel as those), so they cannot loop.
func (g *Gateway) sendReceipt(to jid.JID, peer *e2e.Peer, blob []byte) {
	if !g.receipts.add(to, peer.Device, receiptID(blob)) {
		g.log.Info("receipt dropped: too many pending", "to", to.String())
	}
}

// receiptLoop sends the queued receipts until ctx ends: it waits
// receiptDelay after the first one so that the receipts of a burst of
// messages from one device travel together, then sends one protected
// message per sender device with up to maxReceiptsPerMessage <received/>
// elements (docs/protocol.md §13.5).
func (g *Gateway) receiptLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.receipts.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(receiptDelay):
		}
		for _, b := range g.receipts.take() {
			for ids := range slices.Chunk(b.ids, maxReceiptsPerMessage) {
				if ctx.Err() != nil {
					return
				}
				g.sendReceipts(ctx, b.to, b.peer, ids)
			}
		}
	}
}

// sendReceipts sends one protected message, for peer only, whose payload
// is one XEP-0184 <received/> per id.
func (g *Gateway) sendReceipts(ctx context.Context, to jid.JID, peer e2e.Device, ids []string) {
	var content []byte
	for _, id := range ids {
		content = append(content, element(nsReceipts, "received", "", "id", id)...)
	}
	g.mu.Lock()
	online := g.sess != nil
	g.mu.Unlock()
	if !online {
		// Sealed but not sent, a receipt would leave a gap in our
		// message counters at the peer, which reports it as a message
		// the server withheld: dropped unsealed instead (the peer's
		// messages stay "sent"). A connection lost between this check
		// and the send still leaves such a gap (a rare false report).
		g.log.Info("receipts dropped: not connected", "to", to.String(), "count", len(ids))
		return
	}
	c := e2e.Context{From: g.bare(), To: peer.JID, StanzaKind: "message", StanzaType: "chat"}
	p, err := g.eng.Protect(c, []e2e.Device{peer}, content, e2e.Encrypt)
	if err != nil {
		g.log.Info("receipt not sent", "to", to.String(), "err", err)
		return
	}
	px, err := xml.Marshal(p)
	if err != nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g.send(sctx, build("message", map[string]string{"type": "chat", "id": randomID(), "to": to.String()}, px, element(nsHints, "store", ""))); err != nil {
		g.log.Info("receipt not sent", "to", to.String(), "err", err)
	}
}

// handleReceipt processes the <received/> elements (at most
// maxReceiptsPerMessage) that arrived inside a protected message from
// peer.
func (g *Gateway) handleReceipt(inner *Stanza, peer *e2e.Peer) {
	if peer == nil {
		return
	}
	n := 0
	for _, c := range inner.Children {
		if c.Name.Space != nsReceipts || c.Name.Local != "received" {
			continue
		}
		if n++; n > maxReceiptsPerMessage {
			return
		}
		var v struct {
			ID string `xml:"id,attr"`
		}
		if xml.Unmarshal(c.Raw, &v) != nil || v.ID == "" || len(v.ID) > maxReceiptID {
			continue
		}
		d, ok := g.sent.delivered(v.ID, peer.Device, g.now())
		if !ok {
			continue
		}
		g.events.publish(Event{Kind: EventDelivery, From: peer.JID, To: d.To, Peer: peer, MessageID: d.ID, Delivery: &d,
			Detail: fmt.Sprintf("delivered to %s's device %d", policy.ShowJID(peer.JID), peer.ID)})
	}
}

// handleBounce marks a sent chat message the server returned as not
// delivered.
func (g *Gateway) handleBounce(st *Stanza) {
	if st.ID == "" {
		return
	}
	if d, ok := g.sent.bounced(st.ID); ok {
		g.events.publish(Event{Kind: EventDelivery, From: d.To, To: d.To, MessageID: d.ID, Delivery: &d,
			Detail: "not delivered: the server returned an error for it"})
	}
}

// gap is the messages of one sender device known to be missing.
type gap struct {
	missing int
	since   time.Time // when the oldest of them was found missing
}

// gapTracker follows, per sender device, the messages whose counters were
// skipped and have not arrived late. It is safe for concurrent use.
type gapTracker struct {
	mu   sync.Mutex
	gaps map[e2e.Device]*gap
}

// withheld is a report: n messages from dev never arrived.
type withheld struct {
	dev e2e.Device
	n   int
}

// note records what an opened message showed; at the device cap it
// returns the oldest gap, to be reported at once.
func (t *gapTracker) note(p *e2e.Peer, now time.Time) []withheld {
	if p == nil || (p.Skipped == 0 && !p.Late) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gaps == nil {
		t.gaps = map[e2e.Device]*gap{}
	}
	gp := t.gaps[p.Device]
	if p.Late && gp != nil {
		if gp.missing--; gp.missing <= 0 {
			delete(t.gaps, p.Device)
			gp = nil
		}
	}
	if p.Skipped <= 0 {
		return nil
	}
	var out []withheld
	if gp == nil {
		if len(t.gaps) >= maxGapDevices {
			oldest := e2e.Device{}
			var at time.Time
			for d, x := range t.gaps {
				if at.IsZero() || x.since.Before(at) {
					oldest, at = d, x.since
				}
			}
			out = append(out, withheld{oldest, t.gaps[oldest].missing})
			delete(t.gaps, oldest)
		}
		gp = &gap{since: now}
		t.gaps[p.Device] = gp
	}
	gp.missing = min(gp.missing+p.Skipped, 1<<30)
	return out
}

// due removes and returns the gaps open for at least grace.
func (t *gapTracker) due(now time.Time, grace time.Duration) []withheld {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []withheld
	for d, gp := range t.gaps {
		if now.Sub(gp.since) >= grace {
			out = append(out, withheld{d, gp.missing})
			delete(t.gaps, d)
		}
	}
	slices.SortFunc(out, func(a, b withheld) int {
		if a.dev.JID != b.dev.JID {
			if a.dev.JID < b.dev.JID {
				return -1
			}
			return 1
		}
		return int(int64(a.dev.ID) - int64(b.dev.ID))
	})
	return out
}

// noteOpened records an opened message's gap information.
func (g *Gateway) noteOpened(p *e2e.Peer) {
	for _, w := range g.gaps.note(p, g.now()) {
		g.reportWithheld(w)
	}
}

func (g *Gateway) withheldGrace() time.Duration {
	if g.cfg.WithheldGrace > 0 {
		return g.cfg.WithheldGrace
	}
	return DefaultWithheldGrace
}

// checkWithheld reports the gaps that stayed open past the grace period.
func (g *Gateway) checkWithheld() {
	for _, w := range g.gaps.due(g.now(), g.withheldGrace()) {
		g.reportWithheld(w)
	}
}

// withheldLoop checks for overdue gaps until ctx ends.
func (g *Gateway) withheldLoop(ctx context.Context) {
	t := time.NewTicker(max(g.withheldGrace()/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.checkWithheld()
		}
	}
}

// reportWithheld tells the user, by event and alert, that messages of a
// sender device never arrived.
func (g *Gateway) reportWithheld(w withheld) {
	who := policy.ShowJID(w.dev.JID)
	noun, verb, them, they := "messages", "were", "them", "they were"
	if w.n == 1 {
		noun, verb, them, they = "message", "was", "it", "it was"
	}
	text := fmt.Sprintf("%d %s from %s (device %d) %s not delivered: the server may have withheld %s, or %s lost.", w.n, noun, who, w.dev.ID, verb, them, they)
	g.events.publish(Event{Kind: EventWithheld, From: w.dev.JID, Peer: &e2e.Peer{Device: w.dev}, Count: w.n, Detail: text})
	f := g.peerFacts(policy.KindChat, policy.DirectionIncoming, w.dev.JID)
	f.PeerDevice, f.Protection, f.Signaling = w.dev.ID, policy.ProtectionE2EBound, policy.SignalingNone
	g.report(f, policy.Decision{Action: policy.ActionFlag, Severity: policy.SeverityWarning, Rule: "withheld", Message: text,
		Detail: "device " + strconv.FormatUint(uint64(w.dev.ID), 10) + ": " + strconv.Itoa(w.n) + " message counters skipped and not filled within " + g.withheldGrace().String()})
}
