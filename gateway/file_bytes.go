package gateway

// The byte phase of a transfer. One pump goroutine per attempt moves the
// files, in content order, each over its content's transport: the sender
// runs filexfer.SendStream and closes the pipe, the receiver runs a
// filexfer.Receiver, waits for the sender's hash (checksum session-info)
// and finishes the file (hash check, never an overwrite). The pump only
// reports; the transfer's goroutine drives the session: checksum,
// <received/>, resumes and fallback.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// pump is one attempt of the byte phase.
type pump struct {
	id     int // attempt number; reports of older attempts are ignored
	cancel context.CancelFunc
	done   chan struct{}
	// reports has room for every report of the attempt (maxPumpReports),
	// apart from the transfer's queue: a peer that fills the queue with
	// requests cannot make the pump's reports drop.
	reports chan pumpReport
}

// maxPumpReports bounds the reports of one attempt over n files: a
// connect failure, or per file started, then sent or received and
// verified.
func maxPumpReports(n int) int { return 3*n + 1 }

type pumpPhase int

const (
	phaseConnect  pumpPhase = iota + 1 // the transport did not come up
	phaseStarted                       // the pipe of a file is up
	phaseSent                          // outgoing: a file's bytes are out (hash attached)
	phaseReceived                      // incoming: a file's bytes are in and verified chunk by chunk
	phaseVerified                      // incoming: a file is finished (path attached)
)

// pumpReport is what the pump tells the transfer's goroutine.
type pumpReport struct {
	attempt int
	file    int
	phase   pumpPhase
	err     error
	hash    filexfer.Hash
	path    string
}

// recvState is the receiving side of one file (x.mu guards it).
type recvState struct {
	r      *filexfer.Receiver
	algo   string
	wantCh chan struct{} // closed once want is known
	want   *filexfer.Hash
	done   bool // verified and saved
}

// params are the stream parameters of a file: the sender of the bytes
// is the initiator of an offer, the responder of a request.
func (x *transfer) params(xf *xferFile) filexfer.StreamParams {
	return filexfer.StreamParams{Key: xf.sec.Key, Cipher: xf.sec.Suite(), ChunkSize: xf.sec.Chunk(), SID: x.id,
		Content: xf.content, Sender: x.senderRole(), Size: xf.file.Size}
}

// prepareReceive creates the receivers of an accepted incoming transfer:
// limits, free space, temporary files.
func (x *transfer) prepareReceive(r *xferRun, dir string) error {
	x.mu.Lock()
	files := x.files
	x.mu.Unlock()
	var made []*filexfer.Receiver
	for _, xf := range files {
		algo := filexfer.DefaultHashAlgo
		if xf.want != nil {
			algo = xf.want.Algo
		} else {
			algo = strongestAlgo(xf.file.HashesUsed)
		}
		rc, err := filexfer.NewReceiver(x.params(xf), dir, xf.file.Name, filexfer.ReceiverOptions{HashAlgo: algo, MaxSize: x.g.maxFileSize(), MinFree: x.g.cfg.FileMinFree})
		if err != nil {
			for _, m := range made {
				m.Abort()
			}
			switch {
			case errors.Is(err, filexfer.ErrTooLarge):
				return fmt.Errorf("%w: %w", ErrFileTooLarge, err)
			case errors.Is(err, filexfer.ErrNoSpace):
				return fmt.Errorf("%w: %w", ErrNoSpace, err)
			}
			return fmt.Errorf("%w: %w", ErrTransferState, err)
		}
		made = append(made, rc)
		rs := &recvState{r: rc, algo: algo, wantCh: make(chan struct{})}
		if xf.want != nil {
			rs.want = xf.want
			close(rs.wantCh)
		}
		x.mu.Lock()
		xf.recv = rs
		x.mu.Unlock()
	}
	return nil
}

