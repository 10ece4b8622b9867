package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/securejingle/securejingle/internal/api"
)

func init() {
	register(command{
		name:    "call",
		summary: "place a secure call (audio and video from files, recorded to a directory)",
		run:     runCall,
	})
}

const callUsage = `usage:
  securejingle call [-socket S] JID [-audio in.ogg] [-video in.ivf] [-record DIR] [-duration D]

Calls every certified device of the bare JID through the daemon; the first
device to answer takes the call (the others stop ringing). All signaling
travels inside the end-to-end channel. Shows ringing, the answer, the
peer's account key and whether you verified it, the DTLS binding check
(the peer's certificate must match the fingerprint its certified device
sent inside the protected channel) and the SRTP profile, then bytes each
way until the call ends. Interrupt (Ctrl-C) hangs up.

-audio plays an Ogg Opus file, -video an IVF VP8 file; without -audio the
call still receives audio (-no-audio: none at all). -record writes the
received tracks into DIR. -duration hangs up that long after the call
connected. Paths are resolved here and must be readable by the daemon's
user. Exit status 0 when the call ended normally, 1 when it was declined,
refused or failed, with the reason.
`

// callPoll is how often the call's counters are read: on a terminal the
// line is redrawn at that rate; elsewhere a line is printed every
// callPlainEvery polls.
const (
	callPoll       = time.Second
	callPlainEvery = 5
	// hangUpWait bounds the wait for the end after hanging up.
	hangUpWait = 15 * time.Second
)

// mediaFlags are the media flags of call and calls answer.
type mediaFlags struct {
	audio, video, record, duration *string
	noAudio                        *bool
}

func addMediaFlags(fs *flag.FlagSet) mediaFlags {
	return mediaFlags{
		audio:    fs.String("audio", "", "Ogg Opus file to play"),
		video:    fs.String("video", "", "IVF VP8 file to play (negotiates video)"),
		record:   fs.String("record", "", "directory to record the received tracks in"),
		duration: fs.String("duration", "", "hang up this long after connecting (e.g. 30s)"),
		noAudio:  fs.Bool("no-audio", false, "negotiate no audio (video only)"),
	}
}

// media builds the API's media request, with paths made absolute here:
// the daemon resolves relative paths against its own directory.
func (m mediaFlags) media() (api.CallMedia, error) {
	var out api.CallMedia
	for _, p := range []struct {
		flag string
		in   string
		out  *string
	}{{"-audio", *m.audio, &out.AudioFile}, {"-video", *m.video, &out.VideoFile}, {"-record", *m.record, &out.RecordDir}} {
		if p.in == "" {
			continue
		}
		abs, err := filepath.Abs(p.in)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.flag, err)
		}
		*p.out = abs
	}
	if *m.duration != "" {
		d, err := time.ParseDuration(*m.duration)
		if err != nil || d <= 0 {
			return out, fmt.Errorf("-duration: %q is not a positive duration (write e.g. 30s or 2m)", *m.duration)
		}
		out.Duration = d.String()
	}
	if *m.noAudio {
		if out.AudioFile != "" {
			return out, errors.New("-no-audio and -audio exclude each other")
		}
		f := false
		out.Audio = &f
	}
	return out, nil
}

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, callUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	mf := addMediaFlags(fs)
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("need the JID to call")
	}
	m, err := mf.media()
	if err != nil {
		return err
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	// Subscribe before placing the call, so that no event of it is missed.
	sctx, cancelStream := context.WithCancel(context.Background())
	defer cancelStream()
	stream, err := c.Events(sctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	info, err := c.PlaceCall(ctx, api.CallRequest{To: pos[0], CallMedia: m})
	if err != nil {
		return err
	}
	v := newCallView(stdout, isTerminal(stdout))
	v.show(info)
	return followCall(ctx, c, stream, info.ID, v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// followCall shows call id until it ends, hanging up when ctx ends. It
// returns nil for a normal end and an error naming the reason otherwise.
func followCall(ctx context.Context, c *api.Client, stream *api.EventStream, id string, v *callView) error {
	events := make(chan api.CallInfo, 64)
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
			if ev.Kind != "call" || ev.Call == nil || ev.Call.ID != id || ev.Replayed {
				continue
			}
			select {
			case events <- *ev.Call:
			case <-quit:
				return
			}
		}
	}()
	tick := time.NewTicker(callPoll)
	defer tick.Stop()
	hungUp := false
	var deadline <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case info := <-events:
			v.show(info)
		case <-tick.C:
			// Events say when the state changes; the counters are read.
			info, err := c.Call(context.Background(), id)
			if err != nil {
				return err
			}
			v.show(info)
			v.progress(v.last)
		case err := <-streamErr:
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon closed the event stream: the call's end is unknown (see securejingle calls)")
			}
			return err
		case <-done:
			done = nil
			hungUp = true
			v.note("hanging up")
			hctx, cancel := context.WithTimeout(context.Background(), hangUpWait)
			_, err := c.HangUp(hctx, id)
			cancel()
			if err != nil {
				// It may have ended meanwhile.
				if info, cerr := c.Call(context.Background(), id); cerr != nil || info.State != api.CallEnded {
					return fmt.Errorf("hanging up: %w", err)
				}
			}
			deadline = time.After(hangUpWait)
		case <-deadline:
			return fmt.Errorf("the call did not end within %s of hanging up (see securejingle calls)", hangUpWait)
		}
		if v.last.State == api.CallEnded {
			return v.result(hungUp)
		}
	}
}

