package gateway

import "github.com/securejingle/securejingle/jingle"

// relayOnlyCandidate returns c as a relay-only call may signal it: only a
// relay candidate is kept (ok), and its related address, which pion fills
// with the local end of the TURN connection (0.0.0.0 and the port of the
// socket for TURN over UDP, a local IP address for TURN over TCP or with
// an interface or IP filter), becomes 0.0.0.0 port 0, as browsers signal
// it: the peer learns the relayed address and nothing of this host.
func relayOnlyCandidate(c jingle.Candidate) (_ jingle.Candidate, ok bool) {
	if c.Type != "relay" {
		return jingle.Candidate{}, false
	}
	c.RelAddr, c.RelPort = "0.0.0.0", 0
	return c, true
}

// relayOnlyTransports applies relayOnlyCandidate to every candidate of j
// (a session-initiate or session-accept may carry the candidates gathered
// by the time the description was made).
func relayOnlyTransports(j *jingle.Jingle) {
	for i := range j.Contents {
		t := j.Contents[i].Transport
		if t == nil || len(t.Candidates) == 0 {
			continue
		}
		kept := make([]jingle.Candidate, 0, len(t.Candidates))
		for _, c := range t.Candidates {
			if c, ok := relayOnlyCandidate(c); ok {
				kept = append(kept, c)
			}
		}
		t.Candidates = kept
	}
}