// strongestAlgo is the strongest acceptable algorithm of hash-used.
func strongestAlgo(used []string) string {
	for _, a := range filexfer.AcceptableHashAlgos() {
		for _, u := range used {
			if a == u {
				return a
			}
		}
	}
	return filexfer.DefaultHashAlgo
}

// abortReceive removes the temporary files of unfinished files.
func (x *transfer) abortReceive() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, xf := range x.files {
		if xf.recv != nil && !xf.recv.done {
			xf.recv.r.Abort()
		}
	}
}

// startPump starts an attempt from file index from.
func (x *transfer) startPump(r *xferRun, from int) {
	x.stopPump(r)
	r.attempt++
	ctx, cancel := context.WithCancel(x.ctx)
	x.mu.Lock()
	n := len(x.files)
	x.mu.Unlock()
	p := &pump{id: r.attempt, cancel: cancel, done: make(chan struct{}), reports: make(chan pumpReport, maxPumpReports(n))}
	r.pump = p
	// A guard behind the pump's own connect timeout (which falls back).
	x.setTimer(r, 2*fileConnectTimeout, jingle.ReasonConnectivityError, "the transport did not come up: check the network or the transports configured; then resume the transfer")
	r.timerSoft = true
	go func() {
		defer close(p.done)
		x.runPump(ctx, p, from)
	}()
}

func (x *transfer) stopPump(r *xferRun) {
	if r.pump != nil {
		r.pump.cancel()
		<-r.pump.done
		r.pump = nil
	}
}

// runPump moves the files from index from on, one after the other.
func (x *transfer) runPump(ctx context.Context, pp *pump, from int) {
	x.mu.Lock()
	files := x.files
	x.mu.Unlock()
	report := func(p pumpReport) {
		p.attempt = pp.id
		select {
		case pp.reports <- p: // never full: room for every report
		case <-ctx.Done(): // stopped: nobody reads them any more
			return
		}
		if h := x.g.fileHooks.pumpReported; h != nil {
			h(x.id, p)
		}
	}
	for i := from; i < len(files); i++ {
		xf := files[i]
		x.mu.Lock()
		skip := x.outgoing && (xf.sent || xf.received) || !x.outgoing && xf.recv != nil && xf.recv.done
		name, ours, theirs, offset := xf.transport, xf.ours, xf.theirs, xf.offset
		x.mu.Unlock()
		if skip {
			continue
		}
		if !x.outgoing && x.recvComplete(xf) {
			// Every chunk verified in an earlier attempt, which could
			// not save the file: only Finish is left, no transport.
			path, err := x.finishFile(ctx, xf)
			report(pumpReport{file: i, phase: phaseVerified, err: err, path: path})
			if err != nil {
				return
			}
			continue
		}
		t := x.driver(name)
		if t == nil {
			report(pumpReport{file: i, phase: phaseConnect, err: fmt.Errorf("%w: %s", errTransportUnavailable, name)})
			return
		}
		cctx, cancel := context.WithTimeout(ctx, fileConnectTimeout)
		pipe, err := t.connect(cctx, x.env(xf), ours, theirs)
		cancel()
		if err != nil {
			report(pumpReport{file: i, phase: phaseConnect, err: err})
			return
		}
		if h := x.g.fileHooks.pipe; h != nil {
			pipe = h(pipe)
		}
		stop := context.AfterFunc(ctx, func() { abortPipe(pipe) })
		report(pumpReport{file: i, phase: phaseStarted})
		if x.outgoing {
			h, err := x.sendFile(ctx, xf, i, pipe, offset)
			pipe.Close()
			stop()
			report(pumpReport{file: i, phase: phaseSent, err: err, hash: h})
			if err != nil {
				return
			}
			continue
		}
		err = x.recvFile(ctx, xf, i, pipe)
		pipe.Close()
		stop()
		report(pumpReport{file: i, phase: phaseReceived, err: err})
		if err != nil {
			return
		}
		path, err := x.finishFile(ctx, xf)
		report(pumpReport{file: i, phase: phaseVerified, err: err, path: path})
		if err != nil {
			return
		}
	}
}

