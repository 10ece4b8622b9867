package prosodytest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Namespaces used by the raw probe (RFC 6120).
const (
	nsStream = "http://etherx.jabber.org/streams"
	nsTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// ErrNotAuthorized is returned by [Server.CheckPassword] when the server
// answers the SASL exchange with a <failure/> (RFC 6120 §6.4.5).
var ErrNotAuthorized = errors.New("prosodytest: not authorized")

// probeTimeout bounds one probe connection so a wedged server cannot hang a
// test.
const probeTimeout = 5 * time.Second

// probe is a minimal hand-written c2s client: just enough of RFC 6120 to see
// that STARTTLS and SASL work, independent of mellium.
type probe struct {
	conn net.Conn
	dec  *xml.Decoder
}

// features is the subset of <stream:features/> the probe looks at.
type features struct {
	StartTLS   *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms []string  `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
}

// dialProbe connects to addr, negotiates STARTTLS verified against cfg and
// returns the connection with the post-TLS stream features read.
func dialProbe(ctx context.Context, addr, domain string, cfg *tls.Config) (*probe, features, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, features{}, err
	}
	deadline := time.Now().Add(probeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := raw.SetDeadline(deadline); err != nil {
		raw.Close()
		return nil, features{}, err
	}
	p := &probe{conn: raw}
	f, err := p.openStream(domain)
	if err != nil {
		raw.Close()
		return nil, features{}, err
	}
	if f.StartTLS == nil {
		raw.Close()
		return nil, features{}, errors.New("prosodytest: server does not offer STARTTLS")
	}
	if _, err := io.WriteString(raw, "<starttls xmlns='"+nsTLS+"'/>"); err != nil {
		raw.Close()
		return nil, features{}, err
	}
	start, err := p.nextStart()
	if err != nil {
		raw.Close()
		return nil, features{}, err
	}
	if start.Name != (xml.Name{Space: nsTLS, Local: "proceed"}) {
		raw.Close()
		return nil, features{}, fmt.Errorf("prosodytest: STARTTLS answered with <%s/>", start.Name.Local)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, features{}, fmt.Errorf("prosodytest: TLS handshake: %w", err)
	}
	p.conn = tc
	f, err = p.openStream(domain)
	if err != nil {
		tc.Close()
		return nil, features{}, err
	}
	return p, f, nil
}

// openStream sends a stream header and reads the server's header and
// features. The decoder is replaced because a new stream starts from scratch
// (and after STARTTLS the bytes come from the TLS layer).
func (p *probe) openStream(domain string) (features, error) {
	hdr := "<?xml version='1.0'?><stream:stream to=" + xmlAttr(domain) +
		" version='1.0' xmlns='jabber:client' xmlns:stream='" + nsStream + "'>"
	if _, err := io.WriteString(p.conn, hdr); err != nil {
		return features{}, err
	}
	p.dec = xml.NewDecoder(p.conn)
	start, err := p.nextStart()
	if err != nil {
		return features{}, err
	}
	if start.Name != (xml.Name{Space: nsStream, Local: "stream"}) {
		return features{}, fmt.Errorf("prosodytest: expected stream header, got <%s/>", start.Name.Local)
	}
	start, err = p.nextStart()
	if err != nil {
		return features{}, err
	}
	if start.Name != (xml.Name{Space: nsStream, Local: "features"}) {
		return features{}, fmt.Errorf("prosodytest: expected stream features, got <%s/>", start.Name.Local)
	}
	var f features
	if err := p.dec.DecodeElement(&f, &start); err != nil {
		return features{}, err
	}
	return f, nil
}

// nextStart returns the next start element, skipping character data.
func (p *probe) nextStart() (xml.StartElement, error) {
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("prosodytest: unexpected </%s>", t.Name.Local)
		}
	}
}

// authPlain runs SASL PLAIN (RFC 4616) and reports ErrNotAuthorized on a
// <failure/>.
func (p *probe) authPlain(user, password string) error {
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if _, err := io.WriteString(p.conn, "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>"+resp+"</auth>"); err != nil {
		return err
	}
	start, err := p.nextStart()
	if err != nil {
		return err
	}
	switch start.Name {
	case xml.Name{Space: nsSASL, Local: "success"}:
		return nil
	case xml.Name{Space: nsSASL, Local: "failure"}:
		return ErrNotAuthorized
	default:
		return fmt.Errorf("prosodytest: SASL answered with <%s/>", start.Name.Local)
	}
}

func (p *probe) close() error {
	_, _ = io.WriteString(p.conn, "</stream:stream>")
	return p.conn.Close()
}

// xmlAttr returns s as a quoted XML attribute value.
func xmlAttr(s string) string {
	var b []byte
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b = append(b, "&apos;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '\''))
}
