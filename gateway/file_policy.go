package gateway

// Policy of the file channel: offers and updates are classified with
// filexfer.ClassifyOffer / ClassifyUpdate (docs/protocol.md, file
// transfer, policy classes) and decided through the channel policy.
// Whatever a rule allows, securejingle only carries out transfers of
// class ours: its stream encryption with the key delivered inside the
// envelope.

import (
	"fmt"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// fileAlert reports a decision of the file channel to every sink, off
// the read loop.
func (g *Gateway) fileAlert(f policy.Facts, d policy.Decision) { g.queueAlert(f, d) }

// decideOffer decides a protected session-initiate of files: policy on
// its class, an alert unless allowed silently. It reports whether the
// offer may go on (allowed, and ours).
func (g *Gateway) decideOffer(req InnerIQ, j *jingle.Jingle, cl filexfer.OfferClass) bool {
	f := g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, req.From.Bare().String())
	cl.Apply(&f)
	f.PeerDevice, f.StanzaType = req.Peer.ID, "set"
	d := g.policy.Decide(f)
	if d.Action != policy.ActionAllow {
		what := "file offer"
		if len(cl.Contents) > 0 && cl.Contents[0].Request {
			what = "file request"
		}
		d.Detail = fmt.Sprintf("%s %s from %s: %s", what, j.SID, req.From, cl.Why)
		g.fileAlert(f, d)
	}
	return d.Action != policy.ActionRefuse && cl.Class == filexfer.ClassOurs
}

// classifyUpdate classifies a session-accept, transport-replace or
// transport-accept against the security elements of the offer. It
// reports false when the update is not ours (alerted) or malformed.
func (x *transfer) classifyUpdate(j *jingle.Jingle) (ok, malformed bool) {
	g := x.g
	x.mu.Lock()
	secs := map[string]*filexfer.Security{}
	for _, xf := range x.files {
		secs[xf.content] = xf.sec
	}
	x.mu.Unlock()
	a := filexfer.Arrival{Protected: true, Certified: g.eng.CheckDevice(e2e.Device{JID: x.peer, ID: x.dev}) == nil}
	cl, err := filexfer.ClassifyUpdate(j, a, func(cr jingle.Creator, name string) (*filexfer.Security, bool) {
		s, ok := secs[name]
		return s, ok && (cr == jingle.CreatorInitiator || cr == "")
	})
	if err != nil {
		g.log.Info("bad file transfer update", "transfer", x.id, "action", j.Action, "err", err)
		return false, true
	}
	if cl.Class == filexfer.ClassOurs {
		return true, false
	}
	f := g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, x.peer)
	if x.outgoing {
		f.Direction = policy.DirectionOutgoing
	}
	cl.Apply(&f)
	f.PeerDevice, f.StanzaType = x.dev, "set"
	d := g.policy.Decide(f)
	if d.Action == policy.ActionAllow || d.Action == policy.ActionFlag && d.Severity != policy.SeverityCritical {
		// Less than ours is never carried out: say so whatever the rule.
		d = policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "file-security",
			Message: "A file transfer with " + policy.ShowJID(x.peer) + " was ended: its device tried to change the transfer's encryption."}
	}
	d.Detail = fmt.Sprintf("%s for transfer %s: %s", j.Action, x.id, cl.Why)
	g.fileAlert(f, d)
	return false, false
}

// checkDataChannelFingerprints checks the XEP-0343 data channel
// transports of a file session's session-initiate, session-accept,
// transport-replace or transport-accept the way a call's transports are
// checked (checkFingerprintRefs, sameFingerprint): one fingerprint-like
// element per content and none outside, and one and the same XEP-0320
// fingerprint in every data channel transport, since one
// filexfer.DataChannel, bound to one fingerprint, carries every content.
// A request without a data channel transport passes.
func checkDataChannelFingerprints(j *jingle.Jingle) error {
	var same sameFingerprint
	dc := false
	for i := range j.Contents {
		c := &j.Contents[i]
		raw, ok := transportRaw(c)
		if !ok {
			continue
		}
		t, ok, err := filexfer.ParseDataChannelTransport(raw)
		if err != nil {
			return fmt.Errorf("content %s: %w", c.Name, err)
		}
		if !ok {
			continue
		}
		dc = true
		var f *jingle.Fingerprint
		if t.ICE != nil {
			f = t.ICE.Fingerprint
		}
		same.add(c.Name, f)
	}
	if !dc {
		return nil
	}
	if _, err := checkFingerprintRefs(j); err != nil {
		return err
	}
	_, err := same.result()
	return err
}

// dcFingerprintAlert raises the critical alert of a data channel file
// session whose request carried unusable or different DTLS fingerprints
// (err from checkDataChannelFingerprints); what names the transfer and
// done what became of it, for the message ("An offer of files from",
// "refused").
func (g *Gateway) dcFingerprintAlert(peer string, dev uint32, outgoing bool, j *jingle.Jingle, what, done string, err error) {
	f := g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, peer)
	if outgoing {
		f.Direction = policy.DirectionOutgoing
	}
	f.PeerDevice, f.Protection, f.Signaling, f.StanzaType = dev, policy.ProtectionTransportOnly, policy.SignalingProtected, "set"
	g.fileAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "file-fingerprint",
		Message: what + " " + policy.ShowJID(peer) + " was " + done + ": its device signaled unusable DTLS fingerprints for the data channel.",
		Detail:  fmt.Sprintf("%s for session %s: %v", j.Action, j.SID, err)})
}

// fileUnprotectedFacts classifies file Jingle that arrived in clear
// through the server (for unprotectedJingle): cleartext, whatever it
// carries, since the server read the metadata and any key in it.
func fileUnprotectedFacts(raw []byte) (policy.Protection, string) {
	j, err := jingle.Parse(raw)
	if err != nil {
		return policy.ProtectionCleartext, "file transfer Jingle in clear"
	}
	cl, err := filexfer.ClassifyOffer(j, filexfer.Arrival{})
	if err != nil {
		return policy.ProtectionCleartext, string(j.Action) + " of a file transfer in clear"
	}
	return cl.Protection(), string(j.Action) + " in clear: " + cl.Why
}
