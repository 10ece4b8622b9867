package gateway

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
)

// Namespaces used by the gateway.
const (
	nsDiscoInfo   = "http://jabber.org/protocol/disco#info"
	nsCaps        = "http://jabber.org/protocol/caps"
	nsCarbons     = "urn:xmpp:carbons:2"
	nsForward     = "urn:xmpp:forward:0"
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsPubSubOwner = "http://jabber.org/protocol/pubsub#owner"
	nsDataForms   = "jabber:x:data"
	nsRoster      = "jabber:iq:roster"
	nsHints       = "urn:xmpp:hints"
	nsEME         = "urn:xmpp:eme:0"
	nsPing        = "urn:xmpp:ping"
	nsStanzas     = "urn:ietf:params:xml:ns:xmpp-stanzas"
	// nsBundlesNode is the PEP node holding one item per device (item id =
	// device id), each a <bundle/>.
	nsBundlesNode = e2e.NS + ":bundles"
	capsNode      = "https://securejingle.org/caps"
)

// resource is one available resource of a contact.
type resource struct {
	device uint32 // 0: the resource does not advertise securejingle
	pres   *e2e.PresenceElement
}

// contact is what the gateway knows of one bare JID's presence.
type contact struct {
	resources map[string]*resource
}

func (g *Gateway) contact(bare string) *contact {
	c := g.contacts[bare]
	if c == nil {
		c = &contact{resources: map[string]*resource{}}
		g.contacts[bare] = c
	}
	return c
}

// capsVer computes the XEP-0115 verification string of our disco#info.
func (g *Gateway) capsVer() string {
	feats := append([]string(nil), g.features...)
	sort.Strings(feats)
	s := "client/pc//securejingle<" + strings.Join(feats, "<") + "<"
	h := sha1.Sum([]byte(s)) // XEP-0115 mandates SHA-1 here; it is not a security check
	return base64.StdEncoding.EncodeToString(h[:])
}

// presencePayload is what every outgoing available presence carries.
func (g *Gateway) presencePayload() ([][]byte, error) {
	pres, err := xml.Marshal(g.eng.Presence())
	if err != nil {
		return nil, err
	}
	caps := element(nsCaps, "c", "", "hash", "sha-1", "node", capsNode, "ver", g.capsVer())
	return [][]byte{pres, caps}, nil
}

// announce runs after login: roster, carbons, PEP bundle, presence.
func (g *Gateway) announce(ctx context.Context) error {
	if err := g.fetchRoster(ctx); err != nil {
		return err
	}
	if _, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "set", "id": randomID()}, element(nsCarbons, "enable", ""))); err != nil {
		g.log.Info("carbons not available", "err", err)
	}
	if err := g.publishBundle(ctx); err != nil {
		g.log.Info("bundle not published to PEP", "err", err)
	}
	payload, err := g.presencePayload()
	if err != nil {
		return err
	}
	return g.send(ctx, build("presence", nil, payload...))
}

// fetchRoster loads the roster.
func (g *Gateway) fetchRoster(ctx context.Context) error {
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID()}, element(nsRoster, "query", "")))
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	q := resp.Child(nsRoster, "query")
	if q == nil {
		return nil
	}
	var r struct {
		Items []struct {
			JID          string `xml:"jid,attr"`
			Subscription string `xml:"subscription,attr"`
		} `xml:"item"`
	}
	if err := xml.Unmarshal(q.Raw, &r); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, it := range r.Items {
		g.roster[it.JID] = it.Subscription
	}
	return nil
}

// onRoster reports whether bare is a roster contact with a subscription.
func (g *Gateway) onRoster(bare string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	sub := g.roster[bare]
	return sub == "both" || sub == "to" || sub == "from"
}

