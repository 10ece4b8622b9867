package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/internal/daemon"
)

func init() {
	register(command{
		name:    "attest",
		summary: "check an attestation file before publishing it (attest check FILE)",
		run:     runAttest,
	})
}

const attestUsage = `usage:
  securejingle attest check [-config FILE] [-statement ST | -socket S] [-type T] FILE

Checks FILE, an OpenPGP armored detached signature (gpg --armor
--detach-sign) or a CMS signature (openssl cms -sign -binary -outform DER),
against the account statement and the OpenPGP keys and X.509 roots of the
daemon configuration's [trust] table (default
$XDG_CONFIG_HOME/securejingle/daemon.toml; none trusted without one), as
peers with the same table will. It prints the status, the signer, the
names the signer's certificate or key gives and whether one is your JID,
and when the certificate or key expires. The exit status is 0 only for
"verified".

The statement is the file ST (the output of securejingle keys statement),
or by default the running daemon's. The type is detected from FILE
(openpgp for an armored PGP signature, else x509-cms) unless -type names
it. Put the file in the daemon configuration once it checks:
  [[keys.attestation]]
  type = "openpgp"
  file = "st.txt.asc"
`

func runAttest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, attestUsage)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "check":
		return attestCheck(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, attestUsage)
		return nil
	}
	fmt.Fprint(stderr, attestUsage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// errNotVerified is returned by attest check for an attestation that is
// not verified; the output says why.
var errNotVerified = errors.New("not verified")

func attestCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("attest check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, attestUsage); fset.PrintDefaults() }
	configPath := fset.String("config", "", "daemon configuration whose [trust] table to use (default $XDG_CONFIG_HOME/securejingle/daemon.toml)")
	stFile := fset.String("statement", "", "account statement file (securejingle keys statement > ST); default: ask the running daemon")
	socket := addSocketFlag(fset)
	typ := fset.String("type", "", "attestation type: openpgp or x509-cms (default: detected)")
	pos, help, err := parseInterleaved(fset, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		fset.Usage()
		return errors.New("need exactly one attestation FILE")
	}
	if *stFile != "" && *socket != "" {
		return errors.New("give -statement or -socket, not both")
	}
	file := pos[0]
	data, err := readBounded(file, attest.MaxAttestationSize, "attestation")
	if err != nil {
		return err
	}
	if *typ == "" {
		*typ = detectAttestationType(data)
	} else if *typ != attest.TypeOpenPGP && *typ != attest.TypeX509CMS {
		return fmt.Errorf("-type %q: want %s or %s", *typ, attest.TypeOpenPGP, attest.TypeX509CMS)
	}

	// Trust: the daemon configuration's [trust] table.
	var reg *attest.Registry
	trustFrom := ""
	cfgPath := *configPath
	if cfgPath == "" {
		if cfgPath, err = defaultConfigPath(); err != nil {
			return err
		}
	}
	cfg, err := daemon.Load(cfgPath)
	switch {
	case err == nil:
		if reg, err = cfg.Trust.Registry(); err != nil {
			return err
		}
		trustFrom = "[trust] of " + cfgPath
		if *socket == "" {
			*socket = cfg.SocketPath()
		}
	case *configPath == "" && errors.Is(err, fs.ErrNotExist):
		reg = attest.NewRegistry(&attest.OpenPGPVerifier{}, attest.NewX509Verifier(nil))
		trustFrom = "none (no daemon configuration at " + cfgPath + ")"
	default:
		return err
	}

	st, stFrom, err := checkStatement(ctx, *stFile, *socket)
	if err != nil {
		return err
	}
	res := reg.Verify(st, []attest.Attestation{{Type: *typ, Data: data}})[0]
	printCheck(stdout, file, stFrom, trustFrom, st, res)
	if res.Status != attest.Verified {
		return fmt.Errorf("%s: %w (%s)", sanitize(file), errNotVerified, res.Status)
	}
	return nil
}

// detectAttestationType tells an armored OpenPGP signature from CMS.
func detectAttestationType(data []byte) string {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP ")) {
		return attest.TypeOpenPGP
	}
	return attest.TypeX509CMS
}

// checkStatement reads the statement from file, or asks the daemon at
// socket for it.
func checkStatement(ctx context.Context, file, socket string) (attest.Statement, string, error) {
	if file != "" {
		b, err := readBounded(file, maxStatementFile, "statement")
		if err != nil {
			return attest.Statement{}, "", err
		}
		st, err := attest.ParseStatement(b)
		if err != nil {
			return attest.Statement{}, "", fmt.Errorf("%s: %w (print it with securejingle keys statement)", sanitize(file), err)
		}
		return st, file, nil
	}
	c, err := dialAPI(socket)
	if err != nil {
		return attest.Statement{}, "", fmt.Errorf("%w; or give the statement with -statement FILE", err)
	}
	defer c.Close()
	status, err := c.Status(ctx)
	if err != nil {
		return attest.Statement{}, "", err
	}
	st, err := attest.ParseStatement([]byte(status.Statement))
	if err != nil {
		return attest.Statement{}, "", fmt.Errorf("the daemon sent no valid account statement (is it older than this command?): %w", err)
	}
	return st, "the running daemon", nil
}

// maxStatementFile bounds a statement file; a canonical statement is a
// few hundred bytes.
const maxStatementFile = 16 << 10

// printCheck prints what attest check found, one field a line.
func printCheck(w io.Writer, file, stFrom, trustFrom string, st attest.Statement, r attest.Result) {
	line := func(k, v string) { fmt.Fprintf(w, "%-10s %s\n", k+":", sanitize(v)) }
	line("file", file)
	line("type", r.Type)
	line("statement", "for "+st.JID+" (from "+stFrom+")")
	line("trust", trustFrom)
	line("status", r.Status.String())
	if r.Signer != "" {
		line("signer", r.Signer)
	}
	switch {
	case r.Signer == "" && r.Status == attest.Untrusted:
		line("JID", "not checked: the signing key is not in the configured keyring")
	case r.Signer == "":
		line("JID", "not checked")
	case r.NamesJID:
		line("JID", "named by the signer ("+st.JID+")")
	default:
		line("JID", "NOT named by the signer (want "+st.JID+")")
	}
	if len(r.Names) > 0 {
		line("names", strings.Join(r.Names, ", "))
	}
	switch {
	case !r.Expires.IsZero():
		line("expires", r.Expires.UTC().Format("2006-01-02 15:04:05 UTC"))
	case r.Signer != "" && r.Type == attest.TypeOpenPGP:
		line("expires", "never")
	}
	if r.Detail != "" {
		line("detail", r.Detail)
	}
	if hint := checkHint(r); hint != "" {
		line("fix", hint)
	}
}

// checkHint says what to do about a result that is not verified.
func checkHint(r attest.Result) string {
	switch r.Status {
	case attest.Untrusted:
		return "add the signer's public key to [trust] openpgp_keys or its root CA to [trust] x509_roots to check it fully; peers see it as untrusted unless they trust the signer"
	case attest.Mismatch:
		return "sign with a certificate (subjectAltName id-on-xmppAddr or email) or OpenPGP key (user id Name <JID> or Name <xmpp:JID>) that names your JID"
	case attest.Expired:
		return "renew the certificate or key (or correct the clock), sign the statement again and check again"
	case attest.Failed:
		return "sign the current statement again: securejingle keys statement > st.txt, then gpg --armor --detach-sign st.txt or openssl cms -sign -binary -in st.txt ..."
	}
	return ""
}
