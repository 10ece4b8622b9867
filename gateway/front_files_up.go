package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// The upgrade of a local client's plain file offer (docs/protocol.md
// §22.10, issue 11 item 5): a XEP-0234 offer over XEP-0261 IBB to a
// contact the gateway can encrypt to is terminated here. The front
// answers the client as the contact would, takes the bytes of the
// client's in-band bytestream on the loopback hop, spools them to a
// private temporary file (bounded in size, count and idle time), checks
// the offered hash, tells the client success, and then sends the file
// with the gateway's own encrypted transfer ([Gateway.SendFiles]). The
// outcome of that send is told to the client as a notice from the alert
// JID and as an [EventFrontFile] event. Nothing of the client's offer
// goes upstream in clear, and only the client's own stream feeds an
// upgrade.

// Bounds of the upgrades (implementation constants).
const (
	// maxClientUploads and maxFrontUploads bound the upgrades receiving
	// bytes at once, of one client and of all clients.
	maxClientUploads = 2
	maxFrontUploads  = 4
	// maxFrontHeld bounds the spooled files being sent encrypted (the
	// file table bounds the transfers themselves).
	maxFrontHeld = maxLiveTransfers
	// frontUploadIdle is how long an upgrade waits for the client's next
	// bytestream stanza (the open after the accept, the next data, the
	// close) before it fails with reason timeout.
	frontUploadIdle = 30 * time.Second
	// frontUploadMinRate is the least average rate an upgrade must keep
	// once frontUploadGrace (in idle timeouts) passed since it started:
	// a client that trickles a byte now and then cannot hold the
	// receiving slots (maxFrontUploads) for ever.
	frontUploadMinRate = 16 << 10 // bytes per second
	frontUploadGrace   = 2        // idle timeouts
	// frontChecksumWait is how long an upgrade whose offer carried no
	// hash waits after the close for a XEP-0234 checksum.
	frontChecksumWait = 3 * time.Second
	// frontUploadHold bounds how long a spooled file waits for the
	// encrypted send to end (the contact's decision included); then the
	// transfer is cancelled and the file removed.
	frontUploadHold = 2 * time.Hour
	// frontUploadBlock is the largest IBB block the front accepts: the
	// client's block-size, at most this.
	frontUploadBlock = 32 << 10
	// frontUploadPoll is how often a held upgrade looks at its transfer
	// besides the events (which a full subscriber buffer may lose).
	frontUploadPoll = time.Second
	// maxUploadMarks and uploadMarkTTL bound the remembered ids of
	// ended upgrades and of the front's own IQs to the client.
	maxUploadMarks = 1024
	uploadMarkTTL  = 10 * time.Minute
	// spoolPrefix starts the name of each upgrade's spool directory.
	spoolPrefix = "front-up-"
)

// nsJingleErrors is the XEP-0166 §10 namespace of Jingle error conditions.
const nsJingleErrors = "urn:xmpp:jingle:errors:1"

// upPhase is the state of an upgrade.
type upPhase int

const (
	upAccepted upPhase = iota + 1 // session-accept sent, waiting for the IBB open
	upOpen                        // bytes flowing
	upChecksum                    // closed, every byte in, waiting for a checksum
	upHeld                        // the front holds the file; the encrypted send runs
	upEnded                       // failed or done; the spool file is gone
)

// frontUploads are the upgrades of a front and its offers of received
// files (front_files_down.go). Its zero value is ready.
type frontUploads struct {
	mu        sync.Mutex
	byJingle  map[upKey]*frontUpload
	byIBB     map[upKey]*frontUpload
	receiving map[*frontClient]int
	// receivingPeer counts the receiving upgrades to each contact (bare
	// JID): each will be a transfer with it (file table bounds).
	receivingPeer map[string]int
	total         int    // receiving, all clients
	held          int    // held, being sent encrypted
	reserved      uint64 // offered bytes of every spool file not yet removed
	cleaned       bool   // stale spool directories of an earlier run removed
	// ended remembers the sessions and bytestreams of ended upgrades,
	// ours the ids of the IQs the front sent clients for them: what
	// arrives for either is answered here, never sent upstream.
	ended boundedSet
	ours  boundedSet
	// downs are the offers of received files to clients
	// (front_files_down.go), by Jingle sid and by "ibb:"+IBB sid; waits
	// the front's IQs they wait for an answer to, downsOf their count
	// per client.
	downs   map[upKey]*frontDownload
	waits   map[upKey]*frontDownload
	downsOf map[*frontClient]int
}

// upKey names a Jingle session or an IBB stream of one client with one
// addressee.
type upKey struct {
	c        *frontClient
	peer, id string
}

func (k upKey) mark(kind string) string {
	return fmt.Sprintf("%p|%s|%s|%s", k.c, kind, k.peer, k.id)
}

// frontUpload is one upgrade.
type frontUpload struct {
	c    *frontClient
	peer jid.JID // the addressee, as the client wrote it
	// target is where the encrypted transfer goes: peer when it is a
	// certified device, else its bare JID.
	target jid.JID
	sid    string // the client's Jingle session
	// ibb is the IBB sid (once a SOCKS5 offer is replaced: under mu),
	// s5b the SOCKS5 sid of an offer over SOCKS5 until then.
	ibb   string
	s5b   string
	cname string // the content name
	cre   jingle.Creator
	file  filexfer.File
	size  uint64
	block int

	dir, path string
	done      chan struct{} // closed when receiving ended (held or failed)
	last      chan struct{} // the client sent something (cap 1)

	mu    sync.Mutex
	phase upPhase
	out   *os.File
	h     hash.Hash
	algo  string
	want  []byte // the hash to match, once known
	got   uint64
	seq   uint16
	// why and text are set when the upgrade failed while receiving.
	why  jingle.ReasonCondition
	text string
}

