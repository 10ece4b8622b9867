package gateway

// Resume and fallback inside a transfer's session. The receiver of the
// bytes drives both: it knows the verified prefix (Receiver.Offset, chunk
// aligned) and sends a transport-replace of the content with a fresh
// transport and <range offset/> in its description; the sender answers
// transport-accept and streams from that offset with a fresh salt, so
// nothing before it is resent. A transport that does not come up is
// replaced by the next of the receiver's list; every one of them carries
// the same stream encryption, and the security element of the offer
// cannot change (ClassifyUpdate), so there is no fallback to cleartext.
// The sender resumes (ResumeTransfer) by replacing the transport itself;
// the receiver's transport-accept then carries the offset.

import (
	"context"
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// errNotResumable: the session of the transfer is gone.
var errNotResumable = errors.New("gateway: the transfer cannot be resumed: its session ended; send the files again")

// setSoftTimer is setTimer for a wait whose end leaves the transfer
// failed but resumable.
func (x *transfer) setSoftTimer(r *xferRun, detail string) {
	x.setTimer(r, fileConnectTimeout, jingle.ReasonTimeout, detail)
	r.timerSoft = true
}

// failResumable moves the transfer to failed while its session lives: a
// resume (either side) can go on until fileResumeKeep runs out.
func (x *transfer) failResumable(r *xferRun, detail string) {
	x.stopPump(r)
	x.update(func(in *TransferInfo) {
		in.State, in.Detail, in.Resumable = TransferFailed, detail, true
		for i := range in.Files {
			if in.Files[i].State != TransferCompleted {
				in.Files[i].State = TransferFailed
			}
		}
	})
	x.setTimer(r, fileResumeKeep, jingle.ReasonTimeout, detail+"; it was not resumed in time")
}

// cut: the pipe of file i broke during the transfer.
func (x *transfer) cut(r *xferRun, i int, err error) {
	x.stopPump(r)
	xf := x.files[i]
	in := x.snapshot()
	detail := fmt.Sprintf("the connection was cut after %d of %d bytes of %s (%v)", in.Files[i].Done, in.Files[i].Size, in.Files[i].Name, err)
	if x.outgoing {
		x.setState(TransferConnecting, detail+"; waiting for the receiver to resume")
		x.setSoftTimer(r, detail+"; the receiver did not resume: resume the transfer, or send the files again")
		return
	}
	if x.recvComplete(xf) {
		// Every byte is in and verified; saving it failed. A new
		// transport would ask for nothing (offset = size, which no
		// sender takes): resuming finishes it again.
		x.failResumable(r, fmt.Sprintf("%s verified but could not be saved (%v): fix that, then resume the transfer", in.Files[i].Name, err))
		return
	}
	if r.resumes < maxAutoResumes {
		r.resumes++
		if rerr := x.replace(r, i, xf.transport); rerr == nil {
			return
		} else {
			detail += "; the resume could not be sent: " + rerr.Error()
		}
	}
	x.failResumable(r, detail+": resume the transfer")
}

// transportFailed: the transport of file i did not come up.
func (x *transfer) transportFailed(r *xferRun, i int, err error) {
	x.stopPump(r)
	xf := x.files[i]
	if errors.Is(err, dtls.ErrBindingMismatch) {
		f := x.g.peerFacts(policy.KindFileTransfer, policy.DirectionIncoming, x.peer)
		if x.outgoing {
			f.Direction = policy.DirectionOutgoing
		}
		f.PeerDevice, f.Protection, f.Signaling = x.dev, policy.ProtectionTransportOnly, policy.SignalingProtected
		x.g.fileAlert(f, policy.Decision{Action: policy.ActionRefuse, Severity: policy.SeverityCritical, Rule: "dtls-binding",
			Message: "The data channel of a file transfer with " + policy.ShowJID(x.peer) + " presented another certificate than the one their device signaled end to end: someone is intercepting it. The transfer was ended.",
			Detail:  fmt.Sprintf("transfer %s: %v", x.id, err)})
		x.end(r, jingle.ReasonSecurityError, TransferFailed, "the data channel's DTLS certificate does not match the fingerprint the peer's certified device sent end to end: the path is intercepted; the transfer was ended")
		return
	}
	detail := fmt.Sprintf("the %s transport did not come up (%v)", xf.transport, err)
	if x.outgoing {
		x.setState(TransferConnecting, detail+"; waiting for the receiver to try another transport")
		x.setSoftTimer(r, detail+"; no other transport was tried: resume the transfer")
		return
	}
	for next := x.nextTransport(xf.transport); next != ""; next = x.nextTransport(next) {
		if rerr := x.replace(r, i, next); rerr == nil {
			return
		}
	}
	x.failResumable(r, detail+" and no other transport is left (files.transports): check the network, then resume the transfer")
}

// nextTransport is the transport after name in our order, "" at the end.
func (x *transfer) nextTransport(name string) string {
	for k, t := range x.transports {
		if t == name && k+1 < len(x.transports) {
			return x.transports[k+1]
		}
	}
	return ""
}

// replace sends a transport-replace of file i's content with a fresh
// transport of kind name; the receiver's offset rides in the description.
func (x *transfer) replace(r *xferRun, i int, name string) error {
	xf := x.files[i]
	t := x.driver(name)
	if t == nil {
		return fmt.Errorf("%w: %s", errTransportUnavailable, name)
	}
	if r.over {
		return ErrTransferState
	}
	if _, ok := x.recvOffset(xf); !x.outgoing && !ok {
		return fmt.Errorf("%w: the files were not accepted", ErrTransferState)
	}
	ctx, cancel := context.WithTimeout(x.ctx, fileSendTimeout)
	defer cancel()
	x.mu.Lock()
	xf.transport = name
	x.mu.Unlock()
	ours, err := t.offer(ctx, x.env(xf))
	if err != nil {
		return err
	}
	c := jingle.Content{Creator: jingle.CreatorInitiator, Name: xf.content, Senders: x.senders()}
	var offset uint64
	if !x.outgoing {
		var ok bool
		if offset, ok = x.recvOffset(xf); !ok {
			return fmt.Errorf("%w: the files were not accepted", ErrTransferState)
		}
		d, err := x.rangeDescription(xf, offset)
		if err != nil {
			return err
		}
		c.Other = append(c.Other, d)
	}
	c.Other = append(c.Other, ours)
	if _, err := x.sendJingleCtx(ctx, &jingle.Jingle{Action: jingle.ActionTransportReplace, SID: x.id, Contents: []jingle.Content{c}}); err != nil {
		return err
	}
	x.mu.Lock()
	xf.ours, r.replacing = ours, i
	x.mu.Unlock()
	x.update(func(in *TransferInfo) {
		in.State, in.Transport = TransferConnecting, name
		if offset > 0 {
			in.Resumed, in.ResumedFrom = true, offset
		}
	})
	x.setSoftTimer(r, "the peer did not answer the transport replacement: resume the transfer")
	return nil
}

// rangeDescription is the description of a file with <range offset/>.
func (x *transfer) rangeDescription(xf *xferFile, offset uint64) (jingle.Raw, error) {
	f := filexfer.File{Name: xf.file.Name, Size: xf.file.Size, HasSize: true}
	if offset > 0 {
		f.Range = &filexfer.Range{Offset: offset}
	}
	return (&filexfer.Description{File: f}).Raw()
}

// recvOffset is the verified prefix of an incoming file; false before
// the accept made its receiver.
func (x *transfer) recvOffset(xf *xferFile) (uint64, bool) {
	x.mu.Lock()
	rs := xf.recv
	x.mu.Unlock()
	if rs == nil {
		return 0, false
	}
	return rs.r.Offset(), true
}

// onTransportReplace: the peer replaces the transport of a content.
func (x *transfer) onTransportReplace(r *xferRun, j *jingle.Jingle) {
	if r.over {
		return
	}
	for k := range j.Contents {
		c := &j.Contents[k]
		i, xf := x.indexOf(c.Name)
		if xf == nil {
			continue
		}
		reject := func(why string) {
			x.g.log.Info("transport-replace rejected", "transfer", x.id, "content", c.Name, "why", why)
			tr, _ := transportRaw(c)
			if err := x.sendJingle(&jingle.Jingle{Action: jingle.ActionTransportReject, SID: x.id,
				Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: c.Name, Other: []jingle.Raw{tr}}}}); err != nil {
				x.g.log.Info("transport-reject", "transfer", x.id, "err", err)
			}
		}
		if _, ok := x.recvOffset(xf); !x.outgoing && !ok {
			// The handler refuses a replace before the accept; this
			// guards the receiver that is not there.
			reject("the files were not accepted")
			continue
		}
		fc, err := filexfer.ParseContent(c)
		theirs, ok := transportRaw(c)
		if err != nil || !ok {
			reject("no transport")
			continue
		}
		name := transportName(fc)
		t := x.driver(name)
		if t == nil || !x.usable(name) {
			reject("transport " + orNone(name) + " not used here")
			continue
		}
		var offset uint64
		if x.outgoing {
			if off, ok := rangeOffset(c); ok {
				p := x.params(xf)
				if off > xf.file.Size || p.AlignDown(off) != off {
					reject(fmt.Sprintf("offset %d is not a chunk boundary of the file", off))
					continue
				}
				offset = off
			}
		}
		x.stopPump(r)
		x.mu.Lock()
		xf.transport, xf.theirs = name, theirs
		x.mu.Unlock()
		ctx, cancel := context.WithTimeout(x.ctx, fileSendTimeout)
		ours, err := t.accept(ctx, x.env(xf), theirs)
		cancel()
		if err != nil {
			reject(err.Error())
			continue
		}
		acc := jingle.Content{Creator: jingle.CreatorInitiator, Name: c.Name, Senders: x.senders()}
		if !x.outgoing {
			offset, _ = x.recvOffset(xf)
			d, err := x.rangeDescription(xf, offset)
			if err != nil {
				reject(err.Error())
				continue
			}
			acc.Other = append(acc.Other, d)
		}
		acc.Other = append(acc.Other, ours)
		if err := x.sendJingle(&jingle.Jingle{Action: jingle.ActionTransportAccept, SID: x.id, Contents: []jingle.Content{acc}}); err != nil {
			_, detail := fileFailReason(err)
			x.failResumable(r, "the transport replacement could not be answered: "+detail)
			return
		}
		x.mu.Lock()
		xf.ours = ours
		if x.outgoing {
			xf.offset, xf.sent = offset, false
		}
		x.mu.Unlock()
		x.resumedAt(i, name, offset)
		x.startPump(r, i)
		return // one content at a time: the pump goes through the rest
	}
}

