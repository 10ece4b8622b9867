package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/trust"
	"github.com/securejingle/securejingle/policy"
)

// ErrNoE2E is returned when a contact has no device the gateway can encrypt
// to. The gateway never falls back to cleartext by itself.
var ErrNoE2E = errors.New("gateway: contact has no usable securejingle device")

// targets returns every device a message to bare must be encrypted to:
// the contact's devices and our own other devices, minus those whose key
// the account's trust record does not accept (a distrusted account, or a
// key other than the pinned account key).
func (g *Gateway) targets(bare string) ([]e2e.Device, error) {
	var out []e2e.Device
	for _, who := range []string{bare, g.bare()} {
		ds, err := g.eng.Devices(who)
		if err != nil {
			return nil, err
		}
		var rec trust.Record
		if g.cfg.Trust != nil && len(ds) > 0 {
			if rec, err = g.cfg.Trust.Lookup(who); err != nil {
				rec = trust.Record{} // unknown or unreadable: accepts nothing
			}
		}
		for _, d := range ds {
			if who == g.bare() && d.ID == g.eng.Device() {
				continue
			}
			if g.cfg.Trust != nil {
				bu, err := g.eng.PeerBundle(d)
				if err != nil || !rec.Accepts(bu.Identity) {
					continue
				}
			}
			out = append(out, d)
		}
		if who == bare && len(out) == 0 {
			return nil, ErrNoE2E
		}
	}
	return out, nil
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
// contact who is not on the roster carries our bundle inline.
func (g *Gateway) SendChat(ctx context.Context, to jid.JID, body string) error {
	bare := to.Bare().String()
	targets, err := g.targets(bare)
	if errors.Is(err, ErrNoE2E) && !g.onRoster(bare) {
		// A stranger: try the opportunistic path (PEP) first.
		if _, derr := g.DiscoverBundles(ctx, to.Bare()); derr == nil {
			targets, err = g.targets(bare)
		}
	}
	if err != nil {
		return err
	}
	c := e2e.Context{From: g.bare(), To: bare, StanzaKind: "message", StanzaType: "chat"}
	el, err := g.eng.SealChat(c, targets, body, !g.onRoster(bare))
	if err != nil {
		return err
	}
	ex, err := xml.Marshal(el)
	if err != nil {
		return err
	}
	children := [][]byte{ex, element(nsHints, "store", "")}
	if g.needsFallback(bare) {
		children = append(children, element(nsEME, "encryption", "", "namespace", e2e.EMENamespace, "name", e2e.EMEName),
			element(nsClient, "body", e2e.FallbackBody))
	}
	return g.send(ctx, build("message", map[string]string{"type": "chat", "id": randomID(), "to": bare}, children...))
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
		return
	}
	own := st.From.Equal(jid.JID{}) || st.From.Bare().String() == g.bare()
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
		var need *e2e.NeedBundleError
		if errors.As(err, &need) {
			if bu, ferr := g.fetchBundle(ctx, st.From, need.Device); ferr == nil && g.addBundle(need.JID, bu) == nil {
				body, p, err = g.eng.OpenChat(ec, el)
			}
		}
		switch {
		case errors.Is(err, e2e.ErrNotForUs):
			g.log.Info("encrypted chat not for this device", "from", st.From.String())
		case err != nil:
			g.alert(peer, fmt.Sprintf("encrypted chat from %s rejected: %v", st.From, err))
		case sentCarbon:
			g.events.publish(Event{Kind: EventChatSent, From: from, To: to, Peer: p, Body: body, Encrypted: true})
		default:
			g.events.publish(Event{Kind: EventChat, From: from, Peer: p, Body: body, Encrypted: true})
		}
		return
	}
	if c := st.Child(e2e.NS, "p"); c != nil {
		g.openProtected(ctx, st, c)
		return
	}
	body, ok := st.Text(nsClient, "body")
	if !ok || g.isAlertMessage(st) {
		return
	}
	if sentCarbon || from == g.bare() {
		// Our own clients' cleartext: not a channel with a peer.
		kind := EventChat
		if sentCarbon {
			kind = EventChatSent
		}
		g.events.publish(Event{Kind: kind, From: from, To: to, Body: body})
		return
	}
	f := g.peerFacts(policy.KindChat, policy.DirectionIncoming, from)
	f.Protection, f.Signaling, f.StanzaType = policy.ProtectionCleartext, policy.SignalingNone, st.Type
	d := g.decide(ctx, f)
	g.events.publish(Event{Kind: EventChat, From: from, Body: body, Refused: d.Action == policy.ActionRefuse,
		Detail: "cleartext: " + d.Action.String() + " by rule " + d.Rule})
}

// hasSecuredSession reports whether an end-to-end session (established or
// still waiting for the peer's confirmation) exists with any device of
// bare: cleartext from that peer is then a possible downgrade.
func (g *Gateway) hasSecuredSession(bare string) bool {
	ds, err := g.eng.Devices(bare)
	if err != nil {
		return false
	}
	for _, d := range ds {
		if _, err := g.eng.Session(d); err == nil {
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
	var need *e2e.NeedBundleError
	if errors.As(err, &need) {
		if bu, ferr := g.fetchBundle(ctx, st.From, need.Device); ferr == nil && g.addBundle(need.JID, bu) == nil {
			ev, peer, err = g.eng.Unprotect(ec, p)
		}
	}
	if err != nil {
		if !errors.Is(err, e2e.ErrNotForUs) {
			g.alert(from, fmt.Sprintf("protected %s from %s rejected: %v", st.Kind, st.From, err))
		}
		return
	}
	// In place: rebuild the stanza with the payload as its children.
	inner, err := parseStanza(build(st.Kind, map[string]string{"type": st.Type, "id": st.ID, "from": st.From.String(), "to": st.To.String()}, ev.Content))
	if err != nil {
		g.alert(from, "protected payload does not parse: "+err.Error())
		return
	}
	g.events.publish(Event{Kind: EventStanza, From: from, Peer: peer, Payload: ev.Content, Encrypted: !p.AuthOnly})
	if body, ok := inner.Text(nsClient, "body"); ok && st.Kind == "message" {
		g.events.publish(Event{Kind: EventChat, From: from, Peer: peer, Body: body, Encrypted: !p.AuthOnly})
	}
}
