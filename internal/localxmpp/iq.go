package localxmpp

import (
	"slices"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// serverFeatures are advertised in the server's disco#info.
var serverFeatures = []string{
	nsDiscoInfo, nsDiscoItem, nsRoster, nsCarbons, nsPing, nsOffline,
	nsPubSub + "#publish", nsPubSub + "#retrieve-items",
}

// accountFeatures are advertised in an account's (PEP service's) disco#info.
var accountFeatures = []string{
	nsDiscoInfo, nsDiscoItem,
	nsPubSub + "#publish", nsPubSub + "#retrieve-items", nsPubSub + "#retract-items",
	nsPubSub + "#auto-create", nsPubSub + "#last-published",
}

// handleIQLocked answers an IQ get/set addressed to the server (to is the
// domain) or to an account's bare JID on its behalf.
func (s *Server) handleIQLocked(b *batch, st Stanza, e *element, to jid.JID) {
	kids := e.elements()
	if len(kids) != 1 {
		s.replyError(b, st, e, stanza.Modify, stanza.BadRequest)
		return
	}
	q := kids[0]
	toServer := to.Localpart() == ""
	own := !toServer && to.Bare().Equal(st.From.Bare())
	switch {
	case q.name.Space == nsRoster && q.name.Local == "query":
		s.rosterIQLocked(b, st, e, q, own || (toServer && st.To.Equal(jid.JID{})))
	case q.name.Space == nsDiscoInfo && q.name.Local == "query" && st.Type == "get":
		s.discoInfoLocked(b, st, e, q, to)
	case q.name.Space == nsDiscoItem && q.name.Local == "query" && st.Type == "get":
		s.discoItemsLocked(b, st, e, q, to)
	case q.name.Space == nsPing && q.name.Local == "ping" && st.Type == "get":
		b.generated = append(b.generated, result(st, nil))
	case q.name.Space == nsCarbons && (q.name.Local == "enable" || q.name.Local == "disable") && st.Type == "set":
		sess := s.sessionOf(st.From)
		if sess == nil || !(own || toServer) {
			s.replyError(b, st, e, stanza.Cancel, stanza.NotAllowed)
			return
		}
		sess.carbons = q.name.Local == "enable"
		b.generated = append(b.generated, result(st, nil))
	case q.name.Space == nsPubSub && q.name.Local == "pubsub" && !toServer:
		s.pepLocked(b, st, e, q, s.localUser(to))
	default:
		s.replyError(b, st, e, stanza.Cancel, stanza.ServiceUnavailable)
	}
}

func (s *Server) rosterIQLocked(b *batch, st Stanza, e, q *element, allowed bool) {
	u := s.localUser(st.From)
	if !allowed || u == nil {
		s.replyError(b, st, e, stanza.Auth, stanza.Forbidden)
		return
	}
	if st.Type != "get" {
		// Rosters are managed through the Server API only.
		s.replyError(b, st, e, stanza.Cancel, stanza.NotAllowed)
		return
	}
	if sess := s.sessionOf(st.From); sess != nil {
		sess.rosterRequested = true
	}
	out := el(nsRoster, "query")
	for _, key := range u.order {
		it := u.roster[key]
		out.add(el(nsRoster, "item", "jid", key, "subscription", it.subscription))
	}
	b.generated = append(b.generated, result(st, out))
}

func (s *Server) discoInfoLocked(b *batch, st Stanza, e, q *element, to jid.JID) {
	if n, _ := q.attr("node"); n != "" {
		s.replyError(b, st, e, stanza.Cancel, stanza.ItemNotFound)
		return
	}
	out := el(nsDiscoInfo, "query")
	features := serverFeatures
	if to.Localpart() == "" {
		out.add(el(nsDiscoInfo, "identity", "category", "server", "type", "im", "name", "securejingle localxmpp"))
	} else {
		out.add(el(nsDiscoInfo, "identity", "category", "account", "type", "registered"))
		out.add(el(nsDiscoInfo, "identity", "category", "pubsub", "type", "pep"))
		features = accountFeatures
	}
	for _, f := range features {
		out.add(el(nsDiscoInfo, "feature", "var", f))
	}
	b.generated = append(b.generated, result(st, out))
}

func (s *Server) discoItemsLocked(b *batch, st Stanza, e, q *element, to jid.JID) {
	if n, _ := q.attr("node"); n != "" {
		s.replyError(b, st, e, stanza.Cancel, stanza.ItemNotFound)
		return
	}
	out := el(nsDiscoItem, "query")
	if u := s.localUser(to); u != nil && s.pepAllowedLocked(u, st.From) {
		for _, name := range sortedKeys(u.pep) {
			out.add(el(nsDiscoItem, "item", "jid", u.bare.String(), "node", name))
		}
	}
	b.generated = append(b.generated, result(st, out))
}

// pepNode holds the last items published to one PEP node, oldest first.
type pepNode struct {
	items []pepItem
	open  bool // access model "open" (set by publish-options), else "presence"
}

type pepItem struct {
	id      string
	payload *element // nil for an item without payload
}

// pepAllowedLocked implements the "presence" access model (the PEP
// default, XEP-0163 §5): the owner and contacts subscribed to the owner's
// presence may read.
func (s *Server) pepAllowedLocked(owner *user, requester jid.JID) bool {
	if requester.Bare().Equal(owner.bare) {
		return true
	}
	it := owner.roster[requester.Bare().String()]
	return it != nil && subscribedFrom(it.subscription)
}

func pubsubErr(cond string) *element { return el(nsPubSubErr, cond) }

// accessModel reads the pubsub#access_model of a <publish-options/> data
// form (XEP-0060 §7.1.5), if any: open, or presence (the default). Any
// other model is not supported (ok is false).
func accessModel(rest []*element) (open, ok bool) {
	for _, po := range rest {
		if po.name.Space != nsPubSub || po.name.Local != "publish-options" {
			continue
		}
		x := po.child(nsDataForms, "x")
		if x == nil {
			continue
		}
		for _, f := range x.elements() {
			if v, _ := f.attr("var"); v != "pubsub#access_model" {
				continue
			}
			val := f.child(nsDataForms, "value")
			if val == nil {
				return false, false
			}
			switch val.text() {
			case "open":
				return true, true
			case "presence":
				return false, true
			default:
				return false, false
			}
		}
	}
	return false, true
}

// pepLocked handles <pubsub/> requests to owner's PEP service (XEP-0163,
// XEP-0060 §6.5, §7.1, §7.2).
func (s *Server) pepLocked(b *batch, st Stanza, e, ps *element, owner *user) {
	kids := ps.elements()
	if len(kids) == 0 {
		s.replyError(b, st, e, stanza.Modify, stanza.BadRequest)
		return
	}
	op := kids[0]
	node, _ := op.attr("node")
	if op.name.Space != nsPubSub {
		s.replyError(b, st, e, stanza.Modify, stanza.BadRequest)
		return
	}
	switch {
	case op.name.Local == "publish" && st.Type == "set":
		if !owner.bare.Equal(st.From.Bare()) {
			s.replyError(b, st, e, stanza.Auth, stanza.Forbidden)
			return
		}
		if node == "" {
			s.replyError(b, st, e, stanza.Modify, stanza.BadRequest, pubsubErr("nodeid-required"))
			return
		}
		items := op.elements()
		if len(items) != 1 || items[0].name.Local != "item" || items[0].name.Space != nsPubSub {
			s.replyError(b, st, e, stanza.Modify, stanza.BadRequest, pubsubErr("invalid-payload"))
			return
		}
		payloads := items[0].elements()
		if len(payloads) > 1 {
			s.replyError(b, st, e, stanza.Modify, stanza.BadRequest, pubsubErr("invalid-payload"))
			return
		}
		id, _ := items[0].attr("id")
		if id == "" {
			id = randomID()
		}
		var payload *element
		if len(payloads) == 1 {
			payload = payloads[0].clone()
		}
		open, ok := accessModel(kids[1:])
		if !ok {
			s.replyError(b, st, e, stanza.Cancel, stanza.Conflict, pubsubErr("precondition-not-met"))
			return
		}
		n := owner.pep[node]
		if n == nil {
			n = &pepNode{}
			owner.pep[node] = n
		}
		n.open = open
		kept := n.items[:0]
		for _, it := range n.items {
			if it.id != id {
				kept = append(kept, it)
			}
		}
		n.items = append(kept, pepItem{id: id, payload: payload})
		if len(n.items) > pepMaxItems {
			n.items = append([]pepItem(nil), n.items[len(n.items)-pepMaxItems:]...)
		}
		res := el(nsPubSub, "pubsub").add(el(nsPubSub, "publish", "node", node).add(el(nsPubSub, "item", "id", id)))
		b.generated = append(b.generated, result(st, res))
		s.pepNotifyLocked(b, owner, node, pepItem{id: id, payload: payload})
	case op.name.Local == "items" && st.Type == "get":
		if n := owner.pep[node]; !(n != nil && n.open) && !s.pepAllowedLocked(owner, st.From) {
			s.replyError(b, st, e, stanza.Auth, stanza.NotAuthorized, pubsubErr("presence-subscription-required"))
			return
		}
		n := owner.pep[node]
		if n == nil {
			s.replyError(b, st, e, stanza.Cancel, stanza.ItemNotFound)
			return
		}
		want := map[string]bool{}
		for _, it := range op.elements() {
			if it.name.Local == "item" {
				if id, _ := it.attr("id"); id != "" {
					want[id] = true
				}
			}
		}
		// mellium's pubsub.Fetch puts the wanted id in an 'item' attribute.
		if id, _ := op.attr("item"); id != "" {
			want[id] = true
		}
		sel := n.items
		if mx, _ := op.attr("max_items"); mx != "" && len(want) == 0 {
			if k, err := strconv.Atoi(mx); err == nil && k >= 0 && k < len(sel) {
				sel = sel[len(sel)-k:]
			}
		}
		out := el(nsPubSub, "items", "node", node)
		for _, it := range sel {
			if len(want) > 0 && !want[it.id] {
				continue
			}
			ie := el(nsPubSub, "item", "id", it.id)
			if it.payload != nil {
				ie.add(it.payload.clone())
			}
			out.add(ie)
		}
		b.generated = append(b.generated, result(st, el(nsPubSub, "pubsub").add(out)))
	case op.name.Local == "retract" && st.Type == "set":
		if !owner.bare.Equal(st.From.Bare()) {
			s.replyError(b, st, e, stanza.Auth, stanza.Forbidden)
			return
		}
		n := owner.pep[node]
		if n == nil {
			s.replyError(b, st, e, stanza.Cancel, stanza.ItemNotFound)
			return
		}
		for _, it := range op.elements() {
			id, _ := it.attr("id")
			kept := n.items[:0]
			for _, x := range n.items {
				if x.id != id {
					kept = append(kept, x)
				}
			}
			n.items = kept
		}
		b.generated = append(b.generated, result(st, nil))
	default:
		s.replyError(b, st, e, stanza.Cancel, stanza.FeatureNotImplemented, pubsubErr("unsupported"))
	}
}

// pepNotifyLocked sends a headline event with the new item to the owner's
// and to subscribed contacts' available resources. (A full server filters
// by the +notify feature in each resource's entity capabilities; this one
// sends to all of them.)
func (s *Server) pepNotifyLocked(b *batch, owner *user, node string, it pepItem) {
	var rcpts []*session
	rcpts = append(rcpts, availableSessions(owner, false)...)
	for _, key := range owner.order {
		ri := owner.roster[key]
		if !subscribedFrom(ri.subscription) {
			continue
		}
		if cu := s.localUser(ri.jid); cu != nil {
			rcpts = append(rcpts, availableSessions(cu, false)...)
		}
	}
	for _, ss := range rcpts {
		ie := el(nsPubSubEvt, "item", "id", it.id)
		if it.payload != nil {
			ie.add(it.payload.clone())
		}
		m := el(nsClient, "message", "type", "headline", "id", randomID(), "from", owner.bare.String(), "to", ss.jid.String()).
			add(el(nsPubSubEvt, "event").add(el(nsPubSubEvt, "items", "node", node).add(ie)))
		b.generated = append(b.generated, mustStanza(m))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