// uploads is the upgrades of f.
func (f *Front) uploads() *frontUploads { return &f.up }

// spoolRoot is the directory spool directories are made in.
func (g *Gateway) spoolRoot() string {
	if g.cfg.FrontSpoolDir != "" {
		return g.cfg.FrontSpoolDir
	}
	return os.TempDir()
}

// cleanSpool removes, once (when the front is made), the spool
// directories an earlier run left (a crash) in a spool directory of the
// daemon's own. t.mu is held.
func (t *frontUploads) cleanSpool(g *Gateway) {
	if t.cleaned || g.cfg.FrontSpoolDir == "" {
		return
	}
	t.cleaned = true
	es, err := os.ReadDir(g.cfg.FrontSpoolDir)
	if err != nil {
		return
	}
	for _, e := range es {
		if e.IsDir() && strings.HasPrefix(e.Name(), spoolPrefix) {
			os.RemoveAll(filepath.Join(g.cfg.FrontSpoolDir, e.Name()))
		}
	}
}

// uploadStanza applies the upgrade to an IQ set or a message m of the
// client: the offer of a plain file to a contact with securejingle, and
// the Jingle and IBB stanzas of an upgrade. It reports whether the front
// took the stanza (nothing of it goes upstream).
func (c *frontClient) uploadStanza(m *Stanza) bool {
	if m.To.Localpart() == "" {
		return false
	}
	t := c.f.uploads()
	if ch := m.Child(nsJingle, "jingle"); ch != nil && m.Kind == "iq" && m.Type == "set" {
		j, err := jingle.Parse(ch.Raw)
		if err != nil {
			return false
		}
		k := upKey{c, m.To.String(), j.SID}
		t.mu.Lock()
		u := t.byJingle[k]
		t.mu.Unlock()
		d := t.download(c, k.peer, k.id, false) // looked up once: its goroutine may drop it
		switch {
		case u != nil:
			u.onJingle(m, j)
			return true
		case d != nil:
			d.onJingle(m, j)
			return true
		case t.ended.has(k.mark("jingle"), c.f.g.now()):
			c.forward(c.uploadError(m, "cancel", "item-not-found", "unknown-session"))
			return true
		case j.Action == jingle.ActionSessionInitiate:
			return c.offerUpload(m, j)
		}
		return false
	}
	if local, ch, sid, ok := ibbOf(m); ok {
		if (m.Kind == "iq" && m.Type != "set") || (m.Kind == "message" && local != "data") {
			return false
		}
		k := upKey{c, m.To.String(), sid}
		t.mu.Lock()
		u := t.byIBB[k]
		t.mu.Unlock()
		switch {
		case u != nil:
			u.onIBB(m, local, ch.Raw)
			return true
		case t.download(c, k.peer, k.id, true) != nil:
			// The client closing the stream the front sends on: the
			// next block's answer ends the offer.
			if m.Kind == "iq" {
				c.forward(c.uploadResult(m))
			}
			return true
		case t.ended.has(k.mark("ibb"), c.f.g.now()):
			if m.Kind == "iq" {
				c.forward(c.uploadError(m, "cancel", "item-not-found", ""))
			}
			return true
		}
		return false
	}
	return false
}

// ibbOf returns the XEP-0047 element of st (open, data or close) and its
// sid; ok false when st has none or it is malformed.
func ibbOf(st *Stanza) (local string, ch *Child, sid string, ok bool) {
	for _, local := range []string{"open", "data", "close"} {
		if ch := st.Child(filexfer.IBBNamespace, local); ch != nil {
			var el struct {
				SID string `xml:"sid,attr"`
			}
			if xml.Unmarshal(ch.Raw, &el) != nil {
				return "", nil, "", false
			}
			return local, ch, el.SID, true
		}
	}
	return "", nil, "", false
}

// uploadAnswer reports whether m, an IQ result or error of the client, is
// the answer to an IQ the front sent it for an upgrade (consumed here).
func (c *frontClient) uploadAnswer(m *Stanza) bool {
	if c.downloadAnswer(m) {
		return true
	}
	t := c.f.uploads()
	k := upKey{c: c, id: m.ID}.mark("iq")
	if !t.ours.has(k, c.f.g.now()) {
		return false
	}
	t.ours.remove(k)
	return true
}