// onTransportAnswer: the peer accepted or rejected our transport-replace.
func (x *transfer) onTransportAnswer(r *xferRun, j *jingle.Jingle) {
	if r.over {
		return
	}
	for k := range j.Contents {
		c := &j.Contents[k]
		i, xf := x.indexOf(c.Name)
		if xf == nil {
			continue
		}
		if _, ok := x.recvOffset(xf); !x.outgoing && !ok {
			continue // not accepted: nothing of ours to answer
		}
		if j.Action == jingle.ActionTransportReject {
			if !x.outgoing {
				for next := x.nextTransport(xf.transport); next != ""; next = x.nextTransport(next) {
					if x.replace(r, i, next) == nil {
						return
					}
				}
			}
			x.failResumable(r, "the peer rejected every transport offered: resume the transfer later, or check files.transports on both sides")
			return
		}
		theirs, ok := transportRaw(c)
		if !ok {
			x.failResumable(r, "the peer's transport-accept carries no transport: resume the transfer")
			return
		}
		var offset uint64
		if x.outgoing {
			if off, ok := rangeOffset(c); ok {
				if off > xf.file.Size || x.params(xf).AlignDown(off) != off {
					x.end(r, jingle.ReasonFailedApplication, TransferFailed, fmt.Sprintf("the receiver asked to resume at %d, not a chunk boundary of the file", off))
					return
				}
				offset = off
			}
		} else {
			offset, _ = x.recvOffset(xf)
		}
		x.mu.Lock()
		xf.theirs = theirs
		if x.outgoing {
			xf.offset, xf.sent = offset, false
		}
		x.mu.Unlock()
		x.resumedAt(i, xf.transport, offset)
		x.startPump(r, i)
		return
	}
}

