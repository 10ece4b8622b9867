package gateway

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// Received files for local clients (docs/protocol.md §22.10.2): a file
// the daemon received encrypted and stored (completed, its hash
// verified) is offered to each connected client as a plain XEP-0234
// session over XEP-0261 IBB on the loopback hop, from the sender's full
// JID. The client accepts or declines; the front sends the bytes from a
// goroutine of the offer's own, one block in flight at a time, through
// the client's queue with backpressure (forward), never from the
// gateway's worker.

// Bounds of the offers to clients (implementation constants).
const (
	maxClientDownloads = 2 // offers to one client at once
	maxFrontDownloads  = 8 // offers to all clients at once
	// frontDownloadWait is how long an offer waits for the client's
	// accept or decline.
	frontDownloadWait = 5 * time.Minute
	// frontDownloadAnswer bounds the wait for the client's answer to
	// each IQ of the offer (the offer, the open, each block, the close).
	frontDownloadAnswer = 30 * time.Second
	// frontDownloadBlock is the IBB block size the front offers.
	frontDownloadBlock = 16 << 10
	// maxOfferedTransfers bounds the remembered transfers already
	// offered to the clients.
	maxOfferedTransfers = 256
)

// frontDownload is the offer of one received file to one client.
type frontDownload struct {
	c     *frontClient
	peer  jid.JID // the sender's full JID: the front speaks as it
	sid   string  // Jingle
	ibb   string  // IBB
	file  FileInfo
	block int
	// ev carries the client's Jingle requests in the session and its
	// answers to the front's IQs; a full channel drops (the offer then
	// times out). accepted is a session-accept that came before the
	// answer to the offer.
	ev       chan downEvent
	accepted *jingle.Jingle
}

// downEvent is a stanza of the client for a download.
type downEvent struct {
	answer string         // the id of the front's IQ answered ("" for a request)
	ok     bool           // the answer was a result
	j      *jingle.Jingle // a Jingle request of the client
}

// watchReceived offers every incoming transfer that completes to the
// clients connected then, until the gateway stops. Events the bus drops
// (a full buffer) are files not offered; they are in the download
// directory all the same.
func (f *Front) watchReceived(events <-chan Event, unsub func()) {
	g := f.g
	defer unsub()
	var offered boundedSet
	for {
		select {
		case <-g.stopped:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			x := ev.File
			if ev.Kind != EventFile || x == nil || x.Direction != TransferIncoming || x.State != TransferCompleted {
				continue
			}
			if offered.has(x.ID, time.Time{}) {
				continue
			}
			offered.add(x.ID, maxOfferedTransfers, 0, time.Time{})
			peer, err := jid.Parse(x.PeerFull)
			if err != nil {
				continue
			}
			for _, c := range f.snapshot() {
				for _, fi := range x.Files {
					if fi.State != TransferCompleted || fi.Path == "" {
						continue
					}
					d := &frontDownload{c: c, peer: peer, sid: newTransferID(), ibb: newTransferID(), file: fi,
						block: frontDownloadBlock, ev: make(chan downEvent, 8)}
					if !f.reserveDownload(d) {
						f.log.Warn("received file not offered to a local client: too many offers at once", "client", c.jid.String(), "file", fi.Name)
						c.enqueue(f.notice(c.jid, "securejingle received the file "+strconv.Quote(fi.Name)+" from "+policy.ShowJID(x.Peer)+", but could not offer it to this client now (too many offers at once); it is in the daemon's download directory."))
						continue
					}
					go d.run()
				}
			}
		}
	}
}

// reserveDownload registers d within the bounds.
func (f *Front) reserveDownload(d *frontDownload) bool {
	t := f.uploads()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.downs == nil {
		t.downs, t.waits, t.downsOf = map[upKey]*frontDownload{}, map[upKey]*frontDownload{}, map[*frontClient]int{}
	}
	if t.downsOf[d.c] >= maxClientDownloads || len(t.downs) >= maxFrontDownloads {
		return false
	}
	t.downs[upKey{d.c, d.peer.String(), d.sid}] = d
	t.downs[upKey{d.c, d.peer.String(), "ibb:" + d.ibb}] = d
	t.downsOf[d.c]++
	return true
}

// dropDownload removes d from the table; it may be called more than
// once.
func (f *Front) dropDownload(d *frontDownload) {
	t := f.uploads()
	now := f.g.now()
	t.mu.Lock()
	if t.downs[upKey{d.c, d.peer.String(), d.sid}] != d {
		t.mu.Unlock()
		return
	}
	delete(t.downs, upKey{d.c, d.peer.String(), d.sid})
	delete(t.downs, upKey{d.c, d.peer.String(), "ibb:" + d.ibb})
	for k, o := range t.waits {
		if o == d {
			delete(t.waits, k)
		}
	}
	if t.downsOf[d.c]--; t.downsOf[d.c] <= 0 {
		delete(t.downsOf, d.c)
	}
	t.mu.Unlock()
	t.ended.add(upKey{d.c, d.peer.String(), d.sid}.mark("jingle"), maxUploadMarks, uploadMarkTTL, now)
	t.ended.add(upKey{d.c, d.peer.String(), d.ibb}.mark("ibb"), maxUploadMarks, uploadMarkTTL, now)
}

