package gateway

// The Jingle session of a file transfer (XEP-0234 over XEP-0166), inside
// protected IQs to the peer's certified device the session is bound to.
// As for calls, the handler on the read loop parses, checks the binding
// and the session state, classifies for policy, answers at once and
// queues the work for the transfer's goroutine, which alone drives the
// session.

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// transfer is one file transfer: one Jingle session, one content per
// file. Its protocol runs on one goroutine (run), fed by q.
type transfer struct {
	g          *Gateway
	id         string
	outgoing   bool     // we send the bytes (an offer we made, a request we serve)
	request    bool     // the session is a request (XEP-0234 §6.2): the responder sends (file_request.go)
	keptIDs    []string // a request that continues kept partial files: the ids they are kept under
	peer       string   // bare JID
	full       jid.JID  // the bound device's full JID
	dev        uint32   // the bound device
	stranger   bool     // the peer is not on the roster (set by the table)
	transports []string // our order of preference

	ctx    context.Context
	cancel context.CancelFunc
	q      chan xferMsg
	done   chan struct{} // closed when run returned

	mu       sync.Mutex
	info     TransferInfo
	sess     *jingle.Session
	files    []*xferFile // content order
	dc       *dcState    // the data channel of the session, once negotiated
	ibbWaits []*ibbWait  // in-band streams expected, not yet taken
	deciding bool        // accept or decline was asked for
	over     bool        // the session ended here; run is returning
	// replaces counts the peer's transport-replaces, replaceWin and
	// replacesWin those of the current minute (allowReplace).
	replaces, replacesWin int
	replaceWin            time.Time
	lastPub               time.Time // last progress event
	rateAt                time.Time
	rateDone              uint64
}

// xferFile is one content of a transfer.
type xferFile struct {
	content string
	path    string // outgoing: the source
	file    filexfer.File
	sec     *filexfer.Security
	// transport is the transport name in use, ours and theirs the
	// elements exchanged for it.
	transport   string
	ours        jingle.Raw
	theirs      jingle.Raw
	offset      uint64 // outgoing: where the current attempt starts
	want        *filexfer.Hash
	sent        bool // outgoing: every byte is out and the checksum went
	received    bool // outgoing: the receiver confirmed it
	recv        *recvState
	infoCh      chan jingle.Raw // the peer's transport-info payloads (data channel)
	s5bCh       chan jingle.Raw // the same, of the SOCKS5 namespace
	description jingle.Raw      // the offered description, verbatim
	hist        *sentFile       // outgoing: the file's entry in the history of sent files
	srcStat     os.FileInfo     // a served request: the source as re-hashed; another file there is not sent
}

type xferAction int

const (
	xferAccept xferAction = iota + 1
	xferDecline
	xferCancel
	xferResume
)

type xferMsgKind int

const (
	xmStart  xferMsgKind = iota + 1 // incoming: limits, then the accepter
	xmAction                        // an API action (reply wanted)
	xmJingle                        // a Jingle request the handler validated
)

type xferMsg struct {
	kind   xferMsgKind
	action xferAction
	dir    string
	jingle *jingle.Jingle
	reason jingle.ReasonCondition // for a cancel: why (default cancel)
	detail string
	reply  chan error
}

// fileTestHooks let tests replace the transports. Set before Run.
type fileTestHooks struct {
	transport func(name string) fileTransport
	// mutateOffer rewrites our session-initiate before it is sent.
	mutateOffer func(j *jingle.Jingle)
	// s5bDial replaces filexfer.DialS5B; s5bListen the addresses of our
	// SOCKS5 listener.
	s5bDial   func(ctx context.Context, addr, dstaddr string) (net.Conn, error)
	s5bListen []string
	// pipe wraps each byte pipe a real transport made.
	pipe func(p io.ReadWriteCloser) io.ReadWriteCloser
	// pumpReported is told each report the pump handed over.
	pumpReported func(transfer string, p pumpReport)
}

var jingleName = xml.Name{Space: jingle.NS, Local: "jingle"}

