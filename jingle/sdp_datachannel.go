package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
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

// iceTransportXML is the ICE-UDP transport as its own element, for the
// inner transport of a data channel.
type iceTransportXML struct {
	XMLName xml.Name `xml:"urn:xmpp:jingle:transports:ice-udp:1 transport"`
	Transport
}

// dataChannelRaw builds the XEP-0343 transport element around t.
func dataChannelRaw(t *Transport, sctpPort, maxMessageSize string) Raw {
	r := Raw{XMLName: xml.Name{Space: NSDataChan, Local: "transport"}}
	if sctpPort != "" {
		r.Attrs = append(r.Attrs, xml.Attr{Name: xml.Name{Local: "sctp-port"}, Value: sctpPort})
	}
	if maxMessageSize != "" {
		r.Attrs = append(r.Attrs, xml.Attr{Name: xml.Name{Local: "max-message-size"}, Value: maxMessageSize})
	}
	inner, err := xml.Marshal(iceTransportXML{Transport: *t})
	if err != nil {
		// Only strings and integers: encoding/xml cannot fail on them.
		panic("jingle: marshal ICE transport: " + err.Error())
	}
	r.Inner = inner
	return r
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

func innerICETransport(inner []byte) (*Transport, error) {
	if len(inner) > MaxElementSize {
		return nil, errors.New("inner transport too large")
	}
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Space != NSICEUDP || se.Name.Local != "transport" {
			if err := d.Skip(); err != nil {
				return nil, err
			}
			continue
		}
		var x iceTransportXML
		if err := d.DecodeElement(&x, &se); err != nil {
			return nil, err
		}
		if len(x.Candidates) > MaxCandidates {
			return nil, errors.New("too many candidates")
		}
		return &x.Transport, nil
	}
}
