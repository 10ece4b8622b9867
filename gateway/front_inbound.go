package gateway

import (
	"bytes"
	"encoding/xml"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/policy"
)

// The server-to-client rules of gateway mode for messages (docs/protocol.md
// §22.4): what of the server's messages never reaches a local client.

// Namespaces of the message archive (XEP-0313) results the front checks.
var nsMAMs = []string{"urn:xmpp:mam:2", "urn:xmpp:mam:1"}

// Bounds of frontClient.mamQueries (implementation constants).
const (
	maxMAMQueries = 64
	mamQueryTTL   = 10 * time.Minute
)

// boundedSet is a set of strings, bounded in size and, when added with a
// lifetime, in time; safe for concurrent use.
type boundedSet struct {
	mu sync.Mutex
	m  map[string]time.Time // key -> expiry (zero: none)
}

// add inserts key, expiring at now+ttl (ttl 0: never); when the set is
// full, an expired key, else any key, makes room.
func (s *boundedSet) add(key string, max int, ttl time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]time.Time{}
	}
	if _, ok := s.m[key]; !ok && len(s.m) >= max {
		victim := ""
		for k, t := range s.m {
			victim = k
			if !t.IsZero() && !now.Before(t) {
				break
			}
		}
		delete(s.m, victim)
	}
	var exp time.Time
	if ttl > 0 {
		exp = now.Add(ttl)
	}
	s.m[key] = exp
}

func (s *boundedSet) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// has reports whether key is in the set and not expired at now.
func (s *boundedSet) has(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	return ok && (t.IsZero() || now.Before(t))
}

// noteMAMQuery records an archive query of the client (m, an iq set,
// with a MAM <query/>): the archive it asked (its 'to', else the own account)
// and its queryid.
func (c *frontClient) noteMAMQuery(m *Stanza) {
	for _, ns := range nsMAMs {
		if q := m.Child(ns, "query"); q != nil {
			archive := c.f.g.bare()
			if !m.To.Equal(jid.JID{}) {
				archive = m.To.Bare().String()
			}
			c.mamQueries.add(archive+"\x00"+attrOf(q.Raw, "queryid"), maxMAMQueries, mamQueryTTL, c.f.g.now())
			return
		}
	}
}

// attrOf returns the attribute name of the element raw, or "".
func attrOf(raw []byte, name string) string {
	tok, err := xml.NewDecoder(bytes.NewReader(raw)).Token()
	if err != nil {
		return ""
	}
	if start, ok := tok.(xml.StartElement); ok {
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == name {
				return a.Value
			}
		}
	}
	return ""
}

// dropMessage reports whether a message from the server must not reach
// the client: anything carrying our envelopes or elements (copies by
// bare-JID routing, carbons, archive results, our PEP nodes), carbons and
// archive results the server forged, anything that speaks as the alert
// JID, the fallback of a message whose encrypted part was stripped, and
// cleartext that policy refuses, whatever wraps it (the gateway's own
// session reports it).
func (c *frontClient) dropMessage(st *Stanza, raw []byte) bool {
	g := c.f.g
	if bytes.Contains(raw, ourNSAttr) || bytes.Contains(raw, ourSubNSAttr) ||
		(st.Child(nsPubSubEvent, "event") != nil && bytes.Contains(raw, ourNodeAttr)) {
		c.rescueEnvelope(st)
		return true
	}
	if c.plainSignal(st) {
		return true
	}
	own := st.From.Equal(jid.JID{}) || st.From.String() == g.bare()
	for _, kind := range []string{"received", "sent"} {
		if cb := st.Child(nsCarbons, kind); cb != nil {
			// XEP-0280 §11: a carbon comes from the own bare JID, and
			// a sent carbon is of a message of the own account.
			inner, err := forwarded(cb.Raw)
			if err != nil || !own {
				return true
			}
			if kind == "sent" {
				return inner.From.Bare().String() != g.bare() || c.dropCleartext(inner)
			}
			return c.dropCleartext(inner)
		}
	}
	for _, ns := range nsMAMs {
		if res := st.Child(ns, "result"); res != nil {
			// A result of a query the client sent, from the archive it
			// asked; its message gets the same rules as if it came now.
			archive := g.bare()
			if !st.From.Equal(jid.JID{}) {
				archive = st.From.String()
			}
			if !c.mamQueries.has(archive+"\x00"+attrOf(res.Raw, "queryid"), g.now()) {
				return true
			}
			inner, err := forwarded(res.Raw)
			if err != nil {
				return true
			}
			if archive == g.bare() && inner.From.Bare().String() == g.bare() {
				return inner.From.String() == c.f.alertJID() // our own sent history
			}
			return c.dropCleartext(inner)
		}
	}
	if fw := st.Child(nsForward, "forwarded"); fw != nil {
		// A message a contact forwards (XEP-0297): the forwarded one
		// speaks too.
		inner, err := forwarded(append(append([]byte("<x>"), fw.Raw...), "</x>"...))
		if err != nil || c.dropCleartext(inner) {
			return true
		}
	}
	return c.dropCleartext(st)
}

