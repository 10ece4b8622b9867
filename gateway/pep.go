package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
)

// publishBundle publishes our bundle to our PEP node, one item per device.
// The node is readable by anyone only when access control admits anyone;
// otherwise by presence subscribers (XEP-0060 access models).
func (g *Gateway) publishBundle(ctx context.Context) error {
	bx, err := e2e.MarshalBundleXML(g.eng.Bundle())
	if err != nil {
		return err
	}
	dev := strconv.FormatUint(uint64(g.eng.Device()), 10)
	pub := []byte(`<pubsub xmlns="` + nsPubSub + `"><publish node="` + nsBundlesNode + `"><item id="` + dev + `">`)
	pub = append(pub, bx...)
	pub = append(pub, `</item></publish>`...)
	pub = append(pub, g.publishOptions("max")...)
	pub = append(pub, `</pubsub>`...)
	_, err = g.sendIQ(ctx, build("iq", map[string]string{"type": "set", "id": randomID()}, pub))
	return err
}

// fetchPEPBundle reads one device's bundle from a contact's PEP node.
func (g *Gateway) fetchPEPBundle(ctx context.Context, bare jid.JID, device string) (*e2e.Bundle, error) {
	req := []byte(`<pubsub xmlns="` + nsPubSub + `"><items node="` + nsBundlesNode + `"><item id="` + device + `"/></items></pubsub>`)
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": bare.String()}, req))
	if err != nil {
		return nil, err
	}
	items, err := pepItems(resp)
	if err != nil {
		return nil, err
	}
	for id, raw := range items {
		if id == device {
			return e2e.ParseBundleXML(raw)
		}
	}
	return nil, errors.New("gateway: no bundle for that device in PEP")
}

// pepItems returns the item payloads of a pubsub items result by item id.
func pepItems(resp *Stanza) (map[string][]byte, error) {
	ps := resp.Child(nsPubSub, "pubsub")
	if ps == nil {
		return nil, errors.New("gateway: no pubsub payload")
	}
	var v struct {
		Items struct {
			Item []struct {
				ID    string `xml:"id,attr"`
				Inner []byte `xml:",innerxml"`
			} `xml:"item"`
		} `xml:"items"`
	}
	if err := xml.Unmarshal(ps.Raw, &v); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, it := range v.Items.Item {
		out[it.ID] = it.Inner
	}
	return out, nil
}

// DiscoverBundles fetches every device bundle a (possibly unknown) contact
// published to PEP and stores those that verify: the opportunistic path to
// a stranger who is not on the roster. It waits at most the fetch timeout
// (15 s). What it stores for a stranger counts against the cap on
// strangers' state.
func (g *Gateway) DiscoverBundles(ctx context.Context, bare jid.JID) (int, error) {
	n, _, err := g.discoverBundles(ctx, bare)
	return n, err
}

// discoverBundles is [Gateway.DiscoverBundles], also returning how many
// items the node held (stored or not).
func (g *Gateway) discoverBundles(ctx context.Context, bare jid.JID) (stored, items int, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.fetchTimeout)
	defer cancel()
	req := []byte(`<pubsub xmlns="` + nsPubSub + `"><items node="` + nsBundlesNode + `"/></pubsub>`)
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": bare.Bare().String()}, req))
	if err != nil {
		return 0, 0, err
	}
	all, err := pepItems(resp)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, raw := range all {
		bu, err := e2e.ParseBundleXML(raw)
		if err != nil {
			g.alert(bare.String(), "malformed bundle in PEP: "+err.Error())
			continue
		}
		if err := g.addBundle(bare.Bare().String(), bu); err == nil {
			n++
		}
	}
	if n > 0 {
		g.noteStored(bare.Bare().String())
	}
	return n, len(all), nil
}
