package gateway

// Classification of call signaling for policy (docs/protocol.md §16.1):
// what protects the media of an offer or answer, and the JMI and Jingle
// that arrive around the end-to-end layer.

import (
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// offerClass is what an offer or answer says about the protection of its
// media.
type offerClass struct {
	prot policy.Protection
	fp   dtls.Fingerprint // the one XEP-0320 fingerprint of every content
	why  string           // for the alert's detail
	err  error            // fingerprints present but unusable or different
}

// classifyOffer classifies the RTP contents of a session-initiate or
// session-accept that arrived with the given signaling:
//
//   - SDES keys (<encryption/>) in any description, or an RTP content
//     whose transport has no DTLS fingerprint (plain RTP/AVP): cleartext;
//   - only a fingerprint in another namespace (Conversations' OMEMO
//     encrypted one, which securejingle cannot check): transport-only;
//   - XEP-0320 fingerprints, one and the same in the transport of every
//     content (RTP or not; a content without one is an error): e2e-bound
//     when the signaling is protected, transport-only when it arrived in
//     clear (the server could have replaced it).
func classifyOffer(j *jingle.Jingle, sig policy.Signaling) offerClass {
	var cl offerClass
	rtp := 0
	foreign := false
	if why, err := checkFingerprintRefs(j); err != nil {
		return offerClass{prot: policy.ProtectionTransportOnly, why: why, err: err}
	}
	var same sameFingerprint
	for i := range j.Contents {
		ct := &j.Contents[i]
		if ct.Description != nil {
			rtp++
			if ct.Description.Encryption != nil {
				return offerClass{prot: policy.ProtectionCleartext, why: "content " + ct.Name + " carries SDES keys in the signaling (RTP/SAVP with a=crypto)"}
			}
		}
		// Every transport, RTP or not, carries the one fingerprint: the
		// DTLS handshake of a content without it would be bound to
		// nothing we checked.
		t := ct.Transport
		if t == nil || t.Fingerprint == nil {
			switch {
			case t.HasForeignFingerprint():
				foreign = true
			case ct.Description != nil:
				return offerClass{prot: policy.ProtectionCleartext, why: "content " + ct.Name + " has no DTLS fingerprint: plain RTP (RTP/AVP) without encryption"}
			}
			same.add(ct.Name, nil)
			continue
		}
		same.add(ct.Name, t.Fingerprint)
	}
	cl.fp, cl.err = same.result()
	switch {
	case rtp == 0:
		return offerClass{prot: policy.ProtectionTransportOnly, why: "no RTP content", err: errors.New("gateway: no RTP content")}
	case foreign && cl.fp.IsZero():
		return offerClass{prot: policy.ProtectionTransportOnly, why: "the DTLS fingerprint is encrypted with OMEMO (Conversations' verified calls), which securejingle cannot check"}
	case cl.err != nil:
		cl.prot, cl.why = policy.ProtectionTransportOnly, cl.err.Error()
	case sig == policy.SignalingProtected:
		cl.prot, cl.why = policy.ProtectionE2EBound, "DTLS-SRTP, fingerprint "+cl.fp.String()+" inside the protected signaling"
	default:
		cl.prot, cl.why = policy.ProtectionTransportOnly, "DTLS-SRTP whose fingerprint arrived in clear through the server"
	}
	return cl
}

// checkFingerprintRefs requires exactly one fingerprint-like element per
// content that has any, and none outside the contents: a second one (an
// OMEMO-encrypted fingerprint next to the XEP-0320 one, one nested in an
// extension) would be a value that some reader takes and another
// ignores. why says what is wrong, for an alert's detail.
func checkFingerprintRefs(j *jingle.Jingle) (why string, err error) {
	refs, err := j.Fingerprints()
	if err != nil {
		return "unreadable fingerprint elements", err
	}
	perContent := map[string]int{}
	for _, r := range refs {
		if r.Content == "" {
			return "a fingerprint outside every content", fmt.Errorf("gateway: a fingerprint at %s, outside every content", r.Path)
		}
		if perContent[r.Content]++; perContent[r.Content] > 1 {
			return "content " + r.Content + " carries more than one fingerprint",
				fmt.Errorf("gateway: content %s carries more than one fingerprint (%s)", r.Content, r.Path)
		}
	}
	return "", nil
}

// sameFingerprint collects the XEP-0320 fingerprints of the transports
// of a session's contents, which must be one and the same: the session
// has one DTLS association, bound to one fingerprint, and a content
// signaled with another would be bound to something nobody checks. The
// zero value is empty.
type sameFingerprint struct {
	fp      dtls.Fingerprint // the first usable one
	missing string           // the first content without one
	err     error            // an unusable or different one
}

// add records the fingerprint of content's transport, nil when it has
// none.
func (s *sameFingerprint) add(content string, f *jingle.Fingerprint) {
	if f == nil {
		if s.missing == "" {
			s.missing = content
		}
		return
	}
	fp, err := dtls.ParseFingerprint(f.Hash, f.Value)
	switch {
	case err != nil:
		s.err = fmt.Errorf("content %s: %w", content, err)
	case s.fp.IsZero():
		s.fp = fp
	case !s.fp.Equal(fp):
		s.err = errors.New("gateway: the contents carry different DTLS fingerprints")
	}
}

// result returns the fingerprint (zero when no content had a usable one)
// and an error when one was unusable or different, or when a content had
// none while others had one.
func (s *sameFingerprint) result() (dtls.Fingerprint, error) {
	if s.err == nil && s.missing != "" && !s.fp.IsZero() {
		return s.fp, fmt.Errorf("gateway: content %s carries no XEP-0320 fingerprint, other contents do", s.missing)
	}
	return s.fp, s.err
}

// unprotectedJingleFacts classifies a Jingle request that arrived in
// clear: its kind, and for RTP offers and answers what protects the
// media; anything else is transport-only at best.
func unprotectedJingleFacts(raw []byte) (policy.Kind, policy.Protection, string) {
	kind := jingleKind(raw)
	if kind == policy.KindFileTransfer {
		prot, why := fileUnprotectedFacts(raw)
		return kind, prot, why
	}
	j, err := jingle.Parse(raw)
	if err != nil || kind != policy.KindMediaCall {
		return kind, policy.ProtectionTransportOnly, "Jingle in clear"
	}
	switch j.Action {
	case jingle.ActionSessionInitiate, jingle.ActionSessionAccept, jingle.ActionContentAdd, jingle.ActionContentAccept:
		cl := classifyOffer(j, policy.SignalingUnprotected)
		return kind, cl.prot, string(j.Action) + " in clear: " + cl.why
	}
	return kind, policy.ProtectionTransportOnly, string(j.Action) + " in clear"
}

// unprotectedJMI classifies a XEP-0353 element that arrived in a plain
// message: a propose (or proceed) around the end-to-end layer. Policy
// decides whether the user is alerted; securejingle sets up no call from
// unprotected signaling (the default refuses it from a peer who supports
// end-to-end protection).
func (g *Gateway) unprotectedJMI(st *Stanza, c *Child) {
	f, d, ok := g.unprotectedJMIDecision(st, c)
	if !ok || d.Action == policy.ActionAllow {
		return
	}
	g.queueAlert(f, d)
}

// unprotectedJMIDecision is what policy decides about the XEP-0353
// element c (in st) that arrived in clear; ok is false for one that
// decides nothing (malformed, our own, a retract or finish).
func (g *Gateway) unprotectedJMIDecision(st *Stanza, c *Child) (f policy.Facts, d policy.Decision, ok bool) {
	m, err := jingle.ParseJMI(c.Raw)
	if err != nil {
		g.log.Info("malformed unprotected JMI", "from", st.From.String(), "err", err)
		return f, d, false
	}
	bare := st.From.Bare().String()
	if bare == g.bare() {
		return f, d, false // our own plain client's calls (carbons) are not ours
	}
	switch m.Kind {
	case jingle.JMIPropose, jingle.JMIProceed:
	default:
		return f, d, false // an unprotected retract or finish ends nothing here
	}
	f = g.peerFacts(policy.KindMediaCall, policy.DirectionIncoming, bare)
	f.Protection, f.Signaling, f.StanzaType = policy.ProtectionTransportOnly, policy.SignalingUnprotected, st.Type
	d = g.policy.Decide(f)
	if d.Action == policy.ActionAllow {
		return f, d, true
	}
	d.Detail = fmt.Sprintf("unprotected JMI %s %s from %s", m.Kind, m.ID, st.From)
	if dev, ok := m.DeviceID(); ok {
		// Conversations names the OMEMO device it would encrypt the
		// fingerprint to: not something securejingle can use.
		d.Detail += fmt.Sprintf(" (OMEMO device %d)", dev)
	}
	return f, d, true
}