// initFiles sets up the file channel: protected Jingle of file sessions
// goes to the file handler, the rest to the calls' handler.
func (g *Gateway) initFiles() {
	g.files = newFileTable()
	g.mu.Lock()
	calls := g.iqs[jingleName]
	g.mu.Unlock()
	g.HandleIQ(jingleName, func(req InnerIQ) ([]byte, error) {
		if g.isFileJingle(req.Payload) || calls == nil {
			return g.handleFileJingle(req)
		}
		return calls(req)
	})
}

// isFileJingle reports whether a protected Jingle request is about a file
// session: one of ours, or a session-initiate with a file description.
func (g *Gateway) isFileJingle(payload []byte) bool {
	j, err := jingle.Parse(payload)
	if err != nil {
		return false
	}
	if g.files.get(j.SID) != nil {
		return true
	}
	if j.Action != jingle.ActionSessionInitiate {
		return false
	}
	for _, c := range j.Contents {
		for _, r := range c.Other {
			if r.XMLName.Local == "description" && (r.XMLName.Space == filexfer.NSFileTransfer || r.XMLName.Space == "urn:xmpp:jingle:apps:file-transfer:4") {
				return true
			}
		}
	}
	return false
}

// newTransferID returns a fresh session id (a UUIDv4, as for calls).
func newTransferID() string { return newCallID() }

// validTransferID reports whether a peer's sid can be a transfer id:
// the local API names transfers in its paths and takes 1 to
// jingle.MaxIDLen printable ASCII characters other than '/' (Jingle
// itself takes any non-space characters, bidirectional overrides and
// line separators included).
func validTransferID(id string) bool {
	if id == "" || len(id) > jingle.MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}

func (g *Gateway) newTransfer(id string, outgoing bool, peer string, full jid.JID, dev uint32) *transfer {
	ctx, cancel := context.WithCancel(g.runCtx)
	x := &transfer{g: g, id: id, outgoing: outgoing, peer: peer, full: full, dev: dev,
		ctx: ctx, cancel: cancel, q: make(chan xferMsg, xferQueueSize), done: make(chan struct{})}
	dir := TransferIncoming
	if outgoing {
		dir = TransferOutgoing
	}
	tl, verified := g.trustOf(peer)
	x.info = TransferInfo{ID: id, Direction: dir, Peer: peer, PeerFull: full.String(), PeerDevice: dev,
		Trust: tl, Verified: verified, Suite: filexfer.CipherAES256GCM, Created: g.now()}
	return x
}

// maxFileSize is the configured limit.
func (g *Gateway) maxFileSize() uint64 {
	if g.cfg.MaxFileSize > 0 {
		return g.cfg.MaxFileSize
	}
	return DefaultMaxFileSize
}

// fileTarget picks the peer device a transfer goes to: the certified
// device of the full JID given, or the first online certified device of
// the account.
func (g *Gateway) fileTarget(ctx context.Context, to jid.JID) (jid.JID, uint32, error) {
	bare := to.Bare().String()
	if to.Equal(g.JID()) {
		return jid.JID{}, 0, fmt.Errorf("%w: files go to another device than this one", ErrTransferState)
	}
	if len(g.certifiedDevices(bare)) == 0 && !g.onRoster(bare) && bare != g.bare() {
		g.DiscoverBundles(ctx, to.Bare()) // a stranger: their bundles may be in PEP
	}
	cert := map[uint32]bool{}
	for _, d := range g.certifiedDevices(bare) {
		cert[d.ID] = true
	}
	if r := to.Resourcepart(); r != "" {
		if dev, ok := g.deviceOf(to); ok && cert[dev] {
			return to, dev, nil
		}
		return jid.JID{}, 0, fmt.Errorf("%w (%s): its resource %s is not online with a certified securejingle device", ErrPeerNotCertified, policy.ShowJID(bare), r)
	}
	rs := g.Contacts(bare)
	names := make([]string, 0, len(rs))
	for r := range rs {
		names = append(names, r)
	}
	// The device's own resource first: a gateway-mode daemon's local
	// clients advertise its device too (§22.5), but only the daemon
	// answers for it.
	front := map[string]bool{}
	for _, r := range names {
		if full, err := to.WithResource(r); err == nil {
			front[r] = g.frontResource(full)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if front[names[i]] != front[names[j]] {
			return !front[names[i]]
		}
		return names[i] < names[j]
	})
	for _, r := range names {
		full, err := to.WithResource(r)
		if err != nil || full.Equal(g.JID()) {
			continue
		}
		if dev := rs[r]; dev != 0 && cert[dev] {
			return full, dev, nil
		}
	}
	return jid.JID{}, 0, fmt.Errorf("%w (%s): none of its certified devices is online to receive files", ErrPeerNotCertified, policy.ShowJID(bare))
}

