package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/securejingle/securejingle/internal/api"
)

func init() {
	register(command{
		name:    "calls",
		summary: "list calls; answer, decline or hang up one",
		run:     runCalls,
	})
}

const callsUsage = `usage:
  securejingle calls [-json]
  securejingle calls answer ID [-audio in.ogg] [-video in.ivf] [-record DIR] [-duration D] [-no-audio]
  securejingle calls decline ID
  securejingle calls hangup ID
  (each takes -socket S)

Without an action, lists the daemon's current and recent calls: id,
direction, peer, state, media, the peer's trust, the DTLS binding check,
and bytes each way. An incoming call rings until you answer or decline it,
unless an auto-answer rule of the daemon's [calls] configuration took it;
answer takes the media the call offers unless told otherwise. Paths are
resolved here and must be readable by the daemon's user.
`

func runCalls(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	action := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	switch action {
	case "list", "answer", "decline", "hangup":
	default:
		fmt.Fprint(stderr, callsUsage)
		return fmt.Errorf("unknown action %q: want answer, decline or hangup", action)
	}
	fs := flag.NewFlagSet("calls "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, callsUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	var asJSON *bool
	var mf mediaFlags
	switch action {
	case "list":
		asJSON = fs.Bool("json", false, "print the API's JSON")
	case "answer":
		mf = addMediaFlags(fs)
	}
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	switch {
	case action == "list" && len(pos) != 0:
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", pos)
	case action != "list" && len(pos) != 1:
		fs.Usage()
		return fmt.Errorf("%s needs the call ID (securejingle calls lists them)", action)
	}
	var m api.CallMedia
	if action == "answer" {
		if m, err = mf.media(); err != nil {
			return err
		}
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	var info api.CallInfo
	switch action {
	case "list":
		calls, err := c.Calls(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(calls)
		}
		return printCalls(stdout, calls)
	case "answer":
		info, err = c.AnswerCall(ctx, pos[0], m)
	case "decline":
		info, err = c.DeclineCall(ctx, pos[0])
	case "hangup":
		info, err = c.HangUp(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "call %s with %s: %s\n", sanitize(info.ID), sanitize(info.Peer), callState(info))
	return err
}

// callState is a call's state in a few words.
func callState(c api.CallInfo) string {
	if c.State == api.CallEnded {
		return endReason(c.EndReason)
	}
	return sanitize(c.State)
}

func printCalls(w io.Writer, calls []api.CallInfo) error {
	if len(calls) == 0 {
		_, err := fmt.Fprintln(w, "no calls")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIRECTION\tPEER\tSTATE\tMEDIA\tTRUST\tBINDING\tSENT\tRECEIVED")
	for _, c := range calls {
		trust := sanitize(c.Trust)
		if c.Verified {
			trust = "verified"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sanitize(c.ID), sanitize(c.Direction), sanitize(c.Peer),
			callState(c), mediaList(c.Media), trust, sanitize(c.Binding), humanBytes(c.BytesSent), humanBytes(c.BytesReceived))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range calls {
		if c.State == api.CallRinging && c.Direction == api.CallIncoming {
			if _, err := fmt.Fprintf(w, "%s is ringing: securejingle calls answer %s (or decline %s)\n",
				sanitize(c.Peer), sanitize(c.ID), sanitize(c.ID)); err != nil {
				return err
			}
		}
		if c.Detail != "" {
			if _, err := fmt.Fprintf(w, "%s: %s\n", sanitize(c.ID), sanitize(c.Detail)); err != nil {
				return err
			}
		}
	}
	return nil
}

// callEventLine renders a call event for chat -listen: "!" when the
// binding check failed, "*" otherwise.
func callEventLine(c api.CallInfo) string {
	peer, id := sanitize(c.Peer), sanitize(c.ID)
	switch {
	case c.Binding == api.BindingFailed:
		return fmt.Sprintf("! CALL %s with %s: %s", id, peer, bindingLine(c))
	case c.State == api.CallRinging && c.Direction == api.CallIncoming:
		return fmt.Sprintf("* CALL %s from %s ringing (%s, %s): securejingle calls answer %s", id, peer, mediaList(c.Media), trustWord(c), id)
	case c.State == api.CallEnded:
		line := fmt.Sprintf("* CALL %s with %s %s", id, peer, endReason(c.EndReason))
		if c.Detail != "" {
			line += ": " + sanitize(c.Detail)
		}
		return line
	}
	return fmt.Sprintf("* CALL %s with %s: %s", id, peer, sanitize(c.State))
}

func trustWord(c api.CallInfo) string {
	if c.Verified {
		return "verified"
	}
	if c.Trust == "" {
		return "trust unknown"
	}
	return "not verified: " + sanitize(c.Trust)
}
