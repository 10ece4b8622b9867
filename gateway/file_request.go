package gateway

// Requests (XEP-0234 §6.2) and resume across sessions (docs/protocol.md,
// file transfer, requests). A request is a session-initiate whose
// contents' senders is the responder; its security element carries the
// requester's key. This gateway serves a request only for a file it
// offered to the same peer account, recently, that is unchanged
// (re-hashed), from the request's <range offset/>; anything else is
// declined. It sends requests to continue a failed incoming transfer
// whose session ended: the verified prefix of each unfinished file is kept
// (bounded), and ResumeTransfer asks the device that offered the files for
// the rest, in a new session with a fresh key, from the kept offset.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// Bounds of requests and kept partial files (implementation constants).
const (
	maxSentHistory     = 64                 // files offered, remembered for requests, all peers
	sentHistoryKeep    = 7 * 24 * time.Hour // a file offered longer ago is not served
	maxKeptTransfers   = 8                  // failed incoming transfers whose verified prefixes are kept
	partialKeep        = 24 * time.Hour     // how long a kept prefix waits for a resume
	maxKeptIDs         = 8                  // ids a kept transfer answers to (the original and its resumes)
	fileRequestTimeout = 10 * time.Minute   // our request → the sender's answer (it re-hashes the file first)
)

// initiator reports whether we initiated the transfer's session: we
// offered, or we requested.
func (x *transfer) initiator() bool { return x.outgoing != x.request }

// senders is the senders attribute of the transfer's contents (their
// creator is always the initiator).
func (x *transfer) senders() jingle.Senders {
	if x.request {
		return jingle.SendersResponder
	}
	return jingle.SendersInitiator
}

// senderRole is the role of the byte sender in the stream parameters.
func (x *transfer) senderRole() string {
	if x.request {
		return filexfer.SenderResponder
	}
	return filexfer.SenderInitiator
}

// --- The history of sent files -------------------------------------------

// sentFile is a file this gateway offered to a peer account. The history's
// mutex guards n and sum.
type sentFile struct {
	peer string    // bare JID it was offered to
	path string    // absolute path of the source
	name string    // the name offered
	size uint64    // the size offered
	date time.Time // its modification time when offered, to the second
	at   time.Time // when it was offered
	// n and sum: the sha-256 of the bytes [0, n) read and sent by the
	// longest attempt so far (the whole file once n = size and sum is
	// set).
	n   uint64
	sum []byte
}

// sentHistory is the bounded, in-memory history of offered files.
type sentHistory struct {
	mu    sync.Mutex
	files []*sentFile // oldest first
}

// offered records the files of an offer that went out.
func (h *sentHistory) offered(x *transfer) {
	now := x.g.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneLocked(now)
	for _, xf := range x.files {
		p, err := filepath.Abs(xf.path)
		if err != nil {
			continue
		}
		e := &sentFile{peer: x.peer, path: p, name: xf.file.Name, size: xf.file.Size, date: xf.file.Date, at: now}
		xf.hist = e
		h.files = append(h.files, e)
	}
	if over := len(h.files) - maxSentHistory; over > 0 {
		h.files = slices.Delete(h.files, 0, over)
	}
}

func (h *sentHistory) pruneLocked(now time.Time) {
	h.files = slices.DeleteFunc(h.files, func(e *sentFile) bool { return now.Sub(e.at) > sentHistoryKeep })
}

// attempt records what an attempt of e read and sent (h counted it).
func (h *sentHistory) attempt(e *sentFile, c *countingHash) {
	if e == nil {
		return
	}
	sum := c.Sum(nil)
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.n >= e.n {
		e.n, e.sum = c.n, sum
	}
}

// sentRecord is a copy of a history entry, for checking it off the lock.
type sentRecord struct {
	e     *sentFile
	path  string
	name  string
	size  uint64
	date  time.Time
	n     uint64
	sum   []byte
	whole bool // sum is the whole file's
}

