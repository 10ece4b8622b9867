package gateway

import (
	"encoding/xml"
	"net/url"
	"strings"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// Files from local clients (docs/protocol.md §22.10): a client's XEP-0234
// offer over IBB to a contact with securejingle is upgraded to an
// encrypted transfer (front_files_up.go). Every other plain file transfer
// of a client (XEP-0047 IBB, XEP-0065 SOCKS5, XEP-0096 SI, XEP-0234 Jingle)
// and the upload links it sends in chat (XEP-0363 with XEP-0066 or
// XEP-0454 aesgcm://) are classified through the policy classes of
// cleartext files (§14.8.3) before anything goes upstream; the same
// transfers offered to the client by a contact are classified on the way
// in. A transfer policy allows passes as it is, in clear.

// Namespaces of the plain file transfers the front classifies.
const (
	nsSI  = "http://jabber.org/protocol/si" // XEP-0095 stream initiation (XEP-0096 file transfer)
	nsOOB = "jabber:x:oob"                  // XEP-0066 out-of-band data (XEP-0363 links)
	// schemeAESGCM is the URL scheme of XEP-0454 uploads: the file is
	// AES-256-GCM encrypted by the client, the key and IV in the URL's
	// fragment.
	schemeAESGCM = "aesgcm"
)

// frontFilesFix is what the user is told to do instead of a plain
// transfer or upload link through the front.
const frontFilesFix = "Send files with `securejingle send` or the web app, which encrypt them end to end; gateway mode re-sends only a Jingle file offer (over in-band bytestreams, or SOCKS5 falling back to them) to a contact with securejingle, encrypted."

// outgoingFileMessage is the message of a refusal of a client's plain
// transfer or link: the built-in rules' messages are written for files
// offered to the user, so they give way to the fix; the message of a
// rule of the user's own is kept, and the fix follows it.
func outgoingFileMessage(d policy.Decision) string {
	if strings.HasPrefix(d.Rule, "default-") || d.Message == "" {
		return frontFilesFix
	}
	return d.Message + " " + frontFilesFix
}

// plainTransfer is a client-to-client file transfer in clear, found in a
// stanza: what it is (for the texts), and whether it starts a transfer
// (alerted) or continues one (decided silently, so that a refused stream
// leaks no bytes even when the client goes on sending them).
type plainTransfer struct {
	what  string
	start bool
}

// plainTransferOf classifies an IQ set or a message: ok false when it is
// no plain file transfer (pass it on).
func plainTransferOf(st *Stanza) (plainTransfer, bool) {
	for _, c := range st.Children {
		switch c.Name {
		case xml.Name{Space: filexfer.IBBNamespace, Local: "open"}:
			return plainTransfer{what: "a plain in-band bytestream (XEP-0047 IBB): the bytes go through the servers in clear", start: true}, true
		case xml.Name{Space: filexfer.IBBNamespace, Local: "data"}:
			return plainTransfer{what: "data of a plain in-band bytestream (XEP-0047 IBB)"}, true
		case xml.Name{Space: filexfer.NSBytestreams, Local: "query"}:
			if st.Kind == "iq" {
				return plainTransfer{what: "a plain SOCKS5 bytestream (XEP-0065): the bytes go in clear through the network and any proxy", start: true}, true
			}
		case xml.Name{Space: nsSI, Local: "si"}:
			if st.Kind == "iq" {
				return plainTransfer{what: "a plain stream initiation (XEP-0095/0096): the file's name and size go through the servers in clear, its bytes over a plain bytestream", start: true}, true
			}
		case xml.Name{Space: nsJingle, Local: "jingle"}:
			if st.Kind == "iq" && jingleKind(c.Raw) == policy.KindFileTransfer {
				return plainTransfer{what: jingleFileWhat(c.Raw), start: true}, true
			}
		}
	}
	return plainTransfer{}, false
}

// jingleFileWhat describes a file Jingle element sent in clear: through
// the server (its metadata and candidates readable there), and what its
// contents would carry the bytes with (filexfer.ClassifyOffer, as if the
// element had arrived protected).
func jingleFileWhat(raw []byte) string {
	what := "a XEP-0234 Jingle file transfer in clear (its file name, size, hashes and candidates readable by the servers)"
	j, err := jingle.Parse(raw)
	if err != nil {
		return what
	}
	cl, err := filexfer.ClassifyOffer(j, filexfer.Arrival{Protected: true, Certified: true})
	if err != nil {
		return what
	}
	if cl.Class == filexfer.ClassOurs {
		return what + ", with securejingle's key in clear"
	}
	return what + "; " + cl.Why
}

// fileFacts are the facts of a plain transfer or upload link with peer.
func (c *frontClient) fileFacts(dir policy.Direction, peer string, prot policy.Protection, sig policy.Signaling, typ string) policy.Facts {
	f := c.f.g.peerFacts(policy.KindFileTransfer, dir, peer)
	f.Protection, f.Signaling, f.StanzaType = prot, sig, typ
	return f
}

// clientFileStanza applies the plain-transfer rule to an IQ set or a
// message m of the client addressed to an account: it reports whether
// the front took the stanza (refused: answered with an error and
// alerted, nothing upstream).
func (c *frontClient) clientFileStanza(m *Stanza) bool {
	if c.uploadStanza(m) {
		return true // upgraded to an encrypted transfer (front_files_up.go)
	}
	pt, ok := plainTransferOf(m)
	if !ok || m.To.Localpart() == "" {
		return false // not a transfer, or to a server or component (a SOCKS5 proxy's activate)
	}
	g := c.f.g
	f := c.fileFacts(policy.DirectionOutgoing, m.To.Bare().String(), policy.ProtectionCleartext, policy.SignalingUnprotected, m.Type)
	d := g.policy.Decide(f)
	if !pt.start {
		if d.Action != policy.ActionRefuse {
			return false
		}
		c.refuseStanza(m, "The data was not sent: securejingle refused this plain bytestream. "+frontFilesFix)
		return true
	}
	if d.Action == policy.ActionRefuse {
		d.Message = outgoingFileMessage(d)
	}
	if d.Action != policy.ActionAllow {
		d.Detail = "file transfer from local client " + c.jid.String() + " to " + m.To.String() + ": " + pt.what
		g.report(f, d)
	}
	if d.Action != policy.ActionRefuse {
		return false
	}
	c.refuseStanza(m, "The file transfer was not started: it would be "+pt.what+". "+d.Message)
	return true
}

// refuseStanza answers the client's IQ or message m with a
// policy-violation error carrying text, from its addressee.
func (c *frontClient) refuseStanza(m *Stanza, text string) {
	if m.Kind == "message" {
		c.bounce(m, text)
		return
	}
	c.forward(build("iq", map[string]string{"type": "error", "id": m.ID, "from": m.To.String(), "to": c.jid.String()}, policyViolation(text)))
}

// serverFileStanza applies the plain-transfer rule to an IQ set or a
// message st a contact sent to the client: the daemon's own session never
// sees stanzas addressed to a client's resource, so the front decides as
// the daemon would for its own (§14.8: incoming, cleartext, unprotected).
// It reports whether the front took the stanza (refused: an IQ is
// answered not-acceptable upstream, the alert raised, nothing reaches the
// client).
func (c *frontClient) serverFileStanza(st *Stanza) bool {
	if c.uploadServerStanza(st) {
		return true // the session of an upgrade: the front speaks for its peer
	}
	pt, ok := plainTransferOf(st)
	if !ok || st.From.Localpart() == "" {
		return false
	}
	g := c.f.g
	f := c.fileFacts(policy.DirectionIncoming, st.From.Bare().String(), policy.ProtectionCleartext, policy.SignalingUnprotected, st.Type)
	d := g.policy.Decide(f)
	if pt.start && d.Action != policy.ActionAllow {
		d.Detail = "file transfer from " + st.From.String() + " to local client " + c.jid.String() + ": " + pt.what
		// Queued (coalesced per rule, bounded): what a contact sends
		// never makes this client's server reader wait for the sinks.
		g.queueAlert(f, d)
	}
	return c.refuseInbound(st, d)
}

// fileLinks are the upload links of a chat message: the URLs of its
// XEP-0066 out-of-band children, and its body when that is one aesgcm://
// URL (XEP-0454 without OOB).
type fileLinks struct {
	plain  []string // the hosts of links to files stored in clear
	aesgcm bool     // a link to a client-side-encrypted file
}

// linksOf collects the upload links of m (body: its body).
func linksOf(m *Stanza, body string) fileLinks {
	var l fileLinks
	add := func(raw string) {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err == nil && strings.EqualFold(u.Scheme, schemeAESGCM) && u.Fragment != "" {
			l.aesgcm = true
			return
		}
		host := "an unknown host"
		if err == nil && u.Host != "" {
			host = u.Host
		}
		l.plain = append(l.plain, host)
	}
	for _, ch := range m.Children {
		if ch.Name != (xml.Name{Space: nsOOB, Local: "x"}) {
			continue
		}
		var x struct {
			URL string `xml:"url"`
		}
		if xml.Unmarshal(ch.Raw, &x) == nil && x.URL != "" {
			add(x.URL)
		}
	}
	if b := strings.TrimSpace(body); len(l.plain) == 0 && !l.aesgcm && strings.HasPrefix(strings.ToLower(b), schemeAESGCM+"://") && !strings.ContainsAny(b, " \t\r\n") {
		add(b)
	}
	return l
}

// clientLinks applies the upload-link rule to the chat message m of the
// client: a link to a file stored in clear is a cleartext file channel,
// a link to an aesgcm:// file one encrypted by the client with a key
// securejingle does not manage (e2e-unverified; cleartext when keyClear,
// the message itself going in clear). It reports whether the message was
// refused (bounced and alerted).
func (c *frontClient) clientLinks(m *Stanza, l fileLinks, keyClear bool) bool {
	if len(l.plain) == 0 && !l.aesgcm {
		return false
	}
	g := c.f.g
	to := m.To.Bare().String()
	prot, what := policy.ProtectionE2EUnverified, "a link to a file the client encrypted (XEP-0454 aesgcm://), with a key securejingle does not manage"
	switch {
	case len(l.plain) > 0:
		prot, what = policy.ProtectionCleartext, "a link to a file stored in clear on "+l.plain[0]+" (an HTTP upload): its operator, and anyone the link reaches, can read the file"
	case keyClear:
		prot, what = policy.ProtectionCleartext, "a link to an aesgcm:// file whose key would go in clear in the message"
	}
	f := c.fileFacts(policy.DirectionOutgoing, to, prot, policy.SignalingNone, m.Type)
	d := g.policy.Decide(f)
	if d.Action == policy.ActionRefuse {
		d.Message = outgoingFileMessage(d)
	}
	if d.Action != policy.ActionAllow {
		d.Detail = "upload link from local client " + c.jid.String() + " to " + m.To.String() + ": " + what
		g.report(f, d)
	}
	if d.Action != policy.ActionRefuse {
		return false
	}
	c.bounce(m, "The message was not sent: it carries "+what+". "+d.Message)
	return true
}
