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
		summary: "show a contact's account fingerprint, SAS and QR code to verify it",
		run:     runVerify,
	})
}

const verifyUsage = `usage:
  securejingle verify [-socket S] [-no-qr] JID

Prints what to compare with the contact, out of band: the fingerprint of
their account key (it certifies all their devices, so you verify once per
contact), the short authentication string of your account and theirs (both
sides show the same digits at any time if each holds the other's real key;
the fingerprint and the QR code compare the whole key, prefer them when the
server may have interfered from the first contact on) and a QR code of the
verification URI. Your own JID shows your account key.
Then record the result with
  securejingle trust verify JID -method sas|fingerprint|qr
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
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("need JID (trust is per account: no device)")
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := c.Verify(ctx, pos[0])
	if err != nil {
		return err
	}
	return printVerify(stdout, info, !*noQR)
}

func printVerify(w io.Writer, v api.VerifyInfo, qr bool) error {
	m := ""
	if v.Method != "" {
		m = " by " + sanitize(v.Method)
	}
	fmt.Fprintf(w, "%s account key (trust: %s%s)\n", sanitize(v.JID), v.Trust, m)
	fmt.Fprintf(w, "Fingerprint: %s\n", v.FingerprintBlocks)
	fmt.Fprintf(w, "             %s\n", v.Fingerprint)
	if v.SAS != "" {
		fmt.Fprintf(w, "SAS:         %s\n", sanitize(v.SAS))
	} else {
		fmt.Fprintln(w, "SAS:         none (this is your own account)")
	}
	if v.PendingKey != "" {
		fmt.Fprintf(w, "NEW KEY:     %s\n", v.PendingFingerprintBlocks)
		fmt.Fprintf(w, "             %s (not used until you verify or accept it)\n", v.PendingFingerprint)
		if v.PendingSAS != "" {
			fmt.Fprintf(w, "NEW KEY SAS: %s\n", sanitize(v.PendingSAS))
		}
	}
	if len(v.Devices) == 0 {
		fmt.Fprintln(w, "Sessions:    none yet (the fingerprint and SAS do not need one)")
	}
	for _, d := range v.Devices {
		state := "confirmed"
		if !d.Established {
			state = "not yet confirmed by the peer"
		}
		fmt.Fprintf(w, "  device %d: session %s\n", d.ID, state)
	}
	fmt.Fprintf(w, "URI:         %s\n", v.QR)
	printDeviceAttestations(w, v.Attestations)
	if !qr {
		return nil
	}
	return attest.RenderQR(v.QR, w)
}

// printDeviceAttestations prints the attestations of an account's
// bundles: as one list when they all come from one device, else one list
// per device (they arrive in device order).
func printDeviceAttestations(w io.Writer, atts []api.AttestationResult) {
	var groups [][]api.AttestationResult
	for i, a := range atts {
		if i == 0 || a.Device != atts[i-1].Device {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], a)
	}
	if len(groups) <= 1 {
		printAttestations(w, atts)
		return
	}
	for _, g := range groups {
		fmt.Fprintf(w, "Device %d: ", g[0].Device)
		printAttestations(w, g)
	}
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
