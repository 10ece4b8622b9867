package jingle

import (
	"errors"
	"strconv"
)

// Data channels (XEP-0343 as Conversations deploys it): the content has no
// RTP description and no direct ICE-UDP transport; its Other holds
//
//	<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'
//	           sctp-port='5000' max-message-size='262144'>
//	  <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag pwd>
//	    <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' .../>
//	    <candidate .../>
//	  </transport>
//	</transport>
//
// (the application, e.g. a file-transfer description, sits next to it in
// Other).

// dataChannelRaw builds the XEP-0343 transport element around t.
func dataChannelRaw(t *Transport, sctpPort, maxMessageSize string) Raw {
	n := el(NSDataChan, "transport").set("sctp-port", sctpPort).set("max-message-size", maxMessageSize)
	n.addKid(t.node())
	return rawOf(n)
}

// DataChannelTransport returns the XEP-0343 data channel transport of c:
// the ICE-UDP transport inside the webrtc-datachannel element of c.Other
// (or c.Transport when that element wraps none), with its sctp-port and
// max-message-size ("" when absent). ok is false when c is not a data
// channel content. Its error is an *[SDPError].
func DataChannelTransport(c *Content) (t *Transport, sctpPort, maxMessageSize string, ok bool, err error) {
	for i := range c.Other {
		r := &c.Other[i]
		if r.XMLName.Space != NSDataChan || r.XMLName.Local != "transport" {
			continue
		}
		for _, a := range r.Attrs {
			switch a.Name.Local {
			case "sctp-port":
				if _, err := strconv.ParseUint(a.Value, 10, 16); err != nil {
					return nil, "", "", true, sdpErr(ErrSDPMalformed, c.Name, "sctp-port", "%q", a.Value)
				}
				sctpPort = a.Value
			case "max-message-size":
				if _, err := strconv.ParseUint(a.Value, 10, 32); err != nil {
					return nil, "", "", true, sdpErr(ErrSDPMalformed, c.Name, "max-message-size", "%q", a.Value)
				}
				maxMessageSize = a.Value
			}
		}
		t, err := innerICETransport(r.Inner)
		if err != nil {
			return nil, "", "", true, &SDPError{Err: ErrSDPMalformed, Media: c.Name, Attr: "webrtc-datachannel transport", Cause: err}
		}
		if t == nil {
			t = c.Transport
		}
		return t, sctpPort, maxMessageSize, true, nil
	}
	return nil, "", "", false, nil
}

// innerICETransport finds and parses (with Parse's strictness) the
// ICE-UDP transport inside a data channel transport's inner XML.
func innerICETransport(inner []byte) (*Transport, error) {
	if len(inner) > MaxElementSize {
		return nil, errors.New("inner transport too large")
	}
	wrapped := make([]byte, 0, len(inner)+128)
	wrapped = append(wrapped, "<transport xmlns='"+NSDataChan+"'>"...)
	wrapped = append(wrapped, inner...)
	wrapped = append(wrapped, "</transport>"...)
	n, err := parseTree(wrapped, "transport")
	if err != nil {
		return nil, err
	}
	for _, k := range n.kids {
		if isNS(k, NSICEUDP, "transport") {
			p := &parser{}
			t := p.transport(k, "transport/transport")
			if p.err != nil {
				return nil, p.err
			}
			return t, nil
		}
	}
	return nil, nil
}
