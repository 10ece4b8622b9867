package filexfer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// XEP-0065 proxy payloads: the streamhost query a client sends a proxy
// (such as Prosody's mod_proxy65) to learn its network address (§6.1,
// §5.3.1), and the activation request (§6.3.5) by which the party that
// offered a nominated proxy candidate tells the proxy to join the two
// connections. They are IQ payloads the gateway sends and reads; the
// functions here build and parse them as bytes, strictly and bounded.

// NSBytestreams is the XEP-0065 namespace, also the disco#info feature of
// a SOCKS5 proxy.
const NSBytestreams = "http://jabber.org/protocol/bytestreams"

// Limits of the XEP-0065 payloads.
const (
	MaxStreamhosts      = 8       // <streamhost/> per query result
	MaxBytestreamsQuery = 8 << 10 // bytes of one <query/> payload
)

// Streamhost is a XEP-0065 <streamhost jid host port/>: where a proxy
// listens. The zero value is not a valid streamhost. It is a plain value.
type Streamhost struct {
	JID  string // the proxy's JID (required)
	Host string // an IP literal or DNS name (required)
	Port uint16 // 1-65535; 0 means absent (1080 applies)
}

// Candidate returns a proxy candidate for sh with a fresh cid and the
// XEP-0260 proxy priority for local preference local.
func (sh Streamhost) Candidate(local uint16) (S5BCandidate, error) {
	port := sh.Port
	if port == 0 {
		port = 1080
	}
	return NewS5BCandidate(S5BProxy, sh.JID, sh.Host, port, local)
}

// StreamhostQuery returns the payload of the IQ-get to a proxy's JID that
// asks for its streamhost (XEP-0065 §6.1).
func StreamhostQuery() []byte {
	return []byte(`<query xmlns="` + NSBytestreams + `"/>`)
}

// ParseStreamhosts reads the payload of a proxy's answer to
// [StreamhostQuery]: a <query/> of NSBytestreams (with an optional sid,
// ignored) holding one or more
// <streamhost jid host port/> (at most MaxStreamhosts) and nothing else.
// Every attribute is checked: jid a bounded token, host an IP literal or
// DNS name, port canonical decimal 1-65535. Errors match
// [ErrMalformedElement].
func ParseStreamhosts(b []byte) ([]Streamhost, error) {
	root, err := parseBytestreamsQuery(b)
	if err != nil {
		return nil, err
	}
	for i, a := range root.attrs {
		// Prosody echoes the sid of a query that had one; it means
		// nothing here.
		if a.Name.Space != "" || a.Name.Local != "sid" || i > 0 || !isToken(a.Value) || a.Value == "" || len(a.Value) > MaxSIDLen {
			return nil, bsErr("query@"+a.Name.Local, "unknown attribute or bad sid")
		}
	}
	if len(root.kids) == 0 {
		return nil, bsErr("query", "no streamhost")
	}
	var hs []Streamhost
	for _, k := range root.kids {
		if k.name.Local != "streamhost" {
			return nil, bsErr("query/"+k.name.Local, "unknown element")
		}
		if len(hs) == MaxStreamhosts {
			return nil, bsErr("query/streamhost", "more than "+strconv.Itoa(MaxStreamhosts)+" elements")
		}
		if k.text != "" || len(k.kids) > 0 {
			return nil, bsErr("query/streamhost", "unexpected content")
		}
		var sh Streamhost
		var seen [3]bool
		for _, a := range k.attrs {
			f := "query/streamhost@" + a.Name.Local
			slot := -1
			if a.Name.Space == "" {
				switch a.Name.Local {
				case "jid":
					slot = 0
				case "host":
					slot = 1
				case "port":
					slot = 2
				}
			}
			if slot < 0 {
				return nil, bsErr(f, "unknown attribute")
			}
			if seen[slot] {
				return nil, bsErr(f, "repeated")
			}
			seen[slot] = true
			switch a.Name.Local {
			case "jid":
				if a.Value == "" || len(a.Value) > MaxJIDLen || !isToken(a.Value) {
					return nil, bsErr(f, "empty, too long or with whitespace")
				}
				sh.JID = a.Value
			case "host":
				if len(a.Value) > MaxHostLen {
					return nil, bsErr(f, "longer than "+strconv.Itoa(MaxHostLen)+" bytes")
				}
				if why := checkHost(a.Value); why != "" {
					return nil, bsErr(f, why)
				}
				sh.Host = a.Value
			case "port":
				p, why := decimal(a.Value, 1, 65535)
				if why != "" {
					return nil, bsErr(f, why)
				}
				sh.Port = uint16(p)
			}
		}
		if sh.JID == "" || sh.Host == "" {
			return nil, bsErr("query/streamhost", "jid and host are required")
		}
		hs = append(hs, sh)
	}
	return hs, nil
}

