package gateway

// The goroutine of one transfer: decisions, the session's answers, the
// byte pump's reports, timers. Only this goroutine changes the session
// after it started; the handler validates and queues.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// xferRun is the state only the transfer's goroutine touches.
type xferRun struct {
	timer       *time.Timer
	timerReason jingle.ReasonCondition
	timerDetail string
	// timerSoft: when the timer fires the transfer fails but stays
	// resumable (a resume or fallback was not answered in time).
	timerSoft bool
	pump      *pump // the running byte pump, nil when none
	attempt   int
	dir       string
	resumes   int // automatic resumes so far
	cur       int // the file whose pipe is up
	lastDone  uint64
	lastMove  time.Time
	replacing int // the content index of our pending transport-replace
	over      bool
	// discard: the partial files of a failed incoming transfer are
	// removed, not kept for a resume across sessions (integrity or
	// security failure, disk full, shutdown).
	discard bool
}

func (x *transfer) setTimer(r *xferRun, d time.Duration, why jingle.ReasonCondition, detail string) {
	x.stopTimer(r)
	r.timerReason, r.timerDetail, r.timerSoft = why, detail, false
	r.timer = time.NewTimer(d)
}

func (x *transfer) stopTimer(r *xferRun) {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// reportsC is the running pump's reports, nil when none.
func (r *xferRun) reportsC() <-chan pumpReport {
	if r.pump == nil {
		return nil
	}
	return r.pump.reports
}

func (r *xferRun) timerC() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

func (x *transfer) run() {
	g := x.g
	defer g.files.wg.Done()
	defer close(x.done)
	r := &xferRun{}
	defer x.stopTimer(r)
	switch {
	case x.request && !x.outgoing:
		x.setTimer(r, fileRequestTimeout, jingle.ReasonTimeout, "the sender did not answer the request in time")
	case x.outgoing:
		x.setTimer(r, filePendingTimeout, jingle.ReasonTimeout, "the receiver did not accept the files in time")
	default:
		x.setTimer(r, filePendingTimeout, jingle.ReasonTimeout, "nobody accepted the files in time")
	}
	stall := time.NewTicker(fileStallTimeout / 4)
	defer stall.Stop()
	for !r.over {
		select {
		case <-x.ctx.Done():
			x.stopped(r)
		case now := <-stall.C:
			x.checkStall(r, now)
		case <-r.timerC():
			r.timer = nil
			x.timeout(r)
		case p := <-r.reportsC():
			x.onPump(r, p)
		case m := <-x.q:
			err := x.handle(r, m)
			if m.reply != nil {
				m.reply <- err
			}
		}
	}
	for {
		select {
		case m := <-x.q:
			if m.reply != nil {
				m.reply <- ErrTransferState
			}
		default:
			return
		}
	}
}

func (x *transfer) handle(r *xferRun, m xferMsg) error {
	switch m.kind {
	case xmStart:
		if x.request {
			x.serve(r)
		} else {
			x.start(r)
		}
	case xmAction:
		switch m.action {
		case xferAccept:
			return x.accept(r, m.dir)
		case xferDecline:
			x.end(r, jingle.ReasonDecline, TransferDeclined, "you declined the files")
		case xferCancel:
			why, st, detail := m.reason, TransferCancelled, m.detail
			switch why {
			case "":
				why, detail = jingle.ReasonCancel, "you cancelled the transfer"
			case jingle.ReasonDecline:
				st = TransferDeclined
			default:
				st = TransferFailed
			}
			x.end(r, why, st, detail)
		case xferResume:
			return x.resume(r)
		}
	case xmJingle:
		x.onJingle(r, m.jingle)
	}
	return nil
}

// checkStall cuts a pipe on which no byte moved for fileStallTimeout
// (the resume goes on from the last verified chunk).
func (x *transfer) checkStall(r *xferRun, now time.Time) {
	in := x.snapshot()
	if r.pump == nil || in.State != TransferTransferring || in.BytesDone != r.lastDone || r.lastMove.IsZero() {
		r.lastDone, r.lastMove = in.BytesDone, now
		return
	}
	if now.Sub(r.lastMove) >= fileStallTimeout {
		r.lastMove = time.Time{}
		x.cut(r, r.cur, errStalled)
	}
}

var errStalled = errors.New("no byte moved for " + fileStallTimeout.String())

// start checks an incoming offer against the limits and asks the
// accepter.
func (x *transfer) start(r *xferRun) {
	g := x.g
	x.publish() // pending
	x.mu.Lock()
	files := x.files
	x.mu.Unlock()
	for _, xf := range files {
		switch {
		case !xf.file.HasSize:
			x.end(r, jingle.ReasonFailedApplication, TransferDeclined, "the offer of "+policy.ShowJID(x.peer)+" gives no size for a file; securejingle needs it: ask them to send from a securejingle device")
			return
		case xf.file.Size > g.maxFileSize():
			x.end(r, jingle.ReasonDecline, TransferDeclined, fmt.Sprintf("a file of %d bytes is larger than the limit of %d bytes: raise max_file_size to receive it", xf.file.Size, g.maxFileSize()))
			return
		case xf.want == nil && !acceptableHashUsed(xf.file.HashesUsed):
			x.end(r, jingle.ReasonFailedApplication, TransferDeclined, "the offer carries no sha-256 (or stronger) hash to verify a file with: ask the sender to use a securejingle device")
			return
		case !x.usable(xf.transport):
			x.end(r, jingle.ReasonUnsupportedTransports, TransferDeclined, "the offer's transport ("+orNone(xf.transport)+") is not one this gateway uses (files.transports)")
			return
		}
	}
	if q := g.cfg.FileQuota; q > 0 && g.files.incomingBytes() > q {
		x.end(r, jingle.ReasonDecline, TransferDeclined, fmt.Sprintf("the files would go over the file quota of %d bytes: finish other transfers or raise the quota", q))
		return
	}
	if a := g.cfg.FileAccepter; a != nil {
		if dir, ok := a(x.snapshot()); ok {
			x.mu.Lock()
			taken := x.deciding
			x.deciding = true
			x.mu.Unlock()
			if !taken {
				if err := x.accept(r, dir); err != nil {
					g.log.Info("auto-accept", "transfer", x.id, "err", err)
				}
			}
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func acceptableHashUsed(algos []string) bool {
	for _, a := range algos {
		for _, b := range filexfer.AcceptableHashAlgos() {
			if a == b {
				return true
			}
		}
	}
	return false
}

// usable reports whether a transport name is one we use.
func (x *transfer) usable(name string) bool {
	for _, t := range x.transports {
		if t == name {
			return true
		}
	}
	return false
}

// accept takes an incoming pending transfer: receivers are prepared, the
// session-accept goes out and the pump starts.
//
// An error that leaves the offer pending clears deciding, so that the
// user can accept into another directory or decline (an auto-accept that
// failed falls back to the user).
func (x *transfer) accept(r *xferRun, dir string) (err error) {
	g := x.g
	x.mu.Lock()
	pending := x.sess.State() == jingle.StatePending
	x.mu.Unlock()
	if r.over || !pending {
		return ErrTransferState
	}
	defer func() {
		if err != nil && !r.over {
			x.undecide()
		}
	}()
	if dir == "" {
		dir = g.cfg.DownloadDir
	}
	if dir == "" {
		return fmt.Errorf("%w: no directory to save the files in: name one, or configure the download directory", ErrTransferState)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory: create it or name another", ErrTransferState, dir)
	}
	if err := x.prepareReceive(r, dir); err != nil {
		return err
	}
	r.dir = dir
	if err := x.sendAccept(r); err != nil {
		return err
	}
	x.setState(TransferConnecting, "")
	x.startPump(r, 0)
	return nil
}

// sendAccept sends the session-accept of an offer we accepted or a
// request we serve: our answer to each content's transport.
func (x *transfer) sendAccept(r *xferRun) error {
	g := x.g
	acc := &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: x.id, Responder: g.JID().String()}
	x.mu.Lock()
	files := x.files
	x.mu.Unlock()
	ctx, cancel := context.WithTimeout(x.ctx, fileSendTimeout)
	defer cancel()
	for _, xf := range files {
		t := x.driver(xf.transport)
		if t == nil {
			x.end(r, jingle.ReasonUnsupportedTransports, TransferFailed, "the "+xf.transport+" transport is not available here")
			return ErrTransferState
		}
		ours, err := t.accept(ctx, x.env(xf), xf.theirs)
		if err != nil {
			x.end(r, jingle.ReasonFailedTransport, TransferFailed, "the "+xf.transport+" transport could not be set up: "+err.Error())
			return err
		}
		xf.ours = ours
		acc.Contents = append(acc.Contents, jingle.Content{Creator: jingle.CreatorInitiator, Name: xf.content,
			Senders: x.senders(), Other: []jingle.Raw{xf.description, ours}})
	}
	if err := x.sendJingle(acc); err != nil {
		_, detail := fileFailReason(err)
		x.mu.Lock()
		x.sess.End(jingle.ReasonConnectivityError)
		x.mu.Unlock()
		x.finish(r, TransferFailed, "the acceptance could not be sent: "+detail)
		return err
	}
	return nil
}

// onJingle processes a request the handler validated.
func (x *transfer) onJingle(r *xferRun, j *jingle.Jingle) {
	switch j.Action {
	case jingle.ActionSessionAccept:
		x.onAccepted(r, j)
	case jingle.ActionSessionTerminate:
		x.onTerminate(r, j)
	case jingle.ActionSessionInfo:
		x.onInfo(r, j)
	case jingle.ActionTransportReplace:
		x.onTransportReplace(r, j)
	case jingle.ActionTransportAccept, jingle.ActionTransportReject:
		x.onTransportAnswer(r, j)
	}
}

// onAccepted: the receiver accepted our offer.
func (x *transfer) onAccepted(r *xferRun, j *jingle.Jingle) {
	for i := range j.Contents {
		c := &j.Contents[i]
		xf := x.file(c.Name)
		if xf == nil {
			continue
		}
		if tr, ok := transportRaw(c); ok {
			xf.theirs = tr
		}
		if !x.outgoing {
			// Our request: the sender's description may name the hash.
			x.acceptedRequest(r, c)
		} else if off, ok := rangeOffset(c); ok {
			xf.offset = off
		}
	}
	if r.over {
		return
	}
	x.setState(TransferConnecting, "")
	x.startPump(r, 0)
}

// rangeOffset reads the <range offset/> of a content's description.
func rangeOffset(c *jingle.Content) (uint64, bool) {
	fc, err := filexfer.ParseContent(c)
	if err != nil || fc.Description == nil || fc.Description.File.Range == nil {
		return 0, false
	}
	return fc.Description.File.Range.Offset, true
}

func (x *transfer) file(content string) *xferFile {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, xf := range x.files {
		if xf.content == content {
			return xf
		}
	}
	return nil
}

// onTerminate: the peer ended the session.
func (x *transfer) onTerminate(r *xferRun, j *jingle.Jingle) {
	why, detail := endReason(j.Reason, jingle.ReasonSuccess)
	st := TransferFailed
	switch jingle.ReasonCondition(why) {
	case jingle.ReasonDecline:
		who := "the receiver declined the files"
		if x.request && !x.outgoing {
			who = "the sender declined the request"
		}
		st, detail = TransferDeclined, joinDetail(who, detail)
	case jingle.ReasonCancel:
		st, detail = TransferCancelled, joinDetail("the peer cancelled the transfer", detail)
	case jingle.ReasonSuccess:
		if x.allDone() {
			st = TransferCompleted
		} else {
			detail = joinDetail("the peer ended the session before every file was verified", detail)
		}
	case jingle.ReasonSecurityError:
		detail = joinDetail("the peer ended the transfer for a security error (its checks or policy failed)", detail)
	case jingle.ReasonTimeout:
		detail = joinDetail("the peer gave up waiting (timeout)", detail)
	default:
		detail = joinDetail("the peer ended the transfer ("+why+")", detail)
	}
	x.finish(r, st, detail)
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// end terminates the session with why (when it lives) and finishes.
func (x *transfer) end(r *xferRun, why jingle.ReasonCondition, st TransferState, detail string) {
	x.endText(r, why, st, detail, "")
}

// endText is end with a text in the reason, for the peer's user.
func (x *transfer) endText(r *xferRun, why jingle.ReasonCondition, st TransferState, detail, text string) {
	if why == jingle.ReasonSecurityError {
		r.discard = true // nothing of it is kept for a resume
	}
	x.sendTerminate(why, text)
	x.finish(r, st, detail)
}

func (x *transfer) sendTerminate(why jingle.ReasonCondition, text string) {
	x.mu.Lock()
	live := x.sess != nil && x.sess.State() != jingle.StateEnded
	x.mu.Unlock()
	if !live {
		return
	}
	if err := x.sendJingle(&jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: x.id, Reason: reason(why, text)}); err != nil {
		x.g.log.Info("session-terminate", "transfer", x.id, "err", err)
		x.mu.Lock()
		x.sess.End(why)
		x.mu.Unlock()
	}
}

// finish ends the transfer locally.
func (x *transfer) finish(r *xferRun, st TransferState, detail string) {
	if r.over {
		return
	}
	r.over = true
	x.stopTimer(r)
	x.stopPump(r)
	if st != TransferCompleted {
		var kept bool
		if kept, detail = x.keepPartials(r, st, detail); !kept {
			x.abortReceive()
		}
	}
	x.mu.Lock()
	x.over = true
	if x.sess != nil {
		x.sess.End(jingle.ReasonCondition(st))
	}
	dc := x.dc
	x.dc = nil
	x.mu.Unlock()
	if dc != nil {
		dc.close()
	}
	x.closeIBBWaits()
	x.cancel()
	x.setState(st, detail)
}

// stopped ends the transfer because the gateway stops.
func (x *transfer) stopped(r *xferRun) {
	r.discard = true
	x.mu.Lock()
	live := x.sess != nil && x.sess.State() != jingle.StateEnded
	x.mu.Unlock()
	if live {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), time.Second)
		b, _ := (&jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: x.id, Reason: reason(jingle.ReasonGone, "")}).Marshal()
		x.g.SendProtectedIQ(ctx, x.full, "set", b, false)
		cancel()
	}
	x.finish(r, TransferFailed, "this gateway stopped; send the files again")
}

// timeout handles the running timer.
func (x *transfer) timeout(r *xferRun) {
	if r.timerSoft {
		x.failResumable(r, r.timerDetail)
		return
	}
	st := TransferFailed
	if x.snapshotState() == TransferPending {
		st = TransferDeclined
	}
	x.end(r, r.timerReason, st, r.timerDetail)
}

// allDone reports whether every file is through: received (outgoing) or
// verified (incoming).
func (x *transfer) allDone() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, f := range x.info.Files {
		if f.State != TransferCompleted {
			return false
		}
	}
	return true
}
