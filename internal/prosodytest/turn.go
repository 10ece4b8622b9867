package prosodytest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// turnModule is Prosody's module that announces a TURN server with
// TURN REST API credentials through XEP-0215 (it loads
// mod_external_services, which answers the urn:xmpp:extdisco:2 IQs).
const turnModule = "turn_external"

// TURN configures mod_turn_external for [WithTURN]. Host, Port and Secret
// are required.
type TURN struct {
	// Host and Port are where clients reach the TURN server
	// (turn_external_host, turn_external_port): an IP address or DNS
	// name, not the XMPP domain.
	Host string
	Port int
	// Secret is the TURN server's static-auth-secret
	// (turn_external_secret).
	Secret string
	// User is appended to the expiry in the usernames Prosody makes
	// ("EXPIRY:User"; turn_external_user). Empty: "EXPIRY" alone.
	User string
	// TTL is how long the credentials are valid (turn_external_ttl, whole
	// seconds); 0 means Prosody's default of one day.
	TTL time.Duration
	// TCP also announces STUN and TURN over TCP (turn_external_tcp).
	TCP bool
}

// turnConfig is what the template renders for [WithTURN].
type turnConfig struct {
	Host   string
	Port   int
	Secret string
	User   string
	TTL    int64 // seconds; 0: Prosody's default
	TCP    bool
}

// WithTURN loads Prosody's mod_turn_external (shipped with Prosody 0.12)
// so that the server announces c's TURN server, and a STUN server on the
// same address, to its users through XEP-0215 external service discovery,
// with credentials in the TURN REST API scheme that coturn's
// use-auth-secret mode checks.
func WithTURN(c TURN) Option {
	return func(o *options) error {
		if _, err := netip.ParseAddr(c.Host); err != nil && !validDNSName(c.Host) {
			return fmt.Errorf("prosodytest: TURN host %q is neither an IP address nor a DNS name", c.Host)
		}
		if c.Port < 1 || c.Port > 65535 {
			return fmt.Errorf("prosodytest: TURN port %d out of range", c.Port)
		}
		if c.Secret == "" {
			return errors.New("prosodytest: empty TURN secret")
		}
		if c.TTL < 0 || c.TTL%time.Second != 0 || (c.TTL > 0 && c.TTL < time.Second) {
			return fmt.Errorf("prosodytest: TURN TTL %v is not a positive whole number of seconds", c.TTL)
		}
		o.turn = &turnConfig{Host: c.Host, Port: c.Port, Secret: c.Secret, User: c.User, TTL: int64(c.TTL / time.Second), TCP: c.TCP}
		return nil
	}
}

// validDNSName reports whether s is a DNS name of RFC 1123 labels.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
