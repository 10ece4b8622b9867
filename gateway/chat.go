package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/policy"
)

// ErrNoE2E is returned when a contact has no device the gateway can encrypt
// to. The gateway never falls back to cleartext by itself.
var ErrNoE2E = errors.New("gateway: contact has no usable securejingle device")

// targets returns every device a message to bare must be encrypted to:
// the contact's certified devices and our own other devices, minus those
// the engine would refuse (account key changed and not re-verified, or
// distrusted).
func (g *Gateway) targets(bare string) ([]e2e.Device, error) {
	var out []e2e.Device
	whos := []string{bare, g.bare()}
	if bare == g.bare() {
		whos = whos[:1] // chat to our own account: each own device once
	}
	for _, who := range whos {
		ds, err := g.eng.Devices(who)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if who == g.bare() && d.ID == g.eng.Device() {
				continue
			}
			if err := g.eng.CanSeal(d); err != nil {
				// One stale or refused device must not block the others.
				g.log.Info("device left out of a message", "device", d.ID, "peer", d.JID, "err", err)
				continue
			}
			out = append(out, d)
		}
		if who == bare && len(out) == 0 {
			return nil, ErrNoE2E
		}
	}
	return out, nil
}

// LookupError is returned when a contact has no device the gateway can
// encrypt to yet and looking for its keys in PEP failed in a way that
// does not show it has none (the session is down, a timeout, an
// unexpected error): whether it runs securejingle is not known, so
// nothing may go to it in clear. Err is the lookup's error.
type LookupError struct {
	Peer string // bare JID
	Err  error
}

func (e *LookupError) Error() string {
	return "gateway: could not look for the keys of " + e.Peer + ": " + e.Err.Error()
}

func (e *LookupError) Unwrap() error { return e.Err }

// chatTargets is [Gateway.targets] for a message to bare; when no device
// of bare can be encrypted to, it first looks for bare's bundles in PEP
// (a roster contact never seen since the start, offline, or whose
// presence the server withholds, as well as a stranger). It returns
// ErrNoE2E only when that lookup showed that bare publishes no key,
// ErrUnusableKeys when it publishes only keys that cannot be used, and a
// [*LookupError] when the lookup failed otherwise.
func (g *Gateway) chatTargets(ctx context.Context, bare jid.JID) ([]e2e.Device, error) {
	b := bare.Bare().String()
	targets, err := g.targets(b)
	if !errors.Is(err, ErrNoE2E) {
		return targets, err
	}
	_, items, derr := g.discoverBundles(ctx, bare.Bare())
	if derr != nil && !g.noKeysAnswer(b, derr) {
		return nil, &LookupError{Peer: b, Err: derr}
	}
	targets, err = g.targets(b)
	if errors.Is(err, ErrNoE2E) && items > 0 {
		return nil, ErrUnusableKeys // it runs securejingle: never "no e2e"
	}
	return targets, err
}

// ErrUnusableKeys is returned when a contact publishes securejingle
// bundles but none of them can be encrypted to (none verifies, or every
// device is refused): it runs securejingle, so it is not a contact
// without end-to-end encryption.
var ErrUnusableKeys = errors.New("gateway: the contact publishes securejingle keys, but none of them can be encrypted to")

// noKeysAnswer reports whether err, the error of a PEP lookup of bare's
// bundles, is an answer that bare has none for us: item-not-found (no
// such node), service-unavailable (no such account, RFC 6121 §8.5.1),
// feature-not-implemented (no PEP), or an authorisation error from an account whose presence
// we are not subscribed to (PEP's default "presence" access model, which
// servers also answer for nodes that do not exist, so a stranger's
// refusal tells nothing). Everything else (no session, a timeout, any
// other condition, an authorisation error from a contact whose presence
// we have) leaves it unknown.
func (g *Gateway) noKeysAnswer(bare string, err error) bool {
	var iq *IQError
	if !errors.As(err, &iq) {
		return false
	}
	switch iq.Condition() {
	case "item-not-found", "service-unavailable", "feature-not-implemented":
		// No such node, no such account (RFC 6121 §8.5.1), no PEP.
		return true
	case "not-authorized", "forbidden", "registration-required", "subscription-required":
		g.mu.Lock()
		sub := g.roster[bare]
		g.mu.Unlock()
		return sub != "both" && sub != "to" && bare != g.bare()
	}
	return false
}