// inboundMetadata reports whether ch, a child of a message from the
// server, is metadata rather than content: what may go in clear from the
// client (clearMetadata), PEP notifications (our nodes are dropped
// before), and the server's additions.
func inboundMetadata(ch Child) bool {
	switch {
	case clearMetadata[ch.Name.Space]:
	case ch.Name == xml.Name{Space: nsClient, Local: "thread"}:
	case ch.Name == xml.Name{Space: nsCarbons, Local: "private"}:
	case ch.Name == xml.Name{Space: nsPubSubEvent, Local: "event"}:
	default:
		return false
	}
	return true
}

// dropCleartext is dropMessage's rule for a message without our
// elements: content (a body, or any child that is not metadata) from an
// account, of any type but error, is cleartext chat for policy, unless it
// comes from a room the client joined, from the own account, or from a
// server or component.
func (c *frontClient) dropCleartext(st *Stanza) bool {
	g := c.f.g
	if st.From.String() == c.f.alertJID() {
		return true // only the gateway speaks as the alert JID
	}
	body, hasBody := st.Text(nsClient, "body")
	if hasBody && strippedEncryption(st, body) {
		return true
	}
	content := hasBody
	for _, ch := range st.Children {
		if !inboundMetadata(ch) {
			content = true
		}
	}
	typ := messageType(st.Type)
	from := st.From.Bare().String()
	if !content || typ == "error" || st.From.Localpart() == "" || from == g.bare() || c.rooms.has(from, time.Time{}) {
		return false
	}
	d := g.policy.Decide(g.cleartextChatFacts(policy.DirectionIncoming, from, typ))
	return d.Action == policy.ActionRefuse
}

// Namespaces of bytestream offers that carry a file in clear (XEP-0047
// open, XEP-0065 query).
var plainStreamOffers = []xml.Name{
	{Space: "http://jabber.org/protocol/ibb", Local: "open"},
	{Space: "http://jabber.org/protocol/bytestreams", Local: "query"},
}

