package gateway

import (
	"context"
	"encoding/xml"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/policy"
)

// nsAlert marks the messages the gateway sends to the user's own JID, so
// that the gateway (one of the user's resources) does not act on them.
const nsAlert = e2e.NS + ":alert"

// busSink publishes alerts on the gateway's event stream (the control API).
type busSink struct{ g *Gateway }

func (s busSink) Send(_ context.Context, a policy.Alert) error {
	detail := policy.FormatUserMessage(a)
	s.g.events.publish(Event{Kind: EventAlert, Time: a.Time, From: a.Facts.PeerJID, Detail: detail, Alert: &a})
	if f := s.g.front.Load(); f != nil {
		f.deliverAlert(detail)
	}
	return nil
}

// SendMessage implements policy.MessageSender: it tells the user, in every
// client of the account, by a chat message to the own bare JID.
func (g *Gateway) SendMessage(ctx context.Context, text string) error {
	return g.send(ctx, build("message", map[string]string{"type": "chat", "id": randomID(), "to": g.bare()},
		element(nsClient, "body", text), element(nsAlert, "alert", "")))
}

// newNotifier builds the alert fan-out: the event stream, the user's own
// JID (unless disabled) and the configured extra sinks.
func (g *Gateway) newNotifier() *policy.Notifier {
	// The event stream comes last: whoever sees an alert there can rely
	// on the audit log and metrics having it already.
	var sinks []policy.Sink
	if !g.cfg.NoUserAlerts {
		g.userAlerts = policy.NewAsyncSink(policy.NewUserMessageSink(g), 256, func(err error) {
			g.log.Warn("alert to own JID not sent", "err", err)
		})
		sinks = append(sinks, g.userAlerts)
	}
	sinks = append(sinks, g.cfg.AlertSinks...)
	sinks = append(sinks, busSink{g})
	opts := []policy.NotifierOption{policy.WithErrorHandler(func(err error) { g.log.Warn("alert sink", "err", err) })}
	switch {
	case g.cfg.AlertWindow < 0:
		opts = append(opts, policy.WithWindow(0)) // every alert, no de-duplication
	case g.cfg.AlertWindow > 0:
		opts = append(opts, policy.WithWindow(g.cfg.AlertWindow))
	}
	if g.cfg.Now != nil {
		opts = append(opts, policy.WithClock(g.cfg.Now))
	}
	return policy.NewNotifier(sinks, opts...)
}

// decide classifies a channel and alerts the user unless it is allowed
// silently. It returns the decision.
func (g *Gateway) decide(ctx context.Context, f policy.Facts) policy.Decision {
	d := g.policy.Decide(f)
	g.log.Debug("policy", "kind", f.Kind.String(), "peer", f.PeerJID, "action", d.Action.String(), "rule", d.Rule)
	if d.Action != policy.ActionAllow {
		if err := g.notifier.Notify(ctx, f, d); err != nil {
			g.log.Warn("alert", "err", err)
		}
	}
	return d
}

// integrityMessage is what the user is told about an integrity alert. The
// details (which may name a peer's resource and carry its error text) go
// to the audit log and the API only, as the decision's Detail.
const integrityMessage = "An end-to-end integrity check failed and the stanza was refused; the audit log and the API event stream have the details."

// alert reports an integrity problem (tampering, forged stanzas, bad keys)
// that no rule may allow: the stanza was refused. detail may hold
// peer-chosen text; it is bounded and never shown in the user's notice.
func (g *Gateway) alert(peer, detail string) {
	g.log.Warn("alert", "peer", peer, "detail", policy.BoundDetail(detail))
	f := g.peerFacts(policy.KindStanza, policy.DirectionIncoming, peer)
	f.Protection, f.Signaling = policy.ProtectionE2EBound, policy.SignalingNone
	g.report(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "integrity",
		Message: integrityMessage, Detail: detail})
}

// report sends a built-in alert (one no policy rule decides) to every sink.
// d.Message is shown to the user: build it from constants and
// policy.ShowJID only; d.Detail is bounded here.
func (g *Gateway) report(f policy.Facts, d policy.Decision) { g.notifyNow(f, d) }