// uploadServerStanza reports whether st, an IQ set or a message from the
// server for the client, names the Jingle session or bytestream of an
// upgrade of the client with its sender: the front speaks for that
// contact in the session, so the stanza is answered (an IQ:
// item-not-found) and never reaches the client.
func (c *frontClient) uploadServerStanza(st *Stanza) bool {
	t := c.f.uploads()
	var k upKey
	var kind string
	switch {
	case st.Child(nsJingle, "jingle") != nil:
		j, err := jingle.Parse(st.Child(nsJingle, "jingle").Raw)
		if err != nil {
			return false
		}
		k, kind = upKey{c, st.From.String(), j.SID}, "jingle"
	default:
		_, _, sid, ok := ibbOf(st)
		if !ok {
			return false
		}
		k, kind = upKey{c, st.From.String(), sid}, "ibb"
	}
	t.mu.Lock()
	var live bool
	if kind == "jingle" {
		live = t.byJingle[k] != nil || t.downs[k] != nil
	} else {
		live = t.byIBB[k] != nil || t.downs[upKey{k.c, k.peer, "ibb:" + k.id}] != nil
	}
	t.mu.Unlock()
	if !live && !t.ended.has(k.mark(kind), c.f.g.now()) {
		return false
	}
	if st.Kind == "iq" {
		c.upSend(tokens(iqError(st, "cancel", "item-not-found")))
	}
	return true
}

// uploadError is an IQ error answering the client's m from its
// addressee, with a Jingle error condition when jerr is set.
func (c *frontClient) uploadError(m *Stanza, typ, cond, jerr string) []byte {
	e := &StanzaError{Type: typ, Condition: cond}
	if jerr != "" {
		e.App = element(nsJingleErrors, jerr, "")
	}
	return build("iq", map[string]string{"type": "error", "id": m.ID, "from": m.To.String(), "to": c.jid.String()}, e.element())
}

// uploadResult is the empty IQ result to the client's m, from its
// addressee.
func (c *frontClient) uploadResult(m *Stanza) []byte {
	return build("iq", map[string]string{"type": "result", "id": m.ID, "from": m.To.String(), "to": c.jid.String()})
}

// offerUpload takes the client's session-initiate j (in m) when it offers
// one file over IBB to a contact with securejingle: it reports false for
// anything else (a contact without securejingle, another transport, a
// client's own encryption), which the plain-transfer rule then decides.
func (c *frontClient) offerUpload(m *Stanza, j *jingle.Jingle) bool {
	if len(j.Contents) != 1 || !validTransferID(j.SID) {
		return false
	}
	fc, err := filexfer.ParseContent(&j.Contents[0])
	if err != nil || fc.Description == nil || fc.Request || fc.Security != nil {
		return false
	}
	s5b := fc.Transport == filexfer.TransportS5B && (fc.S5B.Mode == "" || fc.S5B.Mode == "tcp")
	if fc.Transport != filexfer.TransportIBB && !s5b {
		return false
	}
	g := c.f.g
	ctx, cancel := context.WithTimeout(context.Background(), frontLookupTimeout)
	defer cancel()
	_, err = g.chatTargets(ctx, m.To.Bare())
	switch {
	case errors.Is(err, ErrNoE2E):
		return false // a contact without securejingle: §22.10's classification
	case err != nil:
		// It runs securejingle (or we cannot tell): never in clear.
		var le *LookupError
		text := "it could not be encrypted (" + policy.BoundDetail(err.Error()) + ")."
		if errors.As(err, &le) {
			text = "securejingle could not check whether " + policy.ShowJID(le.Peer) + " can receive encrypted files (" + policy.BoundDetail(le.Err.Error()) + "); try again in a moment."
		} else if errors.Is(err, ErrUnusableKeys) {
			text = policy.ShowJID(m.To.Bare().String()) + " uses securejingle, but none of its devices can be encrypted to yet; try again in a moment."
		}
		c.refuseStanza(m, "The file was not sent: "+text+" Nothing was sent in clear.")
		return true
	}
	file := fc.Description.File
	refuse := func(text string) bool {
		c.refuseStanza(m, "The file was not sent: "+text+" Nothing was sent in clear.")
		return true
	}
	// The encrypted send needs a certified device of ours and an online
	// one of the contact: checked now, so that the client is not told
	// success for a file that cannot go anywhere.
	if !g.eng.Certified() {
		return refuse("this securejingle device is not certified by the account key yet (`securejingle devices add`).")
	}
	// To the device the client addressed when it is a certified one,
	// else the one `securejingle send` would pick for the account.
	target := m.To
	_, dev, err := g.fileTarget(ctx, target)
	if err != nil {
		target = m.To.Bare()
		if _, dev, err = g.fileTarget(ctx, target); err != nil {
			return refuse(policy.BoundDetail(err.Error()) + ".")
		}
	}
	switch {
	case !file.HasSize:
		return refuse("the offer does not say the file's size, which securejingle needs to bound what it holds.")
	case file.Size > g.maxFileSize():
		return refuse(fmt.Sprintf("it is %d bytes, the limit is %d (max_file_size).", file.Size, g.maxFileSize()))
	case file.Range != nil && (file.Range.Offset != 0 || file.Range.Length != 0):
		return refuse("securejingle takes whole files from a client, not ranges.")
	}
	bare := m.To.Bare().String()
	f := g.peerFacts(policy.KindFileTransfer, policy.DirectionOutgoing, bare)
	// The facts SendFiles decides the encrypted transfer with.
	f.PeerDevice, f.Protection, f.Signaling = dev, policy.ProtectionE2EBound, policy.SignalingProtected
	if d := g.policy.Decide(f); d.Action == policy.ActionRefuse {
		d.Detail = "file from local client " + c.jid.String() + " to " + m.To.String() + ": the encrypted transfer is refused"
		g.report(f, d)
		return refuse("the channel policy refuses files to " + policy.ShowJID(bare) + " (rule " + d.Rule + "). " + d.Message)
	}
	u := &frontUpload{c: c, peer: m.To, target: target, sid: j.SID, cname: j.Contents[0].Name, cre: j.Contents[0].Creator,
		file: file, size: file.Size, done: make(chan struct{}), last: make(chan struct{}, 1), phase: upAccepted}
	if s5b {
		u.s5b = fc.S5B.SID
	} else {
		u.ibb, u.block = fc.IBB.SID, min(int(fc.IBB.BlockSize), frontUploadBlock)
	}
	u.algo = "sha-256"
	if h, ok := filexfer.StrongestHash(file.Hashes); ok {
		u.algo, u.want = h.Algo, h.Value
	} else {
		for _, a := range filexfer.AcceptableHashAlgos() {
			if slices.Contains(file.HashesUsed, a) {
				u.algo = a
				break
			}
		}
	}
	h, ok := filexfer.NewHash(u.algo)
	if !ok {
		return refuse("securejingle cannot compute the file's hash (" + u.algo + ").")
	}
	u.h = h
	if text := c.f.reserveUpload(u); text != "" {
		return refuse(text)
	}
	b, err := acceptUpload(j, fc, u.block, m.To.String())
	var noCand []byte
	if err == nil && s5b {
		noCand, err = u.transportJingle(jingle.ActionTransportInfo, &filexfer.S5BTransport{SID: u.s5b, CandidateError: true})
	}
	if err != nil {
		c.f.dropUpload(u, false)
		return refuse("its offer could not be answered (" + policy.BoundDetail(err.Error()) + ").")
	}
	g.log.Info("local client's plain file offer taken for the encrypted transfer", "client", c.jid.String(), "to", m.To.String(), "size", u.size, "socks5", s5b)
	c.forward(c.uploadResult(m))
	c.forward(c.uploadIQ(u, b))
	if noCand != nil {
		// SOCKS5: the front offers no candidate and uses none of the
		// client's (one may be a proxy on the server): both sides
		// fail, and the client falls back to IBB (XEP-0260 §2.4).
		c.forward(c.uploadIQ(u, noCand))
	}
	go u.run()
	return true
}