// find returns the newest entry of peer for the file named name of size
// bytes, offered less than sentHistoryKeep ago; with want, only one whose
// known hash is want (or whose hash is not known yet).
func (h *sentHistory) find(peer, name string, size uint64, want *filexfer.Hash, now time.Time) (sentRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneLocked(now)
	for i := len(h.files) - 1; i >= 0; i-- {
		e := h.files[i]
		if e.peer != peer || e.name != name || e.size != size {
			continue
		}
		whole := e.n == e.size && e.sum != nil
		if want != nil && whole && subtle.ConstantTimeCompare(want.Value, e.sum) != 1 {
			continue
		}
		return e.recordLocked(), true
	}
	return sentRecord{}, false
}

// record returns a copy of e.
func (h *sentHistory) record(e *sentFile) sentRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return e.recordLocked()
}

func (e *sentFile) recordLocked() sentRecord {
	return sentRecord{e: e, path: e.path, name: e.name, size: e.size, date: e.date, n: e.n, sum: slices.Clone(e.sum),
		whole: e.n == e.size && e.sum != nil}
}

// countingHash is a sha-256 that counts what it was fed.
type countingHash struct {
	hash.Hash
	n uint64
}

func newCountingHash() *countingHash { return &countingHash{Hash: sha256.New()} }

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	return c.Hash.Write(p)
}

// errSourceChanged: the file at the path offered is not the one offered.
var errSourceChanged = errors.New("gateway: the file changed since it was offered")

// verifySource re-hashes the source of rec before it is served: the
// same size; the bytes sent before, [0, n), hash the same (when nothing
// was sent, the modification time is the one offered); with want, the
// whole file hashes to it. It returns the whole file's sha-256 and what
// the file was when hashed.
func verifySource(ctx context.Context, rec sentRecord, want *filexfer.Hash) (filexfer.Hash, os.FileInfo, error) {
	f, err := os.Open(rec.path)
	if err != nil {
		return filexfer.Hash{}, nil, fmt.Errorf("%w: %s cannot be read any more (%v)", errSourceChanged, rec.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return filexfer.Hash{}, nil, fmt.Errorf("%w: %v", errSourceChanged, err)
	case !fi.Mode().IsRegular():
		return filexfer.Hash{}, nil, fmt.Errorf("%w: %s is no longer a regular file", errSourceChanged, rec.path)
	case uint64(fi.Size()) != rec.size:
		return filexfer.Hash{}, nil, fmt.Errorf("%w: %s is now %d bytes, %d were offered", errSourceChanged, rec.path, fi.Size(), rec.size)
	case rec.n == 0 && !fi.ModTime().UTC().Truncate(time.Second).Equal(rec.date):
		return filexfer.Hash{}, nil, fmt.Errorf("%w: %s was modified after it was offered", errSourceChanged, rec.path)
	}
	h := sha256.New()
	if err := hashRange(ctx, h, f, 0, rec.n); err != nil {
		return filexfer.Hash{}, nil, err
	}
	if rec.n > 0 && subtle.ConstantTimeCompare(h.Sum(nil), rec.sum) != 1 {
		return filexfer.Hash{}, nil, fmt.Errorf("%w: the first %d bytes of %s, sent before, now hash differently", errSourceChanged, rec.n, rec.path)
	}
	if err := hashRange(ctx, h, f, rec.n, rec.size); err != nil {
		return filexfer.Hash{}, nil, err
	}
	sum := filexfer.Hash{Algo: "sha-256", Value: h.Sum(nil)}
	if want != nil && subtle.ConstantTimeCompare(want.Value, sum.Value) != 1 {
		return filexfer.Hash{}, nil, fmt.Errorf("%w: %s does not have the hash asked for", errSourceChanged, rec.path)
	}
	return sum, fi, nil
}

// hashRange feeds h the bytes [from, to) of f; a file shorter than to is
// errSourceChanged.
func hashRange(ctx context.Context, h hash.Hash, f io.ReaderAt, from, to uint64) error {
	buf := make([]byte, min(1<<20, to-from))
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(uint64(len(buf)), to-off)
		n, err := f.ReadAt(buf[:k], int64(off))
		if uint64(n) < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: it got shorter while it was hashed", errSourceChanged)
			}
			return err
		}
		h.Write(buf[:k])
		off += k
	}
	return nil
}

