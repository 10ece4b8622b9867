package daemon

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/api"
)

// Limits of the attestation configuration. A bundle carries at most 16
// attestations of at most 16 KiB each (package e2e); one of them is the
// daemon's own "self" attestation.
const (
	maxAttestationFile  = 16 << 10
	maxConfAttestations = 15
	// maxAttestationTotal is the budget of all attestation files: the
	// whole bundle is at most e2e.MaxBundleSize, and 16 KiB stay for the
	// keys, prekeys and the self attestation.
	maxAttestationTotal  = e2e.MaxBundleSize - 16<<10
	maxTrustFile         = 1 << 20
	maxTrustOpenPGPFiles = 64
)

// AttestationConfig is one [[keys.attestation]] entry: a signature over
// the account statement (`securejingle keys statement`; it names no
// device, so one signature serves every device of the account),
// published in the bundle for peers to check.
type AttestationConfig struct {
	// Type is "openpgp" (ASCII-armored detached signature), "x509-cms"
	// (DER or PEM CMS detached signature) or another attestation type
	// token, published as is.
	Type string `toml:"type"`
	// File holds the signature, relative to the configuration file's
	// directory; it is read at startup.
	File string `toml:"file"`
}

// TrustConfig is the [trust] table: whose signatures over a peer's
// account statement count as verified.
type TrustConfig struct {
	// OpenPGPKeys are files of ASCII-armored OpenPGP public keys (as `gpg
	// --armor --export` writes them).
	OpenPGPKeys []string `toml:"openpgp_keys"`
	// X509Roots is a PEM file of the only X.509 roots trusted for
	// "x509-cms" attestations; the system roots are never used.
	X509Roots string `toml:"x509_roots"`
}

// readLimited reads the file at path, refusing one larger than max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// resolveAttestationPaths makes the attestation and trust paths absolute.
func (c *Config) resolveAttestationPaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Keys.Attestation {
		abs(&c.Keys.Attestation[i].File)
	}
	for i := range c.Trust.OpenPGPKeys {
		abs(&c.Trust.OpenPGPKeys[i])
	}
	abs(&c.Trust.X509Roots)
}

// validateAttestations checks the [[keys.attestation]] entries and the
// [trust] table, reading their files.
func (c *Config) validateAttestations() []error {
	var errs []error
	total := 0
	if len(c.Keys.Attestation) > maxConfAttestations {
		errs = append(errs, &FieldError{Key: "keys.attestation", Msg: fmt.Sprintf("at most %d entries", maxConfAttestations)})
	}
	for i, a := range c.Keys.Attestation {
		key := "keys.attestation[" + strconv.Itoa(i) + "]"
		switch {
		case !attest.ValidType(a.Type):
			errs = append(errs, &FieldError{Key: key + ".type", Msg: fmt.Sprintf("%q is not an attestation type (lower-case letters, digits and '-', at most %d bytes)", a.Type, attest.MaxTypeLen)})
		case a.Type == attest.TypeSelf:
			errs = append(errs, &FieldError{Key: key + ".type", Msg: "the daemon makes the \"self\" attestation itself"})
		}
		if a.File == "" {
			errs = append(errs, &FieldError{Key: key + ".file", Msg: "is required"})
		} else if b, err := readLimited(a.File, maxAttestationFile); err != nil {
			errs = append(errs, &FieldError{Key: key + ".file", Msg: err.Error()})
		} else if total += len(b); total > maxAttestationTotal {
			errs = append(errs, &FieldError{Key: key + ".file", Msg: fmt.Sprintf("the attestation files add up to more than %d bytes, more than a bundle can carry: publish fewer or smaller attestations", maxAttestationTotal)})
		}
	}
	if len(c.Trust.OpenPGPKeys) > maxTrustOpenPGPFiles {
		errs = append(errs, &FieldError{Key: "trust.openpgp_keys", Msg: fmt.Sprintf("at most %d files", maxTrustOpenPGPFiles)})
	} else if _, err := c.Trust.openPGPVerifier(); err != nil {
		errs = append(errs, &FieldError{Key: "trust.openpgp_keys", Msg: err.Error()})
	}
	if c.Trust.X509Roots != "" {
		if _, err := c.Trust.x509Verifier(); err != nil {
			errs = append(errs, &FieldError{Key: "trust.x509_roots", Msg: err.Error()})
		}
	}
	return errs
}

