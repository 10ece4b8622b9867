package clienttest_test

import (
	"context"
	"encoding/xml"
	"log/slog"
	"net"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/internal/xmppx"
)

// startPassThrough is the c2sfront listener with a test handler that only
// relays: each local session gets an upstream session on srv as the same
// account and resource, and every stanza is copied both ways unchanged.
// It is what a gateway does before it protects anything, so real clients
// behind it see the real server's roster, presence and disco, and the
// server sees everything in clear: the control case of the wire checks.
func startPassThrough(t testing.TB, srv *prosodytest.Server, local, password string) clienttest.Endpoint {
	t.Helper()
	account := jid.MustParse(local + "@" + srv.Domain())
	const localPassword = "the local password"
	cred, err := c2sfront.NewCredential(localPassword, 4096)
	if err != nil {
		t.Fatal(err)
	}
	handle := func(s *c2sfront.Session) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		up, err := xmppx.Login(ctx, srv.Addr(), s.JID(), password, srv.TLSConfig(), true)
		cancel()
		if err != nil {
			t.Errorf("pass-through: upstream login of %s: %v", s.JID(), err)
			return
		}
		defer up.Conn().Close()
		defer up.Close()
		go up.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			st, err := localxmpp.StanzaFromTokens(start, r)
			if err != nil {
				return err
			}
			return s.Send(context.Background(), st)
		}))
		for {
			st, err := s.Next()
			if err != nil {
				return
			}
			if err := up.Send(context.Background(), st.TokenReader()); err != nil {
				return
			}
		}
	}
	f, err := c2sfront.New(c2sfront.Config{Account: account, Credential: cred, Logger: slog.New(slog.DiscardHandler)}, handle)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.Serve(l)
	t.Cleanup(func() { f.Close() })
	cert := clienttest.PinnedCert(t, l.Addr().String(), srv.Domain(), f.Fingerprint())
	return clienttest.Endpoint{Addr: l.Addr().String(), JID: account, Password: localPassword, Cert: cert}
}

// TestClientsThroughPassThrough: slixmpp, go-sendxmpp and Profanity behind
// relaying listeners on a real Prosody chat with each other, and the
// stanza log shows every body in clear (a pass-through protects nothing;
// gateways must give WireProtected in the same scenario). The same
// scenario with WireProtected fails here, which shows its check works.
func TestClientsThroughPassThrough(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.WithHostile())
	srv.AddUser(t, "alice", "alice-pw")
	srv.AddUser(t, "bob", "bob-pw")
	srv.Subscribe(t, "alice", "bob")
	h := srv.Hostile(t)
	alice := startPassThrough(t, srv, "alice", "alice-pw")
	bob := startPassThrough(t, srv, "bob", "bob-pw")
	clienttest.TwoAccountChat(t, h, alice, bob, clienttest.WireClear)
}