// sendFile sends one attempt of a file from offset and returns the whole
// file's sha-256.
func (x *transfer) sendFile(ctx context.Context, xf *xferFile, i int, w io.Writer, offset uint64) (filexfer.Hash, error) {
	f, err := os.Open(xf.path)
	if err != nil {
		return filexfer.Hash{}, err
	}
	defer f.Close()
	if err := sameSource(f, xf.srcStat); err != nil {
		return filexfer.Hash{}, err
	}
	h := newCountingHash()
	defer x.g.files.sent.attempt(xf.hist, h)
	if offset > 0 {
		// The stream feeds only what it sends: hash the prefix the
		// receiver kept first.
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, int64(offset))); err != nil {
			return filexfer.Hash{}, err
		}
	}
	err = filexfer.SendStream(ctx, w, f, x.params(xf), offset, filexfer.StreamOptions{
		Hash:     h,
		Progress: func(done uint64) { x.progress(i, done) },
	})
	if err != nil {
		return filexfer.Hash{}, err
	}
	return filexfer.Hash{Algo: "sha-256", Value: h.Sum(nil)}, nil
}

// endDeadline gives a pipe without read deadlines (IBB, the data
// channel) one, so that the Receiver's wait for the end of the stream
// after the final chunk (filexfer.EndWait) is bounded on every
// transport: at the deadline the pipe is aborted, which ends the read.
// Otherwise a sender that keeps the stream open, or a server that drops
// the IBB <close/>, holds a verified file until the stall cut.
type endDeadline struct {
	io.ReadWriteCloser
	mu sync.Mutex
	t  *time.Timer
}

// SetReadDeadline arms (or, with the zero time, disarms) the abort.
func (p *endDeadline) SetReadDeadline(at time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.t != nil {
		p.t.Stop()
		p.t = nil
	}
	if !at.IsZero() {
		p.t = time.AfterFunc(time.Until(at), func() { abortPipe(p.ReadWriteCloser) })
	}
	return nil
}

// withReadDeadline returns src, given read deadlines when it has none.
func withReadDeadline(src io.ReadWriteCloser) io.Reader {
	if _, ok := src.(interface{ SetReadDeadline(time.Time) error }); ok {
		return src
	}
	return &endDeadline{ReadWriteCloser: src}
}

// recvFile receives one attempt of a file.
func (x *transfer) recvFile(ctx context.Context, xf *xferFile, i int, src io.ReadWriteCloser) error {
	x.mu.Lock()
	rs := xf.recv
	x.mu.Unlock()
	err := rs.r.Receive(ctx, withReadDeadline(src), func(done uint64) { x.progress(i, done) })
	if errors.Is(err, filexfer.ErrTrailingData) && rs.r.Done() {
		// Every chunk verified and the final one said it was the end:
		// the file is kept (one injected byte must not cost a whole new
		// transfer), and the user is told the stream was tampered with.
		f := x.g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, x.peer)
		f.PeerDevice, f.Protection, f.Signaling = x.dev, policy.ProtectionE2EBound, policy.SignalingProtected
		x.g.fileAlert(f, policy.Decision{Action: policy.ActionFlag, Severity: policy.SeverityWarning, Rule: "file-integrity",
			Message: "Bytes were added after the end of a file from " + policy.ShowJID(x.peer) + ": someone on the way tampered with the transfer. The file itself verified and was kept.",
			Detail:  fmt.Sprintf("transfer %s, file %q: %v", x.id, xf.file.Name, err)})
		return nil
	}
	return err
}

// recvComplete reports whether every chunk of an incoming file verified
// (its Receiver is Done) while the file is not saved yet. Only the
// goroutine that uses the Receiver (the pump, or the transfer's with no
// pump running) may ask.
func (x *transfer) recvComplete(xf *xferFile) bool {
	x.mu.Lock()
	rs := xf.recv
	x.mu.Unlock()
	return rs != nil && !rs.done && rs.r.Done()
}