// needsFallback reports whether an available resource of bare does not
// advertise securejingle, so the message needs EME and a fallback body.
func (g *Gateway) needsFallback(bare string) bool {
	for _, d := range g.Contacts(bare) {
		if d == 0 {
			return true
		}
	}
	return false
}

// SendChat encrypts body for every device of to (a bare JID) and of our
// own account, and sends it as one <message type='chat'/> with a store
// hint; EME and a short fallback body are added only when some available
// resource of to does not support securejingle. A first message to a
// contact who is not on the roster carries our bundle inline. See
// [Gateway.SendChatMessage] for its delivery state.
func (g *Gateway) SendChat(ctx context.Context, to jid.JID, body string) error {
	_, err := g.SendChatMessage(ctx, to, body)
	return err
}

// SendChatMessage is [Gateway.SendChat], returning the message's delivery
// state: "sent", then updated by the recipient devices' protected receipts
// (see [Gateway.Delivery] and the delivery events).
func (g *Gateway) SendChatMessage(ctx context.Context, to jid.JID, body string) (Delivery, error) {
	if !g.eng.Certified() {
		// Contacts refuse what an uncertified device sends: say so
		// instead of reporting a message as sent that nobody can read.
		return Delivery{}, ErrDeviceNotCertified
	}
	bare := to.Bare().String()
	targets, err := g.chatTargets(ctx, to.Bare())
	if err != nil {
		return Delivery{}, err
	}
	c := e2e.Context{From: g.bare(), To: bare, StanzaKind: "message", StanzaType: "chat"}
	el, err := g.eng.SealChat(c, targets, body, !g.onRoster(bare))
	if err != nil {
		return Delivery{}, err
	}
	ex, err := xml.Marshal(el)
	if err != nil {
		return Delivery{}, err
	}
	children := [][]byte{ex, element(nsHints, "store", "")}
	if g.needsFallback(bare) {
		children = append(children, element(nsEME, "encryption", "", "namespace", e2e.EMENamespace, "name", e2e.EMEName),
			element(nsClient, "body", e2e.FallbackBody))
	}
	d := &Delivery{ID: receiptID(el.Blob), To: bare, Time: g.now(), State: DeliverySent}
	for _, t := range targets {
		if t.JID == bare && bare != g.bare() {
			d.Devices = append(d.Devices, DeviceDelivery{Device: t.ID})
		}
	}
	out := d.clone()
	// Tracked before it is sent, so that no receipt can come first.
	g.sent.add(d)
	if err := g.send(ctx, build("message", map[string]string{"type": "chat", "id": d.ID, "to": bare}, children...)); err != nil {
		g.sent.remove(d.ID)
		return Delivery{}, err
	}
	return out, nil
}

// SendProtectedMessage wraps payload (message payload elements) for every
// device of to and of our own account, and sends it in a message of type
// typ. The receiving gateway processes the payload as if it had arrived in
// place.
func (g *Gateway) SendProtectedMessage(ctx context.Context, to jid.JID, typ string, payload []byte, authOnly bool) error {
	bare := to.Bare().String()
	targets, err := g.targets(bare)
	if err != nil {
		return err
	}
	c := e2e.Context{From: g.bare(), To: bare, StanzaKind: "message", StanzaType: typ}
	p, err := g.eng.Protect(c, targets, payload, authOnly)
	if err != nil {
		return err
	}
	px, err := xml.Marshal(p)
	if err != nil {
		return err
	}
	return g.send(ctx, build("message", map[string]string{"type": typ, "id": randomID(), "to": to.String()}, px, element(nsHints, "store", "")))
}

