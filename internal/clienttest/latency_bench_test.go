package clienttest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/internal/xmppx"
)

// benchClient is a plain mellium client: what a user's own XMPP client is
// to the server, or to a gateway's local front.
type benchClient struct {
	sess   *xmpp.Session
	bodies chan string
}

func loginBenchClient(b testing.TB, addr string, origin jid.JID, password string, tlsCfg *tls.Config) *benchClient {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := xmppx.Login(ctx, addr, origin, password, tlsCfg, true)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{sess: sess, bodies: make(chan string, 1024)}
	go sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" {
			return nil
		}
		var m struct {
			Body string `xml:"body"`
		}
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), xmlstream.Inner(r), xmlstream.Token(start.End())))
		if err := d.Decode(&m); err == nil && m.Body != "" {
			select {
			case c.bodies <- m.Body:
			default:
			}
		}
		return nil
	}))
	b.Cleanup(func() { sess.Close(); sess.Conn().Close() })
	c.send(b, "<presence/>")
	return c
}

func (c *benchClient) send(b testing.TB, raw string) {
	if err := c.sess.Send(context.Background(), xml.NewDecoder(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
}

// wait waits for body, skipping others (late ones from warming up).
func (c *benchClient) wait(b testing.TB, body string) {
	b.Helper()
	guard := time.NewTimer(30 * time.Second) // a hang guard, not a speed limit
	defer guard.Stop()
	for {
		select {
		case got := <-c.bodies:
			if got == body {
				return
			}
		case <-guard.C:
			b.Fatalf("message %q not received", body)
		}
	}
}

// chatLockstep sends one chat message at a time from a to b and waits for
// it: each op is the latency of one message end to end.
func chatLockstep(b *testing.B, from, to *benchClient, toJID string) {
	b.Helper()
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf("bench %d", i)
		from.send(b, fmt.Sprintf("<message type='chat' to='%s' id='b%d'><body>%s</body></message>", toJID, i, body))
		to.wait(b, body)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/msg")
}

// BenchmarkChatLatency: one chat message at a time from alice to bob on a
// real Prosody, waited for before the next, in the same run: "direct"
// (both mellium clients logged in to Prosody), "listener" (both behind
// a relaying c2sfront listener each, the local hop a gateway adds: TLS,
// SASL-authenticated session, stanza parsing and re-serialisation both
// ways) and "gateway" (both behind their account's securejingle daemon
// in gateway mode: the message is encrypted by alice's daemon, crosses
// the server as a protected message, and is decrypted by bob's daemon,
// which delivers it to bob's client). "µs/msg" is the latency per
// message; the differences are what the hops and the encryption add.
//
//	go test ./internal/clienttest -run '^$' -bench ChatLatency -benchtime 2000x
func BenchmarkChatLatency(b *testing.B) {
	srv := prosodytest.Start(b)
	env := daemontest.NewProsody(b, srv) // alice and bob, mutual contacts
	aliceJID, bobJID := jid.MustParse("alice@"+srv.Domain()+"/bench"), jid.MustParse("bob@"+srv.Domain()+"/bench")
	b.Run("direct", func(b *testing.B) {
		a := loginBenchClient(b, srv.Addr(), aliceJID, "alice-password", srv.TLSConfig())
		c := loginBenchClient(b, srv.Addr(), bobJID, "bob-password", srv.TLSConfig())
		warmUp(b, a, c, bobJID.Bare().String())
		chatLockstep(b, a, c, bobJID.Bare().String())
	})
	b.Run("listener", func(b *testing.B) {
		ae := startPassThrough(b, srv, "alice", "alice-password")
		be := startPassThrough(b, srv, "bob", "bob-password")
		a := loginBenchClient(b, ae.Addr, aliceJID, ae.Password, tlsFor(ae))
		c := loginBenchClient(b, be.Addr, bobJID, be.Password, tlsFor(be))
		warmUp(b, a, c, bobJID.Bare().String())
		chatLockstep(b, a, c, bobJID.Bare().String())
	})
	b.Run("gateway", func(b *testing.B) {
		ae, ad := startGatewayDaemon(b, env.Alice)
		be, bd := startGatewayDaemon(b, env.Bob)
		daemontest.WaitPeerDevice(b, ad.Client, env.Bob.JID)
		daemontest.WaitPeerDevice(b, bd.Client, env.Alice.JID)
		a := loginBenchClient(b, ae.Addr, aliceJID, ae.Password, tlsFor(ae))
		c := loginBenchClient(b, be.Addr, bobJID, be.Password, tlsFor(be))
		warmUp(b, a, c, bobJID.Bare().String())
		chatLockstep(b, a, c, bobJID.Bare().String())
	})
}

// warmUp sends until one message arrives: both sessions are available.
func warmUp(b *testing.B, from, to *benchClient, toJID string) {
	b.Helper()
	from.send(b, fmt.Sprintf("<message type='chat' to='%s' id='w'><body>warm-up</body></message>", toJID))
	to.wait(b, "warm-up")
}

// tlsFor trusts only the endpoint's (pinned) certificate.
func tlsFor(e clienttest.Endpoint) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.Cert)
	return &tls.Config{RootCAs: pool, ServerName: e.JID.Domainpart(), MinVersion: tls.VersionTLS12}
}