// sameSource refuses to send a served request's file when the path now
// names another file than the one re-hashed, or one written since.
func sameSource(f *os.File, was os.FileInfo) error {
	if was == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(fi, was) || fi.Size() != was.Size() || !fi.ModTime().Equal(was.ModTime()) {
		return fmt.Errorf("%w: %w", filexfer.ErrSourceChanged, errSourceChanged)
	}
	return nil
}

// --- Serving requests ----------------------------------------------------

// fileRequest handles a protected session-initiate of requests that
// policy allowed (ours): each content must name a file we offered to the
// peer account, else the request is refused with item-not-found and a
// text, leaving no state. A transfer is registered; its goroutine
// re-hashes the files and serves them (serve).
func (g *Gateway) fileRequest(req InnerIQ, j *jingle.Jingle) ([]byte, error) {
	bare := req.From.Bare().String()
	now := g.now()
	// Every content is matched against the history before any state.
	var files []*xferFile
	for i := range j.Contents {
		c := &j.Contents[i]
		fc, err := filexfer.ParseContent(c)
		if err != nil || fc.Description == nil || fc.Security == nil ||
			c.Creator != jingle.CreatorInitiator || c.Senders != jingle.SendersResponder {
			return nil, jingleError("bad-request", "") // the initiator created it and asks us to send
		}
		f := fc.Description.File
		if f.Name == "" || !f.HasSize {
			return nil, requestRefusal("the request must name the file and its size")
		}
		if f.Range != nil && f.Range.Length != 0 {
			return nil, requestRefusal("a range with a length is not served: ask for the rest of the file from an offset")
		}
		var want *filexfer.Hash
		for _, h := range f.Hashes {
			if h.Algo == "sha-256" {
				h := h
				want = &h
			}
		}
		rec, ok := g.files.sent.find(bare, f.Name, f.Size, want, now)
		if !ok {
			g.log.Info("file request declined: not offered to this account", "from", req.From.String(), "size", f.Size)
			return nil, requestRefusal("no such file was offered to you by this device in the last " + days(sentHistoryKeep) +
				" (or its gateway restarted since): ask the sender to send it again")
		}
		xf := &xferFile{content: c.Name, path: rec.path, sec: fc.Security, hist: rec.e, want: want,
			file:   filexfer.File{Name: rec.name, Size: rec.size, HasSize: true, Date: rec.date},
			infoCh: make(chan jingle.Raw, transportInfoBuffer), s5bCh: make(chan jingle.Raw, transportInfoBuffer),
			transport: transportName(fc)}
		if f.Range != nil {
			p := filexfer.StreamParams{ChunkSize: fc.Security.Chunk(), Size: rec.size}
			xf.offset = p.AlignDown(f.Range.Offset)
		}
		xf.theirs, _ = transportRaw(c)
		files = append(files, xf)
	}
	x := g.newTransfer(j.SID, true, bare, req.From, req.Peer.ID)
	x.request, x.files = true, files
	x.transports = g.transportOrder(nil)
	x.info.State = TransferConnecting
	for _, xf := range files {
		x.info.Files = append(x.info.Files, FileInfo{Name: xf.file.Name, Size: xf.file.Size, Date: xf.file.Date, Path: xf.path,
			Done: xf.offset, State: TransferConnecting})
		x.info.BytesTotal += xf.file.Size
		if xf.offset > 0 && !x.info.Resumed {
			x.info.Resumed, x.info.ResumedFrom = true, xf.offset
		}
	}
	x.info.Transport, x.info.Suite = x.files[0].transport, x.files[0].sec.Suite()
	return g.startIncoming(x, req, j, bare, "request")
}

// requestRefusal is the stateless answer to a request this gateway does
// not serve: item-not-found with a text naming the cause and the fix.
func requestRefusal(text string) *StanzaError {
	var b bytes.Buffer
	b.WriteString(`<text xmlns="` + nsStanzas + `" xml:lang="en">`)
	xml.EscapeText(&b, []byte(text))
	b.WriteString(`</text>`)
	return &StanzaError{Type: "cancel", Condition: "item-not-found", App: b.Bytes()}
}

