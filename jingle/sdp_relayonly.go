package jingle

// RelayOnlyCandidate returns c as a relay-only party may signal it: only a
// relay candidate is kept (ok), and its related address, which pion fills
// with the local end of the TURN connection (0.0.0.0 and the port of the
// socket for TURN over UDP, a local IP address for TURN over TCP or with
// an interface or IP filter), becomes 0.0.0.0 port 0, as browsers signal
// it: the peer learns the relayed address and nothing of this host.
func RelayOnlyCandidate(c Candidate) (_ Candidate, ok bool) {
	if c.Type != "relay" {
		return Candidate{}, false
	}
	c.RelAddr, c.RelPort = "0.0.0.0", 0
	return c, true
}

// RelayOnlyCandidates returns the candidates of cs that
// [RelayOnlyCandidate] keeps, rewritten as it rewrites them, in a new
// slice.
func RelayOnlyCandidates(cs []Candidate) []Candidate {
	kept := make([]Candidate, 0, len(cs))
	for _, c := range cs {
		if c, ok := RelayOnlyCandidate(c); ok {
			kept = append(kept, c)
		}
	}
	return kept
}