// acceptUpload is the front's session-accept of the client's offer j
// (its one content fc), from responder: the offered description as it
// came, the IBB transport with the block size the front takes, or a
// SOCKS5 transport without candidates.
func acceptUpload(j *jingle.Jingle, fc *filexfer.FileContent, block int, responder string) ([]byte, error) {
	dr, err := fc.Description.Raw()
	if err != nil {
		return nil, err
	}
	var tr jingle.Raw
	if fc.IBB != nil {
		t := *fc.IBB
		t.BlockSize = uint16(block)
		tr, err = t.Raw()
	} else {
		tr, err = (&filexfer.S5BTransport{SID: fc.S5B.SID, Mode: fc.S5B.Mode}).Raw()
	}
	if err != nil {
		return nil, err
	}
	in := j.Contents[0]
	return (&jingle.Jingle{Action: jingle.ActionSessionAccept, SID: j.SID, Responder: responder,
		Contents: []jingle.Content{{Creator: in.Creator, Name: in.Name, Senders: in.Senders, Other: []jingle.Raw{dr, tr}}}}).Marshal()
}

// transportJingle is a Jingle action of the front for u's content with
// the transport t.
func (u *frontUpload) transportJingle(a jingle.Action, t interface{ Raw() (jingle.Raw, error) }) ([]byte, error) {
	tr, err := t.Raw()
	if err != nil {
		return nil, err
	}
	return (&jingle.Jingle{Action: a, SID: u.sid,
		Contents: []jingle.Content{{Creator: u.cre, Name: u.cname, Other: []jingle.Raw{tr}}}}).Marshal()
}

// uploadIQ is an IQ set of the front to the client for u, from its
// addressee, carrying the Jingle payload b; its id is remembered so that
// the client's answer stays here.
func (c *frontClient) uploadIQ(u *frontUpload, b []byte) []byte {
	id := randomID()
	c.f.uploads().ours.add(upKey{c: c, id: id}.mark("iq"), maxUploadMarks, uploadMarkTTL, c.f.g.now())
	return build("iq", map[string]string{"type": "set", "id": id, "from": u.peer.String(), "to": c.jid.String()}, b)
}

