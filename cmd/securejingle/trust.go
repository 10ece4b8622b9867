package main

import (
	"context"
	"crypto/subtle"
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
		name:    "trust",
		summary: "verify, accept or distrust a contact's account key",
		run:     runTrust,
	})
}

const trustUsage = `usage:
  securejingle trust verify JID [-method M] [-fingerprint "XXXXXXXX ..." | -uri URI | -key BASE64]
  securejingle trust accept JID
  securejingle trust distrust JID
  (each takes -socket S)

Trust is per account: one account key certifies all of the contact's
devices, so a decision covers every one of them.

verify records that you checked the contact's account key out of band
(method fingerprint, sas, qr, ...). Give what you checked: the fingerprint
blocks the contact read to you (the pinned key's, or the new key's after a
change), the verification URI from their QR code, or the key; without any
of them the key the daemon pinned is verified, and printed. accept takes an
account whose key changed back into use without verifying the new key, or
a distrusted one; distrust stops using all of the contact's devices.
`

func runTrust(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, trustUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return nil
		}
		return errors.New("missing action: verify, accept or distrust")
	}
	action := args[0]
	switch action {
	case api.ActionVerify, api.ActionAccept, api.ActionDistrust:
	default:
		fmt.Fprint(stderr, trustUsage)
		return fmt.Errorf("unknown action %q", action)
	}
	fs := flag.NewFlagSet("trust "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, trustUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	method := fs.String("method", "", "verify: how you verified (fingerprint, sas, qr, openpgp, x509-cms); default fingerprint, or qr with -uri")
	fingerprint := fs.String("fingerprint", "", "verify: the fingerprint blocks you compared")
	uri := fs.String("uri", "", "verify: the verification URI scanned from the contact's QR code")
	key := fs.String("key", "", "verify: the identity key, standard base64")
	pos, help, err := parseInterleaved(fs, args[1:])
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("need JID (trust is per account: no device)")
	}
	given := 0
	for _, s := range []string{*fingerprint, *uri, *key} {
		if s != "" {
			given++
		}
	}
	if action != api.ActionVerify && (given > 0 || *method != "") {
		return fmt.Errorf("-method, -fingerprint, -uri and -key apply to verify only")
	}
	if given > 1 {
		return errors.New("give one of -fingerprint, -uri and -key")
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	req := api.TrustRequest{JID: pos[0], Action: action, Method: *method}
	if action == api.ActionVerify {
		if req.Key, req.Method, err = keyToVerify(ctx, c, pos[0], *fingerprint, *uri, *key, *method, stdout); err != nil {
			return err
		}
	}
	res, err := c.Trust(ctx, req)
	if err != nil {
		return err
	}
	m := ""
	if res.Method != "" {
		m = " by " + res.Method
	}
	_, err = fmt.Fprintf(stdout, "%s account key: %s%s (%s)\n", sanitize(res.JID), res.Trust, m, res.Fingerprint)
	return err
}

// keyToVerify works out the account key a verify decision is about and the
// method.
func keyToVerify(ctx context.Context, c *api.Client, bare string, fingerprint, uri, key, method string, stdout io.Writer) (string, string, error) {
	switch {
	case key != "":
		if _, err := api.DecodeKey(key); err != nil {
			return "", "", err
		}
		return key, method, nil
	case uri != "":
		u, err := attest.ParseVerifyURI(uri)
		if err != nil {
			return "", "", err
		}
		// The URI names the account key, no device.
		if u.JID != bare {
			return "", "", fmt.Errorf("the URI is for %s, not %s", sanitize(u.JID), sanitize(bare))
		}
		if method == "" {
			method = "qr"
		}
		return api.EncodeKey(u.Key), method, nil
	}
	info, err := c.Verify(ctx, bare)
	if err != nil {
		return "", "", err
	}
	if fingerprint == "" {
		fmt.Fprintf(stdout, "verifying the account key the daemon pinned: %s\n", info.FingerprintBlocks)
		return info.Key, method, nil
	}
	got := []byte(strings.Join(strings.Fields(strings.ToUpper(fingerprint)), " "))
	if subtle.ConstantTimeCompare(got, []byte(info.FingerprintBlocks)) == 1 {
		return info.Key, method, nil
	}
	if info.PendingKey != "" && subtle.ConstantTimeCompare(got, []byte(info.PendingFingerprintBlocks)) == 1 {
		return info.PendingKey, method, nil
	}
	msg := fmt.Sprintf("the fingerprint you gave does not match the account key of %s: %s", sanitize(bare), info.FingerprintBlocks)
	if info.PendingKey != "" {
		msg += " (new key: " + info.PendingFingerprintBlocks + ")"
	}
	return "", "", errors.New(msg)
}
