package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
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

// foreignWellFormed reports whether the foreign encryption element of st
// (namespace ns) has the structure of a real encrypted message: OMEMO a
// header with at least one key (and a payload when the message has a
// body), OpenPGP (XEP-0027, XEP-0373) non-empty content. An empty
// element would only dress a cleartext body up as encrypted.
func foreignWellFormed(st *Stanza, ns string, hasBody bool) bool {
	for _, n := range foreignEncryption {
		if n.Space != ns {
			continue
		}
		el := st.Child(n.Space, n.Local)
		var v struct {
			Header struct {
				SID  string   `xml:"sid,attr"`
				Key  []string `xml:"key"`
				Keys []struct {
					Key []string `xml:"key"`
				} `xml:"keys"`
			} `xml:"header"`
			Payload *string `xml:"payload"`
			Text    string  `xml:",chardata"`
		}
		if el == nil || xml.Unmarshal(el.Raw, &v) != nil {
			return false
		}
		switch ns {
		case "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2":
			keys := len(v.Header.Key)
			for _, k := range v.Header.Keys {
				keys += len(k.Key)
			}
			return v.Header.SID != "" && keys > 0 && (!hasBody || (v.Payload != nil && strings.TrimSpace(*v.Payload) != ""))
		default:
			return strings.TrimSpace(v.Text) != ""
		}
	}
	return false
}

// foreignFallback is the body a message with foreign encryption goes
// with: the client's own body is never sent, whatever it says.
const foreignFallback = "This message is end-to-end encrypted; your client cannot show it."

// foreignMessage is the message of the client m, with foreign encryption
// (namespace ns), as the front sends it: its encryption element, the
// metadata of clearMetadata, EME, and the fixed fallback body if it had
// a body; every other child stays here.
func foreignMessage(m *Stanza, ns string, hasBody bool) []byte {
	var kept [][]byte
	for _, ch := range m.Children {
		if ch.Name.Space == ns || clearMetadata[ch.Name.Space] || ch.Name.Space == nsEME ||
			ch.Name == (xml.Name{Space: nsClient, Local: "thread"}) || ch.Name == (xml.Name{Space: nsCarbons, Local: "private"}) {
			kept = append(kept, ch.Raw)
		}
	}
	if hasBody {
		kept = append(kept, element(nsClient, "body", foreignFallback))
	}
	attrs := map[string]string{"id": m.ID, "to": m.To.String()}
	if m.Type != "" {
		attrs["type"] = m.Type
	}
	return build("message", attrs, kept...)
}

// Namespaces of the metadata a bodyless message may carry to a contact
// in clear (§22.8): chat states, receipts, markers, hints, delay, unique
// ids, carbons' private, and call signalling (JMI, like the Jingle IQs
// it announces, is not protected before phase 2). Any other child is
// content.
var clearMetadata = map[string]bool{
	"http://jabber.org/protocol/chatstates": true, // XEP-0085
	"urn:xmpp:receipts":                     true, // XEP-0184
	"urn:xmpp:chat-markers:0":               true, // XEP-0333
	nsHints:                                 true, // XEP-0334
	"urn:xmpp:delay":                        true, // XEP-0203
	"urn:xmpp:sid:0":                        true, // XEP-0359
	"urn:xmpp:jingle-message:0":             true, // XEP-0353
}

// metadataOnly reports whether every child of the message m is metadata
// that may go in clear (clearMetadata, <thread/>, carbons' <private/>).
func metadataOnly(m *Stanza) bool {
	for _, ch := range m.Children {
		switch {
		case clearMetadata[ch.Name.Space]:
		case ch.Name == xml.Name{Space: nsClient, Local: "thread"}:
		case ch.Name == xml.Name{Space: nsCarbons, Local: "private"}:
		default:
			return false
		}
	}
	return true
}

// messageType is the type a message of type typ is handled as: an
// unknown type is normal (RFC 6121 §5.2.2).
func messageType(typ string) string {
	switch typ {
	case "chat", "normal", "headline", "groupchat", "error":
		return typ
	}
	return "normal"
}

// Bound of frontClient.rooms (implementation constant).
const maxFrontRooms = 1024

const nsMUC = "http://jabber.org/protocol/muc"