// reserveUpload registers u within the bounds and makes its spool file;
// it returns why not otherwise.
func (f *Front) reserveUpload(u *frontUpload) string {
	g := f.g
	t := f.uploads()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byJingle == nil {
		t.byJingle, t.byIBB, t.receiving = map[upKey]*frontUpload{}, map[upKey]*frontUpload{}, map[*frontClient]int{}
		t.receivingPeer = map[string]int{}
	}
	jk, ik := upKey{u.c, u.peer.String(), u.sid}, upKey{u.c, u.peer.String(), u.ibb}
	switch {
	case t.byJingle[jk] != nil || (u.ibb != "" && t.byIBB[ik] != nil):
		return "a transfer with this session or stream id is already running."
	case t.receiving[u.c] >= maxClientUploads, t.total >= maxFrontUploads:
		return "too many files are coming in from local clients at once; wait for one to finish."
	case t.held >= maxFrontHeld:
		return "too many files are waiting to be sent encrypted; wait for one to finish."
	case g.cfg.FileQuota > 0 && t.reserved+u.size > g.cfg.FileQuota:
		return "the files securejingle already holds for sending would go over the file quota (file_quota)."
	}
	// The encrypted send must find room in the file table when the file
	// is in: the transfers live now, and the upgrades still receiving,
	// each of which will be one (the client is never told success for a
	// file that cannot be sent).
	bare := u.peer.Bare().String()
	live, perPeer := g.files.room(bare)
	live, perPeer = live+t.total, perPeer+t.receivingPeer[bare]
	if live >= maxLiveTransfers || perPeer >= maxTransfersPerPeer {
		return "too many file transfers are under way (with " + policy.ShowJID(bare) + " or in all); wait for one to finish."
	}
	root := g.spoolRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "securejingle could not make its spool directory (" + policy.BoundDetail(err.Error()) + ")."
	}
	if free, known, err := filexfer.FreeSpace(root); err == nil && known && free < t.reserved+u.size+g.cfg.FileMinFree {
		return "there is not enough free space in securejingle's spool directory for it."
	}
	dir, err := os.MkdirTemp(root, spoolPrefix+"*")
	if err != nil {
		return "securejingle could not make a spool file (" + policy.BoundDetail(err.Error()) + ")."
	}
	path := filepath.Join(dir, filexfer.SanitizeName(u.file.Name))
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return "securejingle could not make a spool file (" + policy.BoundDetail(err.Error()) + ")."
	}
	u.dir, u.path, u.out = dir, path, out
	t.byJingle[jk] = u
	if u.ibb != "" {
		t.byIBB[ik] = u
	}
	t.receiving[u.c]++
	t.receivingPeer[u.peer.Bare().String()]++
	t.total++
	t.reserved += u.size
	return ""
}

// dropUpload removes u from the table and its spool directory; wasHeld
// says whether it was counted as held rather than receiving.
func (f *Front) dropUpload(u *frontUpload, wasHeld bool) {
	t := f.uploads()
	now := f.g.now()
	u.mu.Lock()
	ibb := u.ibb
	u.mu.Unlock()
	t.mu.Lock()
	jk, ik := upKey{u.c, u.peer.String(), u.sid}, upKey{u.c, u.peer.String(), ibb}
	if t.byJingle[jk] == u {
		delete(t.byJingle, jk)
		if t.byIBB[ik] == u {
			delete(t.byIBB, ik)
		}
		if !wasHeld {
			t.receiving[u.c]--
			if t.receiving[u.c] <= 0 {
				delete(t.receiving, u.c)
			}
			t.unreceivePeer(u.peer)
			t.total--
		}
	}
	if wasHeld {
		t.held--
	}
	t.reserved -= u.size
	t.mu.Unlock()
	t.ended.add(jk.mark("jingle"), maxUploadMarks, uploadMarkTTL, now)
	t.ended.add(ik.mark("ibb"), maxUploadMarks, uploadMarkTTL, now)
	u.mu.Lock()
	if u.out != nil {
		u.out.Close()
		u.out = nil
	}
	u.mu.Unlock()
	if u.dir != "" {
		if err := os.RemoveAll(u.dir); err != nil {
			f.log.Warn("spool file of a local client's upload not removed", "dir", u.dir, "err", err)
		}
	}
}

// unreceivePeer counts one upgrade to peer less among those receiving
// (t.mu is held).
func (t *frontUploads) unreceivePeer(peer jid.JID) {
	b := peer.Bare().String()
	if t.receivingPeer[b]--; t.receivingPeer[b] <= 0 {
		delete(t.receivingPeer, b)
	}
}

// toHeld moves u from receiving to held in the table: the client may
// start another upload.
func (f *Front) toHeld(u *frontUpload) {
	t := f.uploads()
	u.mu.Lock()
	ibb := u.ibb
	u.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.receiving[u.c]--
	if t.receiving[u.c] <= 0 {
		delete(t.receiving, u.c)
	}
	t.unreceivePeer(u.peer)
	t.total--
	t.held++
	// The session's stanzas are no longer the upgrade's: ended marks
	// answer them from now on.
	delete(t.byJingle, upKey{u.c, u.peer.String(), u.sid})
	delete(t.byIBB, upKey{u.c, u.peer.String(), ibb})
	now := f.g.now()
	t.ended.add(upKey{u.c, u.peer.String(), u.sid}.mark("jingle"), maxUploadMarks, uploadMarkTTL, now)
	t.ended.add(upKey{u.c, u.peer.String(), ibb}.mark("ibb"), maxUploadMarks, uploadMarkTTL, now)
}

// touch tells run the client sent a stanza of the upgrade.
func (u *frontUpload) touch() {
	select {
	case u.last <- struct{}{}:
	default:
	}
}