// supportLost flags a resource of a pinned contact whose presence stopped
// advertising securejingle (its signed <e2e/> element is gone): a server
// stripping it would make senders add a cleartext fallback, or make a
// client fall back to cleartext.
func (g *Gateway) supportLost(from jid.JID, device uint32) {
	bare := from.Bare().String()
	if ds, err := g.eng.Devices(bare); err != nil || len(ds) == 0 {
		return
	}
	f := g.peerFacts(policy.KindStanza, policy.DirectionIncoming, bare)
	f.PeerDevice, f.Protection, f.Signaling, f.StanzaType = device, policy.ProtectionCleartext, policy.SignalingNone, "presence"
	g.report(f, policy.Decision{Action: policy.ActionFlag, Severity: policy.SeverityWarning, Rule: "support-stripped",
		Message: policy.ShowJID(bare) + "'s presence no longer advertises securejingle: the server may be stripping it. Messages stay encrypted to the pinned devices.",
		Detail:  "presence of " + from.String() + " (device " + strconv.FormatUint(uint64(device), 10) + " before) has no <e2e/> element"})
}

// peerFacts fills the facts the gateway knows about a peer account. peer
// may be a full JID; the facts name its bare JID.
func (g *Gateway) peerFacts(kind policy.Kind, dir policy.Direction, peer string) policy.Facts {
	if j, err := jid.Parse(peer); err == nil {
		peer = j.Bare().String()
	}
	f := policy.Facts{Kind: kind, Direction: dir, PeerJID: peer, Trust: policy.TrustUnknown,
		SecuredSession: g.hasSecuredSession(peer), OnRoster: g.onRoster(peer)}
	ds, _ := g.eng.Devices(peer)
	f.PeerSupportsE2E = len(ds) > 0
	for _, d := range g.Contacts(peer) {
		if d != 0 {
			f.PeerSupportsE2E = true
		}
	}
	if g.cfg.Trust != nil {
		f.Trust = trustFact(g.cfg.Trust, peer)
	}
	return f
}

// trustFact is the policy trust fact of a peer account: the level of its
// one trust record (a record that cannot be read counts as unknown).
func trustFact(ts *trust.Store, peer string) policy.Trust {
	rec, err := ts.Lookup(peer)
	if err != nil {
		return policy.TrustUnknown
	}
	switch rec.Level {
	case trust.Verified:
		return policy.TrustVerified
	case trust.TOFU:
		return policy.TrustTOFU
	case trust.Changed:
		return policy.TrustKeyChanged
	case trust.Distrusted:
		return policy.TrustDistrusted
	}
	return policy.TrustUnknown
}

// isAlertMessage reports whether st is one of our own alert messages.
func (g *Gateway) isAlertMessage(st *Stanza) bool {
	own := st.From.Equal(jid.JID{}) || st.From.Bare().String() == g.bare()
	return own && st.Child(nsAlert, "alert") != nil
}

// jingleKind classifies an unprotected Jingle request for policy.
func jingleKind(raw []byte) policy.Kind {
	var v struct {
		Contents []struct {
			Description struct {
				XMLName xml.Name
			} `xml:"description"`
		} `xml:"content"`
	}
	if xml.Unmarshal(raw, &v) == nil {
		for _, c := range v.Contents {
			switch c.Description.XMLName.Space {
			case "urn:xmpp:jingle:apps:rtp:1":
				return policy.KindMediaCall
			case "urn:xmpp:jingle:apps:file-transfer:5", "urn:xmpp:jingle:apps:file-transfer:4":
				return policy.KindFileTransfer
			}
		}
	}
	return policy.KindMediaCall
}

// Bounds of the alert queue (implementation constants).
const (
	// maxQueuedAlerts bounds the distinct alerts waiting for the
	// notifier; beyond it, alerts coalesce per rule.
	maxQueuedAlerts = 64
	// alertTimeout bounds one delivery to the sinks.
	alertTimeout = 10 * time.Second
)