// notePresence follows the client's directed presences to group chat
// rooms (XEP-0045 join, with <x xmlns='…/muc'/>; leave), bounded.
func (c *frontClient) notePresence(m *Stanza) {
	if m.To.Equal(jid.JID{}) {
		return
	}
	room := m.To.Bare().String()
	switch {
	case m.Type == "" && m.Child(nsMUC, "x") != nil:
		c.rooms.add(room, maxFrontRooms, 0, time.Time{})
	case m.Type == "unavailable":
		c.rooms.remove(room)
	}
}

// clientMessage applies the chat rules (§22.3) to a message of the
// client. They follow the addressee, whatever the type: any message with
// content to an account goes through them, except one to a group chat
// room the client joined (or its occupants).
func (c *frontClient) clientMessage(st localxmpp.Stanza) error {
	g := c.f.g
	m, err := parseStanzaIn(st.Raw, nsClient)
	if err != nil {
		return err
	}
	if m.To.Equal(jid.JID{}) {
		// No 'to': the server handles it as addressed to the account
		// itself (RFC 6120 §10.3.1), a note to self.
		m.To = g.JID().Bare()
	}
	if m.To.String() == c.f.alertJID() {
		// A reply to an alert: the alert JID is the gateway's, and
		// the server must not get it (it would be a note to self).
		if _, ok := m.Text(nsClient, "body"); ok {
			c.enqueue(c.f.notice(c.jid, "Messages to this address are not sent anywhere: it is where securejingle shows its alerts."))
		}
		return nil
	}
	if c.clientFileStanza(m) {
		return nil // IBB data in a message, refused (front_files.go)
	}
	typ := messageType(m.Type)
	if m.To.Localpart() == "" || c.rooms.has(m.To.Bare().String(), time.Time{}) {
		// Messages to servers and components, and to rooms the client
		// joined: not client-to-client channels the gateway protects.
		return c.upSend(st.TokenReader())
	}
	if typ != "error" && c.clientJMI(m) {
		return nil // call signalling the front terminates (front_call.go)
	}
	if typ == "error" {
		// An error answer to an account carries only its <error/>: the
		// payload it may echo stays here.
		var kept [][]byte
		for _, ch := range m.Children {
			if ch.Name == (xml.Name{Space: nsClient, Local: "error"}) {
				kept = append(kept, ch.Raw)
			}
		}
		return c.upSend(tokens(build("message", map[string]string{"type": "error", "id": m.ID, "to": m.To.String()}, kept...)))
	}
	body, hasBody := m.Text(nsClient, "body")
	links := linksOf(m, body)
	if c.clientLinks(m, links, false) {
		return nil
	}
	// Bounds the PEP lookup of a contact with no known device; only this
	// client's stream to the server waits meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), frontLookupTimeout)
	defer cancel()
	to := m.To.Bare().String()
	if ns := foreignEncrypted(m); ns != "" {
		f := g.peerFacts(policy.KindChat, policy.DirectionOutgoing, to)
		f.Protection, f.Signaling, f.StanzaType = policy.ProtectionE2EUnverified, policy.SignalingNone, typ
		d := g.decide(ctx, f)
		g.log.Info("local client sent a message with another end-to-end encryption", "ns", ns, "to", to, "action", d.Action.String())
		if d.Action == policy.ActionRefuse {
			c.bounce(m, "The message was not sent: "+d.Message)
			return nil
		}
		if !foreignWellFormed(m, ns, hasBody) {
			c.bounce(m, "The message was not sent: its encryption element ("+ns+") is empty or malformed, so its text would have gone in clear.")
			return nil
		}
		if hasBody {
			c.f.notePassed(c.jid, m, foreignFallback)
		}
		return c.upSend(tokens(foreignMessage(m, ns, hasBody)))
	}
	if !hasBody && metadataOnly(m) {
		// Chat states, receipts, markers: not protected (§22.8).
		return c.upSend(st.TokenReader())
	}
	if hasBody {
		// SendChatMessage encrypts to every certified device of the
		// contact it can (after looking for its bundles in PEP when
		// none is known); only a contact shown to have none goes to
		// policy as cleartext. Of the message, the body is what is
		// encrypted (and sent, as chat).
		_, err = g.SendChatMessage(ctx, m.To.Bare(), body)
		if err == nil {
			c.f.sentCarbon(c, m, body)
			return nil
		}
	} else if _, err = g.chatTargets(ctx, m.To.Bare()); err == nil {
		// Content without a body (a subject, XHTML, a reaction, a
		// link) to a contact we can encrypt to: the gateway encrypts
		// text only, and nothing goes in clear.
		c.bounce(m, "The message was not sent: securejingle encrypts the text of a message only, and this one has none (a reaction, a subject, formatting or a link alone). Nothing was sent in clear.")
		return nil
	}
	if !errors.Is(err, ErrNoE2E) {
		c.bounceUnsent(m, err)
		return nil
	}
	if links.aesgcm && len(links.plain) == 0 && c.clientLinks(m, links, true) {
		return nil // the aesgcm:// key would go in clear
	}
	f := g.cleartextChatFacts(policy.DirectionOutgoing, to, typ)
	d := g.policy.Decide(f)
	if d.Action != policy.ActionRefuse && (f.PeerSupportsE2E || to == g.bare()) {
		// The contact runs securejingle but no device of it can be
		// encrypted to (its bundle not fetched yet, or every device
		// refused): sending in clear would be a downgrade a server can
		// force by withholding bundles. Never, whatever the rules say.
		// (A note to the own account with no other device of ours is
		// refused too, whatever is known yet: the account runs
		// securejingle, and the server would keep the note in clear.)
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
	if hasBody {
		c.f.notePassed(c.jid, m, body)
	}
	return c.upSend(st.TokenReader())
}

// bounceUnsent answers the client's message m that could not be
// encrypted (err: why, such as a [*LookupError] when the contact's keys
// could not be looked for) and was not sent in clear.
func (c *frontClient) bounceUnsent(m *Stanza, err error) {
	c.f.g.log.Warn("local client: chat not sent", "to", m.To.String(), "err", err)
	if m.To.Bare().String() == c.f.g.bare() && errors.Is(err, ErrUnusableKeys) {
		c.bounce(m, "The message was not sent: a note to yourself goes only encrypted to your other securejingle devices, and there is none. Nothing was sent in clear.")
		return
	}
	var le *LookupError
	if errors.As(err, &le) {
		c.bounce(m, "The message was not sent: securejingle could not check whether "+policy.ShowJID(le.Peer)+" can receive encrypted messages ("+policy.BoundDetail(le.Err.Error())+"). Nothing was sent in clear; try again in a moment.")
		return
	}
	c.bounce(m, "The message was not sent: it could not be encrypted ("+policy.BoundDetail(err.Error())+"). Nothing was sent in clear.")
}

// bounce answers the client's message m with a message error
// (policy-violation) carrying text, as if its addressee had refused it.
func (c *frontClient) bounce(m *Stanza, text string) {
	var children [][]byte
	if body, ok := m.Text(nsClient, "body"); ok {
		children = append(children, element(nsClient, "body", body))
	}
	children = append(children, policyViolation(text))
	c.forward(build("message", map[string]string{"type": "error", "id": m.ID, "from": m.To.String(), "to": c.jid.String()}, children...))
}

// policyViolation is a stanza error element of type cancel with the
// condition policy-violation and text.
func policyViolation(text string) []byte {
	var e bytes.Buffer
	e.WriteString(`<error xmlns="` + nsClient + `" type="cancel"><policy-violation xmlns="` + nsStanzas + `"/>`)
	e.WriteString(`<text xmlns="` + nsStanzas + `" xml:lang="en">`)
	xml.EscapeText(&e, []byte(text))
	e.WriteString(`</text></error>`)
	return e.Bytes()
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
		if c.dropMessage(st, raw) || c.serverFileStanza(st) {
			return
		}
	case "presence":
		if st.Child(e2e.NS, "p") != nil {
			return // a protected payload for the gateway, not presence
		}
	case "iq":
		if c.plainSignal(st) {
			return
		}
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
		if st.Type == "set" && c.serverFileStanza(st) {
			return // a plain transfer offered to the client, refused (front_files.go)
		}
		if answer := c.caps.inboundQuery(st, time.Now()); answer != nil {
			c.upSend(tokens(answer)) // a disco#info of augmented caps
			return
		}
	}
	c.forward(raw)
}

// Bounds of Front.passed (implementation constants).
const (
	maxPassed = 4096
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