// onIBB handles the client's IBB stanza m (local: open, data, close; raw
// the element) of the upgrade.
func (u *frontUpload) onIBB(m *Stanza, local string, raw []byte) {
	c := u.c
	u.touch()
	var el struct {
		Seq       string `xml:"seq,attr"`
		BlockSize string `xml:"block-size,attr"`
		Stanza    string `xml:"stanza,attr"`
		Text      string `xml:",chardata"`
	}
	if xml.Unmarshal(raw, &el) != nil {
		u.failIQ(m, "modify", "bad-request", jingle.ReasonFailedTransport, "your client's bytestream stanza was malformed")
		return
	}
	u.mu.Lock()
	phase, block := u.phase, u.block
	u.mu.Unlock()
	switch local {
	case "open":
		bs, err := strconv.ParseUint(el.BlockSize, 10, 16)
		switch {
		case phase != upAccepted:
			u.failIQ(m, "cancel", "unexpected-request", jingle.ReasonFailedTransport, "your client opened the bytestream twice")
		case err != nil || bs == 0 || int(bs) > block:
			u.failIQ(m, "modify", "resource-constraint", jingle.ReasonFailedTransport, fmt.Sprintf("your client's bytestream blocks are larger than the %d bytes accepted", block))
		default:
			u.mu.Lock()
			if u.phase != upAccepted {
				u.mu.Unlock() // failed meanwhile (run)
				return
			}
			u.phase, u.block = upOpen, int(bs)
			u.mu.Unlock()
			c.forward(c.uploadResult(m))
		}
	case "data":
		if phase != upOpen {
			u.failIQ(m, "cancel", "unexpected-request", jingle.ReasonFailedTransport, "your client sent bytes outside an open bytestream")
			return
		}
		if text := u.write(el.Seq, el.Text); text != "" {
			u.failIQ(m, "cancel", "not-acceptable", jingle.ReasonFailedTransport, text)
			return
		}
		if m.Kind == "iq" {
			c.forward(c.uploadResult(m))
		}
	case "close":
		if phase != upOpen {
			u.failIQ(m, "cancel", "unexpected-request", jingle.ReasonFailedTransport, "your client closed a bytestream that was not open")
			return
		}
		u.mu.Lock()
		got := u.got
		u.mu.Unlock()
		if got != u.size {
			u.failIQ(m, "cancel", "not-acceptable", jingle.ReasonFailedTransport, fmt.Sprintf("your client sent %d of the %d bytes it offered", got, u.size))
			return
		}
		c.forward(c.uploadResult(m))
		u.mu.Lock()
		if u.phase != upOpen {
			u.mu.Unlock() // failed while the result waited (run)
			return
		}
		u.phase = upChecksum
		ready := u.want != nil
		u.mu.Unlock()
		if ready {
			u.complete()
		} else {
			u.touch() // run now waits frontChecksumWait for a checksum
		}
	}
}

// write checks and spools one IBB data block; it returns why it failed.
func (u *frontUpload) write(seq, text string) string {
	n, err := strconv.ParseUint(seq, 10, 16)
	if err != nil {
		return "your client's bytestream block had no valid sequence number"
	}
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(text))
	if err != nil {
		return "your client's bytestream block was not valid base64"
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.phase != upOpen:
		return "the bytestream is no longer open"
	case uint16(n) != u.seq:
		return fmt.Sprintf("a bytestream block is missing (sequence %d, expected %d)", n, u.seq)
	case len(b) > u.block:
		return fmt.Sprintf("your client sent a block of %d bytes, more than the %d accepted", len(b), u.block)
	case u.got+uint64(len(b)) > u.size:
		return fmt.Sprintf("your client sent more bytes than the %d it offered", u.size)
	}
	if _, err := u.out.Write(b); err != nil {
		return "securejingle could not write its spool file (" + policy.BoundDetail(err.Error()) + ")"
	}
	u.h.Write(b)
	u.got += uint64(len(b))
	u.seq++
	return ""
}

// onJingle handles the client's Jingle request j (in m) in the session of
// the upgrade.
func (u *frontUpload) onJingle(m *Stanza, j *jingle.Jingle) {
	c := u.c
	u.touch()
	switch j.Action {
	case jingle.ActionSessionTerminate:
		c.forward(c.uploadResult(m))
		u.fail(jingle.ReasonCancel, "your client ended the session before securejingle had the whole file", false)
	case jingle.ActionSessionInfo:
		c.forward(c.uploadResult(m))
		for _, r := range j.Info {
			ck, ok, err := filexfer.ParseChecksum(r)
			if !ok || err != nil || ck.Name != u.cname {
				continue
			}
			for _, h := range ck.File.Hashes {
				if h.Algo != u.algo || !h.Acceptable() {
					continue
				}
				u.mu.Lock()
				if u.want == nil {
					u.want = h.Value
				} else if subtle.ConstantTimeCompare(u.want, h.Value) != 1 {
					u.mu.Unlock()
					u.fail(jingle.ReasonSecurityError, "your client's checksum does not match the hash it offered", true)
					return
				}
				ready := u.phase == upChecksum
				u.mu.Unlock()
				if ready {
					u.complete()
				}
			}
		}
	case jingle.ActionTransportInfo:
		// The client's candidate-used or candidate-error of a SOCKS5
		// offer: the front offered no candidate, so the only way on is
		// the client's transport-replace.
		c.forward(c.uploadResult(m))
	case jingle.ActionTransportReplace:
		u.onReplace(m, j)
	default:
		c.forward(c.uploadError(m, "cancel", "feature-not-implemented", "unsupported-info"))
	}
}

