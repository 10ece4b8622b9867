package gateway

import (
	"testing"

	"github.com/securejingle/securejingle/jingle"
)

// TestRelayOnlyCandidates: a relay-only call signals relay candidates
// only, each with the related address 0.0.0.0 port 0 whatever pion put
// there (the local end of the TURN connection), so that neither a
// session-initiate/accept nor a transport-info tells the peer an address
// of this host.
func TestRelayOnlyCandidates(t *testing.T) {
	cand := func(typ, ip string, port uint16, raddr string, rport uint16) jingle.Candidate {
		return jingle.Candidate{Component: 1, Foundation: "1", Protocol: "udp", Priority: 1, Type: typ,
			IP: ip, Port: port, RelAddr: raddr, RelPort: rport}
	}
	relayUDP := cand("relay", "203.0.113.7", 50000, "0.0.0.0", 41234)   // TURN over UDP, unfiltered
	relayTCP := cand("relay", "203.0.113.7", 50002, "192.0.2.10", 5555) // TURN over TCP: the local IP
	relayBare := cand("relay", "203.0.113.7", 50004, "", 0)
	host := cand("host", "192.0.2.10", 40000, "", 0)
	srflx := cand("srflx", "198.51.100.1", 40001, "192.0.2.10", 40000)
	prflx := cand("prflx", "198.51.100.1", 40002, "192.0.2.10", 40000)

	for _, c := range []jingle.Candidate{relayUDP, relayTCP, relayBare} {
		got, ok := relayOnlyCandidate(c)
		want := c
		want.RelAddr, want.RelPort = "0.0.0.0", 0
		if !ok || got != want {
			t.Errorf("relayOnlyCandidate(%+v) = %+v, %v; want %+v", c, got, ok, want)
		}
		if line := jingle.CandidateToSDP(got); line == "" {
			t.Errorf("rewritten candidate %+v has no SDP form", got)
		}
	}
	for _, c := range []jingle.Candidate{host, srflx, prflx} {
		if got, ok := relayOnlyCandidate(c); ok {
			t.Errorf("relayOnlyCandidate kept the %s candidate: %+v", c.Type, got)
		}
	}

	j := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "s1", Contents: []jingle.Content{
		{Name: "0", Transport: &jingle.Transport{Ufrag: "abcd", Pwd: "0123456789abcdefghijkl",
			Candidates: []jingle.Candidate{host, relayTCP, srflx, relayUDP}}},
		{Name: "1", Transport: &jingle.Transport{Ufrag: "abcd", Pwd: "0123456789abcdefghijkl",
			Candidates: []jingle.Candidate{prflx}}},
		{Name: "2"},
	}}
	relayOnlyTransports(j)
	got0, got1 := j.Contents[0].Transport.Candidates, j.Contents[1].Transport.Candidates
	if len(got0) != 2 || got0[0].Port != relayTCP.Port || got0[1].Port != relayUDP.Port || len(got1) != 0 || j.Contents[2].Transport != nil {
		t.Fatalf("relay-only transports: %+v / %+v", got0, got1)
	}
	for _, c := range got0 {
		if c.Type != "relay" || c.RelAddr != "0.0.0.0" || c.RelPort != 0 {
			t.Errorf("signaled %+v", c)
		}
	}
	// The rewritten candidates survive the wire: marshal, parse.
	ti := &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: "s1", Contents: []jingle.Content{{
		Creator: jingle.CreatorInitiator, Name: "0", Transport: j.Contents[0].Transport}}}
	b, err := ti.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := jingle.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if c := back.Contents[0].Transport.Candidates[0]; c.RelAddr != "0.0.0.0" || c.RelPort != 0 {
		t.Fatalf("after the wire: %+v", c)
	}
}
