package gateway

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/policy"
)

// An InnerIQ is a request that arrived inside a protected IQ, dispatched as
// if it had arrived in place, with the authenticated peer attached.
type InnerIQ struct {
	From    jid.JID
	Type    string // get or set
	Payload []byte // the request's payload element
	Peer    *e2e.Peer
}

// An InnerIQHandler answers a protected IQ request with the payload of the
// result (which may be empty), or an error, which is sent back as a
// protected error. It runs on the connection's read loop: it must not wait
// for other stanzas.
type InnerIQHandler func(req InnerIQ) ([]byte, error)

// HandleIQ registers h for protected IQ payloads named name.
func (g *Gateway) HandleIQ(name xml.Name, h InnerIQHandler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.iqs[name] = h
}

// StanzaError is an error an [InnerIQHandler] returns to send a specific
// stanza error condition.
type StanzaError struct {
	Type      string // cancel, modify, auth, wait
	Condition string // e.g. "feature-not-implemented"
	// App is an optional application-specific condition element (such as
	// a Jingle error, XEP-0166 §10), sent after the condition.
	App []byte
}

func (e *StanzaError) Error() string { return "gateway: stanza error " + e.Condition }

func (e *StanzaError) element() []byte {
	return []byte(`<error xmlns="` + nsClient + `" type="` + e.Type + `"><` + e.Condition + ` xmlns="` + nsStanzas + `"/>` + string(e.App) + `</error>`)
}

func iqError(st *Stanza, typ, cond string) []byte {
	return build("iq", map[string]string{"type": "error", "id": st.ID, "to": st.From.String()}, (&StanzaError{Type: typ, Condition: cond}).element())
}

func iqResult(st *Stanza, payload ...[]byte) []byte {
	return build("iq", map[string]string{"type": "result", "id": st.ID, "to": st.From.String()}, payload...)
}

// handleIQ answers an IQ request synchronously. Nil means "not handled"
// (mellium answers service-unavailable).
func (g *Gateway) handleIQ(st *Stanza) []byte {
	if len(st.Children) != 1 {
		return iqError(st, "modify", "bad-request")
	}
	c := st.Children[0]
	switch c.Name {
	case xml.Name{Space: nsDiscoInfo, Local: "query"}:
		return g.discoInfo(st)
	case xml.Name{Space: e2e.NS, Local: "bundle"}:
		return g.serveBundle(st)
	case xml.Name{Space: e2e.NS, Local: "p"}:
		return g.protectedIQ(st, c)
	case xml.Name{Space: nsRoster, Local: "query"}:
		if st.From.Equal(jid.JID{}) || st.From.String() == g.bare() {
			g.rosterPush(c.Raw)
			return iqResult(st)
		}
		return iqError(st, "cancel", "forbidden")
	case xml.Name{Space: nsPing, Local: "ping"}:
		return iqResult(st)
	case xml.Name{Space: nsJingle, Local: "jingle"}:
		return g.unprotectedJingle(st, c)
	}
	if c.Name.Space == filexfer.IBBNamespace {
		return g.handleIBB(st, c) // file transfer bytes (file_transport_ibb.go)
	}
	return nil
}

// nsJingle is the XEP-0166 namespace.
const nsJingle = "urn:xmpp:jingle:1"

// unprotectedJingle handles Jingle signaling that arrived in clear through
// the server: its fingerprints, candidates and file metadata were readable
// and changeable by the server. Policy decides; the default refuses it from
// a peer who supports end-to-end protection, and refuses cleartext media
// (RTP/AVP, SDES keys) from anyone. (Protected Jingle arrives inside <p/>
// and is dispatched to the registered handler.)
func (g *Gateway) unprotectedJingle(st *Stanza, c Child) []byte {
	f, d := g.unprotectedJingleDecision(st, c)
	if d.Action != policy.ActionAllow {
		// The read loop must not wait for sinks that send stanzas: the
		// alert is queued, coalesced with the same rule's (bounded).
		g.queueAlert(f, d)
	}
	if d.Action == policy.ActionRefuse {
		return iqError(st, "cancel", "not-acceptable")
	}
	return iqError(st, "cancel", "feature-not-implemented")
}

