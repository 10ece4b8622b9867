package clienttest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/internal/xmppx"
)

// gatewayLocalPassword is the local password of the test fronts.
const gatewayLocalPassword = "local password of the gateway front"

// startGatewayDaemon starts the daemon of a in gateway mode: [front]
// enabled on a free loopback port (and frontKeys, further lines of the
// table), the local password stored as
// `securejingle front passwd` stores it. It returns the endpoint a local
// client uses (the certificate pinned by the fingerprint the daemon
// reported, as a user pins the one it logs).
func startGatewayDaemon(t testing.TB, a *daemontest.Account, frontKeys ...string) (clienttest.Endpoint, *daemontest.Daemon) {
	t.Helper()
	a.AppendConfig(t, "[front]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"+strings.Join(frontKeys, "\n"))
	cred, err := c2sfront.NewCredential(gatewayLocalPassword, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.WriteCredential(filepath.Join(filepath.Dir(a.ConfigPath), daemon.DefaultFrontCredentialName), cred); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var addr, fp string
	d := daemontest.StartWith(t, a, daemon.WithFrontReady(func(addrs []string, fingerprint string) {
		mu.Lock()
		defer mu.Unlock()
		addr, fp = addrs[0], fingerprint
	}))
	daemontest.WaitConnected(t, d.Client)
	mu.Lock()
	defer mu.Unlock()
	cert := clienttest.PinnedCert(t, addr, daemontest.Domain, fp)
	return clienttest.Endpoint{Addr: addr, JID: jid.MustParse(a.JID), Password: gatewayLocalPassword, Cert: cert}, d
}

// gatewayPair runs the daemons of alice and bob in gateway mode on a
// real Prosody with a stanza log, once each has the other's device.
func gatewayPair(t *testing.T) (srv *prosodytest.Server, h *prosodytest.Hostile, alice, bob clienttest.Endpoint) {
	t.Helper()
	srv, h, alice, bob, _, _ = gatewayDaemons(t)
	return srv, h, alice, bob
}

// gatewayDaemons is gatewayPair with the daemons.
func gatewayDaemons(t *testing.T) (srv *prosodytest.Server, h *prosodytest.Hostile, alice, bob clienttest.Endpoint, ad, bd *daemontest.Daemon) {
	t.Helper()
	srv = prosodytest.Start(t, prosodytest.WithHostile())
	env := daemontest.NewProsody(t, srv)
	alice, ad = startGatewayDaemon(t, env.Alice)
	bob, bd = startGatewayDaemon(t, env.Bob)
	daemontest.WaitPeerDevice(t, ad.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bd.Client, env.Alice.JID)
	return srv, srv.Hostile(t), alice, bob, ad, bd
}

// TestClientsThroughGateways is issue 11's chat check: slixmpp,
// go-sendxmpp and Profanity, each behind its account's securejingle
// daemon in gateway mode on a real Prosody, chat with each other; every
// client sees the bodies plain, and the server's stanza log shows no body
// and protected messages both ways. (TestClientsThroughPassThrough is the
// same scenario behind relays, which shows every body.)
func TestClientsThroughGateways(t *testing.T) {
	_, h, alice, bob := gatewayPair(t)
	clienttest.TwoAccountChat(t, h, alice, bob, clienttest.WireProtected)
}

// TestGatewayAlertsReachClients: a cleartext chat from an account
// without securejingle (carol, straight on Prosody) is flagged by alice's
// daemon; the alert reaches Profanity, logged in through alice's front,
// as a message from alice's JID with the alert resource. And a cleartext
// message slixmpp sends through the front to another such account (dave)
// is sent (the default policy flags it) with a warning injected into
// slixmpp.
func TestGatewayAlertsReachClients(t *testing.T) {
	srv, _, alice, _ := gatewayPair(t)
	srv.AddUser(t, "carol", "carol-pw")
	aliceJID, carolJID := alice.JID.String(), "carol@"+srv.Domain()
	alertFrom := aliceJID + "/securejingle"

	p := clienttest.StartProfanity(t, alice)
	carol := clienttest.StartSlixmpp(t, endpoint(t, srv, "carol", "carol-pw"))
	carol.Send(aliceJID, "plain hello from carol", "")
	p.WaitMessage(carolJID, "plain hello from carol")
	line := p.WaitMessageMatch(aliceJID, "the injected alert about carol's cleartext", func(body string) bool {
		return strings.Contains(body, "securejingle:") && strings.Contains(body, carolJID)
	})
	t.Logf("profanity shows: %s", line)

	// Another account: alerts about carol are de-duplicated for a minute.
	srv.AddUser(t, "dave", "dave-pw")
	daveJID := "dave@" + srv.Domain()
	dave := clienttest.StartSlixmpp(t, endpoint(t, srv, "dave", "dave-pw"))
	a := clienttest.StartSlixmpp(t, alice)
	a.Send(daveJID, "plain hello to dave", "")
	dave.WaitMessage(func(m clienttest.Message) bool { return m.Body == "plain hello to dave" })
	warn := a.WaitMessage(func(m clienttest.Message) bool {
		return m.From == alertFrom && strings.Contains(m.Body, daveJID) && strings.Contains(m.Body, "flagged")
	})
	t.Logf("slixmpp got: %+v", warn)
}

// TestGatewayRefusesCleartextByPolicy: with a rule refusing outgoing
// cleartext chat, slixmpp's message to carol is not sent: slixmpp gets a
// policy-violation error and the explanation.
func TestGatewayRefusesCleartextByPolicy(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.WithHostile())
	env := daemontest.NewProsody(t, srv)
	srv.AddUser(t, "carol", "carol-pw")
	pol := filepath.Join(filepath.Dir(env.Alice.ConfigPath), "policy.toml")
	writeFile(t, pol, `
[[rule]]
name = "no-plain-chat"
kind = "chat"
direction = "outgoing"
protection = "cleartext"
action = "refuse"
message = "Plain chat is switched off on this gateway."
`)
	env.Alice.AppendConfig(t, "[policy]\nfile = \"policy.toml\"\n")
	alice, _ := startGatewayDaemon(t, env.Alice)
	h := srv.Hostile(t)
	carolJID := "carol@" + srv.Domain()
	a := clienttest.StartSlixmpp(t, alice)
	a.Send(carolJID, "refused plain hello", "r1")
	e := a.WaitMessage(func(m clienttest.Message) bool { return m.Type == "error" && m.From == carolJID })
	if !strings.Contains(e.XML, "policy-violation") || !strings.Contains(e.XML, "Plain chat is switched off on this gateway.") {
		t.Errorf("error message %s", e.XML)
	}
	a.WaitMessage(func(m clienttest.Message) bool {
		return m.From == alice.JID.String()+"/securejingle" && strings.Contains(m.Body, "Plain chat is switched off on this gateway.")
	})
	for _, le := range h.Log(t) {
		if strings.Contains(le.XML, "refused plain hello") {
			t.Errorf("the refused message reached the server: %s", le.XML)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayFrontUnixSocket: with [front] socket set the daemon also
// listens on a Unix socket of mode 0600, where a client logs in (TLS with
// the same pinned certificate, SCRAM against the local password) and
// chats through the gateway.
func TestGatewayFrontUnixSocket(t *testing.T) {
	srv := prosodytest.Start(t)
	env := daemontest.NewProsody(t, srv)
	sockDir, err := os.MkdirTemp("", "sjf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "front.sock")
	alice, ad := startGatewayDaemon(t, env.Alice, "socket = \""+sock+"\"")
	_, bd := startGatewayDaemon(t, env.Bob)
	daemontest.WaitPeerDevice(t, ad.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bd.Client, env.Alice.JID)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v: %v", fi, err)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := xmppx.Negotiate(ctx, conn, jid.MustParse(env.Alice.JID+"/unix"), gatewayLocalPassword, tlsFor(alice), false, false)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	defer conn.Close()
	defer sess.Close()
	body := "over the unix socket " + time.Now().Format(time.RFC3339Nano)
	if err := sess.Send(ctx, xml.NewDecoder(strings.NewReader(`<message type="chat" to="`+env.Bob.JID+`"><body>`+body+`</body></message>`))); err != nil {
		t.Fatal(err)
	}
	// Bob's daemon got it encrypted, from alice's daemon.
	daemontest.Poll(t, "the message in bob's history", func() bool {
		r, err := bd.Client.Messages(ctx, api.MessagesQuery{Peer: env.Alice.JID, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range r.Messages {
			if m.Body == body {
				if !m.Encrypted {
					t.Fatalf("arrived unencrypted: %+v", m)
				}
				return true
			}
		}
		return false
	})
}

// TestGatewayRefusesPlainIBB is issue 11's file check (phase 2a): slixmpp,
// logged in through alice's gateway, sends a file over a plain XEP-0047
// in-band bytestream (its xep_0047 plugin) to carol, who has no
// securejingle (her slixmpp has the plugin too). The built-in rules
// refuse it: slixmpp's open gets a policy-violation error naming the
// cause and the fix, the alert reaches it from the alert JID, and the
// server's stanza log never sees the stream.
func TestGatewayRefusesPlainIBB(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.WithHostile())
	env := daemontest.NewProsody(t, srv)
	srv.AddUser(t, "carol", "carol-pw")
	alice, _ := startGatewayDaemon(t, env.Alice)
	h := srv.Hostile(t)
	carolJID := "carol@" + srv.Domain()
	carol := clienttest.StartSlixmpp(t, endpoint(t, srv, "carol", "carol-pw"))
	a := clienttest.StartSlixmpp(t, alice)
	const sid = "plain-ibb-through-the-gateway"
	typ, detail, raw := a.IBB(carol.Bound, "the plain file's bytes", sid)
	// slixmpp 1.8 knows only RFC 3920's conditions: policy-violation
	// (RFC 6120) is in the XML, not in its condition.
	if typ != "error" || !strings.Contains(raw, "<policy-violation") || !strings.Contains(detail, "in-band bytestream") ||
		!strings.Contains(detail, "securejingle send") {
		t.Errorf("the IBB open ended %s: %s %s", typ, detail, raw)
	}
	t.Logf("slixmpp's IBB open: %s", detail)
	alert := a.WaitMessage(func(m clienttest.Message) bool {
		return m.From == alice.JID.String()+"/securejingle" && strings.Contains(m.Body, "refused") && strings.Contains(m.Body, carolJID)
	})
	t.Logf("slixmpp got the alert: %s", alert.Body)
	for _, le := range h.Log(t) {
		if strings.Contains(le.XML, sid) {
			t.Errorf("the server saw the stream: %s", le.XML)
		}
	}
}

// TestGatewayUpgradesJingleIBB is issue 11's upgrade check (§22.10.1):
// slixmpp, logged in through alice's gateway, offers a file to bob's
// securejingle daemon in a XEP-0234 Jingle session over XEP-0261 IBB
// (the bytes with slixmpp's own xep_0047). The front takes it: slixmpp
// sees the session end with success, bob's daemon stores the file with
// the same bytes, slixmpp is told of the delivery from the alert JID,
// and Prosody's stanza log never sees the file's name, its bytes or an
// in-band bytestream.
func TestGatewayUpgradesJingleIBB(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.WithHostile())
	env := daemontest.NewProsody(t, srv)
	env.Bob.AppendConfig(t, "[[files.auto_accept]]\npeer = \"*\"\nmin_trust = \"tofu\"\n")
	alice, ad := startGatewayDaemon(t, env.Alice)
	bd := daemontest.Start(t, env.Bob)
	daemontest.WaitConnected(t, bd.Client)
	daemontest.WaitPeerDevice(t, ad.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bd.Client, env.Alice.JID)
	h := srv.Hostile(t)
	a := clienttest.StartSlixmpp(t, alice)
	const (
		sid  = "upgrade-through-the-gateway"
		name = "gateway-upgrade-notes.txt"
		data = "the bytes of a file slixmpp sends in a Jingle session, which only bob may read"
	)
	bobFull := env.Bob.JID + "/" + env.Bob.Resource
	typ, detail, raw := a.JingleIBB(bobFull, name, data, sid)
	if typ != "result" || detail != "success" {
		t.Fatalf("the session ended %s %s: %s", typ, detail, raw)
	}
	ctx := context.Background()
	var got api.TransferInfo
	daemontest.Poll(t, "the file at bob's daemon", func() bool {
		ts, err := bd.Client.Transfers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			if x.Direction == "incoming" && x.State == "completed" && len(x.Files) == 1 && x.Files[0].Name == name {
				got = x
				return true
			}
		}
		return false
	})
	if b, err := os.ReadFile(got.Files[0].Path); err != nil || string(b) != data {
		t.Errorf("bob's file: %q, %v", b, err)
	}
	sum := sha256.Sum256([]byte(data))
	if got.Files[0].Hash != "sha-256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("bob's hash %s", got.Files[0].Hash)
	}
	notice := a.WaitMessage(func(m clienttest.Message) bool {
		return m.From == alice.JID.String()+"/securejingle" && strings.Contains(m.Body, "received the file") && strings.Contains(m.Body, name)
	})
	t.Logf("slixmpp got the notice: %s", notice.Body)
	// The spooled copy is gone (the directory itself stays).
	spool := filepath.Join(filepath.Dir(env.Alice.ConfigPath), "front-spool")
	daemontest.Poll(t, "an empty spool directory", func() bool {
		es, err := os.ReadDir(spool)
		if err != nil {
			t.Fatalf("the daemon's spool directory: %v", err)
		}
		return len(es) == 0
	})
	for _, le := range h.Log(t) {
		if strings.Contains(le.XML, name) || strings.Contains(le.XML, "http://jabber.org/protocol/ibb") ||
			strings.Contains(le.XML, base64.StdEncoding.EncodeToString([]byte(data))[:24]) {
			t.Errorf("the server saw the file: %.300s", le.XML)
		}
	}
}

// TestGatewaySlixmppStreamManagement: slixmpp with its XEP-0198 plugin,
// logged in through alice's gateway on a real Prosody, enables stream
// management on the local stream (the front's, not the server's: the
// upstream session is another stream). Its message to carol is
// acknowledged by the front and delivered; carol's answer reaches it; it
// answers the front's requests, and the stream goes on.
func TestGatewaySlixmppStreamManagement(t *testing.T) {
	srv := prosodytest.Start(t)
	env := daemontest.NewProsody(t, srv)
	srv.AddUser(t, "carol", "carol-pw")
	alice, _ := startGatewayDaemon(t, env.Alice)
	carolJID := "carol@" + srv.Domain()
	carol := clienttest.StartSlixmpp(t, endpoint(t, srv, "carol", "carol-pw"))
	a := clienttest.StartSlixmppSM(t, alice)
	a.Send(carolJID, "hello with stream management", "sm-1")
	a.RequestAck()
	a.WaitAcked("sm-1")
	carol.WaitMessage(func(m clienttest.Message) bool { return m.Body == "hello with stream management" })
	carol.Send(env.Alice.JID, "answer to a managed stream", "")
	a.WaitMessage(func(m clienttest.Message) bool { return m.Body == "answer to a managed stream" })
	h := a.WaitSMAnswer(1)
	handled, lastAck, sent := a.SMState()
	t.Logf("slixmpp: answered the front with h=%d; handled %d, last ack %d, sent %d", h, handled, lastAck, sent)
	a.Send(carolJID, "still managed", "sm-2")
	a.RequestAck()
	a.WaitAcked("sm-2")
	carol.WaitMessage(func(m clienttest.Message) bool { return m.Body == "still managed" })
}
