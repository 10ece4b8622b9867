package attest

import (
	"strings"
)

// sameJID reports whether name, an identity claimed by a certificate or
// key, is the bare JID jid of a statement. Both must be valid bare JIDs
// (see canonicalJID). Domainparts are compared case-insensitively (both
// are lower-cased as in the statement, RFC 7622 section 3.2). RFC 7622
// also case-maps the localpart (UsernameCaseMapped); without a PRECIS
// implementation only ASCII letters are folded there, so a localpart with
// other letters in another case does not match: a false mismatch is
// possible, a false match is not.
func sameJID(name, jid string) bool {
	a, err := canonicalJID(name)
	if err != nil {
		return false
	}
	b, err := canonicalJID(jid)
	if err != nil {
		return false
	}
	al, ad, aHas := splitJID(a)
	bl, bd, bHas := splitJID(b)
	return aHas == bHas && ad == bd && asciiEqualFold(al, bl)
}

// splitJID splits a bare JID into localpart and domainpart.
func splitJID(jid string) (local, domain string, hasLocal bool) {
	local, domain, hasLocal = strings.Cut(jid, "@")
	if !hasLocal {
		return "", jid, false
	}
	return local, domain, true
}

// asciiEqualFold reports whether a and b are equal with ASCII letters
// compared case-insensitively and every other byte exactly.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchNames reports whether one of names is jid (see sameJID).
func matchNames(names []string, jid string) bool {
	for _, n := range names {
		if sameJID(n, jid) {
			return true
		}
	}
	return false
}

// mismatchDetail says whose identity a trusted signer vouches for instead
// of jid; what is "a certificate" or "a key".
func mismatchDetail(what string, names []string, jid string) string {
	if len(names) == 0 {
		return "signed by " + what + " that names no XMPP address or email address, not " + jid
	}
	return "signed by " + what + " for " + strings.Join(names, ", ") + ", not " + jid
}

// maxNameLen is the longest valid bare JID; longer names are cut for
// display (they cannot match).
const maxNameLen = 2*maxJIDPartLen + 1

// appendName adds n to names unless it is already there or names already
// holds MaxResultNames names. A name longer than any bare JID is cut short
// and marked with an ellipsis.
func appendName(names []string, n string) []string {
	if len(names) >= MaxResultNames {
		return names
	}
	if len(n) > maxNameLen {
		n = strings.ToValidUTF8(n[:maxNameLen], "") + "…"
	}
	for _, m := range names {
		if m == n {
			return names
		}
	}
	return append(names, n)
}