// serve carries out a served request on the transfer's goroutine: each
// file re-hashed (declined when it changed), then the session-accept
// with the file's hash and our transports, then the bytes from each
// request's offset.
func (x *transfer) serve(r *xferRun) {
	x.publish()
	x.mu.Lock()
	files := x.files
	x.mu.Unlock()
	for _, xf := range files {
		if !x.usable(xf.transport) {
			x.endText(r, jingle.ReasonUnsupportedTransports, TransferDeclined,
				"a request of "+policy.ShowJID(x.peer)+" names a transport ("+orNone(xf.transport)+") this gateway does not use (files.transports)",
				"the transport asked for is not used by the sender")
			return
		}
	}
	for i, xf := range files {
		sum, fi, err := verifySource(x.ctx, x.g.files.sent.record(xf.hist), xf.want)
		if err != nil {
			if x.ctx.Err() != nil {
				return // stopping
			}
			x.endText(r, jingle.ReasonDecline, TransferDeclined,
				fmt.Sprintf("%s asked again for %s, which was not sent: %v; send the current version if you want them to have it", policy.ShowJID(x.peer), xf.file.Name, err),
				"the sender's file changed since it was offered (or is gone): ask them to send it again")
			return
		}
		d := xf.file
		d.Hashes = []filexfer.Hash{sum}
		if xf.offset > 0 {
			d.Range = &filexfer.Range{Offset: xf.offset}
		}
		dr, err := (&filexfer.Description{File: d}).Raw()
		if err != nil {
			x.end(r, jingle.ReasonFailedApplication, TransferFailed, "the answer to the request could not be built: "+err.Error())
			return
		}
		x.mu.Lock()
		xf.srcStat, xf.description = fi, dr
		x.mu.Unlock()
		x.setFile(i, func(fi *FileInfo) { fi.Hash = hashString(&sum) })
	}
	if err := x.sendAccept(r); err != nil {
		return
	}
	x.setState(TransferConnecting, "")
	x.startPump(r, 0)
}

// --- Sending requests ----------------------------------------------------

// acceptedRequest reads the sender's answer to our request: the hash its
// description names is checked like a checksum (a different one than we
// know ends the transfer as an integrity failure).
func (x *transfer) acceptedRequest(r *xferRun, c *jingle.Content) {
	fc, err := filexfer.ParseContent(c)
	if err != nil || fc.Description == nil || len(fc.Description.File.Hashes) == 0 {
		return
	}
	x.onChecksum(r, &filexfer.Checksum{Creator: jingle.CreatorInitiator, Name: c.Name, File: filexfer.File{Hashes: fc.Description.File.Hashes}})
}

// wantedFile is a file we ask for: what its offer said, and the verified
// prefix we have of it (nil: none, from the start into dir).
type wantedFile struct {
	file  filexfer.File // name, size, date, media type, description as offered; Hashes the offered ones
	want  *filexfer.Hash
	algo  string
	suite string
	chunk uint32
	prev  *filexfer.Receiver
	dir   string
}

// RequestFile asks to (a full JID: the device that offered the file, or
// a bare JID for its first online certified device) for a file it offered
// to this account before, identified by f's name, size and, when known,
// sha-256 (from FileInfo of the earlier transfer), and receives it into
// dir ("" for Config.DownloadDir) under a new name. The peer's gateway
// serves only files it offered to this account in the last 7 days and
// that did not change; otherwise the transfer ends declined (and an
// error is returned with it when the request itself was refused). To continue
// a failed transfer use [Gateway.ResumeTransfer].
func (g *Gateway) RequestFile(ctx context.Context, to jid.JID, f filexfer.File, dir string) (TransferInfo, error) {
	if dir == "" {
		dir = g.cfg.DownloadDir
	}
	if dir == "" {
		return TransferInfo{}, fmt.Errorf("%w: no directory to save the file in: name one, or configure the download directory", ErrTransferState)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return TransferInfo{}, fmt.Errorf("%w: %s is not a directory: create it or name another", ErrTransferState, dir)
	}
	switch {
	case f.Name == "" || len(f.Name) > filexfer.MaxFileNameLen:
		return TransferInfo{}, fmt.Errorf("%w: the file's name (1..%d bytes, as it was offered) is needed to ask for it", ErrTransferState, filexfer.MaxFileNameLen)
	case !f.HasSize:
		return TransferInfo{}, fmt.Errorf("%w: the file's size (as it was offered) is needed to ask for it", ErrTransferState)
	}
	w := wantedFile{file: filexfer.File{Name: f.Name, Size: f.Size, HasSize: true, Date: f.Date, MediaType: f.MediaType, Desc: f.Desc},
		algo: filexfer.DefaultHashAlgo, suite: filexfer.CipherAES256GCM, chunk: filexfer.SecurityDefaultChunkSize, dir: dir}
	if h, ok := filexfer.StrongestHash(f.Hashes); ok {
		w.want, w.algo = &h, h.Algo
		w.file.Hashes = []filexfer.Hash{h}
	}
	x, err := g.request(ctx, to, []*wantedFile{&w}, 0, nil)
	if x == nil {
		return TransferInfo{}, err
	}
	return x.snapshot(), err
}

