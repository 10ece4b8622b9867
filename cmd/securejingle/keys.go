package main

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
)

func init() {
	register(command{
		name:    "keys",
		summary: "create, show and use the identity key (new, show, fingerprint, statement, sign, verify)",
		run:     runKeys,
	})
}

const keysUsage = `usage:
  securejingle keys new [-out FILE] [-comment C] [-passphrase-env VAR]
  securejingle keys show [-file FILE | -agent | -key FINGERPRINT|COMMENT]
  securejingle keys fingerprint [-file FILE | -agent | -key FINGERPRINT|COMMENT]
  securejingle keys statement [-socket S]
  securejingle keys sign -namespace NS [-file FILE | -agent | -key FINGERPRINT|COMMENT]
                         [-passphrase-env VAR] [-out SIG] FILE
  securejingle keys verify -namespace NS -signature SIG [-signer FINGERPRINT|KEYFILE] FILE

The default key file is $XDG_CONFIG_HOME/securejingle/identity_ed25519
(~/.config/securejingle/identity_ed25519). With -agent the key is the only
Ed25519 key of the ssh-agent at $SSH_AUTH_SOCK; -key picks one of several
agent keys by its fingerprint (SHA256:..., as ssh-add -l prints it) or its
comment.

keys statement prints the account statement of the running daemon (your
bare JID and account key, no device: one signature serves all your
devices), for an OpenPGP or X.509 key to sign, e.g.
  securejingle keys statement > st.txt
  gpg --armor --detach-sign st.txt            # writes st.txt.asc
  securejingle attest check -statement st.txt st.txt.asc   # before publishing
and name the signature in the daemon configuration:
  [[keys.attestation]]
  type = "openpgp"
  file = "st.txt.asc"

keys sign writes an armored SSH signature of FILE (default FILE.sig, "-"
for standard output) that ssh-keygen verifies:
  ssh-keygen -Y verify -f allowed_signers -I ID -n NS -s FILE.sig < FILE
Namespaces ending in @securejingle.org are refused: they are the
protocol's own. keys verify checks such a signature (Ed25519 only),
made by -signer if given.
`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "new":
		return keysNew(args[1:], stdout, stderr)
	case "show":
		return keysShow(args[1:], stdout, stderr, false)
	case "fingerprint":
		return keysShow(args[1:], stdout, stderr, true)
	case "statement":
		return keysStatement(ctx, args[1:], stdout, stderr)
	case "sign":
		return keysSign(args[1:], stdout, stderr)
	case "verify":
		return keysVerify(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	fmt.Fprint(stderr, keysUsage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// parseFlags parses args with fs and treats -h as success.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return false, err
}

func keysNew(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "key file to create (default $XDG_CONFIG_HOME/securejingle/identity_ed25519)")
	comment := fs.String("comment", "", "comment for the public key line")
	passEnv := fs.String("passphrase-env", "", "read the passphrase from this environment variable; set but empty means no passphrase")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	path := *out
	if path == "" {
		var err error
		if path, err = defaultIdentityPath(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
	}
	pass, err := newKeyPassphrase(*passEnv, stderr)
	if err != nil {
		return err
	}
	s, err := identity.Generate(path, pass, *comment)
	clear(pass)
	if err != nil {
		return err
	}
	if len(pass) == 0 {
		fmt.Fprintf(stderr, "warning: %s is not protected by a passphrase\n", path)
	}
	fmt.Fprintf(stderr, "wrote identity key %s and %s.pub\n", path, path)
	return printKey(stdout, s.PublicKey(), false)
}

func keysShow(args []string, stdout, stderr io.Writer, fingerprintOnly bool) error {
	name := "keys show"
	if fingerprintOnly {
		name = "keys fingerprint"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := addKeySourceFlags(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	pub, err := src.publicKey()
	if err != nil {
		return err
	}
	return printKey(stdout, pub, fingerprintOnly)
}

// keysStatement prints the daemon's account statement exactly, so that a
// signature over the output verifies over the statement.
func keysStatement(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys statement", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := addSocketFlag(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	// Only a canonical statement is printed: it is what peers rebuild from
	// the bundle, and it holds nothing that drives a terminal.
	if _, err := attest.ParseStatement([]byte(st.Statement)); err != nil {
		return fmt.Errorf("the daemon sent no valid account statement (is it older than this command?): %w", err)
	}
	_, err = io.WriteString(stdout, st.Statement)
	return err
}

// printKey prints the authorized_keys line and the fingerprint of pub, or
// only the fingerprint.
func printKey(w io.Writer, pub ed25519.PublicKey, fingerprintOnly bool) error {
	fp := identity.Fingerprint(pub)
	if fingerprintOnly {
		_, err := fmt.Fprintln(w, fp)
		return err
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", ssh.MarshalAuthorizedKey(k), fp)
	return err
}

// defaultIdentityPath is $XDG_CONFIG_HOME/securejingle/identity_ed25519, or
// ~/.config/... when XDG_CONFIG_HOME is unset (os.UserConfigDir on Unix).
func defaultIdentityPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "securejingle", "identity_ed25519"), nil
}

// newKeyPassphrase gets the passphrase for a new key: from the environment
// variable env if named (empty value: no passphrase), else typed twice on the
// terminal. Without a terminal it refuses rather than silently writing an
// unprotected key.
func newKeyPassphrase(env string, stderr io.Writer) ([]byte, error) {
	if env != "" {
		return passphraseFromEnv(env, true)
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("no terminal to read a passphrase from; use -passphrase-env")
	}
	return readTwice(fd, stderr, "Passphrase for the new key (empty for none): ", "Same passphrase again: ", "passphrases do not match")
}

// readTwice reads a new secret typed twice, unechoed, on the terminal fd,
// prompting on stderr; the two must match (compared in constant time),
// else the error is mismatch.
func readTwice(fd int, stderr io.Writer, prompt, again, mismatch string) ([]byte, error) {
	fmt.Fprint(stderr, prompt)
	p1, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(stderr, again)
	p2, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		clear(p1)
		return nil, err
	}
	defer clear(p2)
	if subtle.ConstantTimeCompare(p1, p2) != 1 {
		clear(p1)
		return nil, errors.New(mismatch)
	}
	return p1, nil
}

// passphraseFromEnv reads a passphrase from the environment variable env,
// which must be set; an empty value is allowed only when allowEmpty.
func passphraseFromEnv(env string, allowEmpty bool) ([]byte, error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, fmt.Errorf("environment variable %s is not set", env)
	}
	if v == "" && !allowEmpty {
		return nil, fmt.Errorf("environment variable %s is empty", env)
	}
	return []byte(v), nil
}

// keyPassphraseFunc returns the passphrase callback for identity.LoadFile
// and friends: from env if named, else prompted on the terminal.
func keyPassphraseFunc(path, env string, stderr io.Writer) func() ([]byte, error) {
	return func() ([]byte, error) {
		if env != "" {
			return passphraseFromEnv(env, false)
		}
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return nil, fmt.Errorf("%s needs a passphrase and there is no terminal; use -passphrase-env", path)
		}
		fmt.Fprintf(stderr, "Passphrase for %s: ", path)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		return p, err
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