// download returns the offer of the client c with peer in the Jingle
// session sid (ibb false) or the IBB stream sid (ibb true).
func (t *frontUploads) download(c *frontClient, peer, sid string, ibb bool) *frontDownload {
	if ibb {
		sid = "ibb:" + sid
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.downs[upKey{c, peer, sid}]
}

// downloadAnswer hands the client's answer m to the offer that sent the
// IQ; it reports whether m was one.
func (c *frontClient) downloadAnswer(m *Stanza) bool {
	t := c.f.uploads()
	k := upKey{c: c, id: m.ID}
	t.mu.Lock()
	d := t.waits[k]
	delete(t.waits, k)
	t.mu.Unlock()
	if d == nil {
		return false
	}
	// Answered: its mark (for a late answer) is no longer needed.
	t.ours.remove(k.mark("iq"))
	d.post(downEvent{answer: m.ID, ok: m.Type == "result"})
	return true
}

func (d *frontDownload) post(e downEvent) {
	select {
	case d.ev <- e:
	default:
	}
}

// onJingle takes the client's Jingle request j (in m) in the session.
func (d *frontDownload) onJingle(m *Stanza, j *jingle.Jingle) {
	c := d.c
	switch j.Action {
	case jingle.ActionSessionTerminate:
		// Over for the client at once: what it sends next in the
		// session is answered as for an ended one.
		c.f.dropDownload(d)
		c.forward(c.uploadResult(m))
		d.post(downEvent{j: j})
	case jingle.ActionSessionAccept, jingle.ActionSessionInfo:
		c.forward(c.uploadResult(m))
		d.post(downEvent{j: j})
	default:
		c.forward(c.uploadError(m, "cancel", "feature-not-implemented", "unsupported-info"))
	}
}

// errDeclined and errClientEnded end an offer the client declined or
// ended.
var (
	errDeclined    = errors.New("the client declined it")
	errClientEnded = errors.New("the client ended the session")
	// errNoJingle: the client answered the offer itself with an error
	// (a client without XEP-0234, as Profanity or slixmpp).
	errNoJingle = errors.New("the client does not take Jingle file offers")
	// errAnswerError: the client answered an IQ of the offer with an
	// error.
	errAnswerError = errors.New("the client answered with an error")
)

// iq sends the client an IQ set of the offer with payload and waits for
// its answer.
func (d *frontDownload) iq(payload []byte) error {
	c := d.c
	id := randomID()
	t := c.f.uploads()
	t.mu.Lock()
	t.waits[upKey{c: c, id: id}] = d
	t.mu.Unlock()
	// A late answer (after the offer ended) is consumed all the same.
	t.ours.add(upKey{c: c, id: id}.mark("iq"), maxUploadMarks, uploadMarkTTL, c.f.g.now())
	c.forward(build("iq", map[string]string{"type": "set", "id": id, "from": d.peer.String(), "to": c.jid.String()}, payload))
	timer := time.NewTimer(frontDownloadAnswer)
	defer timer.Stop()
	for {
		select {
		case e := <-d.ev:
			switch {
			case e.answer == id && e.ok:
				return nil
			case e.answer == id:
				return errAnswerError
			case e.j != nil && e.j.Action == jingle.ActionSessionTerminate:
				return errClientEnded
			case e.j != nil && e.j.Action == jingle.ActionSessionAccept && d.accepted == nil:
				d.accepted = e.j
			}
		case <-timer.C:
			return fmt.Errorf("the client did not answer within %s", frontDownloadAnswer)
		case <-c.done:
			return errors.New("the client disconnected")
		}
	}
}

// run offers the file, waits for the client's decision and sends the
// bytes.
func (d *frontDownload) run() {
	c := d.c
	defer c.f.dropDownload(d)
	name := strconv.Quote(d.file.Name)
	from := policy.ShowJID(d.peer.Bare().String())
	err := d.offer()
	switch {
	case err == nil:
		c.f.g.log.Info("received file given to a local client", "client", c.jid.String(), "file", d.file.Name)
		return
	case errors.Is(err, errDeclined), errors.Is(err, errClientEnded):
		return // the client's choice
	}
	c.f.g.log.Warn("received file not given to a local client", "client", c.jid.String(), "file", d.file.Name, "err", err)
	if !errors.Is(err, errNoJingle) {
		d.terminate(jingle.ReasonFailedTransport)
	}
	c.enqueue(c.f.notice(c.jid, "securejingle received the file "+name+" from "+from+" encrypted, but could not give it to this client ("+err.Error()+"); it is in the daemon's download directory."))
}

// offer is the session: the offer, the decision, the bytes.
func (d *frontDownload) offer() error {
	f, err := os.Open(d.file.Path)
	if err != nil {
		return fmt.Errorf("the received file could not be read: %s", policy.BoundDetail(err.Error()))
	}
	defer f.Close()
	file := filexfer.File{Name: d.file.Name, Size: d.file.Size, HasSize: true, MediaType: d.file.MediaType, Desc: d.file.Desc}
	if !d.file.Date.IsZero() {
		file.Date = d.file.Date
	}
	if h, ok := parseHashString(d.file.Hash); ok {
		file.Hashes = []filexfer.Hash{h}
	}
	dr, err := (&filexfer.Description{File: file}).Raw()
	if err != nil {
		return err
	}
	tr, err := (&filexfer.IBBTransport{SID: d.ibb, BlockSize: uint16(d.block)}).Raw()
	if err != nil {
		return err
	}
	b, err := (&jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: d.sid, Initiator: d.peer.String(),
		Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "file", Senders: jingle.SendersInitiator, Other: []jingle.Raw{dr, tr}}}}).Marshal()
	if err != nil {
		return err
	}
	if err := d.iq(b); err != nil {
		if errors.Is(err, errAnswerError) {
			return errNoJingle
		}
		return err
	}
	if err := d.decision(); err != nil {
		return err
	}
	if err := d.iq(element(filexfer.IBBNamespace, "open", "", "block-size", strconv.Itoa(d.block), "sid", d.ibb, "stanza", "iq")); err != nil {
		return err
	}
	buf := make([]byte, d.block)
	var sent uint64
	for seq := 0; ; seq = (seq + 1) & 0xffff {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			if sent+uint64(n) > d.file.Size {
				return errors.New("the received file grew after it was verified")
			}
			if err := d.iq(element(filexfer.IBBNamespace, "data", base64.StdEncoding.EncodeToString(buf[:n]), "seq", strconv.Itoa(seq), "sid", d.ibb)); err != nil {
				return err
			}
			sent += uint64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("the received file could not be read: %s", policy.BoundDetail(rerr.Error()))
		}
	}
	if sent != d.file.Size {
		return errors.New("the received file changed after it was verified")
	}
	if err := d.iq(element(filexfer.IBBNamespace, "close", "", "sid", d.ibb)); err != nil {
		return err
	}
	d.terminate(jingle.ReasonSuccess)
	return nil
}

