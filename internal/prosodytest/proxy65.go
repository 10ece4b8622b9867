package prosodytest

// proxy65Sub is the subdomain of the mod_proxy65 component.
const proxy65Sub = "proxy"

// WithProxy65 adds Prosody's mod_proxy65, a XEP-0065 SOCKS5 bytestreams
// proxy, as the component "proxy.DOMAIN", listening on a random
// 127.0.0.1 port that its streamhost announces (proxy65_address
// 127.0.0.1, since the component's name does not resolve). The host's
// own users (c2s sessions) may use it. mod_disco lists the component in
// the host's disco#items.
func WithProxy65() Option {
	return func(o *options) error {
		o.proxy65 = true
		return nil
	}
}

// Proxy65 returns the JID of the mod_proxy65 component and the address
// its SOCKS5 listener is bound to, or "" twice when the server was not
// started [WithProxy65].
func (s *Server) Proxy65() (jid, addr string) { return s.proxy65JID, s.proxy65Addr }