// SendProtectedPresence wraps payload (presence payload elements) for the
// devices of to and sends it in a directed available presence. The
// receiving gateway processes it as if it had arrived in place.
func (g *Gateway) SendProtectedPresence(ctx context.Context, to jid.JID, payload []byte, authOnly bool) error {
	bare := to.Bare().String()
	targets, err := g.targets(bare)
	if err != nil {
		return err
	}
	c := e2e.Context{From: g.bare(), To: bare, StanzaKind: "presence"}
	p, err := g.eng.Protect(c, targets, payload, authOnly)
	if err != nil {
		return err
	}
	px, err := xml.Marshal(p)
	if err != nil {
		return err
	}
	return g.send(ctx, build("presence", map[string]string{"to": to.String()}, px))
}

// handleMessage processes an incoming message: carbons, encrypted chat,
// protected payloads, and cleartext (which is reported, and alerted when a
// secured session with the sender exists).
func (g *Gateway) handleMessage(ctx context.Context, st *Stanza) {
	if st.Type == "error" {
		g.log.Info("message error", "from", st.From.String())
		g.handleBounce(st)
		return
	}
	own := st.From.Equal(jid.JID{}) || st.From.Bare().String() == g.bare()
	if ev := st.Child(nsPubSubEvent, "event"); ev != nil {
		g.handlePEPEvent(st, ev)
		return
	}
	for _, kind := range []string{"received", "sent"} {
		if c := st.Child(nsCarbons, kind); c != nil {
			if !own {
				g.alert(st.From.String(), "forged message carbon from a foreign JID")
				return
			}
			inner, err := forwarded(c.Raw)
			if err != nil {
				g.log.Warn("bad carbon", "err", err)
				return
			}
			g.handleChat(ctx, inner, kind == "sent")
			return
		}
	}
	g.handleChat(ctx, st, false)
}

