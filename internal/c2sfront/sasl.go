package c2sfront

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// Mechanism names offered, strongest first.
const (
	mechSCRAM = "SCRAM-SHA-256"
	mechPlain = "PLAIN"
)

// maxSASLPayload bounds one base64 SASL element payload.
const maxSASLPayload = 4096

var errAuth = errors.New("c2sfront: local login refused (wrong user or password)")

// saslFeature is the server side of SASL (RFC 6120 §6) offering
// SCRAM-SHA-256 and PLAIN, both checked against the stored Credential
// (mellium's SASLServer cannot serve SCRAM from stored keys). The stream
// feature requires TLS first. ok is called once on success.
func (s *Server) saslFeature(ok func()) xmpp.StreamFeature {
	acct := s.cfg.Account
	authzOK := func(a string) bool { return a == acct.Localpart() || a == acct.String() }
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSASL, Local: "mechanisms"},
		Necessary:  xmpp.Secure,
		Prohibited: xmpp.Authn,
		List: func(_ context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			mech := xml.StartElement{Name: xml.Name{Local: "mechanism"}}
			_, err := xmlstream.Copy(e, xmlstream.Wrap(xmlstream.MultiReader(
				xmlstream.Wrap(xmlstream.Token(xml.CharData(mechSCRAM)), mech),
				xmlstream.Wrap(xmlstream.Token(xml.CharData(mechPlain)), mech),
			), start))
			return true, err
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, session *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			r := session.TokenReader()
			defer r.Close()
			w := session.TokenWriter()
			defer w.Close()
			d := xml.NewTokenDecoder(r)
			send := func(local string, payload []byte) error {
				var inner xml.TokenReader
				if payload != nil {
					inner = xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(payload)))
				}
				if _, err := xmlstream.Copy(w, xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: nsSASL, Local: local}})); err != nil {
					return err
				}
				return w.Flush()
			}
			fail := func(cond string) (xmpp.SessionState, io.ReadWriter, error) {
				xmlstream.Copy(w, xmlstream.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: cond}}),
					xml.StartElement{Name: xml.Name{Space: nsSASL, Local: "failure"}}))
				w.Flush()
				s.log.Info("local login failed", "cause", cond)
				return 0, nil, errAuth
			}
			// The attempt counts as failed from here unless it succeeds:
			// counted before the client can learn of the failure, and
			// before the password is checked, so that connections opened
			// before the lockout cannot check more than maxAuthFailures.
			if !s.beginAttempt() {
				return fail("temporary-auth-failure")
			}
			el, mech, payload, err := readSASL(d)
			if err != nil {
				return fail("malformed-request")
			}
			if el != "auth" {
				return fail("malformed-request")
			}
			switch mech {
			case mechPlain:
				f := bytes.Split(payload, []byte{0})
				if len(f) != 3 {
					return fail("malformed-request")
				}
				good := s.cfg.Credential.Verify(f[2])
				if string(f[1]) != acct.Localpart() || (len(f[0]) != 0 && !authzOK(string(f[0]))) || !good {
					return fail("not-authorized")
				}
				if err := send("success", nil); err != nil {
					return 0, nil, err
				}
			case mechSCRAM:
				sc := &scramServer{cred: s.cfg.Credential, user: acct.Localpart(), authzOK: authzOK}
				sf, err := sc.first(payload)
				if err != nil {
					return fail("not-authorized")
				}
				if err := send("challenge", sf); err != nil {
					return 0, nil, err
				}
				el, _, payload, err := readSASL(d)
				if err != nil || el != "response" {
					return fail("malformed-request")
				}
				v, err := sc.final(payload)
				if err != nil {
					return fail("not-authorized")
				}
				if err := send("success", v); err != nil {
					return 0, nil, err
				}
			default:
				return fail("invalid-mechanism")
			}
			s.attemptSucceeded()
			ok()
			return xmpp.Authn, session.Conn(), nil
		},
	}
}

// readSASL reads one SASL element and returns its local name, mechanism
// attribute and decoded payload ("=" is the empty payload).
func readSASL(d *xml.Decoder) (local, mech string, payload []byte, err error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return "", "", nil, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space != nsSASL {
			return "", "", nil, errAuth
		}
		v := struct {
			Mech    string `xml:"mechanism,attr"`
			Payload string `xml:",chardata"`
		}{}
		if err := d.DecodeElement(&v, &start); err != nil {
			return "", "", nil, err
		}
		if len(v.Payload) > maxSASLPayload {
			return "", "", nil, errAuth
		}
		if v.Payload == "=" || v.Payload == "" {
			return start.Name.Local, v.Mech, nil, nil
		}
		p, err := base64.StdEncoding.DecodeString(v.Payload)
		if err != nil {
			return "", "", nil, err
		}
		return start.Name.Local, v.Mech, p, nil
	}
}
