package xmppx

import (
	"context"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// TestLoginMarkupResource: a resource with XML markup characters binds.
// mellium writes the stream header's from attribute unescaped, so the
// header names the bare JID only (RFC 6120 §4.7.1) and the resource goes
// in the bind request, escaped. Regression: the full JID in the header
// broke the stream ("unescaped < inside quoted string").
func TestLoginMarkupResource(t *testing.T) {
	srv, err := localxmpp.New("example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.AddUser("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const res = `<b>x</b>'"&amp;`
	origin := jid.MustParse("alice@example.test/" + res)
	s, err := Login(ctx, srv.Addr().String(), origin, "secret", srv.ClientTLSConfig(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.LocalAddr(); got.Resourcepart() != res || !got.Bare().Equal(origin.Bare()) {
		t.Fatalf("bound %q, want resource %q", got, res)
	}
}
