package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/policy"
)

// The chat and delivery rules of gateway mode (docs/protocol.md §22.3,
// §22.4, §22.6): what the front does with the messages of a local client
// and of the server, and what it delivers itself.

// Foreign end-to-end encryption a client may use (passed through
// untouched, classified by policy).
var foreignEncryption = []xml.Name{
	{Space: "eu.siacs.conversations.axolotl", Local: "encrypted"}, // OMEMO 0.3 (legacy)
	{Space: "urn:xmpp:omemo:2", Local: "encrypted"},               // XEP-0384 OMEMO 2
	{Space: "jabber:x:encrypted", Local: "x"},                     // XEP-0027 legacy OpenPGP
	{Space: "urn:xmpp:openpgp:0", Local: "openpgp"},               // XEP-0373 OX
}

// foreignEncrypted returns the namespace of the foreign encryption element
// st carries, or "".
func foreignEncrypted(st *Stanza) string {
	for _, n := range foreignEncryption {
		if st.Child(n.Space, n.Local) != nil {
			return n.Space
		}
	}
	return ""
}

// clientMessage applies the chat rules (§22.3) to a message of the client.
func (c *frontClient) clientMessage(st localxmpp.Stanza) error {
	g := c.f.g
	m, err := parseStanzaIn(st.Raw, nsClient)
	if err != nil {
		return err
	}
	body, hasBody := m.Text(nsClient, "body")
	chatLike := m.Type == "chat" || m.Type == "normal" || m.Type == ""
	if !chatLike || m.To.Localpart() == "" {
		// Group chat, errors, and messages to servers and components
		// are not client-to-client channels the gateway protects.
		return c.upSend(st.TokenReader())
	}
	ctx := context.Background()
	to := m.To.Bare().String()
	if ns := foreignEncrypted(m); ns != "" {
		f := g.peerFacts(policy.KindChat, policy.DirectionOutgoing, to)
		f.Protection, f.Signaling, f.StanzaType = policy.ProtectionE2EUnverified, policy.SignalingNone, m.Type
		d := g.decide(ctx, f)
		g.log.Info("local client sent a message with another end-to-end encryption", "ns", ns, "to", to, "action", d.Action.String())
		if d.Action == policy.ActionRefuse {
			c.bounce(m, "The message was not sent: "+d.Message)
			return nil
		}
		if hasBody {
			c.f.notePassed(c.jid, m, body)
		}
		return c.upSend(st.TokenReader())
	}
	if !hasBody {
		// Chat states, receipts, markers: not protected (§22.8).
		return c.upSend(st.TokenReader())
	}
	// SendChatMessage encrypts to every certified device of the contact
	// it can (for a stranger, after looking for a bundle in PEP); only
	// a contact with none goes to policy as cleartext.
	_, err = g.SendChatMessage(ctx, m.To.Bare(), body)
	switch {
	case err == nil:
		c.f.sentCarbon(c, m, body)
		return nil
	case !errors.Is(err, ErrNoE2E):
		g.log.Warn("local client: chat not sent", "to", to, "err", err)
		c.bounce(m, "The message was not sent: it could not be encrypted ("+policy.BoundDetail(err.Error())+"). Nothing was sent in clear.")
		return nil
	}
	f := g.cleartextChatFacts(policy.DirectionOutgoing, to, m.Type)
	d := g.policy.Decide(f)
	if d.Action != policy.ActionRefuse && f.PeerSupportsE2E && to != g.bare() {
		// The contact runs securejingle but no device of it can be
		// encrypted to (its bundle not fetched yet, or every device
		// refused): sending in clear would be a downgrade a server can
		// force by withholding bundles. Never, whatever the rules say.
		// (A note to the own account with no other device of ours is
		// left to policy: this device is not a recipient.)
		d = policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityWarning, Rule: ruleFrontNoDevice,
			Message: policy.ShowJID(to) + " uses securejingle, but none of its devices can be encrypted to yet (its keys are not fetched, or were refused), so the message was not sent in clear. Try again in a moment; `securejingle peers` shows its devices.",
			Detail:  "chat from local client " + c.jid.String() + " to " + m.To.String() + ": no usable device"}
	}
	if d.Action != policy.ActionAllow {
		g.report(f, d) // the alert is the warning or the explanation in the clients
	}
	if d.Action == policy.ActionRefuse {
		c.bounce(m, "The message was not sent, because it could not be end-to-end encrypted: "+d.Message)
		return nil
	}
	c.f.notePassed(c.jid, m, body)
	return c.upSend(st.TokenReader())
}

