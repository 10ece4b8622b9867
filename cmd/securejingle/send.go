package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/progress"
)

func init() {
	register(command{
		name:    "send",
		summary: "send files end-to-end encrypted, with a progress bar",
		run:     runSend,
	})
}

const sendUsage = `usage:
  securejingle send [-socket S] [-transport T,...] [-desc TEXT] JID FILE...

Offers the files to a certified device of the bare JID through the daemon
and shows the transfer: waiting for the receiver, the transport, then per
file bytes, percent, rate and time left (redrawn in place on a terminal,
a plain line a second otherwise), and the whole-file sha-256 the receiver
verified. The offer, the names, sizes and hashes travel inside the
end-to-end channel, and the bytes are encrypted with a key from it on
every transport. Interrupt (Ctrl-C) cancels the transfer.

-transport chooses the transports to try, in order, from
webrtc-datachannel, s5b-direct, s5b-proxy and ibb (default: the daemon's
[files] transports). Paths are resolved here and must be readable by the
daemon's user.

Exit status 0 when every file arrived and matched its hash; 1 when the
transfer was declined, refused, cancelled or failed, with the reason. A
failed transfer can go on from where it stopped: securejingle files
resume ID.
`

const (
	// sendPoll is how often the transfer is read besides its events, so
	// that a lost event delays the display by at most this much.
	sendPoll = time.Second
	// cancelWait bounds the wait for the end after cancelling.
	cancelWait = 15 * time.Second
)

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, sendUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	transports := fs.String("transport", "", "comma-separated transports to try, in order")
	desc := fs.String("desc", "", "a description sent with the files")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) < 2 {
		fs.Usage()
		return errors.New("need the JID to send to and at least one file")
	}
	req := api.SendFilesRequest{To: pos[0], Desc: *desc}
	if *transports != "" {
		req.Transports = strings.Split(*transports, ",")
		if err := api.CheckTransports(req.Transports); err != nil {
			return fmt.Errorf("-transport: %w", err)
		}
	}
	for _, p := range pos[1:] {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		req.Paths = append(req.Paths, abs)
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	// Subscribe before sending, so that no event of the transfer is
	// missed.
	sctx, cancelStream := context.WithCancel(context.Background())
	defer cancelStream()
	stream, err := c.Events(sctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	info, err := c.SendFiles(ctx, req)
	if err != nil {
		return err
	}
	tty, width := progress.Terminal(stdout)
	v := newSendView(stdout, progress.Options{Terminal: tty, Width: width})
	v.show(info)
	return followTransfer(ctx, c, stream, info.ID, v)
}

// followTransfer shows transfer id until it ends, cancelling it when ctx
// ends. It returns nil when it completed, and an error naming the cause
// otherwise.
func followTransfer(ctx context.Context, c *api.Client, stream *api.EventStream, id string, v *sendView) error {
	events := make(chan api.TransferInfo, 64)
	streamErr := make(chan error, 1)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			ev, err := stream.Next()
			if err != nil {
				streamErr <- err
				return
			}
			if ev.Kind != "file" || ev.File == nil || ev.File.ID != id || ev.Replayed {
				continue
			}
			select {
			case events <- *ev.File:
			case <-quit:
				return
			}
		}
	}()
	tick := time.NewTicker(sendPoll)
	defer tick.Stop()
	cancelled := false
	var deadline <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case info := <-events:
			v.show(info)
		case <-tick.C:
			info, err := c.Transfer(context.Background(), id)
			if err != nil {
				return err
			}
			v.show(info)
		case err := <-streamErr:
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("the daemon closed the event stream: the transfer's end is unknown (see securejingle files; it may go on: securejingle files cancel %s)", sanitize(id))
			}
			return err
		case <-done:
			done = nil
			cancelled = true
			v.note("cancelling the transfer")
			cctx, cancel := context.WithTimeout(context.Background(), cancelWait)
			_, err := c.CancelTransfer(cctx, id)
			cancel()
			if err != nil {
				// It may have ended meanwhile.
				if info, cerr := c.Transfer(context.Background(), id); cerr != nil || !api.TransferEnded(info.State) {
					return fmt.Errorf("cancelling: %w", err)
				}
			}
			deadline = time.After(cancelWait)
		case <-deadline:
			return fmt.Errorf("the transfer did not end within %s of cancelling (see securejingle files)", cancelWait)
		}
		if api.TransferEnded(v.last.State) {
			return v.result(cancelled)
		}
	}
}

// sendView prints a transfer: one line per step, and a progress line per
// file.
type sendView struct {
	bar   *progress.Bar
	last  api.TransferInfo
	items []*progress.Item
	shown map[string]bool // steps printed
	state string
}

func newSendView(w io.Writer, o progress.Options) *sendView {
	return &sendView{bar: progress.New(w, o), shown: map[string]bool{}}
}

func (v *sendView) note(s string) { v.bar.Println(s) }

// once prints a step the first time.
func (v *sendView) once(step, format string, args ...any) {
	if v.shown[step] {
		return
	}
	v.shown[step] = true
	v.bar.Println(fmt.Sprintf(format, args...))
}

