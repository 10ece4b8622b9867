package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/access"
)

// The account's device list (docs/protocol.md §5.6, §4.4): one PEP item
// "current" on node nsDevicesNode, holding the <devices/> element signed by
// the account identity key. Contacts subscribe with +notify, so a removal
// reaches them as a PEP event.

const (
	// nsDevicesNode is the PEP node of the account's signed device list.
	nsDevicesNode = e2e.NS + ":devices"
	// devicesItem is the id of the node's only item.
	devicesItem   = "current"
	nsPubSubEvent = "http://jabber.org/protocol/pubsub#event"
)

// EventDevices reports a change of an account's device list: a device was
// added or revoked, or this device is not (or no longer) certified.
const EventDevices EventKind = "devices"

// ErrDeviceNotCertified is returned when this device is not on its
// account's device list: peers will not use it until it is added.
var ErrDeviceNotCertified = errors.New("gateway: this device is not on your account's device list: run `securejingle devices add` on it (the account key must be in its agent)")

// syncOwnDevices runs after login: it reads the account's device list from
// PEP and brings this device's view and the server's in line. The first
// device of an account (no list anywhere) certifies itself; a device that
// is not on an existing list certifies itself only when
// Config.AddThisDevice is set, and otherwise reports that it must be added.
func (g *Gateway) syncOwnDevices(ctx context.Context) error {
	own := g.bare()
	g.mu.Lock()
	g.listsSynced = map[string]bool{}
	g.mu.Unlock()
	pep, err := g.fetchDeviceList(ctx, g.cfg.JID.Bare())
	if err != nil {
		g.log.Info("no device list in PEP", "err", err)
		pep = nil
	}
	refused := false
	if pep != nil {
		if _, err := g.eng.AddDeviceList(own, pep); err != nil {
			// Another key's list, a forgery or an equivocation: ours
			// (if any) is published over it below.
			g.alert(own, fmt.Sprintf("the device list of your account in PEP was refused (someone with your password, or the server, may have replaced it): %v", err))
			pep, refused = nil, true
		}
	}
	local, err := g.eng.DeviceList(own)
	if err != nil {
		return err
	}
	if !g.eng.Certified() {
		switch {
		case pep == nil && local == nil && !refused:
			// First device of the account (PEP has no list at all): it
			// founds the list. With a refused list there, this device
			// cannot tell whether it is the first: it waits to be added.
		case g.cfg.AddThisDevice:
		default:
			g.events.publish(Event{Kind: EventDevices, From: own, Detail: ErrDeviceNotCertified.Error()})
			g.alert(own, ErrDeviceNotCertified.Error())
			return nil
		}
		l, err := g.eng.CertifyThisDevice(pep)
		if err != nil {
			return err
		}
		local = l
		g.events.publish(Event{Kind: EventDevices, From: own,
			Detail: fmt.Sprintf("this device (%d) is now on your account's device list (version %d)", g.eng.Device(), l.Version)})
	}
	if local != nil && (pep == nil || local.Version > pep.Version) {
		if err := g.publishDeviceList(ctx, local); err != nil {
			g.log.Info("device list not published to PEP", "err", err)
		}
	}
	return nil
}

// AddThisDevice puts this device on the account's device list (signing
// through the account key's agent), publishes the list and announces the
// re-signed bundle.
func (g *Gateway) AddThisDevice(ctx context.Context) (*e2e.DeviceList, error) {
	pep, _ := g.fetchDeviceList(ctx, g.cfg.JID.Bare())
	l, err := g.eng.CertifyThisDevice(pep)
	if err != nil {
		return nil, err
	}
	return l, g.announceDevices(ctx, l)
}

// RemoveDevice revokes device id of the own account: a new list without it
// is signed, published and announced. Contacts that get it stop using the
// device.
func (g *Gateway) RemoveDevice(ctx context.Context, id uint32) (*e2e.DeviceList, error) {
	pep, _ := g.fetchDeviceList(ctx, g.cfg.JID.Bare())
	l, err := g.eng.RemoveDevice(id, pep)
	if err != nil {
		return nil, err
	}
	if err := g.announceDevices(ctx, l); err != nil {
		return l, err
	}
	g.retractBundle(ctx, id)
	return l, nil
}