// request sends a request session for files to a certified device of
// to; dev, when not 0, is the device it must be; keptIDs are the ids of
// the transfers it continues. The receivers are made (a kept prefix
// continued) before the request goes out; when the transfer cannot start,
// it returns nil and the files' prev hold the prefixes again. Once it
// started, its end keeps them (keepPartials).
func (g *Gateway) request(ctx context.Context, to jid.JID, files []*wantedFile, dev uint32, keptIDs []string) (*transfer, error) {
	if !g.eng.Certified() {
		return nil, ErrDeviceNotCertified
	}
	g.mu.Lock()
	online := g.sess != nil
	g.mu.Unlock()
	if !online {
		return nil, ErrOffline
	}
	order := g.transportOrder(nil)
	if len(order) == 0 {
		return nil, fmt.Errorf("%w: no transport is available here (files.transports)", ErrTransferState)
	}
	full, got, err := g.fileTarget(ctx, to)
	if err != nil {
		return nil, err
	}
	if dev != 0 && got != dev {
		return nil, fmt.Errorf("%w (%s): the device that offered the files is not online there (device %d, found %d); it alone can send the rest", ErrPeerNotCertified, to, dev, got)
	}
	bare := full.Bare().String()
	var size uint64
	for _, w := range files {
		size += w.file.Size
	}
	if q := g.cfg.FileQuota; q > 0 && g.files.incomingBytes()+size > q {
		return nil, ErrQuota
	}
	fcts := g.peerFacts(policy.KindFileTransfer, policy.DirectionOutgoing, bare)
	fcts.PeerDevice, fcts.Protection, fcts.Signaling = got, policy.ProtectionE2EBound, policy.SignalingProtected
	if d := g.decide(ctx, fcts); d.Action == policy.ActionRefuse {
		return nil, &TransferRefusedError{Rule: d.Rule, Message: d.Message}
	}
	x := g.newTransfer(newTransferID(), false, bare, full, got)
	x.request, x.transports, x.keptIDs = true, order, keptIDs
	x.info.State = TransferConnecting
	fail := func(err error) (*transfer, error) {
		x.cancel()
		for i, w := range files {
			if i < len(x.files) && x.files[i].recv != nil {
				if w.prev != nil {
					w.prev = x.files[i].recv.r // the continued receiver holds the prefix now
				} else {
					x.files[i].recv.r.Abort()
				}
			}
		}
		return nil, err
	}
	for i, w := range files {
		key := make([]byte, filexfer.SecurityKeyLen)
		if _, err := rand.Read(key); err != nil {
			return fail(err)
		}
		content := fmt.Sprintf("file-%d", i)
		xf := &xferFile{content: content, file: w.file, want: w.want, sec: filexfer.NewSecurity(content, w.suite, key, w.chunk)}
		clear(key)
		if w.want == nil {
			xf.file.HashesUsed = []string{w.algo}
		}
		var rc *filexfer.Receiver
		if w.prev != nil {
			rc, err = filexfer.ContinueReceiver(ctx, w.prev, x.params(xf))
		} else {
			rc, err = filexfer.NewReceiver(x.params(xf), w.dir, w.file.Name, filexfer.ReceiverOptions{HashAlgo: w.algo, MaxSize: g.maxFileSize(), MinFree: g.cfg.FileMinFree})
		}
		if err != nil {
			switch {
			case errors.Is(err, filexfer.ErrTooLarge):
				err = fmt.Errorf("%w: %w", ErrFileTooLarge, err)
			case errors.Is(err, filexfer.ErrNoSpace):
				err = fmt.Errorf("%w: %w", ErrNoSpace, err)
			}
			return fail(err)
		}
		rs := &recvState{r: rc, algo: w.algo, wantCh: make(chan struct{}), want: w.want}
		if w.want != nil {
			close(rs.wantCh)
		}
		xf.recv = rs
		if off := rc.Offset(); off > 0 {
			xf.file.Range = &filexfer.Range{Offset: off}
			if !x.info.Resumed {
				x.info.Resumed, x.info.ResumedFrom = true, off
			}
		}
		x.files = append(x.files, xf)
		x.info.Files = append(x.info.Files, FileInfo{Name: rc.Name(), Size: w.file.Size, MediaType: w.file.MediaType, Desc: w.file.Desc,
			Date: w.file.Date, Hash: hashString(w.want), Done: rc.Offset(), State: TransferConnecting})
		x.info.BytesTotal += w.file.Size
		x.info.BytesDone += rc.Offset()
	}
	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: x.id, Initiator: g.JID().String()}
	for _, xf := range x.files {
		var c jingle.Content
		for _, name := range order {
			xf.transport = name
			if c, err = x.offerContent(ctx, xf); err == nil {
				break
			}
			g.log.Info("transport not offered", "transport", name, "err", err)
		}
		if err != nil {
			return fail(err)
		}
		j.Contents = append(j.Contents, c)
	}
	x.info.Transport = x.files[0].transport
	if x.sess, err = jingle.NewInitiator(g.JID().String(), full.String(), j, g.now(), jingle.WithPendingTimeout(filePendingTimeout)); err != nil {
		return fail(err)
	}
	if err := g.files.add(x, !g.onRoster(bare)); err != nil {
		return fail(err)
	}
	if !g.files.begin() {
		g.files.remove(x.id)
		return fail(ErrOffline)
	}
	go x.run()
	sctx, cancel := context.WithTimeout(ctx, fileSendTimeout)
	defer cancel()
	if _, err := x.sendJingleCtx(sctx, j); err != nil {
		why, detail := requestFailReason(err)
		x.post(xferMsg{kind: xmAction, action: xferCancel, reason: why, detail: detail})
		<-x.done
		return x, fmt.Errorf("gateway: %s did not take the request: %s", full, detail)
	}
	x.publish()
	return x, nil
}

