package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"

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
	// front: the resource is a local client of a gateway-mode daemon
	// (its presence carries <client xmlns='…:front'/>, §22.5): it
	// advertises the daemon's device, whose own resource is another.
	front bool
}

// contact is what the gateway knows of one bare JID's presence.
type contact struct {
	resources map[string]*resource
}

// capsVer computes the XEP-0115 verification string of our disco#info.
func (g *Gateway) capsVer() string {
	v, err := g.ownInfo().ver(capsSHA1)
	if err != nil {
		panic(err) // capsSHA1 is always supported
	}
	return v
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
	if err := g.syncOwnDevices(ctx); err != nil {
		return fmt.Errorf("device list: %w", err)
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
	return subscribed(g.roster[bare])
}

// subscribed reports whether a roster subscription state is one of a
// roster contact.
func subscribed(sub string) bool { return sub == "both" || sub == "to" || sub == "from" }

// handlePresence tracks resources, verifies presence elements and fetches
// bundles that changed (off the worker, for those access control admits).
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
		g.dropResource(bare, res)
		return
	default:
		return
	}
	r := &resource{front: st.Child(nsFront, "client") != nil}
	failed, claimed := false, uint32(0)
	if c := st.Child(e2e.NS, "e2e"); c != nil {
		pres, err := e2e.ParsePresenceElement(c.Raw)
		if err == nil {
			claimed = pres.Device
			err = pres.Verify(bare)
		}
		if err != nil {
			failed = true
			g.alert(bare, fmt.Sprintf("invalid securejingle presence element from %s: %v", from, err))
		} else {
			r.device, r.pres = pres.Device, pres
		}
	}
	g.mu.Lock()
	var prev *resource
	if c := g.contacts[bare]; c != nil {
		prev = c.resources[res]
	}
	g.mu.Unlock()
	if !g.trackResource(bare, res, r) {
		g.log.Info("presence not tracked: too many strangers or resources", "from", from.String())
		return
	}
	if prev != nil && prev.device != 0 && st.Child(e2e.NS, "e2e") == nil {
		g.supportLost(from, prev.device)
	}
	if failed && (bare != g.bare() || claimed != g.eng.Device()) {
		g.recoverDevice(from, claimed)
	}
	if r.pres != nil {
		g.syncListOnce(bare)
	}
	if r.pres == nil || (bare == g.bare() && r.device == g.eng.Device()) {
		return
	}
	g.ensureBundle(from, r.pres)
}

// ensureBundle fetches and stores the bundle a presence element points at,
// unless it is already stored. The fetch runs off the worker; nothing is
// fetched for a requester access control refuses.
func (g *Gateway) ensureBundle(from jid.JID, pres *e2e.PresenceElement) {
	bare := from.Bare().String()
	d := e2e.Device{JID: bare, ID: pres.Device}
	if bu, err := g.eng.PeerBundle(d); err == nil && pres.Matches(bu) {
		return
	}
	g.requestBundle(from, pres.Device, func(bu *e2e.Bundle, err error) {
		switch {
		case err != nil:
			g.log.Warn("bundle", "from", from.String(), "err", err)
		case !pres.Matches(bu) && (bu.Device != pres.Device || subtle.ConstantTimeCompare(bu.Identity, pres.Identity) != 1):
			// (A bundle of the same device key that is not the one
			// presence names is a newer or older one of that device: it
			// re-signed it since; AddBundle refuses an older one.)
			g.alert(bare, fmt.Sprintf("bundle served by %s does not match its signed presence", from))
		case g.storeFetched(bare, bu) == nil:
			g.noteStored(bare)
		}
	})
}

// recoverDevice runs when the presence element of full failed
// verification (a server may have altered it in transit): the gateway
// asks the resource itself for its bundle (device: the one the element
// claimed, 0 if it did not parse), and if a bundle comes back that
// verifies and that the trust store accepts, the resource is marked as
// running that device again. An authenticated stanza from the resource
// does the same (see sawPeer), so support is not lost until the next
// presence.
func (g *Gateway) recoverDevice(full jid.JID, device uint32) {
	bare := full.Bare().String()
	g.requestBundle(full, device, func(bu *e2e.Bundle, err error) {
		if err != nil || (device != 0 && bu.Device != device) {
			return
		}
		if bare == g.bare() && bu.Device == g.eng.Device() {
			return
		}
		if g.storeFetched(bare, bu) != nil {
			return
		}
		g.noteStored(bare)
		g.learnDevice(full, bu.Device)
	})
}

// addBundle stores a verified bundle and reports what the trust store said.
func (g *Gateway) addBundle(bare string, bu *e2e.Bundle) error {
	err := g.eng.AddBundle(bare, bu)
	switch {
	case errors.Is(err, e2e.ErrUntrusted) && bare == g.bare():
		g.alert(bare, fmt.Sprintf("a device claiming to be yours (device %d) is not certified by your account key: it is never used; someone with your password, or the server, added it", bu.Device))
		return err
	case errors.Is(err, e2e.ErrUncertified):
		g.alert(bare, err.Error()+": it is never used")
		return err
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

// fetchBundle asks a device for its bundle by IQ, falling back to PEP,
// within the fetch timeout (whatever ctx allows). Device 0 asks the
// resource for whatever device it runs (no PEP fallback). It blocks: on
// the worker, use requestBundle.
func (g *Gateway) fetchBundle(ctx context.Context, full jid.JID, device uint32) (*e2e.Bundle, error) {
	ctx, cancel := context.WithTimeout(ctx, g.fetchTimeout)
	defer cancel()
	if full.Resourcepart() != "" {
		bu, err := g.fetchBundleIQ(ctx, full, device)
		if err == nil || device == 0 {
			return bu, err
		}
	}
	if device == 0 {
		return nil, errors.New("gateway: bundle fetch needs a device id or a resource")
	}
	return g.fetchPEPBundle(ctx, full.Bare(), strconv.FormatUint(uint64(device), 10))
}

// fetchBundleIQ asks the device at full for its bundle (device 0: any).
func (g *Gateway) fetchBundleIQ(ctx context.Context, full jid.JID, device uint32) (*e2e.Bundle, error) {
	var attrs []string
	if device != 0 {
		attrs = []string{"device", strconv.FormatUint(uint64(device), 10)}
	}
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": full.String()},
		element(e2e.NS, "bundle", "", attrs...)))
	if err != nil {
		return nil, err
	}
	c := resp.Child(e2e.NS, "bundle")
	if c == nil {
		return nil, errors.New("gateway: bundle response without a bundle")
	}
	return e2e.ParseBundleXML(c.Raw)
}

// frontResource reports whether the available resource full is a local
// client of a gateway-mode daemon (resource.front).
func (g *Gateway) frontResource(full jid.JID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.contacts[full.Bare().String()]
	if c == nil {
		return false
	}
	r := c.resources[full.Resourcepart()]
	return r != nil && r.front
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
