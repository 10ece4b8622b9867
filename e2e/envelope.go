package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"
)

// An Envelope is the XEP-0420-shaped wrapper of a protected stanza payload:
// the payload elements, random padding, the time, and the bare JIDs of
// addressee and sender, which must match the outer stanza.
//
//	<envelope xmlns='urn:x-securejingle:1'>
//	  <content>…payload elements…</content>
//	  <rpad>…</rpad>
//	  <time stamp='2026-11-25T18:00:00Z'/>
//	  <to jid='bob@example.org'/>
//	  <from jid='alice@example.org'/>
//	</envelope>
type Envelope struct {
	Content []byte // the payload: zero or more well-formed XML elements
	RPad    string
	Time    time.Time
	To      string
	From    string
}

type xmlJID struct {
	JID string `xml:"jid,attr"`
}

type xmlEnvelope struct {
	XMLName xml.Name `xml:"urn:x-securejingle:1 envelope"`
	Content struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"content"`
	RPad string `xml:"rpad,omitempty"`
	Time struct {
		Stamp string `xml:"stamp,attr"`
	} `xml:"time"`
	To   xmlJID `xml:"to"`
	From xmlJID `xml:"from"`
}

// Marshal returns the envelope bytes. These exact bytes are encrypted, or,
// in authenticate-only mode, carried and authenticated as they are.
func (ev *Envelope) Marshal() ([]byte, error) {
	if err := checkContent(ev.Content); err != nil {
		return nil, err
	}
	var x xmlEnvelope
	x.Content.Inner = ev.Content
	x.RPad = ev.RPad
	x.Time.Stamp = ev.Time.UTC().Format(envelopeTime)
	x.To.JID, x.From.JID = ev.To, ev.From
	return xml.Marshal(x)
}

// envelopeTime is the one time format of envelopes: UTC, whole seconds.
const envelopeTime = "2006-01-02T15:04:05Z"

var envelopeShape = &shape{children: map[string]childShape{
	"content": {&shape{anyContent: true}, 1},
	"rpad":    {&shape{text: true}, 1},
	"time":    {&shape{attrs: []string{"stamp"}}, 1},
	"to":      {&shape{attrs: []string{"jid"}}, 1},
	"from":    {&shape{attrs: []string{"jid"}}, 1},
}}

// ParseEnvelope parses envelope bytes strictly.
func ParseEnvelope(data []byte) (*Envelope, error) {
	var x xmlEnvelope
	if err := strictUnmarshal(data, &x, envelopeShape); err != nil {
		return nil, err
	}
	t, err := time.Parse(envelopeTime, x.Time.Stamp)
	if err != nil || t.Format(envelopeTime) != x.Time.Stamp {
		return nil, malformed("envelope time %q", x.Time.Stamp)
	}
	ev := &Envelope{Content: x.Content.Inner, RPad: x.RPad, Time: t, To: x.To.JID, From: x.From.JID}
	if err := checkContent(ev.Content); err != nil {
		return nil, err
	}
	if checkBareJID(ev.To) != nil || checkBareJID(ev.From) != nil {
		return nil, malformed("envelope JIDs")
	}
	return ev, nil
}

// checkContent requires well-formed XML elements (no stray text but
// whitespace).
func checkContent(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				return malformed("envelope content unbalanced")
			}
			return nil
		}
		if err != nil {
			return malformed("envelope content: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) != 0 {
				return malformed("text outside elements in envelope content")
			}
		case xml.ProcInst, xml.Directive:
			return malformed("processing instruction or directive in envelope content")
		}
	}
}

// Protection modes of [Engine.Protect].
const (
	Encrypt  = false // encrypt and authenticate
	AuthOnly = true  // authenticate only; the server can read the payload
)

// A ProtectedElement carries a protected stanza payload.
//
//	<p xmlns='urn:x-securejingle:1' m='enc'>base64(blob)</p>
//	<p xmlns='urn:x-securejingle:1' m='auth'><env>base64(envelope)</env><k>base64(blob)</k></p>
type ProtectedElement struct {
	AuthOnly bool
	Envelope []byte // auth-only: the exact envelope bytes
	Blob     []byte
}

type xmlProtected struct {
	XMLName xml.Name `xml:"urn:x-securejingle:1 p"`
	Mode    string   `xml:"m,attr"`
	Data    string   `xml:",chardata"`
	Env     *string  `xml:"env"`
	Keys    *string  `xml:"k"`
}

// MarshalXML encodes the element.
func (p *ProtectedElement) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if !p.AuthOnly {
		return e.Encode(xmlProtected{Mode: "enc", Data: b64.EncodeToString(p.Blob)})
	}
	env, keys := b64.EncodeToString(p.Envelope), b64.EncodeToString(p.Blob)
	return e.Encode(xmlProtected{Mode: "auth", Env: &env, Keys: &keys})
}

var protectedShape = &shape{attrs: []string{"m"}, text: true, children: map[string]childShape{
	"env": {&shape{text: true}, 1},
	"k":   {&shape{text: true}, 1},
}}

// ParseProtectedElement parses a <p/> element strictly.
func ParseProtectedElement(data []byte) (*ProtectedElement, error) {
	var x xmlProtected
	if err := strictUnmarshal(data, &x, protectedShape); err != nil {
		return nil, err
	}
	p := &ProtectedElement{}
	var err error
	switch x.Mode {
	case "enc":
		if x.Env != nil || x.Keys != nil {
			return nil, malformed("children in encrypted element")
		}
		p.Blob, err = decodeB64(x.Data, "protected element")
	case "auth":
		if x.Env == nil || x.Keys == nil || len(bytes.TrimSpace([]byte(x.Data))) != 0 {
			return nil, malformed("auth-only element shape")
		}
		p.AuthOnly = true
		if p.Envelope, err = decodeB64(*x.Env, "envelope"); err == nil {
			p.Blob, err = decodeB64(*x.Keys, "auth keys")
		}
	default:
		return nil, malformed("protection mode %q", x.Mode)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Protect wraps content (the payload elements of a stanza) in an envelope
// and encrypts it, or authenticates it only, for targets.
func (e *Engine) Protect(c Context, targets []Device, content []byte, authOnly bool) (*ProtectedElement, error) {
	ev := &Envelope{Content: content, Time: e.cfg.Now(), To: c.To, From: c.From}
	if !authOnly {
		ev.RPad = randomPad(len(content))
	}
	env, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	if authOnly {
		blob, err := e.seal(modeAuthOnly, &c, targets, env, sealOptions{})
		if err != nil {
			return nil, err
		}
		return &ProtectedElement{AuthOnly: true, Envelope: env, Blob: blob}, nil
	}
	blob, err := e.seal(modeStanza, &c, targets, env, sealOptions{})
	if err != nil {
		return nil, err
	}
	return &ProtectedElement{Blob: blob}, nil
}

// Unprotect opens a protected element and returns the envelope, after
// checking that its addressee and sender match the outer stanza.
func (e *Engine) Unprotect(c Context, p *ProtectedElement) (*Envelope, *Peer, error) {
	var env []byte
	var peer *Peer
	var err error
	if p.AuthOnly {
		env, peer, err = e.open(modeAuthOnly, &c, p.Blob, p.Envelope)
	} else {
		env, peer, err = e.open(modeStanza, &c, p.Blob, nil)
	}
	if err != nil {
		return nil, nil, err
	}
	ev, err := ParseEnvelope(env)
	if err != nil {
		return nil, nil, err
	}
	if ev.To != c.To || ev.From != c.From {
		return nil, nil, fmt.Errorf("%w: envelope addressed %s->%s, stanza %s->%s", ErrDecrypt, ev.From, ev.To, c.From, c.To)
	}
	return ev, peer, nil
}

// randomPad returns 0..63 characters of padding plus what rounds the
// content up to a multiple of 32 bytes, so lengths leak less.
func randomPad(n int) string {
	var b [1]byte
	rand.Read(b[:])
	pad := int(b[0]&0x3f) + (32-n%32)%32
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, pad)
	rand.Read(out)
	for i := range out {
		out[i] = alphabet[int(out[i])%len(alphabet)]
	}
	return string(out)
}
