package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// maxMethodLen bounds a verification method name (as package trust does).
const maxMethodLen = 64

// checkBareJID parses s as a bare JID and returns its canonical form.
func checkBareJID(field, s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("%w: %s: not a JID: %q", ErrInvalid, field, s)
	}
	if j.Resourcepart() != "" {
		return "", fmt.Errorf("%w: %s must be a bare JID, without a resource", ErrInvalid, field)
	}
	return j.String(), nil
}

// checkFullJID parses s as a full JID and returns its canonical form.
func checkFullJID(field, s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("%w: %s: not a JID: %q", ErrInvalid, field, s)
	}
	if j.Resourcepart() == "" {
		return "", fmt.Errorf("%w: %s must be a full JID, with the resource of the device", ErrInvalid, field)
	}
	return j.String(), nil
}

func checkChat(req ChatRequest) (string, error) {
	to, err := checkBareJID("to", req.To)
	if err != nil {
		return "", err
	}
	if req.Body == "" {
		return "", fmt.Errorf("%w: body is empty", ErrInvalid)
	}
	if len(req.Body) > MaxChatBody {
		return "", fmt.Errorf("%w: body longer than %d bytes", ErrInvalid, MaxChatBody)
	}
	if err := checkXMLText(req.Body); err != nil {
		return "", fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	return to, nil
}

// checkXMLText rejects text that is not valid UTF-8 or holds characters
// XML 1.0 cannot carry.
func checkXMLText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return fmt.Errorf("character %U cannot appear in XML", r)
		}
	}
	return nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func checkIQ(req IQRequest) (string, error) {
	to, err := checkFullJID("to", req.To)
	if err != nil {
		return "", err
	}
	if req.Type != "get" && req.Type != "set" {
		return "", fmt.Errorf("%w: type must be get or set", ErrInvalid)
	}
	if err := CheckPayload([]byte(req.Payload)); err != nil {
		return "", err
	}
	return to, nil
}

// CheckPayload reports whether p is one well-formed XML element with a
// namespace, at most [MaxIQPayload] bytes, with nothing but whitespace
// around it (no declaration, processing instruction, directive or
// comment outside the element). Errors wrap [ErrInvalid].
func CheckPayload(p []byte) error {
	bad := func(why string) error { return fmt.Errorf("%w: payload: %s", ErrInvalid, why) }
	if len(p) == 0 {
		return bad("empty")
	}
	if len(p) > MaxIQPayload {
		return bad(fmt.Sprintf("longer than %d bytes", MaxIQPayload))
	}
	if !utf8.Valid(p) {
		return bad("not valid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(p))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bad("not well-formed XML: " + err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return bad("more than one element")
				}
				if !hasXMLNS(t) {
					return bad("the element needs an xmlns")
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return bad("text outside the element")
			}
		case xml.Comment:
			if depth == 0 {
				return bad("comment outside the element")
			}
		case xml.ProcInst:
			return bad("processing instruction")
		case xml.Directive:
			return bad("directive")
		}
	}
	if roots != 1 || depth != 0 {
		return bad("not exactly one complete element")
	}
	// RawToken does not match end tags to start tags; Token does.
	d = xml.NewDecoder(bytes.NewReader(p))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return bad("not well-formed XML: " + err.Error())
		}
	}
}

func hasXMLNS(t xml.StartElement) bool {
	if t.Name.Space != "" {
		return false // a prefix: keep to the default-namespace form
	}
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value != "" {
			return true
		}
	}
	return false
}

// DecodeKey decodes an Ed25519 identity key in strict standard base64
// (with padding). Errors wrap [ErrInvalid].
func DecodeKey(s string) (ed25519.PublicKey, error) {
	// The decoder skips CR and LF even in strict mode; a key has one
	// spelling only.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: key must be a 32-byte Ed25519 key in standard base64", ErrInvalid)
	}
	return ed25519.PublicKey(b), nil
}

// EncodeKey encodes an identity key as [DecodeKey] expects.
func EncodeKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

func checkMethod(m string) error {
	if m == "" || len(m) > maxMethodLen {
		return fmt.Errorf("%w: method must be 1 to %d characters", ErrInvalid, maxMethodLen)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%w: method may hold a-z, 0-9, '-' and '.' only", ErrInvalid)
		}
	}
	return nil
}

// checkTrust validates req and fills in defaults.
func checkTrust(req TrustRequest) (TrustRequest, error) {
	bare, err := checkBareJID("jid", req.JID)
	if err != nil {
		return req, err
	}
	req.JID = bare
	switch req.Action {
	case ActionVerify:
		if req.Method == "" {
			req.Method = "fingerprint"
		}
		if err := checkMethod(req.Method); err != nil {
			return req, err
		}
		if req.Key == "" {
			return req, fmt.Errorf("%w: verify needs the key that was verified", ErrInvalid)
		}
	case ActionAccept, ActionDistrust:
		if req.Method != "" {
			return req, fmt.Errorf("%w: method applies to verify only", ErrInvalid)
		}
		if req.Action == ActionDistrust && req.Key != "" {
			return req, fmt.Errorf("%w: distrust takes no key", ErrInvalid)
		}
	default:
		return req, fmt.Errorf("%w: action must be verify, accept or distrust", ErrInvalid)
	}
	if req.Key != "" {
		if _, err := DecodeKey(req.Key); err != nil {
			return req, err
		}
	}
	return req, nil
}