// alertKey is what queued alerts coalesce by: the rule and, for a roster
// contact, the peer. Alerts about strangers coalesce per rule, so that a
// flood of them from many accounts is one alert and a count.
type alertKey struct{ rule, peer string }

type queuedAlert struct {
	f    policy.Facts
	d    policy.Decision
	more int // coalesced alerts of the same key after this one
}

// alertQueue hands the alerts that arise on the read loop and the worker
// (which must not wait for sinks) to the notifier, one at a time, on a
// goroutine of its own. It never drops an alert: one of the same key
// still waiting absorbs it, and its detail says how many it stands for.
// Critical alerts are delivered first. The zero value is ready.
type alertQueue struct {
	mu      sync.Mutex
	pending map[alertKey]*queuedAlert
	order   []alertKey // critical first, then oldest first
	running bool       // the delivering goroutine runs
}

// queueAlert reports an alert that no rule may silence or a policy
// decision, without waiting: it is queued, coalesced with a waiting one
// of the same rule and peer (any stranger's), and delivered in the
// background. d.Message is shown to the user; d.Detail is bounded here.
func (g *Gateway) queueAlert(f policy.Facts, d policy.Decision) {
	d.Detail = policy.BoundDetail(d.Detail)
	g.log.Warn("alert", "peer", f.PeerJID, "rule", d.Rule, "action", d.Action.String(), "detail", d.Detail)
	q := &g.alertQ
	k := alertKey{rule: d.Rule}
	if f.OnRoster {
		k.peer = f.PeerJID
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= maxQueuedAlerts {
		k.peer = "" // the rules are a fixed set: so are these keys
	}
	if a := q.pending[k]; a != nil {
		a.more++
		return
	}
	if q.pending == nil {
		q.pending = map[alertKey]*queuedAlert{}
	}
	q.pending[k] = &queuedAlert{f: f, d: d}
	if d.Severity == policy.SeverityCritical {
		i := 0
		for i < len(q.order) && q.pending[q.order[i]].d.Severity == policy.SeverityCritical {
			i++
		}
		q.order = slices.Insert(q.order, i, k)
	} else {
		q.order = append(q.order, k)
	}
	if q.running {
		return
	}
	if !g.calls.begin() {
		// The gateway stops: nothing delivers any more.
		delete(q.pending, k)
		q.order = slices.DeleteFunc(q.order, func(x alertKey) bool { return x == k })
		return
	}
	q.running = true
	go g.deliverAlerts()
}

// deliverAlerts hands the queued alerts to the notifier until none is
// left.
func (g *Gateway) deliverAlerts() {
	defer g.calls.wg.Done()
	q := &g.alertQ
	var stopBy time.Time // once the gateway stops, what is left shares one alertTimeout
	for {
		q.mu.Lock()
		if len(q.order) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		k := q.order[0]
		q.order = q.order[1:]
		a := q.pending[k]
		delete(q.pending, k)
		q.mu.Unlock()
		if a.more > 0 {
			a.d.Detail = policy.BoundDetail(a.d.Detail + " (and " + strconv.Itoa(a.more) + " more alerts like it)")
		}
		deadline := time.Now().Add(alertTimeout)
		if g.runCtx.Err() != nil {
			if stopBy.IsZero() {
				stopBy = deadline
			}
			deadline = stopBy
		}
		g.notifyBy(deadline, a.f, a.d)
	}
}

// notifyNow delivers an alert to the sinks and waits, at most
// alertTimeout. The call goroutines use it for their critical alerts:
// what the read loop and the worker raise goes through queueAlert.
func (g *Gateway) notifyNow(f policy.Facts, d policy.Decision) {
	g.notifyBy(time.Now().Add(alertTimeout), f, d)
}

func (g *Gateway) notifyBy(deadline time.Time, f policy.Facts, d policy.Decision) {
	d.Detail = policy.BoundDetail(d.Detail)
	ctx, cancel := context.WithDeadline(context.WithoutCancel(g.runCtx), deadline)
	defer cancel()
	if err := g.notifier.Notify(ctx, f, d); err != nil {
		g.log.Warn("alert", "rule", d.Rule, "err", err)
	}
}