// requestFailReason explains a request the peer's device refused.
func requestFailReason(err error) (jingle.ReasonCondition, string) {
	var pe *ProtectedError
	if errors.As(err, &pe) {
		if se, perr := jingle.ParseStanzaError(pe.Payload); perr == nil && se.Condition == "item-not-found" && se.Jingle == "" {
			detail := "the sender's device does not serve this file to you"
			if se.Text != "" {
				detail += ": " + policy.BoundDetail(se.Text)
			}
			return jingle.ReasonDecline, detail
		}
	}
	return fileFailReason(err)
}

// --- Kept partial files --------------------------------------------------

// keptTransfer is the verified prefixes of a failed incoming transfer
// whose session ended, waiting for ResumeTransfer.
type keptTransfer struct {
	ids   []string // the failed transfer's id, and those of the earlier transfers it continued
	peer  string
	full  jid.JID // the device that offered the files
	dev   uint32
	files []*wantedFile
	until time.Time
	timer *time.Timer
}

// keptTable holds the kept transfers, at most maxKeptTransfers, each for
// partialKeep; the oldest is dropped (its files removed) for a new one.
type keptTable struct {
	mu   sync.Mutex
	xs   []*keptTransfer // oldest first
	stop bool
}

// abort removes the kept files.
func (k *keptTransfer) abort() {
	for _, w := range k.files {
		if w.prev != nil {
			w.prev.Abort()
		}
	}
}

