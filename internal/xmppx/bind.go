// Package xmppx holds small additions to mellium.im/xmpp that securejingle
// needs in more than one place.
package xmppx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// nsBind is the resource binding namespace (RFC 6120 §7).
const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// BindResource is a client-only replacement for xmpp.BindResource that
// requests origin's resourcepart. mellium v0.22's BindResource writes the
// (empty) JID instead of the resource into <resource/>, so the server always
// picks a random resource; this feature writes the resource correctly. An
// empty resourcepart still lets the server choose.
func BindResource(origin jid.JID) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, sess *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			r := sess.TokenReader()
			defer r.Close()
			w := sess.TokenWriter()
			defer w.Close()

			var payload xml.TokenReader
			if res := origin.Resourcepart(); res != "" {
				payload = xmlstream.Wrap(xmlstream.Token(xml.CharData(res)),
					xml.StartElement{Name: xml.Name{Local: "resource"}})
			}
			req := stanza.IQ{
				XMLName: xml.Name{Space: stanza.NSClient, Local: "iq"},
				ID:      randomID(),
				Type:    stanza.SetIQ,
			}
			if _, err := xmlstream.Copy(w, req.Wrap(xmlstream.Wrap(payload,
				xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}}))); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}

			d := xml.NewTokenDecoder(r)
			tok, err := d.Token()
			if err != nil {
				return 0, nil, err
			}
			start, ok := tok.(xml.StartElement)
			if !ok || start.Name != (xml.Name{Space: stanza.NSClient, Local: "iq"}) {
				return 0, nil, fmt.Errorf("xmppx: unexpected %T during resource binding", tok)
			}
			var resp struct {
				stanza.IQ
				JID string        `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
				Err *stanza.Error `xml:"error"`
			}
			if err := d.DecodeElement(&resp, &start); err != nil {
				return 0, nil, err
			}
			switch {
			case resp.ID != req.ID:
				return 0, nil, fmt.Errorf("xmppx: bind reply has id %q, want %q", resp.ID, req.ID)
			case resp.Type == stanza.ErrorIQ && resp.Err != nil:
				return 0, nil, fmt.Errorf("xmppx: binding %s: %w", origin, *resp.Err)
			case resp.Type != stanza.ResultIQ:
				return 0, nil, fmt.Errorf("xmppx: bind reply of type %q", resp.Type)
			}
			bound, err := jid.Parse(resp.JID)
			if err != nil {
				return 0, nil, fmt.Errorf("xmppx: bound JID: %w", err)
			}
			if !bound.Bare().Equal(origin.Bare()) {
				return 0, nil, fmt.Errorf("xmppx: server bound %s, want an address of %s", bound, origin.Bare())
			}
			sess.UpdateAddr(bound)
			return xmpp.Ready, nil, nil
		},
	}
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
