package attest

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrMalformedURI is returned by [ParseVerifyURI] for any input that is not
// exactly the canonical form of a valid verification URI.
var ErrMalformedURI = errors.New("attest: malformed verification URI")

// A VerifyURI is the payload of a verification QR code: an RFC 5122 xmpp:
// URI naming a bare JID, with query type [VerifyQueryType] and the
// account identity key (it names no device: the account key certifies
// them all):
//
//	xmpp:alice@example.org?sj-verify;k=<base64url, no padding, of the 32-byte key>
//
// The JID is percent-encoded as RFC 5122 section 2.7 requires (the
// localpart keeps RFC 3986 unreserved characters and RFC 5122 nodeallow
// characters, the domainpart keeps unreserved characters, everything else
// is %XX of its UTF-8 bytes with upper-case hex). Scanning the code and
// calling [VerifyURI.Matches] against the contact's statement checks the
// key without typing it.
//
// The zero VerifyURI is not valid. A VerifyURI is a value; it is safe for
// concurrent use as long as Key is not modified.
type VerifyURI struct {
	JID string            // bare JID
	Key ed25519.PublicKey // account identity key, 32 bytes
}

// String returns the canonical URI. It panics if u.JID is not a valid bare
// JID or u.Key is not 32 bytes.
func (u VerifyURI) String() string {
	jid, err := canonicalJID(u.JID)
	if err != nil {
		panic(err)
	}
	if len(u.Key) != ed25519.PublicKeySize {
		panic(ErrInvalidKey)
	}
	return "xmpp:" + escapeJID(jid) + "?" + VerifyQueryType +
		";k=" + base64.RawURLEncoding.EncodeToString(u.Key)
}

// ParseVerifyURI parses the canonical form produced by [VerifyURI.String].
// It is strict: any other spelling of the same data (lower-case hex
// escapes, extra parameters, a resource, padding) returns an error wrapping
// [ErrMalformedURI].
func ParseVerifyURI(s string) (VerifyURI, error) {
	bad := func(why string) (VerifyURI, error) {
		return VerifyURI{}, fmt.Errorf("%w: %s", ErrMalformedURI, why)
	}
	rest, ok := strings.CutPrefix(s, "xmpp:")
	if !ok {
		return bad("not an xmpp: URI")
	}
	path, query, ok := strings.Cut(rest, "?")
	if !ok {
		return bad("missing query")
	}
	jid, err := unescapePercent(path)
	if err != nil {
		return bad("bad percent-encoding")
	}
	if cj, err := canonicalJID(jid); err != nil || cj != jid {
		return bad("invalid or non-canonical JID")
	}
	params := strings.Split(query, ";")
	if len(params) != 2 || params[0] != VerifyQueryType {
		return bad("want query " + VerifyQueryType + ";k=... (a URI of protocol version 0 also had d=: ask for a new code)")
	}
	k, ok := strings.CutPrefix(params[1], "k=")
	if !ok {
		return bad("missing key")
	}
	key, err := base64.RawURLEncoding.Strict().DecodeString(k)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return bad("invalid key")
	}
	u := VerifyURI{JID: jid, Key: ed25519.PublicKey(key)}
	if u.String() != s {
		return bad("not in canonical form")
	}
	return u, nil
}

// Matches reports whether u names the same bare JID and account key as st.
// The comparisons are constant-time.
func (u VerifyURI) Matches(st Statement) bool {
	uj, err1 := canonicalJID(u.JID)
	sj, err2 := canonicalJID(st.JID)
	if err1 != nil || err2 != nil || len(u.Key) != ed25519.PublicKeySize {
		return false
	}
	keyEq := subtle.ConstantTimeCompare(u.Key, st.Key)
	jidEq := subtle.ConstantTimeCompare([]byte(uj), []byte(sj))
	return keyEq&jidEq == 1
}

// escapeJID percent-encodes a canonical bare JID for the path of an xmpp:
// URI (RFC 5122 section 2.7).
func escapeJID(jid string) string {
	local, domain, hasLocal := strings.Cut(jid, "@")
	if !hasLocal {
		return escapeBytes(jid, isUnreserved)
	}
	return escapeBytes(local, isNodeAllowed) + "@" + escapeBytes(domain, isUnreserved)
}

func escapeBytes(s string, keep func(byte) bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// isUnreserved reports RFC 3986 unreserved characters.
func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isNodeAllowed reports characters allowed unescaped in the node of an
// xmpp: URI: unreserved plus RFC 5122 nodeallow.
func isNodeAllowed(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$()*+,;=", c) >= 0
}

// unescapePercent decodes %XX escapes (either case; canonical form is
// enforced by re-encoding) and returns valid UTF-8 or an error.
func unescapePercent(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("attest: truncated escape")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("attest: bad escape")
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", errors.New("attest: not UTF-8")
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