// unprotectedJingleDecision is what policy decides about Jingle signaling
// c (in st) that arrived in clear.
func (g *Gateway) unprotectedJingleDecision(st *Stanza, c Child) (policy.Facts, policy.Decision) {
	kind, prot, why := unprotectedJingleFacts(c.Raw)
	f := g.peerFacts(kind, policy.DirectionIncoming, st.From.Bare().String())
	f.Protection, f.Signaling, f.StanzaType = prot, policy.SignalingUnprotected, st.Type
	d := g.policy.Decide(f)
	if d.Detail == "" {
		d.Detail = policy.BoundDetail(why + " from " + st.From.String())
	}
	return f, d
}

func (g *Gateway) discoInfo(st *Stanza) []byte {
	var req struct {
		Node string `xml:"node,attr"`
	}
	xml.Unmarshal(st.Children[0].Raw, &req)
	info := g.ownInfo()
	if req.Node != "" && req.Node != capsNode+"#"+g.capsVer() {
		return iqError(st, "cancel", "item-not-found")
	}
	info.Node = req.Node // XEP-0115 §6.2: echo the node
	return iqResult(st, info.marshal())
}

// serveBundle answers a bundle request, through access control for
// requesters who are not roster contacts.
func (g *Gateway) serveBundle(st *Stanza) []byte {
	var req struct {
		Device string `xml:"device,attr"`
	}
	if xml.Unmarshal(st.Children[0].Raw, &req) != nil {
		return iqError(st, "modify", "bad-request")
	}
	if req.Device != "" && req.Device != strconv.FormatUint(uint64(g.eng.Device()), 10) {
		return iqError(st, "cancel", "item-not-found")
	}
	bare := st.From.Bare().String()
	if bare != g.bare() {
		onRoster := g.onRoster(bare)
		if g.cfg.Access != nil {
			if d := g.cfg.Access.Allow(bare, onRoster); !d.Allowed {
				g.log.Info("bundle request refused", "from", st.From.String(), "reason", d.Reason.String())
				return iqError(st, "wait", "resource-constraint")
			}
		} else if !onRoster {
			return iqError(st, "auth", "forbidden")
		}
	}
	bx, err := e2e.MarshalBundleXML(g.eng.Bundle())
	if err != nil {
		return iqError(st, "wait", "internal-server-error")
	}
	return iqResult(st, bx)
}

func (g *Gateway) rosterPush(raw []byte) {
	var r struct {
		Items []struct {
			JID          string `xml:"jid,attr"`
			Subscription string `xml:"subscription,attr"`
		} `xml:"item"`
	}
	if xml.Unmarshal(raw, &r) != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, it := range r.Items {
		if it.Subscription == "remove" {
			delete(g.roster, it.JID)
		} else {
			g.roster[it.JID] = it.Subscription
		}
	}
}