// show prints what is new in info.
func (v *sendView) show(info api.TransferInfo) {
	v.last = info
	peer, id := sanitize(info.Peer), sanitize(info.ID)
	v.once("offered", "offering %s to %s, transfer %s", filesSummary(info), peer, id)
	if info.State == api.TransferOffered {
		v.once("waiting", "waiting for %s to accept", peer)
	}
	if info.PeerFull != "" && info.State != api.TransferOffered && info.State != api.TransferDeclined {
		v.once("accepted", "accepted by %s (device %d)", sanitize(info.PeerFull), info.PeerDevice)
		v.once("identity", "peer:      %s", transferIdentity(info))
	}
	if info.Transport != "" && !v.shown["transport:"+info.Transport] {
		v.shown["transport:"+info.Transport] = true
		line := "transport: " + sanitize(info.Transport)
		if info.Suite != "" {
			line += ", stream cipher " + sanitize(info.Suite)
		}
		v.bar.Println(line)
	}
	if info.Resumed {
		v.once("resumed", "resumed from %s", progress.Bytes(info.ResumedFrom))
	}
	moved := info.BytesDone > 0 && (info.State == api.TransferFailed || info.State == api.TransferCancelled)
	if moved || info.State == api.TransferTransferring || info.State == api.TransferVerifying || info.State == api.TransferCompleted {
		for len(v.items) < len(info.Files) {
			f := info.Files[len(v.items)]
			v.items = append(v.items, v.bar.Add(f.Name, f.Size))
		}
		for i, f := range info.Files {
			if f.State == api.TransferCompleted || info.State == api.TransferCompleted {
				v.items[i].Finish(false, hashNote(f))
				continue
			}
			v.items[i].Set(f.Done)
		}
	}
	if info.State == api.TransferVerifying && v.state != api.TransferVerifying {
		v.note("verifying the whole-file hashes")
	}
	v.state = info.State
}

// result finishes the lines and returns the exit error.
func (v *sendView) result(cancelled bool) error {
	info := v.last
	reason := endWord(info.State)
	for i, it := range v.items {
		if info.State == api.TransferCompleted {
			it.Finish(false, hashNote(info.Files[i]))
		} else {
			it.Finish(true, reason)
		}
	}
	if info.State == api.TransferCompleted {
		dur := ""
		if !info.Started.IsZero() && !info.Ended.IsZero() {
			d := info.Ended.Sub(info.Started)
			dur = " in " + progress.Duration(d)
			if d > 0 {
				dur += fmt.Sprintf(" (%s/s)", progress.Bytes(uint64(float64(info.BytesTotal)/d.Seconds())))
			}
		}
		v.note(fmt.Sprintf("completed: %s to %s%s; the receiver verified every file's hash", filesSummary(info), sanitize(info.Peer), dur))
		return v.bar.Err()
	}
	msg := fmt.Sprintf("transfer %s to %s %s", sanitize(info.ID), sanitize(info.Peer), reason)
	if info.Detail != "" {
		msg += ": " + sanitize(info.Detail)
	}
	if info.State == api.TransferFailed && !cancelled {
		msg += fmt.Sprintf(" (go on from where it stopped: securejingle files resume %s)", sanitize(info.ID))
	}
	return errors.New(msg)
}

// endWord says how a transfer ended.
func endWord(state string) string {
	switch state {
	case api.TransferCompleted:
		return "completed"
	case api.TransferDeclined:
		return "declined"
	case api.TransferCancelled:
		return "cancelled"
	case api.TransferFailed:
		return "failed"
	}
	return sanitize(state)
}

// hashNote is the note of a completed file: its verified hash.
func hashNote(f api.FileInfo) string {
	if f.Hash == "" {
		return "hash verified"
	}
	return sanitize(f.Hash) + " verified"
}

// filesSummary is "a.txt (1.2 MB)" or "3 files (4.5 MB)".
func filesSummary(t api.TransferInfo) string {
	var total uint64
	for _, f := range t.Files {
		total += f.Size
	}
	total = max(total, t.BytesTotal)
	switch len(t.Files) {
	case 0:
		return "no files"
	case 1:
		return fmt.Sprintf("%s (%s)", sanitize(t.Files[0].Name), progress.Bytes(total))
	}
	return fmt.Sprintf("%d files (%s)", len(t.Files), progress.Bytes(total))
}

// transferIdentity says who the peer is and whether the user verified it.
func transferIdentity(t api.TransferInfo) string {
	fp := "account key unknown"
	if t.AccountFingerprint != "" {
		fp = "account key " + sanitize(t.AccountFingerprint)
	}
	s := fmt.Sprintf("%s, %s", sanitize(t.Peer), fp)
	switch {
	case t.Verified:
		return s + ", verified"
	case t.Trust == "tofu":
		return s + ", NOT VERIFIED (pinned on first use): compare with `securejingle verify " + sanitize(t.Peer) + "`"
	case t.Trust == "":
		return s
	}
	return s + ", trust " + sanitize(t.Trust)
}
