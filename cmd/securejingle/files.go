package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/progress"
)

func init() {
	register(command{
		name:    "files",
		summary: "list file transfers; accept, decline, cancel or resume one",
		run:     runFiles,
	})
}

const filesUsage = `usage:
  securejingle files [-json]
  securejingle files accept ID [-dir DIR]
  securejingle files decline ID
  securejingle files cancel ID
  securejingle files resume ID
  (each takes -socket S)

Without an action, lists the daemon's current and recent transfers: id,
direction, peer, state, files, bytes done of the total, transport and
rate. An incoming offer waits until you accept or decline it (or
files.accept_timeout passes), unless an auto-accept rule of the daemon's
[files] configuration took it. accept saves into the daemon's download
directory, or into -dir (resolved here; the daemon's user must be able to
write it). cancel stops a transfer in either direction; resume goes on
with a failed one from the last chunk the receiver verified.
`

func runFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	action := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	switch action {
	case "list", "accept", "decline", "cancel", "resume":
	default:
		fmt.Fprint(stderr, filesUsage)
		return fmt.Errorf("unknown action %q: want accept, decline, cancel or resume", action)
	}
	fs := flag.NewFlagSet("files "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, filesUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	var asJSON *bool
	var dir *string
	switch action {
	case "list":
		asJSON = fs.Bool("json", false, "print the API's JSON")
	case "accept":
		dir = fs.String("dir", "", "directory to save the files in (default: the daemon's download directory)")
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
		return fmt.Errorf("%s needs the transfer ID (securejingle files lists them)", action)
	}
	var absDir string
	if dir != nil && *dir != "" {
		if absDir, err = filepath.Abs(*dir); err != nil {
			return fmt.Errorf("-dir: %w", err)
		}
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	var info api.TransferInfo
	switch action {
	case "list":
		ts, err := c.Transfers(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(ts)
		}
		return printTransfers(stdout, ts)
	case "accept":
		info, err = c.AcceptTransfer(ctx, pos[0], absDir)
	case "decline":
		info, err = c.DeclineTransfer(ctx, pos[0])
	case "cancel":
		info, err = c.CancelTransfer(ctx, pos[0])
	case "resume":
		info, err = c.ResumeTransfer(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "transfer %s %s %s: %s\n", sanitize(info.ID), directionWord(info), sanitize(info.Peer), sanitize(info.State))
	return err
}

func directionWord(t api.TransferInfo) string {
	if t.Direction == api.TransferIncoming {
		return "from"
	}
	return "to"
}

// fileNames is "a.txt", or "a.txt +2" for several files.
func fileNames(t api.TransferInfo) string {
	switch len(t.Files) {
	case 0:
		return "-"
	case 1:
		return sanitize(t.Files[0].Name)
	}
	return fmt.Sprintf("%s +%d", sanitize(t.Files[0].Name), len(t.Files)-1)
}

// transferSize is "done / total", or the total once complete.
func transferSize(t api.TransferInfo) string {
	total := t.BytesTotal
	if total == 0 {
		for _, f := range t.Files {
			total += f.Size
		}
	}
	if t.State == api.TransferCompleted || t.BytesDone == total {
		return progress.Bytes(total)
	}
	return progress.Bytes(t.BytesDone) + " / " + progress.Bytes(total)
}

func printTransfers(w io.Writer, ts []api.TransferInfo) error {
	if len(ts) == 0 {
		_, err := fmt.Fprintln(w, "no transfers")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIRECTION\tPEER\tSTATE\tFILES\tSIZE\tTRANSPORT\tRATE")
	for _, t := range ts {
		transport, rate := sanitize(t.Transport), "-"
		if transport == "" {
			transport = "-"
		}
		if t.State == api.TransferTransferring && t.Rate > 0 {
			rate = progress.Bytes(uint64(t.Rate)) + "/s"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sanitize(t.ID), sanitize(t.Direction), sanitize(t.Peer),
			sanitize(t.State), fileNames(t), transferSize(t), transport, rate)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range ts {
		if t.State == api.TransferPending && t.Direction == api.TransferIncoming {
			if _, err := fmt.Fprintf(w, "%s offers %s (%s): securejingle files accept %s (or decline %s)\n",
				sanitize(t.Peer), filesSummary(t), trustWordFiles(t), sanitize(t.ID), sanitize(t.ID)); err != nil {
				return err
			}
		}
		if t.Detail != "" {
			if _, err := fmt.Fprintf(w, "%s: %s\n", sanitize(t.ID), sanitize(t.Detail)); err != nil {
				return err
			}
		}
	}
	return nil
}

func trustWordFiles(t api.TransferInfo) string {
	if t.Verified {
		return "verified"
	}
	if t.Trust == "" {
		return "trust unknown"
	}
	return "not verified: " + sanitize(t.Trust)
}

// fileEventLine renders a file event for chat -listen, or "" for
// progress: "*" for an offer and the end, "!" for a failure.
func fileEventLine(t api.TransferInfo) string {
	id, peer := sanitize(t.ID), sanitize(t.Peer)
	detail := ""
	if t.Detail != "" {
		detail = ": " + sanitize(t.Detail)
	}
	switch t.State {
	case api.TransferPending:
		if t.Direction == api.TransferIncoming {
			return fmt.Sprintf("* FILES %s from %s: %s (%s): securejingle files accept %s", id, peer, filesSummary(t), trustWordFiles(t), id)
		}
	case api.TransferCompleted:
		return fmt.Sprintf("* FILES %s %s %s completed: %s, hashes verified", id, directionWord(t), peer, filesSummary(t))
	case api.TransferFailed:
		return fmt.Sprintf("! FILES %s %s %s failed%s", id, directionWord(t), peer, detail)
	case api.TransferDeclined, api.TransferCancelled:
		return fmt.Sprintf("* FILES %s %s %s %s%s", id, directionWord(t), peer, endWord(t.State), detail)
	}
	return ""
}