// bounce answers the client's message m with a message error
// (policy-violation) carrying text, as if its addressee had refused it.
func (c *frontClient) bounce(m *Stanza, text string) {
	var e bytes.Buffer
	e.WriteString(`<error xmlns="` + nsClient + `" type="cancel"><policy-violation xmlns="` + nsStanzas + `"/>`)
	e.WriteString(`<text xmlns="` + nsStanzas + `" xml:lang="en">`)
	xml.EscapeText(&e, []byte(text))
	e.WriteString(`</text></error>`)
	var children [][]byte
	if body, ok := m.Text(nsClient, "body"); ok {
		children = append(children, element(nsClient, "body", body))
	}
	children = append(children, e.Bytes())
	c.forward(build("message", map[string]string{"type": "error", "id": m.ID, "from": m.To.String(), "to": c.jid.String()}, children...))
}

// sentCarbon gives the clients other than from that enabled carbons an
// XEP-0280 sent carbon of the chat message m that from sent encrypted.
func (f *Front) sentCarbon(from *frontClient, m *Stanza, body string) {
	if m.Child(nsCarbons, "private") != nil {
		return
	}
	inner := build("message", map[string]string{"type": "chat", "id": m.ID, "from": from.jid.String(), "to": m.To.String()},
		element(nsClient, "body", body), f.hint(m.To.Bare().String(), 0))
	f.carbon("sent", from, inner)
}

// carbon wraps inner in an XEP-0280 carbon of kind (sent or received) for
// each client other than except that enabled carbons.
func (f *Front) carbon(kind string, except *frontClient, inner []byte) {
	fwd := element(nsForward, "forwarded", "")
	fwd = appendChild(fwd, "forwarded", inner)
	wrap := appendChild(element(nsCarbons, kind, ""), kind, fwd)
	for _, c := range f.snapshot() {
		if c == except || !c.carbons.Load() {
			continue
		}
		c.enqueue(build("message", map[string]string{"type": "chat", "id": randomID(), "from": f.g.bare(), "to": c.jid.String()}, wrap))
	}
}

func (f *Front) snapshot() []*frontClient {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*frontClient, 0, len(f.clients))
	for c := range f.clients {
		out = append(out, c)
	}
	return out
}

// hint is the element marking chat the front delivered decrypted: the
// trust state of the peer account's key and the sending device (0: not
// known, as for our own sent carbons).
func (f *Front) hint(peer string, device uint32) []byte {
	t := policy.TrustUnknown
	if f.g.cfg.Trust != nil {
		t = trustFact(f.g.cfg.Trust, peer)
	}
	attrs := []string{"trust", t.String()}
	if device != 0 {
		attrs = append(attrs, "device", strconv.FormatUint(uint64(device), 10))
	}
	return element(nsFront, "protected", "", attrs...)
}

// deliverChat gives every client a chat message the gateway decrypted:
// from the sender's full JID, or for a message our other device sent
// (sent true), a sent carbon to the clients that enabled carbons.
func (f *Front) deliverChat(from, to jid.JID, p *e2e.Peer, body string, sent bool) {
	var device uint32
	if p != nil {
		device = p.ID
	}
	if sent {
		inner := build("message", map[string]string{"type": "chat", "id": randomID(), "from": from.String(), "to": to.String()},
			element(nsClient, "body", body), f.hint(to.Bare().String(), 0))
		f.carbon("sent", nil, inner)
		return
	}
	hint := f.hint(from.Bare().String(), device)
	for _, c := range f.snapshot() {
		c.enqueue(build("message", map[string]string{"type": "chat", "id": randomID(), "from": from.String(), "to": c.jid.String()},
			element(nsClient, "body", body), hint))
	}
}

// deliverAlert gives every client an alert (already de-duplicated by the
// notifier) as a chat message from the alert JID.
func (f *Front) deliverAlert(text string) {
	for _, c := range f.snapshot() {
		c.enqueue(f.notice(c.jid, text))
	}
}