// plainSignal applies to unprotected call and file signalling from an
// account (Jingle and bytestream offers in an IQ set, a XEP-0353 propose
// or proceed in a message) the policy the gateway's own session applies:
// what policy refuses (by default: from a peer who supports end-to-end
// protection) never reaches the client, an IQ is answered not-acceptable,
// and what it does not allow is alerted. It reports whether st is
// dropped. (Until phase 2 the front has no protected path for a plain
// client's calls and transfers.)
func (c *frontClient) plainSignal(st *Stanza) bool {
	g := c.f.g
	if st.From.Localpart() == "" || st.From.Bare().String() == g.bare() {
		return false
	}
	var f policy.Facts
	var d policy.Decision
	alert := true
	switch {
	case st.Kind == "iq" && st.Type == "set" && len(st.Children) > 0:
		// The element is looked up by name whatever else the IQ
		// carries: clients find <jingle/> that way too.
		ch := st.Children[0]
		if jc := st.Child(nsJingle, "jingle"); jc != nil {
			ch = *jc
		}
		switch {
		case ch.Name == xml.Name{Space: nsJingle, Local: "jingle"}:
			f, d = g.unprotectedJingleDecision(st, ch)
			switch attrOf(ch.Raw, "action") {
			case "session-initiate", "session-accept", "content-add", "content-accept", "transport-replace":
			default:
				alert = false // one alert a call, for its offer and answer
			}
			if d.Action != policy.ActionRefuse {
				// Policy lets the session through: the client's
				// answers in it go out as they are (front_call.go).
				c.plainSession(st.From, attrOf(ch.Raw, "sid"))
			}
		case ch.Name == plainStreamOffers[0] || ch.Name == plainStreamOffers[1]:
			f = g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, st.From.Bare().String())
			f.Protection, f.Signaling, f.StanzaType = policy.ProtectionCleartext, policy.SignalingUnprotected, st.Type
			d = g.policy.Decide(f)
			d.Detail = policy.BoundDetail(ch.Name.Local + " (" + ch.Name.Space + ") in clear from " + st.From.String())
		default:
			return false
		}
	case st.Kind == "message":
		jc := jmiElement(st)
		if jc == nil {
			return false
		}
		var ok bool
		if f, d, ok = g.unprotectedJMIDecision(st, jc); !ok {
			return false
		}
	default:
		return false
	}
	if d.Action != policy.ActionAllow && alert {
		g.queueAlert(f, d)
	}
	return c.refuseInbound(st, d)
}

// rescueNoticeEvery bounds the notices of envelopes that could not be
// handed to the engine (implementation constant).
const rescueNoticeEvery = time.Minute

// rescueEnvelope hands an encrypted message (our chat or protected
// envelope, directly or in a carbon) that reached this client's upstream
// to the gateway's worker when the gateway's own session would not get
// it: that session is down, or the message is addressed to this client's
// resource. Replay protection drops the copy the engine may also get.
// When the worker is gone or its queue is full, the client is told (at
// most once a minute) instead of losing the message silently.
func (c *frontClient) rescueEnvelope(st *Stanza) {
	g := c.f.g
	if st.Kind != "message" || st.Type == "error" || st.Child(nsPubSubEvent, "event") != nil {
		return
	}
	envelope := st.Child(e2e.NS, "c") != nil || st.Child(e2e.NS, "p") != nil
	for _, kind := range []string{"received", "sent"} {
		if cb := st.Child(nsCarbons, kind); cb != nil && bytes.Contains(cb.Raw, ourNSAttr) {
			envelope = true
		}
	}
	g.mu.Lock()
	up := g.sess != nil
	g.mu.Unlock()
	if !envelope || (up && !st.To.Equal(c.jid)) {
		return
	}
	select {
	case <-g.stopped: // the worker is gone (checked first: the queue may have room)
	default:
		select {
		case g.inbox <- st:
			return
		default:
		}
	}
	now := g.now()
	if last := c.rescueNoticed.Load(); last != 0 && now.Sub(time.Unix(0, last)) < rescueNoticeEvery {
		return
	}
	c.rescueNoticed.Store(now.UnixNano())
	g.log.Warn("local client: an encrypted message could not be handed to the engine", "from", st.From.String())
	c.enqueue(c.f.notice(c.jid, "An encrypted message that claims to come from "+policy.ShowJID(st.From.Bare().String())+" arrived while securejingle could not decrypt it (the gateway is not running or is overloaded). It was not shown; it may be in the server's archive."))
}

// refuseInbound reports whether d refuses st, a stanza from the server
// for this client; a refused IQ is answered not-acceptable upstream, so
// its sender is not left waiting.
func (c *frontClient) refuseInbound(st *Stanza, d policy.Decision) bool {
	if d.Action != policy.ActionRefuse {
		return false
	}
	if st.Kind == "iq" {
		c.upSend(tokens(iqError(st, "cancel", "not-acceptable")))
	}
	return true
}