// finishFile waits for the sender's hash and finishes the file.
func (x *transfer) finishFile(ctx context.Context, xf *xferFile) (string, error) {
	x.mu.Lock()
	rs := xf.recv
	x.mu.Unlock()
	t := time.NewTimer(fileChecksumTimeout)
	defer t.Stop()
	select {
	case <-rs.wantCh:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		return "", errNoChecksum
	}
	x.mu.Lock()
	want := *rs.want
	x.mu.Unlock()
	return rs.r.Finish(want)
}

var errNoChecksum = errors.New("gateway: the sender's checksum did not arrive")

// progress records the bytes done of file i and publishes at most every
// progressEventSpacing.
func (x *transfer) progress(i int, done uint64) {
	now := time.Now()
	x.mu.Lock()
	if i >= len(x.info.Files) {
		x.mu.Unlock()
		return
	}
	x.info.Files[i].Done = done
	var total uint64
	for _, f := range x.info.Files {
		total += f.Done
	}
	x.info.BytesDone = total
	due := now.Sub(x.lastPub) >= progressEventSpacing
	if due {
		x.updateRateLocked(now)
	}
	x.mu.Unlock()
	if due {
		x.publish()
	}
}

// updateRateLocked smooths the rate over the progress events.
func (x *transfer) updateRateLocked(now time.Time) {
	if !x.rateAt.IsZero() {
		if dt := now.Sub(x.rateAt).Seconds(); dt > 0 && x.info.BytesDone >= x.rateDone {
			inst := float64(x.info.BytesDone-x.rateDone) / dt
			if x.info.Rate == 0 {
				x.info.Rate = inst
			} else {
				x.info.Rate = 0.6*x.info.Rate + 0.4*inst
			}
		}
	}
	x.rateAt, x.rateDone = now, x.info.BytesDone
}

// setFile changes the state of file i.
func (x *transfer) setFile(i int, f func(fi *FileInfo)) {
	x.update(func(in *TransferInfo) {
		if i < len(in.Files) {
			f(&in.Files[i])
		}
	})
}