// decision waits for the client's session-accept (checked: the content
// and the IBB stream of the offer, a block size at most the offered one)
// or its decline.
func (d *frontDownload) decision() error {
	c := d.c
	timer := time.NewTimer(frontDownloadWait)
	defer timer.Stop()
	for {
		var e downEvent
		if d.accepted != nil {
			e.j, d.accepted = d.accepted, nil
		} else {
			select {
			case e = <-d.ev:
			case <-timer.C:
				d.terminate(jingle.ReasonTimeout)
				return fmt.Errorf("%w: no answer within %s", errDeclined, frontDownloadWait)
			case <-c.done:
				return errClientEnded
			}
		}
		if e.j == nil {
			continue
		}
		switch e.j.Action {
		case jingle.ActionSessionTerminate:
			return errDeclined
		case jingle.ActionSessionAccept:
			if len(e.j.Contents) != 1 || e.j.Contents[0].Name != "file" {
				return errors.New("the client accepted another content")
			}
			fc, err := filexfer.ParseContent(&e.j.Contents[0])
			if err != nil || fc.IBB == nil || fc.IBB.SID != d.ibb {
				return errors.New("the client accepted with another transport")
			}
			if int(fc.IBB.BlockSize) < d.block {
				d.block = int(fc.IBB.BlockSize)
			}
			return nil
		}
	}
}

// terminate ends the session with why, not waiting for the answer.
func (d *frontDownload) terminate(why jingle.ReasonCondition) {
	c := d.c
	b, err := (&jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: d.sid, Reason: &jingle.Reason{Condition: why}}).Marshal()
	if err != nil {
		return
	}
	id := randomID()
	c.f.uploads().ours.add(upKey{c: c, id: id}.mark("iq"), maxUploadMarks, uploadMarkTTL, c.f.g.now())
	c.forward(build("iq", map[string]string{"type": "set", "id": id, "from": d.peer.String(), "to": c.jid.String()}, b))
}

// parseHashString reads a TransferInfo hash, "algo:hex" (hashString).
func parseHashString(s string) (filexfer.Hash, bool) {
	algo, hexv, ok := strings.Cut(s, ":")
	if !ok {
		return filexfer.Hash{}, false
	}
	v, err := hex.DecodeString(hexv)
	if err != nil {
		return filexfer.Hash{}, false
	}
	h := filexfer.Hash{Algo: algo, Value: v}
	return h, h.Acceptable()
}