// openPGPVerifier returns a verifier trusting the configured OpenPGP keys
// (none: every well-formed signature is untrusted).
func (t TrustConfig) openPGPVerifier() (*attest.OpenPGPVerifier, error) {
	blocks := make([][]byte, 0, len(t.OpenPGPKeys))
	for _, p := range t.OpenPGPKeys {
		b, err := readLimited(p, maxTrustFile)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	v, err := attest.NewOpenPGPVerifier(blocks...)
	if err != nil {
		return nil, fmt.Errorf("%v (files in order: %q)", err, t.OpenPGPKeys)
	}
	return v, nil
}

// x509Verifier returns a verifier trusting only the configured roots (none:
// every valid signature is untrusted).
func (t TrustConfig) x509Verifier() (*attest.X509Verifier, error) {
	if t.X509Roots == "" {
		return attest.NewX509Verifier(nil), nil
	}
	if _, err := readLimited(t.X509Roots, maxTrustFile); err != nil {
		return nil, err
	}
	pool, err := loadRoots(t.X509Roots)
	if err != nil {
		return nil, err
	}
	return attest.NewX509Verifier(pool), nil
}

// Registry returns the verifiers of attestations: "self", and OpenPGP and
// X.509 verifiers trusting the configured keys and roots. OpenPGP and
// X.509 verifiers are always present, so that a signature by a key the
// user has not configured shows as untrusted rather than unsupported.
func (t TrustConfig) Registry() (*attest.Registry, error) {
	pgp, err := t.openPGPVerifier()
	if err != nil {
		return nil, fmt.Errorf("daemon: trust.openpgp_keys: %w", err)
	}
	x, err := t.x509Verifier()
	if err != nil {
		return nil, fmt.Errorf("daemon: trust.x509_roots: %w", err)
	}
	return attest.NewRegistry(attest.SelfVerifier{}, pgp, x), nil
}

// AttestationFileError is a [[keys.attestation]] file that cannot be
// published: unreadable, or of a known type and not a signature of the
// account statement.
type AttestationFileError struct {
	File   string
	Type   string
	Detail string
}

func (e *AttestationFileError) Error() string {
	return "daemon: keys.attestation " + e.Type + " file " + e.File + ": " + e.Detail
}

// ownAttestations builds the attestations the bundle publishes: the "self"
// attestation over st made with signer, then the configured ones. An
// "openpgp" or "x509-cms" file that does not parse as a signature of st
// is an [*AttestationFileError]; other types are published unchecked.
//
// The configured ones are also checked against trust (the daemon's own
// [trust] table, which peers may share): a signature that peers trusting
// the same keys would see as expired, as vouching for another identity
// (mismatch) or as failing its chain is published all the same, and
// reported in warnings, one sentence each naming the file and the fix.
func ownAttestations(keys KeysConfig, trust *attest.Registry, signer identity.Signer, st attest.Statement) (atts []e2e.Attestation, warnings []string, err error) {
	self, err := attest.SignSelf(signer, st)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: self attestation: %w", err)
	}
	out := []e2e.Attestation{self}
	// Verifiers without trust anchors: a well-formed signature over st
	// comes back Untrusted (or Expired), a malformed one or one over
	// another statement Failed.
	form := attest.NewRegistry(&attest.OpenPGPVerifier{}, attest.NewX509Verifier(nil))
	for _, a := range keys.Attestation {
		data, err := readLimited(a.File, maxAttestationFile)
		if err != nil {
			return nil, nil, &AttestationFileError{File: a.File, Type: a.Type, Detail: err.Error()}
		}
		att := e2e.Attestation{Type: a.Type, Data: data}
		out = append(out, att)
		if a.Type != attest.TypeOpenPGP && a.Type != attest.TypeX509CMS {
			continue
		}
		if res := form.Verify(st, []attest.Attestation{att})[0]; res.Status == attest.Failed {
			return nil, nil, &AttestationFileError{File: a.File, Type: a.Type,
				Detail: "not a signature of this account's statement: " + res.Detail +
					"; remove the entry, start the daemon, sign the output of `securejingle keys statement` again " +
					"and check the signature with `securejingle attest check -statement ST FILE` before naming it here"}
		}
		if trust == nil {
			continue
		}
		res := trust.Verify(st, []attest.Attestation{att})[0]
		if w := attestationWarning(a, res); w != "" {
			warnings = append(warnings, w)
		}
	}
	return out, warnings, nil
}

// attestationWarning is the warning for one of the daemon's own
// attestations checked against its [trust] table, or "" if there is
// nothing to say.
func attestationWarning(a AttestationConfig, res attest.Result) string {
	prefix := "keys.attestation " + a.Type + " file " + a.File + ": "
	switch res.Status {
	case attest.Expired:
		return prefix + res.Detail + ": peers see this attestation as expired; renew the certificate or key, sign the statement again (securejingle keys statement) and restart"
	case attest.Mismatch:
		return prefix + res.Detail + ": peers that trust its signer see a mismatch; sign the statement with a certificate or key that names this account (docs/protocol.md, section 9)"
	case attest.Failed:
		return prefix + res.Detail + ": peers with the same [trust] table see this attestation as failed"
	}
	return ""
}

// eventWarning is the API event kind of a startup warning.
const eventWarning = "warning"

// warn records startup warnings: logged, listed in /v1/status and sent
// on the event stream. It must be called before the API serves.
func (b *backend) warn(warnings ...string) {
	for _, w := range warnings {
		b.log.Warn(w)
		b.warnings = append(b.warnings, w)
		b.hub.publish(api.Event{Kind: eventWarning, Time: time.Now(), Detail: w})
	}
}