func (g *Gateway) sendFiles(ctx context.Context, to jid.JID, paths []string, o SendOptions) (TransferInfo, error) {
	if !g.eng.Certified() {
		return TransferInfo{}, ErrDeviceNotCertified
	}
	g.mu.Lock()
	online := g.sess != nil
	g.mu.Unlock()
	if !online {
		return TransferInfo{}, ErrOffline
	}
	switch {
	case len(paths) == 0:
		return TransferInfo{}, fmt.Errorf("%w: no file to send", ErrTransferState)
	case len(paths) > jingle.MaxContents:
		return TransferInfo{}, fmt.Errorf("%w: %d files in one transfer, at most %d: send them in several", ErrTransferState, len(paths), jingle.MaxContents)
	case len(o.Desc) > filexfer.MaxFileDescLen:
		return TransferInfo{}, fmt.Errorf("%w: the description is longer than %d bytes", ErrTransferState, filexfer.MaxFileDescLen)
	}
	if err := validTransports(o.Transports); err != nil {
		return TransferInfo{}, err
	}
	order := g.transportOrder(o.Transports)
	if len(order) == 0 {
		return TransferInfo{}, fmt.Errorf("%w: none of the transports %v is available here", ErrTransferState, o.Transports)
	}
	var files []*xferFile
	for i, p := range paths {
		f, err := g.offerFile(p, i, o.Desc)
		if err != nil {
			return TransferInfo{}, err
		}
		files = append(files, f)
	}
	full, dev, err := g.fileTarget(ctx, to)
	if err != nil {
		return TransferInfo{}, err
	}
	bare := full.Bare().String()
	f := g.peerFacts(policy.KindFileTransfer, policy.DirectionOutgoing, bare)
	f.PeerDevice, f.Protection, f.Signaling = dev, policy.ProtectionE2EBound, policy.SignalingProtected
	if d := g.decide(ctx, f); d.Action == policy.ActionRefuse {
		return TransferInfo{}, &TransferRefusedError{Rule: d.Rule, Message: d.Message}
	}
	x := g.newTransfer(newTransferID(), true, bare, full, dev)
	x.transports = order
	x.files = files
	for _, xf := range files {
		x.info.Files = append(x.info.Files, FileInfo{Name: xf.file.Name, Size: xf.file.Size, MediaType: xf.file.MediaType,
			Desc: xf.file.Desc, Date: xf.file.Date, Path: xf.path, State: TransferOffered})
		x.info.BytesTotal += xf.file.Size
	}
	x.info.State = TransferOffered
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: x.id, Initiator: g.JID().String()}
	for _, xf := range files {
		// The first transport of the order that can make an offer (a
		// proxy may be missing, or an address to listen on).
		var c jingle.Content
		for _, name := range order {
			xf.transport = name
			if c, err = x.offerContent(ctx, xf); err == nil {
				break
			}
			g.log.Info("transport not offered", "transport", name, "err", err)
		}
		if err != nil {
			x.cancel()
			return TransferInfo{}, err
		}
		j.Contents = append(j.Contents, c)
	}
	x.info.Transport = files[0].transport
	if h := g.fileHooks.mutateOffer; h != nil {
		h(j)
	}
	if x.sess, err = jingle.NewInitiator(g.JID().String(), full.String(), j, g.now(), jingle.WithPendingTimeout(filePendingTimeout)); err != nil {
		x.cancel()
		return TransferInfo{}, err
	}
	if err := g.files.add(x, !g.onRoster(bare)); err != nil {
		x.cancel()
		return TransferInfo{}, err
	}
	if !g.files.begin() {
		g.files.remove(x.id)
		x.cancel()
		return TransferInfo{}, ErrOffline
	}
	// Remembered before the offer goes out (the pump may start as soon
	// as the receiver accepts), and kept when it fails: the peer may
	// have it all the same.
	g.files.sent.offered(x)
	go x.run()
	sctx, cancel := context.WithTimeout(ctx, fileSendTimeout)
	defer cancel()
	if _, err := x.sendJingleCtx(sctx, j); err != nil {
		why, detail := fileFailReason(err)
		x.post(xferMsg{kind: xmAction, action: xferCancel, reason: why, detail: detail})
		<-x.done
		return x.snapshot(), fmt.Errorf("gateway: the offer was not accepted by %s: %s", full, detail)
	}
	x.publish()
	return x.snapshot(), nil
}

