package jingle_test

import (
	"fmt"

	"github.com/securejingle/securejingle/jingle"
)

// A trickled ICE candidate (XEP-0176) built, validated, serialized
// and read back.
func Example() {
	j := &jingle.Jingle{
		Action: jingle.ActionTransportInfo,
		SID:    "a73sjjvkla37jfea",
		Contents: []jingle.Content{{
			Creator: jingle.CreatorInitiator,
			Name:    "0",
			Transport: &jingle.Transport{
				Ufrag: "8hhy",
				Pwd:   "asd88fgpdd777uzjYhagZg",
				Candidates: []jingle.Candidate{{
					Component: 1, Foundation: "1", ID: "el0747fg11", IP: "10.0.1.1",
					Port: 8998, Priority: 2130706431, Protocol: "udp", Type: "host",
				}},
			},
		}},
	}
	if err := j.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	b, err := j.Marshal()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))

	back, err := jingle.Parse(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := back.Contents[0].Transport.Candidates[0]
	fmt.Println(back.Action, c.IP, c.Port)
	// Output:
	// <jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='a73sjjvkla37jfea'><content creator='initiator' name='0'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhy' pwd='asd88fgpdd777uzjYhagZg'><candidate component='1' foundation='1' generation='0' id='el0747fg11' ip='10.0.1.1' network='0' port='8998' priority='2130706431' protocol='udp' type='host'/></transport></content></jingle>
	// transport-info 10.0.1.1 8998
}

// Parsing refuses what is out of bounds and says where.
func ExampleParse_malformed() {
	_, err := jingle.Parse([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'>` +
		`<mute xmlns='urn:xmpp:jingle:apps:rtp:info:1' creator='everybody'/></jingle>`))
	fmt.Println(err)
	// Output:
	// jingle: malformed element: jingle/mute@creator: unknown value "everybody"
}

// A XEP-0353 propose and Conversations' device hint in a proceed.
func ExampleParseJMI() {
	m, err := jingle.ParseJMI([]byte(`<proceed xmlns='urn:xmpp:jingle-message:0' id='ca3cf894'>` +
		`<device xmlns='http://gultsch.de/xmpp/drafts/omemo/dlts-srtp-verification' id='1785367318'/></proceed>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	id, ok := m.DeviceID()
	fmt.Println(m.Kind, m.ID, id, ok)
	// Output:
	// proceed ca3cf894 1785367318 true
}

// The error child of an out-of-order reply (XEP-0166 §10).
func ExampleErrorPayload() {
	b := jingle.ErrorPayload("unexpected-request", jingle.ErrOutOfOrder)
	fmt.Println(string(b))
	c, ok := jingle.ParseErrorCondition(b)
	fmt.Println(c, ok)
	// Output:
	// <error type='wait'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><out-of-order xmlns='urn:xmpp:jingle:errors:1'/></error>
	// out-of-order true
}