// callView prints a call's progress: one line per step, and the
// counters, redrawn in place on a terminal.
type callView struct {
	w        io.Writer
	tty      bool
	last     api.CallInfo
	shown    map[string]bool // steps printed
	binding  string
	polls    int
	progLine bool   // a progress line is on the screen (tty)
	state    string // the state of the previous snapshot
}

func newCallView(w io.Writer, tty bool) *callView {
	return &callView{w: w, tty: tty, shown: map[string]bool{}}
}

// line prints a step, first clearing a progress line.
func (v *callView) line(format string, args ...any) {
	if v.progLine {
		fmt.Fprint(v.w, "\r\x1b[K")
		v.progLine = false
	}
	fmt.Fprintf(v.w, format+"\n", args...)
}

func (v *callView) note(s string) { v.line("%s", s) }

// once prints a step the first time.
func (v *callView) once(step, format string, args ...any) {
	if v.shown[step] {
		return
	}
	v.shown[step] = true
	v.line(format, args...)
}

// show prints what is new in info.
func (v *callView) show(info api.CallInfo) {
	// The counters only grow: a snapshot taken as the media closed can
	// read lower.
	info.BytesSent, info.BytesReceived = max(info.BytesSent, v.last.BytesSent), max(info.BytesReceived, v.last.BytesReceived)
	info.PacketsSent, info.PacketsReceived = max(info.PacketsSent, v.last.PacketsSent), max(info.PacketsReceived, v.last.PacketsReceived)
	v.last = info
	peer := sanitize(info.Peer)
	v.once("placed", "calling %s (%s), call %s", peer, mediaList(info.Media), sanitize(info.ID))
	connected := info.State == api.CallConnected || !info.Connected.IsZero()
	if info.State == api.CallRinging {
		v.once("ringing", "ringing %s", peer)
	}
	if info.PeerFull != "" && (info.State == api.CallConnecting || connected) {
		v.once("answered", "answered by %s (device %d): connecting", sanitize(info.PeerFull), info.PeerDevice)
	}
	if connected {
		v.once("connected", "connected")
		v.once("identity", "peer:    %s", identityLine(info))
		if info.SRTPProfile != "" {
			v.once("srtp", "SRTP:    %s", sanitize(info.SRTPProfile))
		}
		if info.RelayOnly {
			v.once("relay", "relay:   relayed candidates only: the peer does not see this host's addresses")
		}
	}
	switch {
	case info.State == api.CallReconnecting && v.state != api.CallReconnecting:
		v.line("reconnecting: the media path was lost; restarting ICE (the call ends if no path is found)")
	case info.State == api.CallConnected && v.state == api.CallReconnecting:
		v.line("reconnected: the media path is back (same DTLS session and binding)")
	}
	v.state = info.State
	if info.Binding != v.binding && (info.Binding == api.BindingPassed || info.Binding == api.BindingFailed) {
		v.binding = info.Binding
		v.line("binding: %s", bindingLine(info))
	}
}

