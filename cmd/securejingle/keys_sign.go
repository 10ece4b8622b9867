package main

import (
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/securejingle/securejingle/e2e/identity"
)

// Limits of keys sign and keys verify.
const (
	// maxSignFile bounds the file keys sign and keys verify read: the
	// whole file is hashed in memory.
	maxSignFile = 64 << 20
	// maxSignatureFile bounds an armored signature (an Ed25519 one is
	// under 400 bytes; RSA ones a few KiB).
	maxSignatureFile = 64 << 10
	// maxNamespaceLen bounds an SSHSIG namespace.
	maxNamespaceLen = 256
	// reservedNamespaceSuffix ends the namespaces of the protocol's own
	// signatures (identity.Namespace*), present and future.
	reservedNamespaceSuffix = "@securejingle.org"
)

// readBounded reads the file at path (standard input for "-"), refusing
// one larger than max bytes.
func readBounded(path string, max int64, what string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, max)
	}
	return b, nil
}

// checkNamespace checks an SSHSIG namespace given on the command line.
// For signing, the protocol's own namespaces are refused: a file signed
// under one of them could be passed off as a bundle, prekey, presence,
// handshake or statement signature of the identity key.
func checkNamespace(ns string, signing bool) error {
	if ns == "" {
		return errors.New("-namespace is required (for example file@example.org; ssh-keygen -Y verify needs the same -n)")
	}
	if len(ns) > maxNamespaceLen || strings.IndexFunc(ns, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("-namespace %q: want at most %d printable characters without spaces", ns, maxNamespaceLen)
	}
	if signing && strings.HasSuffix(strings.ToLower(ns), reservedNamespaceSuffix) {
		return fmt.Errorf("-namespace %q is reserved for securejingle's own signatures (bundles, prekeys, presence, handshakes, account statements): a file signed under it could be passed off as one of them; choose another, for example file@example.org", ns)
	}
	return nil
}

// keysSign writes an armored SSHSIG signature of a file made with the
// identity key, as `ssh-keygen -Y sign` would.
func keysSign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := addKeySourceFlags(fs)
	ns := fs.String("namespace", "", "SSHSIG namespace (ssh-keygen -n), required")
	out := fs.String("out", "", `signature file to create (default FILE.sig; "-" for standard output)`)
	passEnv := fs.String("passphrase-env", "", "read the key file's passphrase from this environment variable")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("need exactly one FILE to sign")
	}
	if err := checkNamespace(*ns, true); err != nil {
		return err
	}
	file := pos[0]
	msg, err := readBounded(file, maxSignFile, "file")
	if err != nil {
		return err
	}
	dest := *out
	if dest == "" {
		if file == "-" {
			dest = "-"
		} else {
			dest = file + ".sig"
		}
	}
	s, closer, err := src.signer(*passEnv, stderr)
	if err != nil {
		return err
	}
	defer closer.Close()
	sig, err := s.Sign(*ns, msg)
	if err != nil {
		return err
	}
	pub := s.PublicKey()
	armored := identity.Armor(pub, *ns, sig)
	if dest == "-" {
		_, err = stdout.Write(armored)
		return err
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w (remove it or choose another with -out)", err)
		}
		return err
	}
	if _, err := f.Write(armored); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (namespace %s, key %s); verify with\n  ssh-keygen -Y verify -f allowed_signers -I ID -n %s -s %s < %s\n",
		sanitize(dest), sanitize(*ns), identity.Fingerprint(pub), shellQuote(*ns), shellQuote(dest), shellQuote(file))
	return nil
}

// keysVerify checks an armored SSHSIG signature of a file.
func keysVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("namespace", "", "SSHSIG namespace the signature must have (ssh-keygen -n), required")
	sigFile := fs.String("signature", "", "armored signature file (as keys sign or ssh-keygen -Y sign write it), required")
	signerArg := fs.String("signer", "", "the key that must have signed: a fingerprint (SHA256:...) or a public key file (.pub, authorized_keys line)")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("need exactly one FILE to verify")
	}
	if err := checkNamespace(*ns, false); err != nil {
		return err
	}
	if *sigFile == "" {
		return errors.New("-signature is required")
	}
	var want string
	if *signerArg != "" {
		if want, err = signerFingerprint(*signerArg); err != nil {
			return err
		}
	}
	armored, err := readBounded(*sigFile, maxSignatureFile, "signature")
	if err != nil {
		return err
	}
	pub, sigNS, sig, err := identity.ParseArmored(armored)
	switch {
	case errors.Is(err, identity.ErrUnsupportedSignature):
		return fmt.Errorf("%s: %w; only Ed25519 signatures are checked here: use ssh-keygen -Y verify", sanitize(*sigFile), err)
	case err != nil:
		return fmt.Errorf("%s: %w", sanitize(*sigFile), err)
	}
	if sigNS != *ns {
		return fmt.Errorf("%s is a signature for namespace %q, not %q", sanitize(*sigFile), sigNS, *ns)
	}
	msg, err := readBounded(pos[0], maxSignFile, "file")
	if err != nil {
		return err
	}
	if err := identity.Verify(pub, sigNS, msg, sig); err != nil {
		return fmt.Errorf("%s is not a valid signature of %s: %w", sanitize(*sigFile), sanitize(pos[0]), err)
	}
	got := identity.Fingerprint(pub)
	if want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("%s is a good signature by %s, not by the expected signer %s", sanitize(*sigFile), got, want)
	}
	fmt.Fprintf(stdout, "Good signature of %s by %s (namespace %s)\n", sanitize(pos[0]), got, sanitize(sigNS))
	if want == "" {
		fmt.Fprintln(stdout, "The signer was not checked against an expected key (-signer): compare the fingerprint with the one you expect.")
	}
	return nil
}

// signerFingerprint returns the fingerprint a -signer value names: a
// fingerprint, or the Ed25519 key of a public key file.
func signerFingerprint(arg string) (string, error) {
	if strings.HasPrefix(arg, "SHA256:") {
		return arg, nil
	}
	b, err := readBounded(arg, maxSignatureFile, "public key file")
	if err != nil {
		return "", fmt.Errorf("-signer: %w (want a SHA256: fingerprint or a public key file)", err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return "", fmt.Errorf("-signer %s: not a public key: %w", sanitize(arg), err)
	}
	cpk, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		return "", fmt.Errorf("-signer %s: not an Ed25519 key", sanitize(arg))
	}
	ed, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("-signer %s: a %s key; only Ed25519 signatures are checked here", sanitize(arg), pk.Type())
	}
	return identity.Fingerprint(ed), nil
}