// onPump handles a report of the pump.
func (x *transfer) onPump(r *xferRun, p pumpReport) {
	if r.pump == nil || p.attempt != r.pump.id || r.over {
		return // an attempt that was stopped
	}
	x.mu.Lock()
	if p.file >= len(x.files) {
		x.mu.Unlock()
		return
	}
	xf := x.files[p.file]
	x.mu.Unlock()
	switch {
	case p.phase == phaseConnect:
		x.transportFailed(r, p.file, p.err)
	case p.phase == phaseStarted:
		x.stopTimer(r)
		r.cur = p.file
		x.update(func(in *TransferInfo) {
			in.State, in.Transport = TransferTransferring, xf.transport
			if in.Started.IsZero() {
				in.Started = x.g.now()
			}
			in.Files[p.file].State = TransferTransferring
		})
	case p.err != nil && p.phase == phaseReceived && streamTampered(p.err):
		x.tamperedOnTheWay(r, p.file, p.err)
	case p.err != nil && integrityError(p.err):
		x.integrityFailed(r, p.file, p.err)
	case p.err != nil && errors.Is(p.err, filexfer.ErrNoSpace):
		r.discard = true
		x.end(r, jingle.ReasonFailedApplication, TransferFailed, "the disk is full: "+p.err.Error()+"; free space and send the files again")
	case p.err != nil && errors.Is(p.err, errNoChecksum):
		r.discard = true
		x.end(r, jingle.ReasonTimeout, TransferFailed, "the sender's checksum of "+xf.file.Name+" did not arrive: the file was not verified and was discarded")
	case p.err != nil && errors.Is(p.err, filexfer.ErrSourceChanged):
		x.end(r, jingle.ReasonFailedApplication, TransferFailed, "the file "+xf.path+" changed while it was sent; send it again")
	case p.err != nil:
		x.cut(r, p.file, p.err)
	case p.phase == phaseSent:
		x.mu.Lock()
		xf.sent = true
		x.mu.Unlock()
		x.setFile(p.file, func(fi *FileInfo) {
			fi.State, fi.Hash, fi.Done = TransferVerifying, hashString(&p.hash), fi.Size
		})
		cs := &filexfer.Checksum{Creator: jingle.CreatorInitiator, Name: xf.content, File: filexfer.File{Hashes: []filexfer.Hash{p.hash}}}
		raw, err := cs.Raw()
		if err == nil {
			err = x.sendJingle(&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: x.id, Info: []jingle.Raw{raw}})
		}
		if err != nil {
			_, detail := fileFailReason(err)
			x.cut(r, p.file, errors.New("the checksum could not be sent: "+detail))
			return
		}
		if x.allSent() {
			x.setState(TransferVerifying, "")
			x.setTimer(r, fileReceivedTimeout, jingle.ReasonTimeout, "the receiver did not confirm the files")
		}
	case p.phase == phaseReceived:
		x.setFile(p.file, func(fi *FileInfo) { fi.State = TransferVerifying })
	case p.phase == phaseVerified:
		x.mu.Lock()
		xf.recv.done = true
		x.mu.Unlock()
		x.setFile(p.file, func(fi *FileInfo) {
			fi.State, fi.Path, fi.Name, fi.Done = TransferCompleted, p.path, filepath.Base(p.path), fi.Size
		})
		rc := &filexfer.Received{Creator: jingle.CreatorInitiator, Name: xf.content}
		raw, err := rc.Raw()
		if err == nil {
			err = x.sendJingle(&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: x.id, Info: []jingle.Raw{raw}})
		}
		if err != nil {
			x.g.log.Info("received", "transfer", x.id, "err", err)
		}
		if x.allDone() {
			// The sender terminates once every file is confirmed; here
			// the transfer is complete.
			x.finish(r, TransferCompleted, "")
		}
	}
}

func (x *transfer) allSent() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, xf := range x.files {
		if !xf.sent {
			return false
		}
	}
	return true
}

// integrityError reports the errors that mean the bytes or the hash were
// tampered with (or lied about): never resumed.
func integrityError(err error) bool {
	for _, e := range []error{filexfer.ErrTampered, filexfer.ErrBadHeader, filexfer.ErrTrailingData, filexfer.ErrHashMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// streamTampered reports the errors of an attempt's bytes that someone
// on the transport can cause without the key: a chunk that fails
// authentication, a header that is not the attempt asked for (another
// stream's, a replayed one). The verified prefix is not touched by them.
func streamTampered(err error) bool {
	return errors.Is(err, filexfer.ErrTampered) || errors.Is(err, filexfer.ErrBadHeader)
}

// tamperedOnTheWay: the bytes of an attempt of file i were altered on the
// transport (anyone on its path can write into it: the servers relaying
// IBB, a SOCKS5 proxy, a host that reaches our listener with the
// DST.ADDR). Every chunk on disk authenticated under the key of the
// protected offer, so the verified prefix stays: a critical alert, then
// the attempt is treated as a cut and resumed from the last verified
// chunk (the automatic resumes are bounded; a file whose bytes keep
// being altered fails, resumable, after them).
func (x *transfer) tamperedOnTheWay(r *xferRun, i int, err error) {
	name := ""
	if i < len(x.info.Files) {
		name = x.snapshot().Files[i].Name
	}
	f := x.g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, x.peer)
	f.PeerDevice, f.Protection, f.Signaling = x.dev, policy.ProtectionE2EBound, policy.SignalingProtected
	x.g.fileAlert(f, policy.Decision{Action: policy.ActionFlag, Severity: policy.SeverityCritical, Rule: "file-integrity",
		Message: "The bytes of a file from " + policy.ShowJID(x.peer) + " were altered on the way (someone on the transport tampered with them). Nothing altered was kept: the transfer goes on from the last verified part.",
		Detail:  fmt.Sprintf("transfer %s, file %q: %v", x.id, name, err)})
	x.cut(r, i, fmt.Errorf("altered on the way, nothing of it kept: %w", err))
}

// integrityFailed ends a transfer whose stream or hash failed: alert,
// security-error, the partial file removed.
func (x *transfer) integrityFailed(r *xferRun, i int, err error) {
	name := ""
	if i < len(x.info.Files) {
		name = x.snapshot().Files[i].Name
	}
	f := x.g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, x.peer)
	f.PeerDevice, f.Protection, f.Signaling = x.dev, policy.ProtectionE2EBound, policy.SignalingProtected
	x.g.fileAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "file-integrity",
		Message: "A file from " + policy.ShowJID(x.peer) + " failed its integrity check (altered, truncated or with a wrong hash) and was discarded.",
		Detail:  fmt.Sprintf("transfer %s, file %q: %v", x.id, name, err)})
	x.end(r, jingle.ReasonSecurityError, TransferFailed,
		fmt.Sprintf("the file %s failed its integrity check (%v): it was discarded; the bytes were altered on the way or the sender's hash is wrong; ask for it again", name, err))
}