// add keeps k until k.until.
func (t *keptTable) add(k *keptTransfer) {
	t.mu.Lock()
	if t.stop {
		t.mu.Unlock()
		k.abort()
		return
	}
	var drop []*keptTransfer
	for len(t.xs) >= maxKeptTransfers {
		drop = append(drop, t.xs[0])
		t.xs[0].timer.Stop()
		t.xs = t.xs[1:]
	}
	t.xs = append(t.xs, k)
	k.timer = time.AfterFunc(time.Until(k.until), func() {
		if t.take(k.ids[len(k.ids)-1]) == k {
			k.abort()
		}
	})
	t.mu.Unlock()
	for _, d := range drop {
		d.abort()
	}
}

// take removes and returns the kept transfer answering to id, nil when
// none.
func (t *keptTable) take(id string) *keptTransfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range t.xs {
		if slices.Contains(k.ids, id) {
			k.timer.Stop()
			t.xs = slices.Delete(t.xs, i, i+1)
			return k
		}
	}
	return nil
}

func (t *keptTable) has(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.xs {
		if slices.Contains(k.ids, id) {
			return true
		}
	}
	return false
}

// clear removes every kept file; nothing is kept after it (shutdown).
func (t *keptTable) clear() {
	t.mu.Lock()
	xs := t.xs
	t.xs, t.stop = nil, true
	t.mu.Unlock()
	for _, k := range xs {
		k.timer.Stop()
		k.abort()
	}
}

// keepPartials keeps the verified prefixes of a failed incoming
// transfer that is ending (finish), unless r.discard says they are not to
// be trusted or wanted. It reports whether it kept them, and the detail
// with a sentence saying so.
func (x *transfer) keepPartials(r *xferRun, st TransferState, detail string) (bool, string) {
	if x.outgoing || st != TransferFailed || r.discard {
		return false, detail
	}
	x.mu.Lock()
	k := &keptTransfer{peer: x.peer, full: x.full, dev: x.dev, until: time.Now().Add(partialKeep)}
	var verified uint64
	for _, xf := range x.files {
		if xf.recv == nil || xf.recv.done {
			continue
		}
		f := xf.file
		f.Range, f.HashesUsed = nil, nil
		k.files = append(k.files, &wantedFile{file: f, want: xf.recv.want, algo: xf.recv.algo,
			suite: xf.sec.Suite(), chunk: xf.sec.Chunk(), prev: xf.recv.r})
		verified += xf.recv.r.Offset()
	}
	x.mu.Unlock()
	if len(k.files) == 0 {
		return false, detail
	}
	k.ids = append(slices.Clone(x.keptIDs), x.id) // keptIDs is set before run
	if len(k.ids) > maxKeptIDs {
		k.ids = k.ids[len(k.ids)-maxKeptIDs:]
	}
	x.g.files.kept.add(k)
	return true, joinDetail(detail, fmt.Sprintf("the %d verified bytes are kept for %.0f hours: resume the transfer to ask %s's device for the rest",
		verified, partialKeep.Hours(), policy.ShowJID(x.peer)))
}

// days writes d in days, for the user.
func days(d time.Duration) string { return fmt.Sprintf("%.0f days", d.Hours()/24) }

// resumeKept continues the kept transfer id in a new request session to
// the device that offered the files.
func (g *Gateway) resumeKept(ctx context.Context, id string) error {
	k := g.files.kept.take(id)
	if k == nil {
		return fmt.Errorf("%w: %w", ErrTransferState, errNotResumable)
	}
	x, err := g.request(ctx, k.full, k.files, k.dev, k.ids)
	if x == nil {
		g.files.kept.add(k) // not started: the prefixes stay for another try
		return err
	}
	if err == nil {
		if old := g.files.get(id); old != nil && old.isOver() {
			old.update(func(in *TransferInfo) { in.Detail = joinDetail(in.Detail, "continued in transfer "+x.id) })
		}
	}
	return err
}

// dropKept removes the kept files of id (CancelTransfer of a failed
// transfer whose session ended); false when none are kept.
func (g *Gateway) dropKept(id string) bool {
	k := g.files.kept.take(id)
	if k == nil {
		return false
	}
	k.abort()
	return true
}