// announceDevices publishes a new own list and the bundle that embeds it,
// and sends presence with the new bundle hash.
func (g *Gateway) announceDevices(ctx context.Context, l *e2e.DeviceList) error {
	if err := g.publishDeviceList(ctx, l); err != nil {
		return fmt.Errorf("gateway: publishing the device list: %w", err)
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

// pepAccessModel is the access model of our PEP nodes: anyone may read
// them only when access control admits anyone.
func (g *Gateway) pepAccessModel() string {
	if g.cfg.Access != nil && g.cfg.Access.Mode() == access.Anyone {
		return "open"
	}
	return "presence"
}

// publishOptions is the publish-options form of our PEP items.
func (g *Gateway) publishOptions(maxItems string) []byte {
	return []byte(`<publish-options><x xmlns="` + nsDataForms + `" type="submit">` +
		`<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var="pubsub#access_model"><value>` + g.pepAccessModel() + `</value></field>` +
		`<field var="pubsub#max_items"><value>` + maxItems + `</value></field>` +
		`</x></publish-options>`)
}

// publishDeviceList publishes l as the one item of the devices node.
func (g *Gateway) publishDeviceList(ctx context.Context, l *e2e.DeviceList) error {
	x, err := e2e.MarshalDeviceListXML(l)
	if err != nil {
		return err
	}
	pub := []byte(`<pubsub xmlns="` + nsPubSub + `"><publish node="` + nsDevicesNode + `"><item id="` + devicesItem + `">`)
	pub = append(pub, x...)
	pub = append(pub, `</item></publish>`...)
	pub = append(pub, g.publishOptions("1")...)
	pub = append(pub, `</pubsub>`...)
	_, err = g.sendIQ(ctx, build("iq", map[string]string{"type": "set", "id": randomID()}, pub))
	return err
}

// retractBundle removes a revoked device's bundle item from our PEP node
// (best effort: the signed list is what revokes it).
func (g *Gateway) retractBundle(ctx context.Context, id uint32) {
	req := []byte(`<pubsub xmlns="` + nsPubSub + `"><retract node="` + nsBundlesNode + `"><item id="` +
		strconv.FormatUint(uint64(id), 10) + `"/></retract></pubsub>`)
	if _, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "set", "id": randomID()}, req)); err != nil {
		g.log.Info("bundle of removed device not retracted", "device", id, "err", err)
	}
}

// fetchDeviceList reads bare's device list from PEP. It returns nil, nil
// when the node or item does not exist.
func (g *Gateway) fetchDeviceList(ctx context.Context, bare jid.JID) (*e2e.DeviceList, error) {
	req := []byte(`<pubsub xmlns="` + nsPubSub + `"><items node="` + nsDevicesNode + `"><item id="` + devicesItem + `"/></items></pubsub>`)
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": bare.Bare().String()}, req))
	if err != nil {
		var ie *IQError
		if errors.As(err, &ie) && ie.Condition() == "item-not-found" {
			return nil, nil
		}
		return nil, err
	}
	items, err := pepItems(resp)
	if err != nil {
		return nil, err
	}
	raw, ok := items[devicesItem]
	if !ok {
		return nil, nil
	}
	return e2e.ParseDeviceListXML(raw)
}

// maxListSyncs bounds the accounts whose lists are fetched per login.
const maxListSyncs = 4096

// syncListOnce fetches, in the background and once per login, the device
// list of an account whose state we hold, so a revocation made while we
// were offline is learned without waiting for a notification.
func (g *Gateway) syncListOnce(bare string) {
	if bare == g.bare() || !g.wantsDeviceList(bare) {
		return
	}
	g.mu.Lock()
	if g.listsSynced == nil || g.listsSynced[bare] || len(g.listsSynced) >= maxListSyncs {
		g.mu.Unlock()
		return
	}
	g.listsSynced[bare] = true
	g.mu.Unlock()
	j, err := jid.Parse(bare)
	if err != nil {
		return
	}
	g.fetchAsync("devices/"+bare, g.isStranger(bare), func(ctx context.Context) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, g.fetchTimeout)
		defer cancel()
		return g.fetchDeviceList(ctx, j)
	}, func(v any, err error) {
		if l, _ := v.(*e2e.DeviceList); err == nil && l != nil {
			g.addDeviceList(bare, l)
		}
	})
}

// SyncDeviceList fetches a contact's device list from PEP and merges it,
// reporting revoked devices. It is how a device list change is learned
// when no PEP event arrived.
func (g *Gateway) SyncDeviceList(ctx context.Context, bare jid.JID) error {
	l, err := g.fetchDeviceList(ctx, bare)
	if err != nil || l == nil {
		return err
	}
	return g.addDeviceList(bare.Bare().String(), l)
}

