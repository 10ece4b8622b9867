package gateway

import (
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/e2e/trust"
)

// Bounds on what the gateway tracks in memory for the presence of peers
// who are not roster contacts.
const (
	// maxStrangerContacts caps the strangers whose resources are tracked.
	maxStrangerContacts = 256
	// maxResourcesPerContact caps the resources tracked per account.
	maxResourcesPerContact = 32
)

// now is the gateway's clock.
func (g *Gateway) now() time.Time {
	if g.cfg.Now != nil {
		return g.cfg.Now()
	}
	return time.Now()
}

// keepState reports whether the engine state of d is kept whatever its
// age: the own account, roster contacts, and devices the user decided on
// (verified or distrusted: forgetting those would let the same key be
// pinned again silently).
func (g *Gateway) keepState(tx store.Tx, d e2e.Device) (bool, error) {
	if !g.isStranger(d.JID) {
		return true, nil
	}
	if g.cfg.Trust == nil {
		return false, nil
	}
	rec, err := g.cfg.Trust.LookupTx(tx, d.JID)
	if err != nil {
		return false, nil // no record (or an unreadable one): nothing to keep
	}
	return rec.Level == trust.Verified || rec.Level == trust.Distrusted, nil
}

// forgetTrust drops the trust record of a pruned stranger account (its
// last device was dropped).
func (g *Gateway) forgetTrust(tx store.Tx, jid string) error {
	if g.cfg.Trust == nil {
		return nil
	}
	return g.cfg.Trust.RemoveTx(tx, jid)
}

// pruneStrangers forgets stranger state that is idle or beyond the cap.
func (g *Gateway) pruneStrangers() {
	dropped, err := g.eng.PruneStrangers(e2e.PruneConfig{Keep: g.keepState, Forget: g.forgetTrust, Now: g.now()})
	if err != nil {
		g.log.Warn("pruning stranger state", "err", err)
		return
	}
	for _, d := range dropped {
		g.log.Info("forgot idle or excess stranger device", "peer", d.JID, "device", d.ID)
	}
}

// noteStored runs after state of bare was stored: for a stranger it
// starts the idle clock and enforces the cap at once.
func (g *Gateway) noteStored(bare string) {
	if !g.isStranger(bare) {
		return
	}
	ds, err := g.eng.Devices(bare)
	if err != nil {
		return
	}
	for _, d := range ds {
		if err := g.eng.NoteActivity(d); err != nil {
			g.log.Warn("recording stranger activity", "err", err)
		}
	}
	g.pruneStrangers()
}

// sawPeer runs after a stanza from full authenticated as peer: the
// resource is known to run that device (so a presence that failed
// verification does not leave it marked unsupported), and a stranger's
// device stays remembered another idle timeout.
func (g *Gateway) sawPeer(full jid.JID, p *e2e.Peer) {
	if p == nil || full.Bare().String() != p.JID {
		return
	}
	g.learnDevice(full, p.ID)
	if !g.isStranger(p.JID) {
		return
	}
	if err := g.eng.NoteActivity(p.Device); err != nil {
		g.log.Warn("recording stranger activity", "err", err)
	}
	if p.NewSession {
		g.pruneStrangers()
	}
}

// learnDevice records that the available resource full runs device, if
// it was marked as not supporting securejingle.
func (g *Gateway) learnDevice(full jid.JID, device uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.contacts[full.Bare().String()]; c != nil {
		if r := c.resources[full.Resourcepart()]; r != nil && r.device == 0 {
			r.device = device
		}
	}
}

// trackResource records an available resource, within the bounds on
// strangers' resources. It reports false when the resource is not
// tracked.
func (g *Gateway) trackResource(bare, res string, r *resource) bool {
	stranger := g.isStranger(bare)
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.contacts[bare]
	if c == nil {
		if stranger {
			n := 0
			for b := range g.contacts {
				if b != g.bare() && !subscribed(g.roster[b]) {
					n++
				}
			}
			if n >= maxStrangerContacts {
				return false
			}
		}
		c = &contact{resources: map[string]*resource{}}
		g.contacts[bare] = c
	}
	if _, ok := c.resources[res]; !ok && len(c.resources) >= maxResourcesPerContact {
		return false
	}
	c.resources[res] = r
	return true
}

// dropResource forgets an unavailable resource (and the account once it
// has none).
func (g *Gateway) dropResource(bare, res string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.contacts[bare]; c != nil {
		delete(c.resources, res)
		if len(c.resources) == 0 {
			delete(g.contacts, bare)
		}
	}
}