// How readRaw writes a declaration of our namespace, and the start of
// one of the namespaces under it (alerts, the front's hint).
var (
	ourNSAttr    = []byte(`xmlns="` + e2e.NS + `"`)
	ourSubNSAttr = []byte(`xmlns="` + e2e.NS + `:`)
	ourNodeAttr  = []byte(`node="` + e2e.NS)
)

// fromServer applies the interception rules to a stanza from the server
// (raw: its bytes) and hands what is left to the client.
func (c *frontClient) fromServer(st *Stanza, raw []byte) {
	g := c.f.g
	if st.From.String() == c.f.alertJID() {
		return // only the gateway speaks as the alert JID
	}
	switch st.Kind {
	case "message":
		if c.dropMessage(st, raw) {
			return
		}
	case "presence":
		if st.Child(e2e.NS, "p") != nil {
			return // a protected payload for the gateway, not presence
		}
	case "iq":
		if (st.Type == "get" || st.Type == "set") && len(st.Children) == 1 && st.Children[0].Name.Space == e2e.NS {
			// Bundle requests and protected IQs to this resource are the
			// gateway's to answer.
			resp := g.handleIQ(st)
			if resp == nil {
				resp = iqError(st, "cancel", "service-unavailable")
			}
			c.upSend(tokens(resp))
			return
		}
		if answer := c.caps.inboundQuery(st, time.Now()); answer != nil {
			c.upSend(tokens(answer)) // a disco#info of augmented caps
			return
		}
	}
	c.forward(raw)
}

// dropMessage reports whether a message from the server must not reach
// the client: anything carrying our envelopes or elements (copies by
// bare-JID routing, carbons, archive results, our PEP nodes), our own
// alerts, the fallback of a message whose encrypted part was stripped,
// and cleartext chat that policy refuses (the gateway's own session
// reports it).
func (c *frontClient) dropMessage(st *Stanza, raw []byte) bool {
	g := c.f.g
	if bytes.Contains(raw, ourNSAttr) || bytes.Contains(raw, ourSubNSAttr) ||
		(st.Child(nsPubSubEvent, "event") != nil && bytes.Contains(raw, ourNodeAttr)) {
		return true
	}
	if rc := st.Child(nsCarbons, "received"); rc != nil {
		// A copy of cleartext another resource of ours received: the
		// same rules as if it had come here.
		inner, err := forwarded(rc.Raw)
		return err != nil || st.From.Bare().String() != g.bare() || c.dropCleartext(inner)
	}
	return c.dropCleartext(st)
}

// dropCleartext is dropMessage's rule for a message without our elements.
func (c *frontClient) dropCleartext(st *Stanza) bool {
	g := c.f.g
	body, ok := st.Text(nsClient, "body")
	if !ok {
		return false
	}
	if strippedEncryption(st, body) {
		return true
	}
	from := st.From.Bare().String()
	if st.Type == "error" || st.Type == "groupchat" || st.Type == "headline" || st.From.Localpart() == "" || from == g.bare() {
		return false
	}
	d := g.policy.Decide(g.cleartextChatFacts(policy.DirectionIncoming, from, st.Type))
	return d.Action == policy.ActionRefuse
}

// Bounds of Front.passed (implementation constants).
const (
	maxPassed = 256
	passedTTL = 2 * time.Minute
)

// passedKey identifies a chat message by sender, addressee, id and body.
func passedKey(st *Stanza, body string) [32]byte {
	return sha256.Sum256([]byte(st.From.String() + "\x00" + st.To.String() + "\x00" + st.ID + "\x00" + body))
}

// notePassed records that the client at from sent m (body) upstream
// unencrypted, after policy saw it.
func (f *Front) notePassed(from jid.JID, m *Stanza, body string) {
	k := *m
	k.From = from
	now := f.g.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.passed == nil {
		f.passed = map[[32]byte]time.Time{}
	}
	for key, t := range f.passed {
		if len(f.passed) < maxPassed && now.Sub(t) < passedTTL {
			break
		}
		delete(f.passed, key) // expired, or the oldest-or-any beyond the bound
	}
	f.passed[passedKey(&k, body)] = now
}

// passedCleartext reports (once) whether the sent carbon st (body) is of
// a message a local client sent through this front unencrypted: policy
// already decided and alerted about it.
func (f *Front) passedCleartext(st *Stanza, body string) bool {
	k := passedKey(st, body)
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.passed[k]
	delete(f.passed, k)
	return ok && f.g.now().Sub(t) < passedTTL
}
