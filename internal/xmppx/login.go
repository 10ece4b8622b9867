package xmppx

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// Negotiate sets up a client session on conn for origin: STARTTLS (unless
// the connection is already TLS), SASL (SCRAM, and PLAIN over TLS only if
// allowPlain) and binding of origin's resource.
func Negotiate(ctx context.Context, conn net.Conn, origin jid.JID, password string, tlsCfg *tls.Config, directTLS, allowPlain bool) (*xmpp.Session, error) {
	mechs := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1}
	if allowPlain {
		mechs = append(mechs, sasl.Plain)
	}
	features := []xmpp.StreamFeature{xmpp.SASL("", password, mechs...), BindResource(origin)}
	if !directTLS {
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(tlsCfg)}, features...)
	}
	// The stream header names the bare JID (RFC 6120 §4.7.1): mellium
	// writes its from attribute unescaped, and a resource may hold any
	// character; BindResource asks for the resource, escaped.
	s, err := xmpp.NewClientSession(ctx, origin.Bare(), conn, features...)
	if err != nil {
		return nil, fmt.Errorf("xmppx: negotiating session for %s: %w", origin, err)
	}
	return s, nil
}

// Login dials addr over TCP and negotiates a client session (see
// [Negotiate]) with STARTTLS.
func Login(ctx context.Context, addr string, origin jid.JID, password string, tlsCfg *tls.Config, allowPlain bool) (*xmpp.Session, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("xmppx: %w", err)
	}
	s, err := Negotiate(ctx, conn, origin, password, tlsCfg, false, allowPlain)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}
