package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidPattern is wrapped by errors that report a malformed peer
// pattern.
var ErrInvalidPattern = errors.New("policy: invalid peer pattern")

// Limits from RFC 7622 section 3.
const (
	maxLocalpart = 1023
	maxDomain    = 1023
)

type patternKind uint8

const (
	patAny       patternKind = iota + 1 // "*"
	patExact                            // "user@domain" or "domain"
	patDomain                           // "*@domain": every JID at domain
	patSubdomain                        // "*.domain": every JID at a strict subdomain
)

// peerPattern is a compiled peer pattern. Values are lower-cased at compile
// time; matching folds case, as JID localparts and domainparts compare
// case-insensitively after PRECIS/IDNA mapping.
type peerPattern struct {
	kind  patternKind
	value string // bare JID, domain, or domain suffix without the leading '.'
}

// compilePeerPattern validates and compiles one pattern: an exact bare JID
// ("bob@example.net" or the domain JID "example.net"), "*@domain" (every JID
// at that domain), "*.domain" (every JID at a strict subdomain of domain) or
// "*" (any peer). Resources, IP literals and wildcards elsewhere are rejected.
func compilePeerPattern(s string) (peerPattern, error) {
	bad := func(why string) (peerPattern, error) {
		return peerPattern{}, fmt.Errorf("%w %q: %s", ErrInvalidPattern, s, why)
	}
	if s == "*" {
		return peerPattern{kind: patAny}, nil
	}
	if !utf8.ValidString(s) {
		return bad("not valid UTF-8")
	}
	if strings.Contains(s, "/") {
		return bad("patterns match bare JIDs; remove the /resource")
	}
	if rest, ok := strings.CutPrefix(s, "*@"); ok {
		d, err := checkDomain(rest)
		if err != nil {
			return bad(err.Error())
		}
		return peerPattern{kind: patDomain, value: d}, nil
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		d, err := checkDomain(rest)
		if err != nil {
			return bad(err.Error())
		}
		return peerPattern{kind: patSubdomain, value: d}, nil
	}
	if strings.Contains(s, "*") {
		return bad(`wildcards are only allowed as "*", "*@domain" or "*.domain"`)
	}
	local, domain, hasAt := strings.Cut(s, "@")
	if !hasAt {
		d, err := checkDomain(s)
		if err != nil {
			return bad(err.Error())
		}
		return peerPattern{kind: patExact, value: d}, nil
	}
	if local == "" {
		return bad("empty localpart")
	}
	if len(local) > maxLocalpart {
		return bad("localpart too long")
	}
	for _, r := range local {
		if strings.ContainsRune("\"&'/:<>@", r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return bad(fmt.Sprintf("character %q not allowed in a localpart", r))
		}
	}
	d, err := checkDomain(domain)
	if err != nil {
		return bad(err.Error())
	}
	return peerPattern{kind: patExact, value: strings.ToLower(local) + "@" + d}, nil
}

// checkDomain validates a domainpart and returns it lower-cased without a
// trailing dot (RFC 7622 section 3.2).
func checkDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	if len(d) > maxDomain {
		return "", errors.New("domain too long")
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" {
			return "", errors.New("empty domain label")
		}
		if len(label) > 63 {
			return "", errors.New("domain label longer than 63 bytes")
		}
	}
	for _, r := range d {
		if strings.ContainsRune("\"&'/:<>@*[]", r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", fmt.Errorf("character %q not allowed in a domain", r)
		}
	}
	return strings.ToLower(d), nil
}

// splitJID returns the bare JID and the domainpart of a bare or full JID
// without allocating. A trailing dot on the domain is dropped.
func splitJID(j string) (bare, domain string) {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j = j[:i]
	}
	bare = j
	domain = j
	if i := strings.IndexByte(j, '@'); i >= 0 {
		domain = j[i+1:]
	}
	if n := len(domain); n > 0 && domain[n-1] == '.' {
		domain = domain[:n-1]
		bare = bare[:len(bare)-1]
	}
	return bare, domain
}

func (p *peerPattern) match(bare, domain string) bool {
	switch p.kind {
	case patAny:
		return true
	case patExact:
		return strings.EqualFold(bare, p.value)
	case patDomain:
		return strings.EqualFold(domain, p.value)
	case patSubdomain:
		n, m := len(domain), len(p.value)
		return n > m+1 && domain[n-m-1] == '.' && strings.EqualFold(domain[n-m:], p.value)
	}
	return false
}