// offerFile reads what the offer says about one file.
func (g *Gateway) offerFile(p string, i int, desc string) (*xferFile, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransferState, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrTransferState, p)
	}
	if uint64(fi.Size()) > g.maxFileSize() {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrFileTooLarge, p, fi.Size(), g.maxFileSize())
	}
	name := filepath.Base(p)
	if len(name) > filexfer.MaxFileNameLen {
		return nil, fmt.Errorf("%w: the name of %s is longer than %d bytes: rename it", ErrTransferState, p, filexfer.MaxFileNameLen)
	}
	key := make([]byte, filexfer.SecurityKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	content := fmt.Sprintf("file-%d", i)
	xf := &xferFile{content: content, path: p,
		sec: filexfer.NewSecurity(content, filexfer.CipherAES256GCM, key, 0),
		file: filexfer.File{Name: name, Size: uint64(fi.Size()), HasSize: true, Date: fi.ModTime().UTC().Truncate(time.Second),
			Desc: desc, Range: &filexfer.Range{}, HashesUsed: []string{"sha-256"}},
	}
	clear(key)
	if mt := mime.TypeByExtension(filepath.Ext(name)); mt != "" && len(mt) <= filexfer.MaxMediaTypeLen {
		if t, _, err := mime.ParseMediaType(mt); err == nil {
			xf.file.MediaType = t
		}
	}
	return xf, nil
}

// env is the transport environment of one content.
func (x *transfer) env(xf *xferFile) *transportEnv {
	return &transportEnv{g: x.g, sid: x.id, content: xf.content, initiator: x.initiator(), sender: x.outgoing,
		local: x.g.JID(), peer: x.full, info: xf.infoCh, s5bInfo: xf.s5bCh,
		sendInfo: func(ctx context.Context, tr jingle.Raw) error {
			_, err := x.sendJingleCtx(ctx, &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: x.id,
				Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: xf.content, Other: []jingle.Raw{tr}}}})
			return err
		}}
}

// offerContent builds the content of one file for the session-initiate.
func (x *transfer) offerContent(ctx context.Context, xf *xferFile) (jingle.Content, error) {
	d := &filexfer.Description{File: xf.file}
	dr, err := d.Raw()
	if err != nil {
		return jingle.Content{}, err
	}
	sr, err := xf.sec.Raw()
	if err != nil {
		return jingle.Content{}, err
	}
	xf.infoCh, xf.s5bCh = make(chan jingle.Raw, transportInfoBuffer), make(chan jingle.Raw, transportInfoBuffer)
	t := x.driver(xf.transport)
	if t == nil {
		return jingle.Content{}, fmt.Errorf("%w: %s", errTransportUnavailable, xf.transport)
	}
	tr, err := t.offer(ctx, x.env(xf))
	if err != nil {
		return jingle.Content{}, fmt.Errorf("gateway: the %s transport: %w", xf.transport, err)
	}
	xf.ours, xf.description = tr, dr
	return jingle.Content{Creator: jingle.CreatorInitiator, Name: xf.content, Senders: x.senders(),
		Other: []jingle.Raw{dr, sr, tr}}, nil
}

// fileFailReason explains a failed signaling request.
func fileFailReason(err error) (jingle.ReasonCondition, string) {
	var pe *ProtectedError
	var iqe *IQError
	switch {
	case errors.As(err, &pe):
		if jc, ok := jingle.ParseErrorCondition(pe.Payload); ok && jc == jingle.ErrSecurityRequired {
			return jingle.ReasonSecurityError, "the peer's device refused the transfer as not secure enough (its policy)"
		}
		return jingle.ReasonFailedApplication, "the peer's device refused the request: " + policy.BoundDetail(string(pe.Payload))
	case errors.As(err, &iqe):
		return jingle.ReasonConnectivityError, "the peer's server answered with an error (" + iqe.Condition() + "): is the device still online?"
	case errors.Is(err, ErrBadResponse):
		return jingle.ReasonSecurityError, "the peer's response failed its end-to-end checks: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return jingle.ReasonTimeout, "the peer's device did not answer in time: is it still online?"
	}
	return jingle.ReasonConnectivityError, err.Error()
}