// forwarded extracts the message inside a carbon's <forwarded/>.
func forwarded(raw []byte) (*Stanza, error) {
	var v struct {
		Forwarded struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"urn:xmpp:forward:0 forwarded"`
	}
	if err := xml.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	outer, err := parseStanza(append(append([]byte(`<message xmlns="`+nsClient+`">`), v.Forwarded.Inner...), "</message>"...))
	if err != nil {
		return nil, err
	}
	if m := outer.Child(nsClient, "message"); m != nil {
		return parseStanza(m.Raw)
	}
	return nil, errors.New("gateway: carbon without a message")
}

func (g *Gateway) handleChat(ctx context.Context, st *Stanza, sentCarbon bool) {
	from, to := st.From.Bare().String(), st.To.Bare().String()
	if st.From.Equal(jid.JID{}) {
		from = g.bare()
	}
	if to == "" {
		to = g.bare()
	}
	peer := from
	if sentCarbon {
		peer = to
	}
	if c := st.Child(e2e.NS, "c"); c != nil {
		el, err := e2e.ParseChatElement(c.Raw)
		if err != nil {
			g.alert(peer, "malformed encrypted chat from "+st.From.String())
			return
		}
		ec := e2e.Context{From: from, To: to, StanzaKind: "message", StanzaType: st.Type, PeerOnRoster: g.onRoster(from)}
		body, p, err := g.eng.OpenChat(ec, el)
		if need := (*e2e.NeedBundleError)(nil); errors.As(err, &need) && g.waitForBundle(st.From, need) {
			return // processed again once the bundle is fetched
		}
		if err == nil {
			g.sawPeer(st.From, p)
		}
		switch {
		case errors.Is(err, e2e.ErrNotForUs):
			if !g.misrouted(st, from, to) {
				g.log.Info("encrypted chat not for this device", "from", st.From.String())
			}
			return
		case err != nil:
			g.alert(peer, fmt.Sprintf("encrypted chat from %s rejected: %v", st.From, err))
			return
		}
		// Gaps first: whoever sees the chat event sees the state it left.
		g.noteOpened(p)
		if sentCarbon {
			g.events.publish(Event{Kind: EventChatSent, From: from, To: to, Peer: p, Body: body, Encrypted: true})
		} else {
			g.events.publish(Event{Kind: EventChat, From: from, Peer: p, Body: body, Encrypted: true})
		}
		if f := g.front.Load(); f != nil {
			f.deliverChat(st.From, st.To, p, body, sentCarbon)
		}
		if !sentCarbon && g.receiptsTo(p) {
			g.sendReceipt(st.From, p, el.Blob)
		}
		return
	}
	if c := st.Child(e2e.NS, "p"); c != nil {
		g.openProtected(ctx, st, c)
		return
	}
	if jc := jmiElement(st); jc != nil && !sentCarbon {
		g.unprotectedJMI(st, jc)
	}
	body, ok := st.Text(nsClient, "body")
	if !ok || g.isAlertMessage(st) {
		return
	}
	if strippedEncryption(st, body) {
		// The fallback of an encrypted message, without the encrypted part.
		f := g.peerFacts(policy.KindChat, policy.DirectionIncoming, peer)
		f.Protection, f.Signaling, f.StanzaType = policy.ProtectionCleartext, policy.SignalingNone, st.Type
		g.report(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "stripped-encryption",
			Message: "A message from " + policy.ShowJID(from) + " arrived without its encrypted part: the server may have stripped it.",
			Detail:  "message from " + st.From.String() + " to " + st.To.String() + " carries the securejingle fallback but no <c/> element"})
		return
	}
	if sentCarbon {
		if fr := g.front.Load(); fr != nil && fr.passedCleartext(st, body) {
			// A local client sent it through our front, where policy
			// classified it (and alerted) already.
			g.events.publish(Event{Kind: EventChatSent, From: from, To: to, Body: body,
				Detail: "cleartext: sent without encryption by a local client through the gateway, as policy allowed"})
			return
		}
		// "Sent by another login of ours" in cleartext: a plain client of
		// the user's, or a carbon forged by the server or by someone with
		// the password. Shown as unencrypted, never as our secure message.
		f := g.peerFacts(policy.KindChat, policy.DirectionOutgoing, to)
		f.Protection, f.Signaling, f.StanzaType = policy.ProtectionCleartext, policy.SignalingNone, st.Type
		g.report(f, policy.Decision{Action: policy.ActionFlag, Severity: policy.SeverityWarning, Rule: "cleartext-sent-carbon",
			Message: "A message to " + policy.ShowJID(to) + " shown as sent by another login of your account was not encrypted: if you did not send it, the server or someone with your password forged it.",
			Detail:  "cleartext sent carbon from " + st.From.String() + " to " + st.To.String()})
		g.events.publish(Event{Kind: EventChatSent, From: from, To: to, Body: body,
			Detail: "cleartext: sent without encryption by another login of your account; it may be forged"})
		return
	}
	d := g.decide(ctx, g.cleartextChatFacts(policy.DirectionIncoming, from, st.Type))
	g.events.publish(Event{Kind: EventChat, From: from, Body: body, Refused: d.Action == policy.ActionRefuse,
		Detail: "cleartext: " + d.Action.String() + " by rule " + d.Rule})
}

// misrouted alerts when an encrypted payload the engine found no entry
// for is another account's stanza addressed to a third account: the
// server delivered it here instead of to its addressee (a reroute), who
// never gets it. Nothing of it can be read here. A payload from the own
// account, or addressed to it (a device the sender did not know yet), is
// not misrouted. It reports whether it alerted.
func (g *Gateway) misrouted(st *Stanza, from, to string) bool {
	if from == g.bare() || to == g.bare() {
		return false
	}
	f := g.peerFacts(policy.KindStanza, policy.DirectionIncoming, from)
	if st.Kind == "message" && st.Type == "chat" {
		f.Kind = policy.KindChat
	}
	f.Protection, f.Signaling, f.StanzaType = policy.ProtectionE2EBound, policy.SignalingNone, st.Type
	g.report(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "misrouted",
		Message: "A message from " + policy.ShowJID(from) + " to " + policy.ShowJID(to) + " was delivered to you instead: the server misrouted it, and " +
			policy.ShowJID(to) + " did not get it. It could not be read here.",
		Detail: st.Kind + " from " + st.From.String() + " addressed to " + st.To.String() + " was delivered to " + g.bare()})
	return true
}

// strippedEncryption reports whether a message without an encrypted
// element is the fallback of a securejingle message: an EME element naming
// securejingle, or the fallback body itself.
func strippedEncryption(st *Stanza, body string) bool {
	if body == e2e.FallbackBody {
		return true
	}
	c := st.Child(nsEME, "encryption")
	if c == nil {
		return false
	}
	var v struct {
		Namespace string `xml:"namespace,attr"`
	}
	return xml.Unmarshal(c.Raw, &v) == nil && v.Namespace == e2e.EMENamespace
}

// receiptsTo reports whether an opened chat message from p gets a
// delivery receipt: it comes from another account that is on the roster
// or with which a confirmed session exists (we answered it), and the
// session to answer on exists, so no handshake (and no agent call) is
// needed.
func (g *Gateway) receiptsTo(p *e2e.Peer) bool {
	if g.cfg.NoReceipts || p == nil || p.JID == g.bare() {
		return false
	}
	info, err := g.eng.Session(p.Device)
	if err != nil {
		return false
	}
	return info.Established || g.onRoster(p.JID)
}

// hasSecuredSession reports whether a device of bare has proved it speaks
// securejingle with us: a session that is established, or one the peer
// started with an authenticated first message. Cleartext from that peer is
// then a downgrade (refused by default). A first message of ours that was
// never answered does not count.
func (g *Gateway) hasSecuredSession(bare string) bool {
	ds, err := g.eng.Devices(bare)
	if err != nil {
		return false
	}
	for _, d := range ds {
		if info, err := g.eng.Session(d); err == nil && (info.Established || !info.Initiator) {
			return true
		}
	}
	return false
}

// openProtected unwraps a protected message or presence payload and
// processes it as if it had arrived in place.
func (g *Gateway) openProtected(ctx context.Context, st *Stanza, c *Child) {
	from := st.From.Bare().String()
	to := st.To.Bare().String()
	if to == "" {
		to = g.bare()
	}
	p, err := e2e.ParseProtectedElement(c.Raw)
	if err != nil {
		g.alert(from, "malformed protected stanza from "+st.From.String())
		return
	}
	ec := e2e.Context{From: from, To: to, StanzaKind: st.Kind, StanzaType: st.Type, PeerOnRoster: g.onRoster(from)}
	ev, peer, err := g.eng.Unprotect(ec, p)
	if need := (*e2e.NeedBundleError)(nil); errors.As(err, &need) && g.waitForBundle(st.From, need) {
		return // processed again once the bundle is fetched
	}
	if err != nil {
		if errors.Is(err, e2e.ErrNotForUs) {
			g.misrouted(st, from, to)
		} else {
			g.alert(from, fmt.Sprintf("protected %s from %s rejected: %v", st.Kind, st.From, err))
		}
		return
	}
	g.sawPeer(st.From, peer)
	// In place: rebuild the stanza with the payload as its children, each
	// element in the namespace it had in the envelope.
	content, err := envelopeContent(ev.Content)
	var inner *Stanza
	if err == nil {
		inner, err = parseStanza(build(st.Kind, map[string]string{"type": st.Type, "id": st.ID, "from": st.From.String(), "to": st.To.String()}, content))
	}
	if err != nil {
		g.alert(from, "protected payload does not parse: "+err.Error())
		return
	}
	g.noteOpened(peer)
	g.events.publish(Event{Kind: EventStanza, From: from, Peer: peer, Payload: content, Encrypted: !p.AuthOnly})
	if st.Kind != "message" {
		return
	}
	g.handleReceipt(inner, peer)
	if jc := jmiElement(inner); jc != nil {
		g.handleJMI(inner, jc.Raw, peer, ev.Time)
	}
	if body, ok := inner.Text(nsClient, "body"); ok {
		g.events.publish(Event{Kind: EventChat, From: from, Peer: peer, Body: body, Encrypted: !p.AuthOnly})
		if f := g.front.Load(); f != nil && !p.AuthOnly && from != g.bare() {
			f.deliverChat(st.From, st.To, peer, body, false)
		}
	}
}

// cleartextChatFacts are the policy facts of a cleartext chat message
// of stanza type typ to or from peer.
func (g *Gateway) cleartextChatFacts(dir policy.Direction, peer, typ string) policy.Facts {
	f := g.peerFacts(policy.KindChat, dir, peer)
	f.Protection, f.Signaling, f.StanzaType = policy.ProtectionCleartext, policy.SignalingNone, typ
	return f
}
