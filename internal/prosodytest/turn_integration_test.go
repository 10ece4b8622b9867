package prosodytest_test

import (
	"context"
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/internal/coturntest"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

const nsExtdisco = "urn:xmpp:extdisco:2"

// XEP-0215 shapes, decoded here with encoding/xml independently of
// internal/extdisco.
type (
	extService struct {
		Type       string `xml:"type,attr"`
		Host       string `xml:"host,attr"`
		Port       string `xml:"port,attr"`
		Transport  string `xml:"transport,attr"`
		Username   string `xml:"username,attr"`
		Password   string `xml:"password,attr"`
		Expires    string `xml:"expires,attr"`
		Restricted string `xml:"restricted,attr"`
	}
	servicesQuery struct {
		XMLName xml.Name `xml:"urn:xmpp:extdisco:2 services"`
		Type    string   `xml:"type,attr,omitempty"`
	}
	servicesResult struct {
		XMLName  xml.Name     `xml:"urn:xmpp:extdisco:2 services"`
		Services []extService `xml:"service"`
	}
	credentialsQuery struct {
		XMLName xml.Name `xml:"urn:xmpp:extdisco:2 credentials"`
		Service struct {
			Type string `xml:"type,attr"`
			Host string `xml:"host,attr"`
			Port string `xml:"port,attr"`
		} `xml:"service"`
	}
	credentialsResult struct {
		XMLName  xml.Name     `xml:"urn:xmpp:extdisco:2 credentials"`
		Services []extService `xml:"service"`
	}
)

// TestTURN: with WithTURN, Prosody advertises XEP-0215 and lists a STUN
// and a TURN server (UDP and TCP) at the configured address, the TURN one
// restricted with TURN REST API credentials for the configured secret,
// user and lifetime — the ones coturntest.CredentialsAt computes.
func TestTURN(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	const (
		secret = "prosody-turn-secret"
		user   = "securejingle"
		ttl    = 600 * time.Second
	)
	srv := prosodytest.Start(t, prosodytest.WithTURN(prosodytest.TURN{Host: "127.0.0.1", Port: 3479, Secret: secret, User: user, TTL: ttl, TCP: true}))
	srv.AddUser(t, "erin", "erin-secret")
	erin := prosodytest.Dial(t, ctx, srv, "erin", "erin-secret", "")
	serve(t, erin)
	domain := jid.MustParse(srv.Domain())

	var info discoInfo
	if err := iq(ctx, erin, stanza.GetIQ, domain, discoInfoQuery{}, &info); err != nil {
		t.Fatalf("disco#info: %v", err)
	}
	advertised := false
	for _, f := range info.Features {
		advertised = advertised || f.Var == nsExtdisco
	}
	if !advertised {
		t.Fatalf("server does not advertise %s: %+v", nsExtdisco, info.Features)
	}

	before := time.Now()
	var res servicesResult
	if err := iq(ctx, erin, stanza.GetIQ, domain, servicesQuery{}, &res); err != nil {
		t.Fatalf("services: %v", err)
	}
	after := time.Now()
	kinds := map[string]extService{}
	for _, s := range res.Services {
		if s.Host != "127.0.0.1" || s.Port != "3479" {
			t.Errorf("service at %s:%s, want 127.0.0.1:3479", s.Host, s.Port)
		}
		kinds[s.Type+"/"+s.Transport] = s
	}
	if len(res.Services) != 4 || len(kinds) != 4 {
		t.Fatalf("services %+v, want stun and turn over udp and tcp", res.Services)
	}
	for _, k := range []string{"stun/udp", "stun/tcp"} {
		if s := kinds[k]; s.Username != "" || s.Password != "" || s.Restricted != "" {
			t.Errorf("%s has credentials: %+v", k, s)
		}
	}
	turn := kinds["turn/udp"]
	if turn.Restricted != "1" {
		t.Errorf("TURN not restricted: %+v", turn)
	}
	expStr, gotUser, ok := strings.Cut(turn.Username, ":")
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if !ok || err != nil || gotUser != user {
		t.Fatalf("username %q is not EXPIRY:%s", turn.Username, user)
	}
	// Prosody's clock is ours, in whole seconds.
	if lo, hi := before.Add(ttl).Unix()-1, after.Add(ttl).Unix()+1; exp < lo || exp > hi {
		t.Errorf("expiry %d not in [%d, %d] (ttl %v)", exp, lo, hi, ttl)
	}
	wantUser, wantPass := coturntest.CredentialsAt(secret, user, time.Unix(exp, 0))
	if turn.Username != wantUser || turn.Password != wantPass {
		t.Errorf("credentials %q/%q, TURN REST API gives %q/%q", turn.Username, turn.Password, wantUser, wantPass)
	}
	if e, err := time.Parse(time.RFC3339, turn.Expires); err != nil || e.Unix() != exp || !strings.HasSuffix(turn.Expires, "Z") {
		t.Errorf("expires %q does not say %d in UTC: %v", turn.Expires, exp, err)
	}
	if tcp := kinds["turn/tcp"]; tcp.Password == "" || tcp.Restricted != "1" {
		t.Errorf("TURN over TCP %+v", tcp)
	}

	// Credentials on request (XEP-0215 §3.3) for the same service.
	var cq credentialsQuery
	cq.Service.Type, cq.Service.Host, cq.Service.Port = "turn", "127.0.0.1", "3479"
	var cres credentialsResult
	if err := iq(ctx, erin, stanza.GetIQ, domain, cq, &cres); err != nil {
		t.Fatalf("credentials: %v", err)
	}
	if len(cres.Services) == 0 {
		t.Fatal("no credentials returned")
	}
	for _, s := range cres.Services {
		e, _, _ := strings.Cut(s.Username, ":")
		n, _ := strconv.ParseInt(e, 10, 64)
		if u, p := coturntest.CredentialsAt(secret, user, time.Unix(n, 0)); s.Type != "turn" || s.Username != u || s.Password != p {
			t.Errorf("credentials result %+v", s)
		}
	}
}