// handleFileJingle is the InnerIQHandler of protected Jingle of file
// sessions. It runs on the read loop.
func (g *Gateway) handleFileJingle(req InnerIQ) ([]byte, error) {
	if req.Type != "set" || req.Peer == nil {
		return nil, jingleError("bad-request", "")
	}
	j, err := jingle.Parse(req.Payload)
	if err == nil {
		err = j.Validate()
	}
	if err != nil {
		g.log.Info("bad protected file Jingle", "from", req.From.String(), "err", err)
		return nil, jingleError("bad-request", "")
	}
	x := g.files.get(j.SID)
	if x == nil {
		if j.Action != jingle.ActionSessionInitiate {
			return nil, errUnknownSession()
		}
		if !validTransferID(j.SID) {
			g.log.Info("file session with a sid the API cannot name refused", "from", req.From.String())
			return nil, jingleError("bad-request", "")
		}
		return g.fileOffer(req, j)
	}
	if req.Peer.JID != x.peer || req.From.Bare().String() != x.peer || !req.From.Equal(x.full) || req.Peer.ID != x.dev {
		// The session is bound to the device it was set up with.
		f := g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, req.From.Bare().String())
		f.Protection, f.Signaling, f.StanzaType, f.PeerDevice = policy.ProtectionE2EUnverified, policy.SignalingProtected, "set", req.Peer.ID
		g.fileAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "file-binding",
			Message: "File transfer signaling for a transfer with another device arrived from " + policy.ShowJID(req.From.Bare().String()) + "; it was refused.",
			Detail:  fmt.Sprintf("%s for session %s from %s (device %d), bound to %s device %d", j.Action, j.SID, req.From, req.Peer.ID, x.full, x.dev)})
		return nil, errUnknownSession()
	}
	x.mu.Lock()
	over := x.over
	x.mu.Unlock()
	if over {
		if j.Action == jingle.ActionSessionTerminate {
			return nil, nil // a goodbye after we finished
		}
		return nil, errUnknownSession()
	}
	switch j.Action {
	case jingle.ActionContentAdd, jingle.ActionContentAccept, jingle.ActionContentReject, jingle.ActionContentRemove,
		jingle.ActionContentModify, jingle.ActionDescriptionInfo, jingle.ActionSecurityInfo:
		// A transfer's files are fixed by its offer: none is added,
		// removed or changed (a file is cancelled with the transfer).
		return nil, jingleError("feature-not-implemented", "")
	}
	switch j.Action {
	case jingle.ActionTransportReplace, jingle.ActionTransportAccept, jingle.ActionTransportReject:
		// A transport is replaced only in an accepted session: before
		// the accept nobody decided to receive (and nothing is set up
		// to receive with).
		x.mu.Lock()
		pending := x.sess.State() == jingle.StatePending
		x.mu.Unlock()
		if pending {
			return nil, errOutOfOrder()
		}
		if j.Action == jingle.ActionTransportReplace {
			if why := x.allowReplace(g.now()); why != "" {
				g.log.Info("transport-replace refused", "transfer", x.id, "from", req.From.String(), "why", why)
				return nil, jingleError("resource-constraint", "")
			}
		}
	}
	switch j.Action {
	case jingle.ActionSessionAccept, jingle.ActionTransportReplace, jingle.ActionTransportAccept:
		if j.Action == jingle.ActionSessionAccept && !x.initiator() {
			break // the session machine refuses it
		}
		if err := checkDataChannelFingerprints(j); err != nil {
			g.dcFingerprintAlert(x.peer, x.dev, x.outgoing, j, "A file transfer with", "ended", err)
			x.post(xferMsg{kind: xmAction, action: xferCancel, reason: jingle.ReasonSecurityError,
				detail: "the peer's device signaled unusable DTLS fingerprints for the data channel in its " + string(j.Action) + " (" + err.Error() + "); the transfer was ended"})
			return nil, errSecurity()
		}
		ok, malformed := x.classifyUpdate(j)
		if malformed {
			return nil, jingleError("bad-request", "")
		}
		if !ok {
			x.post(xferMsg{kind: xmAction, action: xferCancel, reason: jingle.ReasonSecurityError,
				detail: "the peer's device changed the transfer's security in its " + string(j.Action) + "; the transfer was ended"})
			return nil, errSecurity()
		}
	case jingle.ActionTransportInfo:
		// Delivered to the content's transport below, after the session
		// machine checked it.
	}
	x.mu.Lock()
	_, err = x.sess.Receive(req.From.String(), j)
	x.mu.Unlock()
	var ae *jingle.ActionError
	switch {
	case errors.As(err, &ae):
		return nil, jingleError(ae.Condition, ae.Jingle)
	case err != nil:
		return nil, err
	}
	if j.Action == jingle.ActionTransportInfo {
		x.deliverInfo(j)
		return nil, nil
	}
	if j.Action == jingle.ActionSessionInfo && len(j.Info) == 0 {
		return nil, nil // ping
	}
	if !x.post(xferMsg{kind: xmJingle, jingle: j}) {
		return nil, jingleError("resource-constraint", "")
	}
	return nil, nil
}

