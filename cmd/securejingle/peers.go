package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"flag"
)

func init() {
	register(command{
		name:    "peers",
		summary: "list contacts, their account key trust, devices and sessions",
		run:     runPeers,
	})
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := addSocketFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	peers, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(peers)
	}
	if len(peers) == 0 {
		_, err := fmt.Fprintln(stdout, "no peers known yet")
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for _, p := range peers {
		name := sanitize(p.JID)
		if p.Self {
			name += " (your account)"
		}
		trust := p.Trust
		if p.Method != "" {
			trust += " by " + sanitize(p.Method)
		}
		fp := p.Fingerprint
		if fp == "" {
			fp = "no account key known"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, trust, fp)
		if p.PendingFingerprint != "" {
			fmt.Fprintf(tw, "  NEW KEY\t%s\tawaits your decision (securejingle trust verify|accept %s)\n", p.PendingFingerprint, name)
		}
		for _, r := range p.Resources {
			dev := "no securejingle"
			if r.Device != 0 {
				dev = fmt.Sprintf("device %d", r.Device)
			}
			fmt.Fprintf(tw, "  online\t%s\t%s\n", sanitize(r.Resource), dev)
		}
		for _, d := range p.Devices {
			var notes []string
			if !d.Accepted {
				notes = append(notes, "NOT USED: not certified by the accepted account key, or not on its newest device list")
			}
			switch {
			case d.Established:
				notes = append(notes, "session established")
			case d.Session:
				notes = append(notes, "session pending")
			default:
				notes = append(notes, "no session")
			}
			if d.Suite != "" {
				notes = append(notes, d.Suite)
			}
			fmt.Fprintf(tw, "  device %d\t%s\n", d.ID, strings.Join(notes, ", "))
		}
	}
	return tw.Flush()
}
