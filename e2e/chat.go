package e2e

import (
	"encoding/xml"
	"unicode/utf8"
)

// A ChatElement is the compact one-on-one chat format: the encrypted body
// of a <message type='chat'/> for every recipient device, in one element.
//
//	<c xmlns='urn:x-securejingle:1'>base64(blob)</c>
//
// EME (XEP-0380) and a fallback body are added by the caller only when some
// recipient device does not support securejingle (see [FallbackBody]).
type ChatElement struct {
	Blob []byte
}

type xmlChat struct {
	XMLName xml.Name `xml:"urn:x-securejingle:1 c"`
	Data    string   `xml:",chardata"`
}

// MarshalXML encodes the element.
func (c *ChatElement) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return e.Encode(xmlChat{Data: b64.EncodeToString(c.Blob)})
}

// ParseChatElement parses a <c/> element strictly.
func ParseChatElement(data []byte) (*ChatElement, error) {
	var x xmlChat
	if err := strictUnmarshal(data, &x, &shape{text: true}); err != nil {
		return nil, err
	}
	blob, err := decodeB64(x.Data, "chat element")
	if err != nil {
		return nil, err
	}
	return &ChatElement{Blob: blob}, nil
}

// SealChat encrypts a chat body for targets (devices of c.To and of our own
// account). c.StanzaKind must be "message".
func (e *Engine) SealChat(c Context, targets []Device, body string, inlineBundle bool) (*ChatElement, error) {
	if c.StanzaKind != "message" {
		return nil, malformed("chat in a %s stanza", c.StanzaKind)
	}
	if !utf8.ValidString(body) {
		return nil, malformed("chat body is not UTF-8")
	}
	blob, err := e.seal(modeChat, &c, targets, []byte(body), sealOptions{inlineBundle: inlineBundle})
	if err != nil {
		return nil, err
	}
	return &ChatElement{Blob: blob}, nil
}

// OpenChat decrypts a chat element addressed to this device.
func (e *Engine) OpenChat(c Context, el *ChatElement) (string, *Peer, error) {
	if c.StanzaKind != "message" {
		return "", nil, malformed("chat in a %s stanza", c.StanzaKind)
	}
	pt, peer, err := e.open(modeChat, &c, el.Blob, nil)
	if err != nil {
		return "", nil, err
	}
	if !utf8.Valid(pt) {
		return "", nil, malformed("chat body is not UTF-8")
	}
	return string(pt), peer, nil
}

// EME (XEP-0380) values for securejingle.
const (
	EMENamespace = NS
	EMEName      = "securejingle"
)

// FallbackBody is the short body put beside the encrypted element, with an
// EME element, when some recipient device does not support securejingle.
const FallbackBody = "[securejingle encrypted message: this client cannot read it]"