// onReplace takes the client's transport-replace j (in m) of a SOCKS5
// offer with IBB (XEP-0260 §2.4 fallback): the stream is registered and
// the front answers transport-accept. Anything else fails the upgrade.
func (u *frontUpload) onReplace(m *Stanza, j *jingle.Jingle) {
	c := u.c
	var ibb *filexfer.IBBTransport
	if len(j.Contents) == 1 && j.Contents[0].Name == u.cname {
		if fc, err := filexfer.ParseContent(&j.Contents[0]); err == nil && fc.IBB != nil {
			ibb = fc.IBB
		}
	}
	u.mu.Lock()
	ok := ibb != nil && u.s5b != "" && u.phase == upAccepted
	u.mu.Unlock()
	if !ok {
		u.failIQ(m, "cancel", "not-acceptable", jingle.ReasonFailedTransport, "your client replaced the transport with one securejingle does not take (only in-band bytestreams, once, instead of SOCKS5)")
		return
	}
	t := c.f.uploads()
	ik := upKey{c, u.peer.String(), ibb.SID}
	t.mu.Lock()
	taken := t.byIBB[ik] != nil || t.byJingle[upKey{c, u.peer.String(), u.sid}] != u
	if !taken {
		t.byIBB[ik] = u
	}
	t.mu.Unlock()
	if taken {
		u.failIQ(m, "cancel", "not-acceptable", jingle.ReasonFailedTransport, "your client's new bytestream id is already in use")
		return
	}
	u.mu.Lock()
	u.s5b, u.ibb, u.block = "", ibb.SID, min(int(ibb.BlockSize), frontUploadBlock)
	acc := *ibb
	acc.BlockSize = uint16(u.block)
	u.mu.Unlock()
	b, err := u.transportJingle(jingle.ActionTransportAccept, &acc)
	c.forward(c.uploadResult(m))
	if err == nil {
		c.forward(c.uploadIQ(u, b))
	}
}

// failIQ answers the client's m with an error and fails the upgrade.
func (u *frontUpload) failIQ(m *Stanza, typ, cond string, why jingle.ReasonCondition, text string) {
	if m.Kind == "iq" {
		u.c.forward(u.c.uploadError(m, typ, cond, ""))
	}
	u.fail(why, text, true)
}

// fail ends a receiving upgrade: the spool file is removed, the client
// gets a session-terminate with why (when tell) and a notice with text.
func (u *frontUpload) fail(why jingle.ReasonCondition, text string, tell bool) {
	u.mu.Lock()
	if u.phase >= upHeld {
		u.mu.Unlock()
		return
	}
	u.phase = upEnded
	u.mu.Unlock()
	u.abort(why, text, tell)
}

// abort is fail once the phase is upEnded (set by the caller).
func (u *frontUpload) abort(why jingle.ReasonCondition, text string, tell bool) {
	u.mu.Lock()
	u.why, u.text = why, text
	u.mu.Unlock()
	c := u.c
	c.f.dropUpload(u, false)
	close(u.done)
	c.f.g.log.Warn("local client's upload failed", "client", c.jid.String(), "to", u.peer.String(), "why", string(why), "detail", text)
	if tell {
		if b, err := (&jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: u.sid,
			Reason: &jingle.Reason{Condition: why, Text: policy.BoundDetail(text)}}).Marshal(); err == nil {
			c.forward(c.uploadIQ(u, b))
		}
	}
	msg := "The file " + u.shown() + " was not sent to " + policy.ShowJID(u.peer.Bare().String()) + ": " + text + ". Nothing was sent; the partial file securejingle held is removed."
	c.enqueue(c.f.notice(c.jid, msg))
	c.f.g.events.publish(Event{Kind: EventFrontFile, From: u.peer.Bare().String(), Detail: msg})
}

// shown is the file's name as the notices quote it.
func (u *frontUpload) shown() string { return strconv.Quote(filexfer.SanitizeName(u.file.Name)) }

// complete checks the hash of the whole file and hands it to run for the
// encrypted send.
func (u *frontUpload) complete() {
	u.mu.Lock()
	if u.phase != upChecksum {
		u.mu.Unlock()
		return
	}
	sum := u.h.Sum(nil)
	match := u.want == nil || subtle.ConstantTimeCompare(sum, u.want) == 1
	var err error
	if match {
		err = u.out.Sync()
		if cerr := u.out.Close(); err == nil {
			err = cerr
		}
		u.out = nil
		if err == nil && !u.file.Date.IsZero() {
			os.Chtimes(u.path, u.file.Date, u.file.Date)
		}
	}
	if !match || err != nil {
		u.phase = upEnded
		u.mu.Unlock()
		if !match {
			u.abort(jingle.ReasonSecurityError, "the file's "+u.algo+" hash does not match the one your client offered", true)
		} else {
			u.abort(jingle.ReasonFailedApplication, "securejingle could not write its spool file ("+policy.BoundDetail(err.Error())+")", true)
		}
		return
	}
	u.phase = upHeld
	u.mu.Unlock()
	c := u.c
	c.f.toHeld(u)
	close(u.done)
	if b, err := (&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: u.sid,
		Info: u.receivedInfo()}).Marshal(); err == nil {
		c.forward(c.uploadIQ(u, b))
	}
	if b, err := (&jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: u.sid,
		Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}}).Marshal(); err == nil {
		c.forward(c.uploadIQ(u, b))
	}
}

