package clienttest_test

import (
	"testing"

	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"mellium.im/xmpp/jid"
)

func endpoint(t *testing.T, srv *prosodytest.Server, local, pw string) clienttest.Endpoint {
	t.Helper()
	return clienttest.Endpoint{Addr: srv.Addr(), JID: jid.MustParse(local + "@" + srv.Domain()), Password: pw, Cert: srv.Certificate()}
}

func TestSlixmppProsody(t *testing.T) {
	srv := prosodytest.Start(t)
	srv.AddUser(t, "alice", "alice-pw")
	srv.AddUser(t, "bob", "bob-pw")
	srv.Subscribe(t, "alice", "bob")
	a := clienttest.StartSlixmpp(t, endpoint(t, srv, "alice", "alice-pw"))
	b := clienttest.StartSlixmpp(t, endpoint(t, srv, "bob", "bob-pw"))
	a.WaitPresence("bob@" + srv.Domain())
	a.Send("bob@"+srv.Domain(), "hello bob", "")
	m := b.WaitMessage(func(m clienttest.Message) bool { return m.Body == "hello bob" })
	t.Logf("%+v", m)
}