// onInfo handles a session-info: checksum (receiver) or received
// (sender).
func (x *transfer) onInfo(r *xferRun, j *jingle.Jingle) {
	for _, raw := range j.Info {
		if cs, ok, err := filexfer.ParseChecksum(raw); ok {
			if err == nil && !x.outgoing {
				x.onChecksum(r, cs)
			}
			continue
		}
		if rc, ok, err := filexfer.ParseReceived(raw); ok && err == nil && x.outgoing {
			x.onReceived(r, rc)
		}
	}
}

func (x *transfer) onChecksum(r *xferRun, cs *filexfer.Checksum) {
	xf := x.file(cs.Name)
	if xf == nil {
		return
	}
	hs := cs.File.Hashes
	if cs.File.Range != nil {
		hs = append(hs, cs.File.Range.Hashes...)
	}
	x.mu.Lock()
	rs := xf.recv
	if rs == nil {
		x.mu.Unlock()
		return
	}
	var got *filexfer.Hash
	for _, h := range hs {
		if h.Algo == rs.algo && h.Acceptable() {
			h := h
			got = &h
		}
	}
	var lie bool
	switch {
	case got == nil:
	case rs.want == nil:
		rs.want = got
		close(rs.wantCh)
	case subtle.ConstantTimeCompare(rs.want.Value, got.Value) != 1:
		lie = true
	}
	i := -1
	for k, f := range x.files {
		if f == xf {
			i = k
		}
	}
	x.mu.Unlock()
	if got != nil {
		x.setFile(i, func(fi *FileInfo) { fi.Hash = hashString(got) })
	}
	if lie {
		x.integrityFailed(r, i, fmt.Errorf("%w: the checksum differs from the offer's hash", filexfer.ErrHashMismatch))
	}
}

func (x *transfer) onReceived(r *xferRun, rc *filexfer.Received) {
	xf := x.file(rc.Name)
	if xf == nil {
		return
	}
	x.mu.Lock()
	sent := xf.sent
	i := -1
	for k, f := range x.files {
		if f == xf {
			i = k
		}
	}
	if sent {
		xf.received = true
	}
	x.mu.Unlock()
	if !sent {
		return // a confirmation before the bytes: ignored
	}
	x.setFile(i, func(fi *FileInfo) { fi.State = TransferCompleted })
	if x.allDone() {
		x.end(r, jingle.ReasonSuccess, TransferCompleted, "")
	}
}