// allowReplace counts a transport-replace of the peer and says why it is
// refused ("" when it is not): more than maxPeerReplaces in the
// transfer, or than maxPeerReplacesPerMinute in a minute.
func (x *transfer) allowReplace(now time.Time) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if now.Sub(x.replaceWin) >= time.Minute || now.Before(x.replaceWin) {
		x.replaceWin, x.replacesWin = now, 0
	}
	switch {
	case x.replaces >= maxPeerReplaces:
		return fmt.Sprintf("more than %d transport replacements in one transfer", maxPeerReplaces)
	case x.replacesWin >= maxPeerReplacesPerMinute:
		return fmt.Sprintf("more than %d transport replacements in a minute", maxPeerReplacesPerMinute)
	}
	x.replaces++
	x.replacesWin++
	return ""
}

// deliverInfo hands transport-info payloads to their contents'
// transports, dropping what a full buffer cannot take. A content's
// payloads of the SOCKS5 namespace go to their own channel, so that a
// data channel of an earlier attempt (still trickling) never takes them.
func (x *transfer) deliverInfo(j *jingle.Jingle) {
	for i := range j.Contents {
		c := &j.Contents[i]
		tr, ok := transportRaw(c)
		if !ok {
			continue
		}
		x.mu.Lock()
		var ch chan jingle.Raw
		for _, xf := range x.files {
			if xf.content == c.Name {
				ch = xf.infoCh
				if tr.XMLName.Space == filexfer.NSS5B {
					ch = xf.s5bCh
				}
			}
		}
		x.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case ch <- tr:
		default:
			x.g.log.Info("transport-info dropped: buffer full", "transfer", x.id, "content", c.Name)
		}
	}
}

