package jingle

import "encoding/xml"

// RTPInfoKind names a XEP-0167 §7 informational message, the payload of a
// session-info.
type RTPInfoKind string

// XEP-0167 §7 informational messages.
const (
	InfoActive  RTPInfoKind = "active"
	InfoHold    RTPInfoKind = "hold"
	InfoUnhold  RTPInfoKind = "unhold"
	InfoMute    RTPInfoKind = "mute"
	InfoUnmute  RTPInfoKind = "unmute"
	InfoRinging RTPInfoKind = "ringing"
)

var infoKinds = map[string]RTPInfoKind{
	"active": InfoActive, "hold": InfoHold, "unhold": InfoUnhold,
	"mute": InfoMute, "unmute": InfoUnmute, "ringing": InfoRinging,
}

// RTPInfo is one XEP-0167 §7 informational payload
// (<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>, ...). Creator and
// Name select the content a mute or unmute applies to; both empty means
// every content. The zero value is not a valid payload.
type RTPInfo struct {
	Kind    RTPInfoKind
	Creator Creator // mute/unmute only
	Name    string  // mute/unmute only: the content name
}

// Raw returns the payload as an element for [Jingle.Info].
func (i RTPInfo) Raw() Raw {
	r := Raw{XMLName: xml.Name{Space: NSRTPInfo, Local: string(i.Kind)}}
	if i.Creator != "" {
		r.Attrs = append(r.Attrs, xml.Attr{Name: xml.Name{Local: "creator"}, Value: string(i.Creator)})
	}
	if i.Name != "" {
		r.Attrs = append(r.Attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: i.Name})
	}
	return r
}

// ParseRTPInfo reads a XEP-0167 §7 payload from r. It returns false when r
// is not in the urn:xmpp:jingle:apps:rtp:info:1 namespace or names an
// informational message this package does not know (a session answers
// those with unsupported-info, XEP-0166 §10), and an error matching
// [ErrMalformed] when a known payload is malformed.
func ParseRTPInfo(r Raw) (RTPInfo, bool, error) {
	if r.XMLName.Space != NSRTPInfo {
		return RTPInfo{}, false, nil
	}
	if _, ok := infoKinds[r.XMLName.Local]; !ok {
		return RTPInfo{}, false, nil
	}
	n := &node{name: r.XMLName, attrs: r.Attrs}
	if len(r.Inner) > 0 {
		// Content is not allowed; report it as the parser would.
		n.addText("x")
	}
	info, err := rtpInfoOf(n, r.XMLName.Local)
	if err != nil {
		return RTPInfo{}, true, err
	}
	return info, true, nil
}

// rtpInfoOf checks a payload node in the info namespace. Unknown names
// pass (they stay Raw and get unsupported-info).
func rtpInfoOf(n *node, path string) (RTPInfo, *ParseError) {
	kind, ok := infoKinds[n.name.Local]
	if !ok {
		return RTPInfo{}, nil
	}
	p := &parser{}
	e := p.open(n, path)
	info := RTPInfo{Kind: kind}
	if kind == InfoMute || kind == InfoUnmute {
		info.Creator = Creator(e.enum("creator", false, creators...))
		info.Name = e.str("name", false, MaxIDLen)
	}
	e.leaf()
	if p.err != nil {
		return RTPInfo{}, p.err
	}
	return info, nil
}

// RTPInfos returns the XEP-0167 §7 payloads of a session-info, in order,
// and reports whether j also carries payloads this package does not know
// (the receiver then answers unsupported-info, XEP-0166 §10). An empty
// session-info is a ping (XEP-0166 §6.8) and returns no payloads.
func (j *Jingle) RTPInfos() (infos []RTPInfo, unknown bool, err error) {
	for _, r := range j.Info {
		i, ok, err := ParseRTPInfo(r)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			unknown = true
			continue
		}
		infos = append(infos, i)
	}
	return infos, unknown, nil
}

// NewSessionInfo returns a session-info for sid carrying the given
// XEP-0167 §7 payloads; with none it is a session ping (XEP-0166 §6.8).
func NewSessionInfo(sid string, infos ...RTPInfo) *Jingle {
	j := &Jingle{XMLName: xml.Name{Space: NS, Local: "jingle"}, Action: ActionSessionInfo, SID: sid}
	for _, i := range infos {
		j.Info = append(j.Info, i.Raw())
	}
	return j
}