// MarshalStreamhosts returns the <query/> a proxy answers with; it
// refuses what [ParseStreamhosts] would.
func MarshalStreamhosts(hs []Streamhost) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<query xmlns="` + NSBytestreams + `">`)
	for _, h := range hs {
		b.WriteString(`<streamhost jid="`)
		xml.EscapeText(&b, []byte(h.JID))
		b.WriteString(`" host="`)
		xml.EscapeText(&b, []byte(h.Host))
		b.WriteString(`"`)
		if h.Port != 0 {
			b.WriteString(` port="` + strconv.Itoa(int(h.Port)) + `"`)
		}
		b.WriteString(`/>`)
	}
	b.WriteString(`</query>`)
	if _, err := ParseStreamhosts(b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ActivateQuery returns the payload of the IQ-set to the proxy's JID that
// activates the stream sid toward target, the peer's full JID (XEP-0065
// §6.3.5: <query sid><activate>target</activate></query>). The proxy
// joins the two connections whose DST.ADDR is DstAddr(sid, sender of the
// IQ, target), so only the party that offered the proxy candidate can
// activate it.
func ActivateQuery(sid, target string) ([]byte, error) {
	if err := checkActivate(sid, target); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`<query xmlns="` + NSBytestreams + `" sid="`)
	xml.EscapeText(&b, []byte(sid))
	b.WriteString(`"><activate>`)
	xml.EscapeText(&b, []byte(target))
	b.WriteString(`</activate></query>`)
	return b.Bytes(), nil
}

// ParseActivate reads an activation request: a <query sid/> of
// NSBytestreams holding exactly one <activate/> with the target JID as
// text. It is what a proxy reads; securejingle uses it in tests and
// fakes. Errors match [ErrMalformedElement].
func ParseActivate(b []byte) (sid, target string, err error) {
	root, err := parseBytestreamsQuery(b)
	if err != nil {
		return "", "", err
	}
	for _, a := range root.attrs {
		if a.Name.Space != "" || a.Name.Local != "sid" || sid != "" {
			return "", "", bsErr("query@"+a.Name.Local, "unknown or repeated attribute")
		}
		sid = a.Value
	}
	if root.text != "" {
		return "", "", bsErr("query", "unexpected text")
	}
	if len(root.kids) != 1 || root.kids[0].name.Local != "activate" {
		return "", "", bsErr("query", "want exactly one activate element")
	}
	k := root.kids[0]
	if len(k.attrs) > 0 || len(k.kids) > 0 {
		return "", "", bsErr("query/activate", "unexpected attribute or element")
	}
	if err := checkActivate(sid, k.text); err != nil {
		return "", "", err
	}
	return sid, k.text, nil
}

func checkActivate(sid, target string) error {
	if sid == "" || len(sid) > MaxSIDLen || !isToken(sid) {
		return bsErr("query@sid", "empty, longer than "+strconv.Itoa(MaxSIDLen)+" bytes or with whitespace")
	}
	if target == "" || len(target) > MaxJIDLen || !isToken(target) {
		return bsErr("query/activate", "target JID empty, longer than "+strconv.Itoa(MaxJIDLen)+" bytes or with whitespace")
	}
	return nil
}

func bsErr(field, reason string) error {
	return &ElementError{Field: field, Reason: reason}
}

// bsNode is one element of a bytestreams payload: depth at most 2, all
// in NSBytestreams.
type bsNode struct {
	name  xml.Name
	attrs []xml.Attr
	kids  []*bsNode
	text  string // trimmed of surrounding whitespace
	buf   []byte // text while reading
}

// parseBytestreamsQuery reads b as one <query xmlns=NSBytestreams/>
// element at most two levels deep with children of that namespace only;
// no directives, no processing instructions other than an XML
// declaration, nothing after the root.
func parseBytestreamsQuery(b []byte) (*bsNode, error) {
	if len(b) > MaxBytestreamsQuery {
		return nil, bsErr("query", "larger than "+strconv.Itoa(MaxBytestreamsQuery)+" bytes")
	}
	if !utf8.Valid(b) {
		return nil, bsErr("query", "not UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []*bsNode
	var root *bsNode
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &ElementError{Field: "query", Reason: "not well-formed XML: " + err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, bsErr("query", "content after the query element")
			}
			if len(stack) == 2 {
				return nil, bsErr("query/"+stack[1].name.Local+"/"+t.Name.Local, "nested too deeply")
			}
			if t.Name.Space != NSBytestreams {
				return nil, bsErr(pathOf(stack, t.Name.Local), fmt.Sprintf("element of namespace %q, want %q", truncate(t.Name.Space), NSBytestreams))
			}
			n := &bsNode{name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				n.attrs = append(n.attrs, a)
			}
			if len(stack) == 0 {
				if t.Name.Local != "query" {
					return nil, bsErr(t.Name.Local, "want a query element")
				}
				root = n
			} else {
				stack[len(stack)-1].kids = append(stack[len(stack)-1].kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text, n.buf = string(bytes.TrimSpace(n.buf)), nil
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, bsErr("query", "text outside the query element")
				}
				continue
			}
			n := stack[len(stack)-1]
			n.buf = append(n.buf, t...)
		case xml.Comment:
		case xml.ProcInst:
			if t.Target != "xml" || root != nil {
				return nil, bsErr("query", "processing instruction")
			}
		case xml.Directive:
			return nil, bsErr("query", "directive")
		}
	}
	if root == nil || len(stack) != 0 {
		return nil, bsErr("query", "no complete query element")
	}
	if root.text != "" && len(root.kids) > 0 {
		return nil, bsErr("query", "unexpected text")
	}
	return root, nil
}

func pathOf(stack []*bsNode, local string) string {
	var parts []string
	for _, n := range stack {
		parts = append(parts, n.name.Local)
	}
	return strings.Join(append(parts, local), "/")
}