// addDeviceList merges a device list of owner and reports what changed.
func (g *Gateway) addDeviceList(owner string, l *e2e.DeviceList) error {
	wasCertified := owner == g.bare() && g.eng.Certified()
	before := g.eng.Bundle().Hash()
	revoked, err := g.eng.AddDeviceList(owner, l)
	if err != nil {
		g.alert(owner, fmt.Sprintf("device list of %s refused: %v", owner, err))
		if owner == g.bare() {
			g.republishOwnList()
		}
		return err
	}
	for _, d := range revoked {
		g.events.publish(Event{Kind: EventDevices, From: owner,
			Detail: fmt.Sprintf("%s removed device %d from the account (list version %d): it is no longer used", owner, d.ID, l.Version)})
	}
	if owner == g.bare() && g.eng.Bundle().Hash() != before {
		// Our bundle now embeds the new list: announce it, off the worker.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := g.publishBundle(ctx); err != nil {
				g.log.Info("bundle not published to PEP", "err", err)
			}
			if payload, err := g.presencePayload(); err == nil {
				g.send(ctx, build("presence", nil, payload...))
			}
		}()
	}
	if wasCertified && !g.eng.Certified() {
		g.events.publish(Event{Kind: EventDevices, From: owner,
			Detail: "gateway: this device was removed from your account's device list by another of your devices: contacts no longer accept it; run `securejingle devices add` on it to bring it back"})
		g.alert(owner, "gateway: this device was removed from your account's device list: contacts no longer accept it; run `securejingle devices add` on it to bring it back")
	}
	return nil
}

// republishInterval bounds how often a refused list in our own PEP node
// is answered by publishing ours again.
const republishInterval = time.Minute

// republishOwnList puts our own newest list back into PEP, off the
// worker, after a list there was refused (someone with the password, or
// the server, replaced it): new contacts must find the real one.
func (g *Gateway) republishOwnList() {
	l, err := g.eng.DeviceList(g.bare())
	if err != nil || l == nil || !g.eng.Certified() {
		return
	}
	g.mu.Lock()
	if now := g.now(); now.Sub(g.lastRepublish) < republishInterval {
		g.mu.Unlock()
		return
	} else {
		g.lastRepublish = now
	}
	g.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(g.runCtx, 30*time.Second)
		defer cancel()
		if err := g.publishDeviceList(ctx, l); err != nil {
			g.log.Info("own device list not republished", "err", err)
		}
	}()
}

// wantsDeviceList reports whether a device list of owner arriving
// unasked may be merged: our own, a roster contact's, or that of an
// account whose list we already hold.
func (g *Gateway) wantsDeviceList(owner string) bool {
	if owner == g.bare() || g.onRoster(owner) {
		return true
	}
	l, err := g.eng.DeviceList(owner)
	return err == nil && l != nil
}

// handlePEPEvent processes a PEP notification (XEP-0163). Only device
// lists are acted on; the list's signature, not the sender, is what counts,
// and an older list is ignored.
func (g *Gateway) handlePEPEvent(st *Stanza, c *Child) {
	var ev struct {
		Items struct {
			Node string `xml:"node,attr"`
			Item []struct {
				ID    string `xml:"id,attr"`
				Inner []byte `xml:",innerxml"`
			} `xml:"item"`
		} `xml:"items"`
	}
	if err := xml.Unmarshal(c.Raw, &ev); err != nil || ev.Items.Node != nsDevicesNode {
		return
	}
	owner := st.From.Bare().String()
	if st.From.Equal(jid.JID{}) {
		owner = g.bare()
	}
	if !g.wantsDeviceList(owner) {
		// A stranger's notification would make us pin a key and store a
		// list for any JID a hostile server names: bounded state only for
		// accounts we already know.
		g.log.Info("device list notification from an unknown account ignored", "from", owner)
		return
	}
	for _, it := range ev.Items.Item {
		if it.ID != devicesItem {
			continue
		}
		l, err := e2e.ParseDeviceListXML(it.Inner)
		if err != nil {
			g.alert(owner, fmt.Sprintf("malformed device list from %s: %v", owner, err))
			continue
		}
		g.addDeviceList(owner, l)
	}
}