// resumedAt records a new attempt of file i at offset.
func (x *transfer) resumedAt(i int, name string, offset uint64) {
	x.update(func(in *TransferInfo) {
		in.State, in.Transport = TransferConnecting, name
		if offset > 0 {
			in.Resumed, in.ResumedFrom = true, offset
		}
		for k := i; k < len(in.Files); k++ {
			if in.Files[k].State != TransferCompleted {
				in.Files[k].State = TransferConnecting
			}
		}
	})
}

func (x *transfer) indexOf(content string) (int, *xferFile) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, xf := range x.files {
		if xf.content == content {
			return i, xf
		}
	}
	return -1, nil
}

// resume goes on with a failed transfer (ResumeTransfer).
func (x *transfer) resume(r *xferRun) error {
	x.mu.Lock()
	live := x.sess != nil && x.sess.State() == jingle.StateActive
	files := x.files
	x.mu.Unlock()
	if !live {
		return fmt.Errorf("%w: %w", ErrTransferState, errNotResumable)
	}
	i := -1
	for k, xf := range files {
		x.mu.Lock()
		done := x.outgoing && xf.sent || !x.outgoing && xf.recv != nil && xf.recv.done
		x.mu.Unlock()
		if !done {
			i = k
			break
		}
	}
	if i < 0 {
		return fmt.Errorf("%w: every file is through; nothing to resume", ErrTransferState)
	}
	r.resumes = 0
	if !x.outgoing && x.recvComplete(files[i]) {
		x.resumedAt(i, files[i].transport, 0)
		x.startPump(r, i) // Finish again: nothing to transfer
		return nil
	}
	var last error
	for _, name := range x.transports {
		if last = x.replace(r, i, name); last == nil {
			return nil
		}
	}
	return fmt.Errorf("gateway: the resume could not be sent: %w", last)
}
