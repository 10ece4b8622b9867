package attest

import (
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// An Attestation is one typed signature over a [Statement]'s canonical
// bytes, as carried in the bundles of the account's devices.
//
// Type is a short token ([TypeSelf], [TypeOpenPGP], [TypeX509CMS] or any
// other token of lower-case letters, digits and '-', at most [MaxTypeLen]
// bytes). Data is the raw mechanism payload: a 64-byte Ed25519 signature for
// "self", ASCII-armored text for "openpgp", DER CMS for "x509-cms".
//
// The zero Attestation has an empty, hence malformed, type. An Attestation
// is a value; it is safe for concurrent use as long as Data is not modified.
type Attestation struct {
	Type string
	Data []byte
}

// Status is the outcome of checking one attestation.
//
// The zero Status is [Failed], so a Result that was never filled in never
// reads as verified.
type Status int

// Statuses of a [Result].
const (
	// Failed: the attestation is malformed or its signature does not verify
	// over the statement.
	Failed Status = iota
	// Verified: the signature verifies over the statement, the signer is
	// one of the configured trust anchors (or is the identity key itself),
	// and the signer's certificate or key names the statement's JID.
	Verified
	// Untrusted: the signature could not be tied to a configured trust
	// anchor (signer not in the keyring, chain to an unknown root), so it
	// proves nothing by itself.
	Untrusted
	// Unsupported: no registered verifier understands the type. The payload
	// is rendered in Result.Detail for the user to check by hand.
	Unsupported
	// Mismatch: the signature verifies and the signer is a configured
	// trust anchor, but its certificate or key names another identity
	// than the statement's JID: it vouches for someone else, not for this
	// statement.
	Mismatch
	// Expired: the signature verifies, but the signer's certificate or key
	// (or the signature itself) is outside its validity period at the time
	// of the check: expired, or not yet valid. Detail gives the date.
	Expired
)

// String returns a lower-case name for s.
func (s Status) String() string {
	switch s {
	case Verified:
		return "verified"
	case Failed:
		return "failed"
	case Untrusted:
		return "untrusted"
	case Unsupported:
		return "unsupported"
	case Mismatch:
		return "mismatch"
	case Expired:
		return "expired"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// A Result is the outcome of checking one [Attestation].
//
// Type is the attestation type (quoted if it was not a valid token). Signer
// names who signed, when known, in the mechanism's own terms. Detail
// explains the status; for [Unsupported] it holds the printable rendering
// of the payload. All text fields are safe to print to a terminal: they
// contain no control characters other than LF and tab. The zero Result has
// status [Failed].
type Result struct {
	Type   string
	Status Status
	Signer string
	Detail string
	// Names are the identities the signer's certificate or key claims, as
	// compared with the statement's JID (docs/protocol.md, section 9): for
	// X.509 its id-on-xmppAddr and rfc822Name subject alternative names,
	// for OpenPGP the xmpp: URIs and email addresses of its valid user
	// ids. Set once the signature is known to verify; at most
	// [MaxResultNames] of them.
	Names []string
	// NamesJID reports whether one of the signer's names is the
	// statement's JID. [Verified] implies it; [Mismatch] is a trusted
	// signer for which it is false.
	NamesJID bool
	// Expires is the end of the validity of the signer's certificate or
	// key when it has one and the signature verifies; zero otherwise.
	Expires time.Time
}

// String renders r for display, on one line except for the rendering of an
// unsupported payload, which follows on its own lines.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", r.Type, r.Status)
	if r.Signer != "" {
		fmt.Fprintf(&b, " by %s", r.Signer)
	}
	if r.Detail != "" {
		if strings.Contains(r.Detail, "\n") {
			b.WriteString("\n" + strings.TrimSuffix(r.Detail, "\n"))
		} else {
			b.WriteString(" (" + r.Detail + ")")
		}
	}
	return b.String()
}

// A Verifier checks attestations of one type. Verify must not panic on any
// data, must report every problem in the returned Result (never by error),
// and must set Result.Type to Type().
//
// Implementations must be safe for concurrent use.
type Verifier interface {
	// Type returns the attestation type token this verifier handles.
	Type() string
	// Verify checks data as an attestation of st.
	Verify(st Statement, data []byte) Result
}

// A Registry dispatches attestations to the [Verifier] for their type.
//
// The zero Registry has no verifiers: every attestation comes back
// [Unsupported] and rendered. A Registry is immutable after [NewRegistry]
// and safe for concurrent use.
type Registry struct {
	verifiers map[string]Verifier
}

// NewRegistry returns a registry of verifiers. It panics if a verifier's
// type is not a valid token or two verifiers claim the same type; both are
// programming errors.
func NewRegistry(verifiers ...Verifier) *Registry {
	r := &Registry{verifiers: make(map[string]Verifier, len(verifiers))}
	for _, v := range verifiers {
		t := v.Type()
		if !ValidType(t) {
			panic("attest: invalid verifier type " + strconv.Quote(t))
		}
		if _, dup := r.verifiers[t]; dup {
			panic("attest: duplicate verifier type " + strconv.Quote(t))
		}
		r.verifiers[t] = v
	}
	return r
}

// Verify checks every attestation against st and returns one Result per
// attestation, in order. Attestations of unknown type are never dropped:
// they come back [Unsupported] with their payload rendered in Detail. A
// malformed type token, an oversized payload or an invalid statement gives
// [Failed].
func (r *Registry) Verify(st Statement, atts []Attestation) []Result {
	out := make([]Result, 0, len(atts))
	stErr := st.Validate()
	for _, a := range atts {
		out = append(out, r.verifyOne(st, stErr, a))
	}
	return out
}

func (r *Registry) verifyOne(st Statement, stErr error, a Attestation) Result {
	if !ValidType(a.Type) {
		return Result{Type: strconv.QuoteToASCII(a.Type), Status: Failed, Detail: "malformed attestation type"}
	}
	if len(a.Data) > MaxAttestationSize {
		return Result{Type: a.Type, Status: Failed, Detail: "attestation larger than " + strconv.Itoa(MaxAttestationSize) + " bytes"}
	}
	var v Verifier
	if r != nil {
		v = r.verifiers[a.Type]
	}
	if v == nil {
		return Result{Type: a.Type, Status: Unsupported, Detail: Render(a)}
	}
	if stErr != nil {
		return Result{Type: a.Type, Status: Failed, Detail: "invalid statement: " + stErr.Error()}
	}
	res := v.Verify(st, a.Data)
	res.Type = a.Type
	res.Signer = sanitize(res.Signer)
	res.Detail = sanitize(res.Detail)
	if len(res.Names) > MaxResultNames {
		res.Names = res.Names[:MaxResultNames]
	}
	for i, n := range res.Names {
		res.Names[i] = sanitize(n)
	}
	if res.Status == Verified && !res.NamesJID {
		// A verifier that does not check names must not vouch.
		res.Status = Mismatch
		if res.Detail == "" {
			res.Detail = "the signer does not name " + st.JID
		}
	}
	return res
}

// ValidType reports whether t is a well-formed attestation type token:
// MaxTypeLen bytes of [a-z0-9-], starting with a letter.
func ValidType(t string) bool {
	if t == "" || len(t) > MaxTypeLen || t[0] < 'a' || t[0] > 'z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// Render returns a form of a's payload that a user can check by hand with
// the mechanism's own tools. Printable UTF-8 text (such as an ASCII-armored
// signature) is returned as is, with CRLF turned into LF; anything else
// becomes a PEM block of type "SECUREJINGLE ATTESTATION" with a
// "Mechanism" header naming the type, which `base64 -d` or `openssl` can
// read back. The result never contains terminal control characters.
func Render(a Attestation) string {
	if printableText(a.Data) {
		s := strings.ReplaceAll(string(a.Data), "\r\n", "\n")
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s
	}
	t := a.Type
	if !ValidType(t) {
		t = strconv.QuoteToASCII(t)
	}
	return string(pem.EncodeToMemory(&pem.Block{
		Type:    pemTypeUnknown,
		Headers: map[string]string{"Mechanism": t},
		Bytes:   a.Data,
	}))
}

// printableText reports whether b is non-empty valid UTF-8 made only of
// printable characters, tabs, line feeds and CR immediately before LF.
func printableText(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b) {
		return false
	}
	s := string(b)
	for i, r := range s {
		switch {
		case r == '\n' || r == '\t':
		case r == '\r':
			if i+1 >= len(s) || s[i+1] != '\n' {
				return false
			}
		case !unicode.IsPrint(r):
			return false
		}
	}
	return true
}

// sanitize replaces characters that could drive a terminal (controls,
// invisible format characters such as bidi overrides) in text that may come
// from an attacker, such as certificate subjects and OpenPGP user ids.
func sanitize(s string) string {
	if printableText([]byte(s)) || s == "" {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || unicode.IsPrint(r) {
			return r
		}
		return unicode.ReplacementChar
	}, strings.ToValidUTF8(s, string(unicode.ReplacementChar)))
}