// handlePresence tracks resources, verifies presence elements and fetches
// bundles that changed.
func (g *Gateway) handlePresence(ctx context.Context, st *Stanza) {
	from := st.From
	if from.Equal(jid.JID{}) || from.Resourcepart() == "" {
		return
	}
	if p := st.Child(e2e.NS, "p"); p != nil {
		// A protected directed presence carries a payload, not the
		// sender's availability: it does not change resource tracking.
		g.openProtected(ctx, st, p)
		return
	}
	bare := from.Bare().String()
	res := from.Resourcepart()
	if from.Equal(g.JID()) {
		return
	}
	switch st.Type {
	case "":
	case "unavailable":
		g.mu.Lock()
		delete(g.contact(bare).resources, res)
		g.mu.Unlock()
		return
	default:
		return
	}
	r := &resource{}
	if c := st.Child(e2e.NS, "e2e"); c != nil {
		pres, err := e2e.ParsePresenceElement(c.Raw)
		if err == nil {
			err = pres.Verify(bare)
		}
		if err != nil {
			g.alert(bare, fmt.Sprintf("invalid securejingle presence element from %s: %v", from, err))
		} else {
			r.device, r.pres = pres.Device, pres
		}
	}
	g.mu.Lock()
	g.contact(bare).resources[res] = r
	g.mu.Unlock()
	if r.pres == nil || (bare == g.bare() && r.device == g.eng.Device()) {
		return
	}
	if err := g.ensureBundle(ctx, from, r.pres); err != nil {
		g.log.Warn("bundle", "from", from.String(), "err", err)
	}
}

// ensureBundle fetches and stores the bundle a presence element points at,
// unless it is already stored.
func (g *Gateway) ensureBundle(ctx context.Context, from jid.JID, pres *e2e.PresenceElement) error {
	bare := from.Bare().String()
	d := e2e.Device{JID: bare, ID: pres.Device}
	if bu, err := g.eng.PeerBundle(d); err == nil && pres.Matches(bu) {
		return nil
	}
	bu, err := g.fetchBundle(ctx, from, pres.Device)
	if err != nil {
		return err
	}
	if !pres.Matches(bu) {
		g.alert(bare, fmt.Sprintf("bundle served by %s does not match its signed presence", from))
		return errors.New("gateway: bundle does not match presence")
	}
	return g.addBundle(bare, bu)
}

// addBundle stores a verified bundle and reports what the trust store said.
func (g *Gateway) addBundle(bare string, bu *e2e.Bundle) error {
	err := g.eng.AddBundle(bare, bu)
	switch {
	case errors.Is(err, e2e.ErrUntrusted):
		g.untrustedBundle(bare, bu)
		return err
	case err != nil:
		g.alert(bare, fmt.Sprintf("rejected bundle of %s device %d: %v", bare, bu.Device, err))
		return err
	}
	g.events.publish(Event{Kind: EventPeer, From: bare, Detail: "device " + strconv.FormatUint(uint64(bu.Device), 10)})
	return nil
}

// fetchBundle asks a device for its bundle by IQ, falling back to PEP.
func (g *Gateway) fetchBundle(ctx context.Context, full jid.JID, device uint32) (*e2e.Bundle, error) {
	if full.Resourcepart() != "" {
		if bu, err := g.fetchBundleIQ(ctx, full, device); err == nil {
			return bu, nil
		}
	}
	return g.fetchPEPBundle(ctx, full.Bare(), strconv.FormatUint(uint64(device), 10))
}

// fetchBundleIQ asks the device at full for its bundle.
func (g *Gateway) fetchBundleIQ(ctx context.Context, full jid.JID, device uint32) (*e2e.Bundle, error) {
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": full.String()},
		element(e2e.NS, "bundle", "", "device", strconv.FormatUint(uint64(device), 10))))
	if err != nil {
		return nil, err
	}
	c := resp.Child(e2e.NS, "bundle")
	if c == nil {
		return nil, errors.New("gateway: bundle response without a bundle")
	}
	return e2e.ParseBundleXML(c.Raw)
}

// Contacts returns the resources of bare that are available, with the
// device id each advertises (0: no securejingle support).
func (g *Gateway) Contacts(bare string) map[string]uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]uint32{}
	if c := g.contacts[bare]; c != nil {
		for r, v := range c.resources {
			out[r] = v.device
		}
	}
	return out
}