// receivedInfo is the XEP-0234 <received/> of the content.
func (u *frontUpload) receivedInfo() []jingle.Raw {
	r, err := (&filexfer.Received{Creator: u.cre, Name: u.cname}).Raw()
	if err != nil {
		return nil
	}
	return []jingle.Raw{r}
}

// run watches a receiving upgrade (idle timeout, the client going) and
// then, once the front holds the file, sends it encrypted and tells the
// client the outcome.
func (u *frontUpload) run() {
	c := u.c
	idle := c.f.uploadIdle()
	timer := time.NewTimer(idle)
	defer timer.Stop()
	start := time.Now()
	for {
		select {
		case <-u.done:
		case <-u.last:
			u.mu.Lock()
			wait := idle
			if u.phase == upChecksum {
				wait = min(idle, frontChecksumWait)
			}
			slow := u.phase != upChecksum && tooSlow(u.got, time.Since(start), idle)
			u.mu.Unlock()
			if slow {
				u.fail(jingle.ReasonTimeout, fmt.Sprintf("your client sends the file too slowly (less than %d KiB/s on average)", frontUploadMinRate>>10), true)
				continue
			}
			timer.Reset(wait)
			continue
		case <-timer.C:
			u.mu.Lock()
			waiting := u.phase == upChecksum
			u.mu.Unlock()
			if waiting {
				// No hash to check and none came: the encrypted
				// transfer's own hash covers the file end to end.
				u.complete()
				continue
			}
			u.fail(jingle.ReasonTimeout, fmt.Sprintf("your client sent nothing for %s", idle), true)
			continue
		case <-c.done:
			u.fail(jingle.ReasonGone, "your client disconnected", false)
			continue
		}
		break
	}
	u.mu.Lock()
	held := u.phase == upHeld
	u.mu.Unlock()
	if held {
		u.send()
	}
}

// tooSlow reports whether got bytes in elapsed is below
// frontUploadMinRate once the grace period (frontUploadGrace idle
// timeouts) passed.
func tooSlow(got uint64, elapsed, idle time.Duration) bool {
	grace := frontUploadGrace * idle
	if elapsed <= grace {
		return false
	}
	return float64(got) < frontUploadMinRate*(elapsed-grace).Seconds()
}

// uploadIdle is the idle timeout of upgrades (tests shorten it).
func (f *Front) uploadIdle() time.Duration {
	if f.upIdle > 0 {
		return f.upIdle
	}
	return frontUploadIdle
}

// send sends the held file encrypted, waits for the outcome (bounded by
// frontUploadHold and the gateway's stop) and removes the spool file.
func (u *frontUpload) send() {
	c, g := u.c, u.c.f.g
	defer c.f.dropUpload(u, true)
	peer := u.peer.Bare().String()
	name := u.shown()
	events, unsub := g.Subscribe(64)
	defer unsub()
	ctx, cancel := context.WithTimeout(g.runCtx, 2*fileSendTimeout)
	info, err := g.SendFiles(ctx, u.target, []string{u.path}, SendOptions{Desc: u.file.Desc})
	cancel()
	if err != nil {
		u.tell("securejingle could not send the file "+name+" to "+policy.ShowJID(peer)+": "+policy.BoundDetail(err.Error())+". Your client was told it was sent: securejingle had it, but it did not reach the contact; send it again.", nil)
		return
	}
	u.tell("securejingle has the file "+name+" ("+strconv.FormatUint(u.size, 10)+" bytes) from your client and offered it to "+policy.ShowJID(peer)+" end-to-end encrypted; you will be told when it is delivered.", &info)
	hold := time.NewTimer(frontUploadHold)
	defer hold.Stop()
	poll := time.NewTicker(frontUploadPoll)
	defer poll.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind != EventFile || ev.File == nil || ev.File.ID != info.ID {
				continue
			}
		case <-poll.C:
		case <-hold.C:
			g.CancelTransfer(context.Background(), info.ID)
		case <-g.stopped:
			u.tell("securejingle stopped before the file "+name+" reached "+policy.ShowJID(peer)+"; send it again.", nil)
			return
		}
		now, ok := g.Transfer(info.ID)
		if !ok {
			// Ended and already out of the table's history.
			u.tell("The encrypted transfer of the file "+name+" to "+policy.ShowJID(peer)+" ended, but its outcome is no longer known (see `securejingle files`).", nil)
			return
		}
		if !now.State.Ended() || (now.State == TransferFailed && now.Resumable) {
			continue
		}
		switch now.State {
		case TransferCompleted:
			u.tell(policy.ShowJID(peer)+" received the file "+name+" end-to-end encrypted, and its hash matched.", &now)
		case TransferDeclined:
			u.tell(policy.ShowJID(peer)+" declined the file "+name+joinDetail("", now.Detail)+".", &now)
		default:
			u.tell("The file "+name+" did not reach "+policy.ShowJID(peer)+" ("+string(now.State)+joinDetail("", now.Detail)+"); send it again.", &now)
		}
		return
	}
}

// tell gives the outcome text to the client that sent the file, or to
// every client when it has gone, and as an event.
func (u *frontUpload) tell(text string, info *TransferInfo) {
	f := u.c.f
	select {
	case <-u.c.done:
		f.deliverAlert(text)
	default:
		u.c.enqueue(f.notice(u.c.jid, text))
	}
	f.g.events.publish(Event{Kind: EventFrontFile, From: u.peer.Bare().String(), Detail: text, File: info})
}