// protectedIQ unwraps a protected IQ request, dispatches its payload to the
// registered handler and wraps the response the same way.
func (g *Gateway) protectedIQ(st *Stanza, c Child) []byte {
	bare := st.From.Bare().String()
	p, err := e2e.ParseProtectedElement(c.Raw)
	if err != nil {
		g.alert(bare, "malformed protected IQ from "+st.From.String())
		return iqError(st, "modify", "bad-request")
	}
	ctx := e2e.Context{From: bare, To: g.bare(), StanzaKind: "iq", StanzaType: st.Type, StanzaID: st.ID, PeerOnRoster: g.onRoster(bare)}
	ev, peer, err := g.eng.Unprotect(ctx, p)
	var need *e2e.NeedBundleError
	if errors.As(err, &need) {
		// The read loop cannot wait for the bundle: fetch it in the
		// background and ask the requester to retry (type wait).
		ok := g.requestBundle(st.From, need.Device, func(bu *e2e.Bundle, err error) {
			if err == nil && g.storeFetched(need.JID, bu) == nil {
				g.noteStored(need.JID)
			}
		})
		if !ok {
			return iqError(st, "wait", "resource-constraint")
		}
		return iqError(st, "wait", "not-acceptable")
	}
	if err != nil {
		g.alert(bare, fmt.Sprintf("protected IQ from %s rejected: %v", st.From, err))
		return iqError(st, "modify", "not-acceptable")
	}
	g.sawPeer(st.From, peer)
	g.noteOpened(peer)
	content, err := envelopeContent(ev.Content)
	var payload []byte
	var name xml.Name
	if err == nil {
		payload, name, err = singleElement(content)
	}
	var resp []byte
	respType := "result"
	if err != nil {
		resp, respType = (&StanzaError{Type: "modify", Condition: "bad-request"}).element(), "error"
	} else {
		g.mu.Lock()
		h := g.iqs[name]
		g.mu.Unlock()
		switch {
		case h == nil && name.Space == nsJingle:
			// Protected Jingle needs a registered handler (calls and file
			// transfer); the built-in path is for unprotected Jingle only.
			resp, respType = (&StanzaError{Type: "cancel", Condition: "feature-not-implemented"}).element(), "error"
		case h == nil && name != (xml.Name{Space: e2e.NS, Local: "p"}):
			// No handler for protected payloads: the same built-in handling
			// as if the request had arrived in place (ping, disco, bundle).
			resp, respType = g.inPlaceIQ(st, payload)
		case h == nil:
			resp, respType = (&StanzaError{Type: "modify", Condition: "bad-request"}).element(), "error"
		default:
			out, herr := h(InnerIQ{From: st.From, Type: st.Type, Payload: payload, Peer: peer})
			var se *StanzaError
			switch {
			case errors.As(herr, &se):
				resp, respType = se.element(), "error"
			case herr != nil:
				resp, respType = (&StanzaError{Type: "wait", Condition: "internal-server-error"}).element(), "error"
			default:
				resp = out
			}
		}
	}
	rctx := e2e.Context{From: g.bare(), To: bare, StanzaKind: "iq", StanzaType: respType, StanzaID: st.ID}
	wrapped, err := g.eng.Protect(rctx, []e2e.Device{peer.Device}, resp, p.AuthOnly)
	if err != nil {
		g.log.Warn("wrapping IQ response", "err", err)
		return iqError(st, "wait", "internal-server-error")
	}
	wx, err := xml.Marshal(wrapped)
	if err != nil {
		return iqError(st, "wait", "internal-server-error")
	}
	children := [][]byte{wx}
	if respType == "error" {
		// RFC 6120 requires an <error/> child; the real condition travels
		// protected inside the envelope.
		children = append(children, (&StanzaError{Type: "cancel", Condition: "undefined-condition"}).element())
	}
	return build("iq", map[string]string{"type": respType, "id": st.ID, "to": st.From.String()}, children...)
}

// inPlaceIQ answers an unwrapped request payload with the built-in IQ
// handling, and returns the response payload and type.
func (g *Gateway) inPlaceIQ(st *Stanza, payload []byte) ([]byte, string) {
	inner, err := parseStanza(build("iq", map[string]string{"type": st.Type, "id": st.ID, "from": st.From.String()}, payload))
	if err != nil {
		return (&StanzaError{Type: "modify", Condition: "bad-request"}).element(), "error"
	}
	raw := g.handleIQ(inner)
	if raw == nil {
		return (&StanzaError{Type: "cancel", Condition: "service-unavailable"}).element(), "error"
	}
	out, err := parseStanza(raw)
	if err != nil {
		return (&StanzaError{Type: "wait", Condition: "internal-server-error"}).element(), "error"
	}
	var b []byte
	for _, c := range out.Children {
		b = append(b, c.Raw...)
	}
	return b, out.Type
}

// singleElement returns the one element of content.
func singleElement(content []byte) ([]byte, xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(content))
	var name xml.Name
	var start, end int64 = -1, -1
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, name, err
		}
		if st, ok := tok.(xml.StartElement); ok {
			if start >= 0 {
				return nil, name, errors.New("gateway: more than one payload element")
			}
			start, name = off, st.Name
			if err := d.Skip(); err != nil {
				return nil, name, err
			}
			end = d.InputOffset()
		}
	}
	if start < 0 {
		return nil, name, errors.New("gateway: no payload element")
	}
	return content[start:end], name, nil
}