// fileOffer handles a protected session-initiate of a file transfer: it
// classifies the offer, asks policy, and registers a pending transfer.
func (g *Gateway) fileOffer(req InnerIQ, j *jingle.Jingle) ([]byte, error) {
	bare := req.From.Bare().String()
	if req.Peer.JID != bare {
		return nil, jingleError("bad-request", "")
	}
	if g.calls.get(j.SID) != nil {
		return nil, errOutOfOrder()
	}
	cl, err := filexfer.ClassifyOffer(j, filexfer.Arrival{Protected: true, Certified: g.eng.CheckDevice(req.Peer.Device) == nil})
	if err != nil {
		g.log.Info("bad file offer", "from", req.From.String(), "err", err)
		return nil, jingleError("bad-request", "")
	}
	if len(cl.Contents) != len(j.Contents) {
		return nil, jingleError("feature-not-implemented", "") // files mixed with other applications
	}
	requests := 0
	for _, cc := range cl.Contents {
		if cc.Request {
			requests++
		}
	}
	if requests != 0 && requests != len(cl.Contents) {
		return nil, jingleError("feature-not-implemented", "") // offers and requests in one session
	}
	if err := checkDataChannelFingerprints(j); err != nil {
		what := "An offer of files from"
		if requests != 0 {
			what = "A request for files from"
		}
		g.dcFingerprintAlert(bare, req.Peer.ID, false, j, what, "refused", err)
		return nil, errSecurity()
	}
	if !g.decideOffer(req, j, cl) {
		return nil, errSecurity()
	}
	if requests != 0 {
		return g.fileRequest(req, j)
	}
	x := g.newTransfer(j.SID, false, bare, req.From, req.Peer.ID)
	x.transports = g.transportOrder(nil)
	x.info.State = TransferPending
	for i := range j.Contents {
		c := &j.Contents[i]
		fc, err := filexfer.ParseContent(c)
		if err != nil {
			x.cancel()
			return nil, jingleError("bad-request", "")
		}
		xf := &xferFile{content: c.Name, file: fc.Description.File, sec: fc.Security, infoCh: make(chan jingle.Raw, transportInfoBuffer),
			s5bCh: make(chan jingle.Raw, transportInfoBuffer), transport: transportName(fc)}
		xf.theirs, _ = transportRaw(c)
		for _, r := range c.Other {
			if r.XMLName.Space == filexfer.NSFileTransfer && r.XMLName.Local == "description" {
				xf.description = r
			}
		}
		if h, ok := filexfer.StrongestHash(fc.Description.File.Hashes); ok {
			xf.want = &h
		}
		x.files = append(x.files, xf)
		name := filexfer.SanitizeName(xf.file.Name)
		x.info.Files = append(x.info.Files, FileInfo{Name: name, Size: xf.file.Size, MediaType: xf.file.MediaType,
			Desc: xf.file.Desc, Date: xf.file.Date, Hash: hashString(xf.want), State: TransferPending})
		x.info.BytesTotal += xf.file.Size
	}
	if len(x.files) > 0 {
		x.info.Transport = x.files[0].transport
		x.info.Suite = x.files[0].sec.Suite()
	}
	return g.startIncoming(x, req, j, bare, "offer")
}

// startIncoming registers an incoming transfer (an offer, or a request
// we serve) as the responder of its session and starts its goroutine;
// what names it in the log.
func (g *Gateway) startIncoming(x *transfer, req InnerIQ, j *jingle.Jingle, bare, what string) ([]byte, error) {
	var err error
	x.sess, err = jingle.NewResponder(g.JID().String(), req.From.String(), j, g.now(), jingle.WithPendingTimeout(filePendingTimeout))
	var ae *jingle.ActionError
	if errors.As(err, &ae) {
		x.cancel()
		return nil, jingleError(ae.Condition, ae.Jingle)
	} else if err != nil {
		x.cancel()
		return nil, err
	}
	if err := g.files.add(x, !g.onRoster(bare)); err != nil {
		x.cancel()
		g.log.Info("file "+what+" refused", "from", req.From.String(), "err", err)
		if errors.Is(err, ErrTransferState) {
			return nil, errOutOfOrder() // the sid is one we still answer to
		}
		return nil, jingleError("resource-constraint", "")
	}
	if !g.files.begin() {
		g.files.remove(x.id)
		x.cancel()
		return nil, jingleError("resource-constraint", "")
	}
	x.post(xferMsg{kind: xmStart})
	go x.run()
	return nil, nil
}

// hashString formats a hash for FileInfo.Hash.
func hashString(h *filexfer.Hash) string {
	if h == nil {
		return ""
	}
	return h.Algo + ":" + fmt.Sprintf("%x", h.Value)
}

// sendJingleCtx sends j to the bound device in a protected IQ, through
// the session machine (which the session-initiate started).
func (x *transfer) sendJingleCtx(ctx context.Context, j *jingle.Jingle) ([]byte, error) {
	b, err := j.Marshal()
	if err != nil {
		return nil, err
	}
	if j.Action != jingle.ActionSessionInitiate {
		x.mu.Lock()
		_, err = x.sess.Send(j)
		x.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	resp, peer, err := x.g.SendProtectedIQ(ctx, x.full, "set", b, false)
	if err == nil && (peer == nil || peer.JID != x.peer || peer.ID != x.dev) {
		err = fmt.Errorf("%w: response from another device", ErrBadResponse)
	}
	if err != nil {
		if j.Action == jingle.ActionTransportReplace {
			// The peer did not take it (or we cannot tell): it is not
			// pending, so a later resume can go out. An answer to it
			// that still comes is refused as out of order.
			x.mu.Lock()
			x.sess.WithdrawReplace(j)
			x.mu.Unlock()
		}
		return nil, err
	}
	return resp, nil
}

func (x *transfer) sendJingle(j *jingle.Jingle) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), fileSendTimeout)
	defer cancel()
	_, err := x.sendJingleCtx(ctx, j)
	return err
}

