package gateway

import (
	"context"
	"encoding/xml"
	"strconv"
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
func (g *Gateway) report(f policy.Facts, d policy.Decision) {
	d.Detail = policy.BoundDetail(d.Detail)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.notifier.Notify(ctx, f, d); err != nil {
		g.log.Warn("alert", "err", err)
	}
}

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
