package filexfer

import (
	"strconv"

	"github.com/securejingle/securejingle/jingle"
)

// TransportKind names the transport of a file-transfer content; the zero
// value means the content has none.
type TransportKind string

// Transport kinds, in securejingle's order of preference.
const (
	TransportDataChannel TransportKind = "webrtc-datachannel" // XEP-0343
	TransportS5B         TransportKind = "s5b"                // XEP-0260
	TransportIBB         TransportKind = "ibb"                // XEP-0261
	// TransportOther is a transport of another namespace, or XEP-0343
	// v0.3's bare ICE-UDP transport with an sctpmap.
	TransportOther TransportKind = "other"
)

// FileContent is a Jingle content read as a file transfer: the typed
// elements of its jingle.Content.Other. The zero value is an empty
// content. It is a plain value: safe for concurrent reads, not for
// concurrent mutation.
type FileContent struct {
	Creator jingle.Creator
	Name    string
	// Request is set when the content's senders are the party that did
	// not create it: the creator asks for the file (XEP-0234 §6.2); an
	// offer has the creator as senders.
	Request bool
	// Description is the XEP-0234 description, nil when the content has
	// none (a transport-replace, say).
	Description *Description
	// Security is the JET security element, nil when absent.
	Security *Security
	// Transport names the one transport of the content, "" when it has
	// none; exactly one of S5B, IBB and DataChannel is set for the first
	// three kinds.
	Transport   TransportKind
	S5B         *S5BTransport
	IBB         *IBBTransport
	DataChannel *DataChannelTransport
	// ForeignDescription is set when the content's application is not
	// XEP-0234 file-transfer:5 (an RTP description, an older
	// file-transfer namespace, ...): it is not a file transfer this
	// package reads.
	ForeignDescription bool
}

// ParseContent reads the file-transfer elements of c: at most one
// description, one security element and one transport. An error matching
// [ErrMalformedElement] reports a malformed element, a second one of a
// kind, a security element whose name is not the content's, or a file
// description whose senders are neither initiator nor responder.
func ParseContent(c *jingle.Content) (*FileContent, error) {
	fc := &FileContent{Creator: c.Creator, Name: c.Name}
	path := "content[" + strconv.Quote(truncate(c.Name)) + "]"
	descs, transports := 0, 0
	if c.Description != nil {
		descs++
		fc.ForeignDescription = true
	}
	if c.Transport != nil {
		transports++
		fc.Transport = TransportOther
	}
	for _, r := range c.Other {
		rp := path + "/" + r.XMLName.Local
		var err error
		switch r.XMLName.Local {
		case "description":
			descs++
			if r.XMLName.Space == NSFileTransfer {
				fc.Description, _, err = ParseDescription(r)
			} else {
				fc.ForeignDescription = true
			}
		case "security":
			if r.XMLName.Space != NSJET {
				continue
			}
			if fc.Security != nil {
				return nil, &ElementError{Field: rp, Reason: "more than one JET security element"}
			}
			fc.Security, _, err = ParseSecurity(r)
			if err == nil && fc.Security.Name != c.Name {
				return nil, &ElementError{Field: rp + "@name", Reason: "names content " + strconv.Quote(truncate(fc.Security.Name)) + ", not its own"}
			}
		case "transport":
			transports++
			switch r.XMLName.Space {
			case NSS5B:
				fc.Transport = TransportS5B
				fc.S5B, _, err = ParseS5BTransport(r)
			case NSIBB:
				fc.Transport = TransportIBB
				fc.IBB, _, err = ParseIBBTransport(r)
			case NSDataChannel:
				fc.Transport = TransportDataChannel
				fc.DataChannel, _, err = ParseDataChannelTransport(r)
			default:
				fc.Transport = TransportOther
			}
		}
		if err != nil {
			var ee *ElementError
			if asElementError(err, &ee) {
				return nil, &ElementError{Field: path + "/" + ee.Field, Reason: ee.Reason, Err: ee.Err}
			}
			return nil, err
		}
	}
	if descs > 1 {
		return nil, &ElementError{Field: path + "/description", Reason: "more than one application description"}
	}
	if transports > 1 {
		return nil, &ElementError{Field: path + "/transport", Reason: "more than one transport"}
	}
	if fc.Description != nil {
		switch {
		case c.Senders == jingle.SendersInitiator || c.Senders == jingle.SendersResponder:
			fc.Request = string(c.Senders) != string(c.Creator)
		default:
			return nil, &ElementError{Field: path + "@senders", Reason: "a file transfer is sent by one party: senders must be initiator or responder (XEP-0234 §4.1)"}
		}
	}
	return fc, nil
}

func asElementError(err error, target **ElementError) bool {
	e, ok := err.(*ElementError)
	if ok {
		*target = e
	}
	return ok
}
