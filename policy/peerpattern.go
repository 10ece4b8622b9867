package policy

// PeerPattern is a compiled peer pattern, the same syntax as a rule's
// peer condition: an exact bare JID ("bob@example.net"), a domain JID
// ("example.net"), "*@domain" (every JID at domain), "*.domain" (every JID
// at a strict subdomain of domain) or "*" (any peer). Other parts of the
// daemon that choose by peer (auto-answer rules for calls) use it so that
// every peer condition reads the same. The zero PeerPattern matches
// nothing; a PeerPattern is immutable and safe for concurrent use.
type PeerPattern struct {
	p peerPattern
	s string
}

// ParsePeerPattern compiles s. Errors wrap [ErrInvalidPattern] and say
// what to change.
func ParsePeerPattern(s string) (PeerPattern, error) {
	p, err := compilePeerPattern(s)
	if err != nil {
		return PeerPattern{}, err
	}
	return PeerPattern{p: p, s: s}, nil
}

// Match reports whether the bare or full JID j matches; a resource is
// ignored. Case is folded as for rules.
func (p PeerPattern) Match(j string) bool {
	if p.p.kind == 0 {
		return false
	}
	bare, domain := splitJID(j)
	return p.p.match(bare, domain)
}

// String returns the pattern as it was written.
func (p PeerPattern) String() string { return p.s }
