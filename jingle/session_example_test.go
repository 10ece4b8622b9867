package jingle_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/securejingle/securejingle/jingle"
)

// A responder's view of a session: the initiate arrives, we accept, an
// out-of-order second accept is refused with the XEP-0166 §10 condition,
// and a transport-info with new credentials is reported as an ICE
// restart.
func ExampleSession() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const romeo, juliet = "romeo@example.org/orchard", "juliet@example.org/balcony"
	audio := func(ufrag string) jingle.Content {
		return jingle.Content{Creator: jingle.CreatorInitiator, Name: "0",
			Description: &jingle.Description{Media: "audio", PayloadTypes: []jingle.PayloadType{{ID: 111, Name: "opus", Clockrate: 48000, Channels: 2}}},
			Transport:   &jingle.Transport{Ufrag: ufrag, Pwd: ufrag + "0123456789abcdefghijkl"}}
	}
	initiate := &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "a73sjjvkla37jfea", Contents: []jingle.Content{audio("8hhy")}}
	s, err := jingle.NewResponder(juliet, romeo, initiate, now)
	if err != nil {
		panic(err)
	}
	acceptEl := &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: s.SID(), Contents: []jingle.Content{audio("9uB6")}}
	ev, err := s.Send(acceptEl)
	fmt.Println(ev.State, err)

	_, err = s.Send(acceptEl)
	var ae *jingle.ActionError
	if errors.As(err, &ae) {
		fmt.Println(ae.Condition, ae.Jingle)
	}

	restart := &jingle.Jingle{Action: jingle.ActionTransportInfo, SID: s.SID(), Contents: []jingle.Content{{
		Creator: jingle.CreatorInitiator, Name: "0", Transport: &jingle.Transport{Ufrag: "Zq3w", Pwd: "Zq3w0123456789abcdefghijkl"}}}}
	ev, err = s.Receive(romeo, restart)
	fmt.Println(ev.ICERestart, err)
	// Output:
	// active <nil>
	// unexpected-request out-of-order
	// [{initiator 0}] <nil>
}

// The caller's side of a call proposed to every device of an account:
// the first proceed wins and the other ringing device is to be told.
func ExampleProposal() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := jingle.NewOutgoingProposal("romeo@example.org/orchard", "juliet@example.org",
		&jingle.JMI{Kind: jingle.JMIPropose, ID: "ca3cf894", Descriptions: []jingle.Description{{Media: "audio"}}}, now)
	if err != nil {
		panic(err)
	}
	_, _ = p.Receive("juliet@example.org/phone", &jingle.JMI{Kind: jingle.JMIRinging, ID: "ca3cf894"})
	_, _ = p.Receive("juliet@example.org/laptop", &jingle.JMI{Kind: jingle.JMIRinging, ID: "ca3cf894"})
	o, _ := p.Receive("juliet@example.org/laptop", &jingle.JMI{Kind: jingle.JMIProceed, ID: "ca3cf894"})
	fmt.Println(o.State, o.Winner, o.AnsweredElsewhere)
	// Output: proceeding juliet@example.org/laptop [juliet@example.org/phone]
}

// A trickled candidate from pion or a browser, as Jingle and back.
func ExampleCandidateFromSDP() {
	c, err := jingle.CandidateFromSDP("0", "candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 ufrag sEMT network-cost 999")
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Type, c.IP, c.Port, c.RelAddr)
	fmt.Println(jingle.CandidateToSDP(c))
	// Output:
	// srflx 198.51.100.7 61665 10.0.0.2
	// candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0
}