// progress prints the counters: in place on a terminal, else every
// callPlainEvery polls.
func (v *callView) progress(info api.CallInfo) {
	if info.State != api.CallConnected {
		return
	}
	l := bytesLine(info)
	if v.tty {
		fmt.Fprintf(v.w, "\r\x1b[K%s", l)
		v.progLine = true
		return
	}
	v.polls++
	if v.polls%callPlainEvery == 0 {
		fmt.Fprintln(v.w, l)
	}
}

// result prints the end and returns the exit error.
func (v *callView) result(hungUp bool) error {
	info := v.last
	dur := ""
	if !info.Connected.IsZero() && !info.Ended.IsZero() {
		dur = " after " + info.Ended.Sub(info.Connected).Round(100*time.Millisecond).String()
	}
	v.line("ended: %s%s; %s", endReason(info.EndReason), dur, bytesLine(info))
	for _, r := range info.Recordings {
		v.line("recorded: %s", sanitize(r))
	}
	if normalEnd(info, hungUp) {
		return nil
	}
	msg := fmt.Sprintf("call to %s %s", sanitize(info.Peer), endReason(info.EndReason))
	if info.Detail != "" {
		msg += ": " + sanitize(info.Detail)
	}
	return errors.New(msg)
}

// normalEnd reports whether a call ended as the user meant: either side
// hung up after it connected, the duration ran out, or we hung up.
func normalEnd(info api.CallInfo, hungUp bool) bool {
	if info.Binding == api.BindingFailed {
		return false
	}
	switch info.EndReason {
	case "success", "":
		return !info.Connected.IsZero() || hungUp
	case "cancel":
		return hungUp
	}
	return false
}

func endReason(r string) string {
	switch r {
	case "", "success":
		return "hung up"
	case "decline":
		return "declined"
	case "busy":
		return "busy"
	case "timeout", "expired":
		return "not answered in time"
	case "cancel":
		return "cancelled"
	case "gone":
		return "gone: no device of the peer answers"
	case "security-error":
		return "ended for security (security-error)"
	}
	return "ended (" + sanitize(r) + ")"
}

func mediaList(m []string) string {
	if len(m) == 0 {
		return "no media"
	}
	return sanitize(strings.Join(m, " + "))
}

// identityLine says who the peer is and whether the user verified it.
func identityLine(info api.CallInfo) string {
	fp := info.AccountFingerprint
	if fp == "" {
		fp = "account key unknown"
	} else {
		fp = "account key " + fp
	}
	s := fmt.Sprintf("%s, %s", sanitize(info.Peer), sanitize(fp))
	switch {
	case info.Verified:
		return s + ", verified"
	case info.Trust == "tofu":
		return s + ", NOT VERIFIED (pinned on first use): compare with `securejingle verify " + sanitize(info.Peer) + "`"
	}
	return s + ", trust " + sanitize(info.Trust)
}

func bindingLine(info api.CallInfo) string {
	if info.Binding == api.BindingPassed {
		s := "passed: the peer's DTLS certificate matches the fingerprint its certified device sent inside the protected channel"
		if info.PeerFingerprint != "" {
			s += " (" + sanitize(info.PeerFingerprint) + ")"
		}
		return s
	}
	return "FAILED: the peer's DTLS certificate is not the one its certified device announced (a man in the middle?); the call was ended"
}

func bytesLine(info api.CallInfo) string {
	return fmt.Sprintf("sent %s (%d packets), received %s (%d packets)",
		humanBytes(info.BytesSent), info.PacketsSent, humanBytes(info.BytesReceived), info.PacketsReceived)
}

// humanBytes formats n with a decimal unit.
func humanBytes(n uint64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}