// ErrBadResponse is returned by [Gateway.SendProtectedIQ] for a response
// that fails its end-to-end checks: unprotected, malformed, not
// authentic, replayed, or from another device than the one asked.
var ErrBadResponse = errors.New("gateway: the protected IQ response failed its checks")

// SendProtectedIQ sends payload in a protected IQ of type typ (get or set)
// to the device behind full, and returns the unwrapped response payload.
// authOnly selects authenticate-only protection (the server can read it).
// ctx bounds the wait for the response. A response that fails its checks
// gives an error wrapping [ErrBadResponse].
func (g *Gateway) SendProtectedIQ(ctx context.Context, to jid.JID, typ string, payload []byte, authOnly bool) ([]byte, *e2e.Peer, error) {
	device, ok := g.deviceOf(to)
	if !ok {
		return nil, nil, fmt.Errorf("gateway: %s does not advertise securejingle", to)
	}
	return g.sendProtectedIQTo(ctx, to, e2e.Device{JID: to.Bare().String(), ID: device}, typ, payload, authOnly)
}

// sendProtectedIQTo is [Gateway.SendProtectedIQ] sealed to dev, whatever
// device the presence of to names: a call is bound to one device, and a
// server that forges presence must not redirect its signaling to another
// (the response must come from dev too).
func (g *Gateway) sendProtectedIQTo(ctx context.Context, to jid.JID, dev e2e.Device, typ string, payload []byte, authOnly bool) ([]byte, *e2e.Peer, error) {
	bare := to.Bare().String()
	if dev.JID != bare {
		return nil, nil, fmt.Errorf("gateway: device %d of %s is not behind %s", dev.ID, dev.JID, to)
	}
	device := dev.ID
	id := randomID()
	c := e2e.Context{From: g.bare(), To: bare, StanzaKind: "iq", StanzaType: typ, StanzaID: id}
	p, err := g.eng.Protect(c, []e2e.Device{dev}, payload, authOnly)
	if err != nil {
		return nil, nil, err
	}
	px, err := xml.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": typ, "id": id, "to": to.String()}, px))
	var iqErr *IQError
	if err != nil && !errors.As(err, &iqErr) {
		return nil, nil, err
	}
	pc := resp.Child(e2e.NS, "p")
	if pc == nil {
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: unprotected response from %s", ErrBadResponse, to)
	}
	rp, err := e2e.ParseProtectedElement(pc.Raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	rc := e2e.Context{From: bare, To: g.bare(), StanzaKind: "iq", StanzaType: resp.Type, StanzaID: id}
	ev, peer, err := g.eng.Unprotect(rc, rp)
	if err != nil {
		g.alert(bare, fmt.Sprintf("protected IQ response from %s rejected: %v", to, err))
		return nil, nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	g.noteOpened(peer)
	if peer.ID != device {
		return nil, nil, fmt.Errorf("%w: response from device %d, asked %d", ErrBadResponse, peer.ID, device)
	}
	content, err := envelopeContent(ev.Content)
	if err != nil {
		g.alert(bare, fmt.Sprintf("protected IQ response from %s: %v", to, err))
		return nil, nil, err
	}
	if resp.Type == "error" {
		return content, peer, &ProtectedError{Payload: content}
	}
	return content, peer, nil
}

// ProtectedError is a protected error response: the error element arrived
// inside the envelope.
type ProtectedError struct{ Payload []byte }

func (e *ProtectedError) Error() string {
	return "gateway: protected error response: " + string(e.Payload)
}

// deviceOf returns the securejingle device of an available full JID.
func (g *Gateway) deviceOf(full jid.JID) (uint32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.contacts[full.Bare().String()]
	if c == nil {
		return 0, false
	}
	r := c.resources[full.Resourcepart()]
	if r == nil || r.device == 0 {
		return 0, false
	}
	return r.device, true
}