// post queues m for the transfer's goroutine without blocking; false when
// the queue is full or the transfer is over.
func (x *transfer) post(m xferMsg) bool {
	select {
	case <-x.done:
		return false
	default:
	}
	select {
	case x.q <- m:
		return true
	default:
		x.g.log.Warn("transfer queue full", "transfer", x.id)
		return false
	}
}

// postWait queues m and waits for the goroutine's answer.
func (x *transfer) postWait(ctx context.Context, m xferMsg) error {
	m.reply = make(chan error, 1)
	select {
	case x.q <- m:
	case <-x.done:
		return ErrTransferState
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-m.reply:
		return err
	case <-x.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (x *transfer) isOver() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.over
}

func (x *transfer) snapshotState() TransferState {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.info.State
}

func (x *transfer) snapshot() TransferInfo {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.snapshotLocked()
}

func (x *transfer) snapshotLocked() TransferInfo {
	in := x.info
	in.Files = slices.Clone(in.Files)
	return in
}

// publish sends the current snapshot as an EventFile.
func (x *transfer) publish() {
	x.mu.Lock()
	snap := x.snapshotLocked()
	x.lastPub = time.Now()
	x.mu.Unlock()
	x.g.events.publish(Event{Kind: EventFile, From: x.peer, File: &snap, Detail: snap.Detail})
}

// update changes the transfer's info and publishes it.
func (x *transfer) update(f func(in *TransferInfo)) {
	x.mu.Lock()
	f(&x.info)
	if x.info.State != TransferFailed {
		x.info.Resumable = false
	}
	x.mu.Unlock()
	x.publish()
}

// setState moves the transfer and its unfinished files to st.
func (x *transfer) setState(st TransferState, detail string) {
	x.update(func(in *TransferInfo) {
		in.State, in.Resumable = st, false
		if detail != "" {
			in.Detail = detail
		}
		if st.Ended() && in.Ended.IsZero() {
			in.Ended = x.g.now()
		}
		for i := range in.Files {
			if in.Files[i].State != TransferCompleted {
				in.Files[i].State = st
			}
		}
	})
}

func (g *Gateway) acceptTransfer(ctx context.Context, id, dir string) error {
	x := g.files.get(id)
	if x == nil {
		return ErrUnknownTransfer
	}
	x.mu.Lock()
	if x.over || x.outgoing || x.deciding || x.info.State != TransferPending {
		x.mu.Unlock()
		return ErrTransferState
	}
	x.deciding = true
	x.mu.Unlock()
	err := x.postWait(ctx, xferMsg{kind: xmAction, action: xferAccept, dir: dir})
	if err != nil {
		// The offer stays pending (no space, no directory, or we gave
		// up waiting): it can be accepted elsewhere or declined. The
		// goroutine checks the session's state, so a late accept
		// still in the queue cannot accept twice.
		x.undecide()
	}
	return err
}

// undecide clears deciding while the offer is still pending.
func (x *transfer) undecide() {
	x.mu.Lock()
	if !x.over && x.info.State == TransferPending {
		x.deciding = false
	}
	x.mu.Unlock()
}

func (g *Gateway) transferAction(ctx context.Context, id string, a xferAction) error {
	x := g.files.get(id)
	if x == nil {
		return ErrUnknownTransfer
	}
	x.mu.Lock()
	st, over := x.info.State, x.over
	ok := !over
	switch a {
	case xferDecline:
		ok = ok && !x.outgoing && !x.deciding && st == TransferPending
		if ok {
			x.deciding = true
		}
	case xferCancel:
		ok = ok && (!st.Ended() || st == TransferFailed)
	case xferResume:
		ok = ok && st == TransferFailed
	}
	x.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w (%s)", ErrTransferState, st)
	}
	return x.postWait(ctx, xferMsg{kind: xmAction, action: a})
}
