package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/internal/api"
)

func init() {
	register(command{
		name:    "verify",
		summary: "show a device's fingerprint, SAS and QR code to verify it",
		run:     runVerify,
	})
}

const verifyUsage = `usage:
  securejingle verify [-socket S] [-no-qr] JID [DEVICE]

Prints what to compare with the contact, out of band: the identity key
fingerprint, the short authentication string of your session (both sides
show the same digits if no one is in the middle) and a QR code of the
verification URI. Without DEVICE every known device of JID is shown; your
own JID shows this device. Then record the result with
  securejingle trust verify JID DEVICE -method sas|fingerprint|qr
`

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	noQR := fs.Bool("no-qr", false, "do not draw the QR code")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return errors.New("need JID and optionally DEVICE")
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	bare := pos[0]
	var devices []uint32
	if len(pos) == 2 {
		d, err := api.ParseDevice(pos[1])
		if err != nil {
			return err
		}
		devices = []uint32{d}
	} else {
		if devices, err = devicesOf(ctx, c, bare); err != nil {
			return err
		}
	}
	for i, d := range devices {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		info, err := c.Verify(ctx, bare, d)
		if err != nil {
			return err
		}
		if err := printVerify(stdout, info, !*noQR); err != nil {
			return err
		}
	}
	return nil
}

// devicesOf returns the known devices of bare, or this device for our own
// account when no other is known.
func devicesOf(ctx context.Context, c *api.Client, bare string) ([]uint32, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, p := range peers {
		if p.JID != bare {
			continue
		}
		for _, d := range p.Devices {
			out = append(out, d.ID)
		}
	}
	if bare == st.Account {
		out = append([]uint32{st.Device}, out...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no device of %s is known yet", bare)
	}
	return out, nil
}

func printVerify(w io.Writer, v api.VerifyInfo, qr bool) error {
	fmt.Fprintf(w, "%s device %d (trust: %s)\n", sanitize(v.JID), v.Device, v.Trust)
	fmt.Fprintf(w, "Fingerprint: %s\n", v.FingerprintBlocks)
	fmt.Fprintf(w, "             %s\n", v.Fingerprint)
	switch {
	case v.SAS == "":
		fmt.Fprintln(w, "SAS:         no session with this device yet (send a message first)")
	case v.Established:
		fmt.Fprintf(w, "SAS:         %s\n", v.SAS)
	default:
		fmt.Fprintf(w, "SAS:         %s (session not yet confirmed by the peer)\n", v.SAS)
	}
	fmt.Fprintf(w, "URI:         %s\n", v.QR)
	printAttestations(w, v.Attestations)
	if !qr {
		return nil
	}
	return attest.RenderQR(v.QR, w)
}

// printAttestations prints one line per attestation result, followed by
// the detail of an untrusted or unsupported one (for an unsupported type,
// the payload to check by hand), indented.
func printAttestations(w io.Writer, atts []api.AttestationResult) {
	if len(atts) == 0 {
		fmt.Fprintln(w, "Attestations: none")
		return
	}
	fmt.Fprintln(w, "Attestations:")
	for _, a := range atts {
		line := "  " + sanitize(a.Type) + ": " + sanitize(a.Status)
		if a.Signer != "" {
			line += " by " + sanitize(a.Signer)
		}
		detail := strings.TrimSuffix(a.Detail, "\n")
		below := a.Status == "untrusted" || a.Status == "unsupported" || strings.Contains(detail, "\n")
		if detail != "" && !below {
			line += " (" + sanitize(detail) + ")"
		}
		fmt.Fprintln(w, line)
		if detail != "" && below {
			for _, l := range strings.Split(detail, "\n") {
				fmt.Fprintln(w, "    "+sanitize(l))
			}
		}
	}
}
