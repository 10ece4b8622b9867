package clienttest_test

import (
	"errors"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"strings"
	"testing"
	"time"

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

func TestSendxmppProsody(t *testing.T) {
	srv := prosodytest.Start(t)
	srv.AddUser(t, "alice", "alice-pw")
	srv.AddUser(t, "bob", "bob-pw")
	srv.Subscribe(t, "alice", "bob")
	alice := endpoint(t, srv, "alice", "alice-pw")
	bob := endpoint(t, srv, "bob", "bob-pw")
	l := clienttest.StartSendxmppListener(t, bob)
	clienttest.SendxmppSend(t, alice, "bob@"+srv.Domain(), "hello bob from go-sendxmpp")
	m := l.WaitMessage(func(m clienttest.Message) bool { return m.Body == "hello bob from go-sendxmpp" })
	if m.From != "alice@"+srv.Domain() {
		t.Errorf("from = %q, want alice's bare JID", m.From)
	}
	l.Close()
}

func TestProfanityProsody(t *testing.T) {
	srv := prosodytest.Start(t)
	srv.AddUser(t, "alice", "alice-pw")
	srv.AddUser(t, "bob", "bob-pw")
	srv.Subscribe(t, "alice", "bob")
	alice := endpoint(t, srv, "alice", "alice-pw")
	bob := endpoint(t, srv, "bob", "bob-pw")
	p := clienttest.StartProfanity(t, alice)
	b := clienttest.StartSlixmpp(t, bob)
	b.WaitPresence("alice@" + srv.Domain())
	b.Send("alice@"+srv.Domain(), "hello alice in profanity", "")
	line := p.WaitMessage("bob@"+srv.Domain(), "hello alice in profanity")
	t.Logf("profanity shows: %s", line)
	p.Send("bob@"+srv.Domain(), "hello bob from profanity")
	b.WaitMessage(func(m clienttest.Message) bool { return m.Body == "hello bob from profanity" })
}

func TestPinnedCertProsody(t *testing.T) {
	srv := prosodytest.Start(t)
	fp := clienttest.FingerprintSHA256(srv.Certificate())
	got := clienttest.PinnedCert(t, srv.Addr(), srv.Domain(), strings.ToUpper(fp))
	if !got.Equal(srv.Certificate()) {
		t.Fatal("PinnedCert returned another certificate")
	}
	wrong := strings.Repeat("00", 32)
	if _, err := clienttest.FetchPinned(srv.Addr(), srv.Domain(), wrong); !errors.Is(err, clienttest.ErrFingerprint) {
		t.Fatalf("wrong pin: %v, want ErrFingerprint", err)
	}
	if _, err := clienttest.FetchPinned(srv.Addr(), "other.test", fp); err == nil {
		t.Fatal("pinned certificate accepted for another domain")
	}
}

// TestClientsRefuseOtherCertificate: each client trusts only the
// endpoint's certificate, so a server showing another one (for the same
// domain) is refused.
func TestClientsRefuseOtherCertificate(t *testing.T) {
	srv := prosodytest.Start(t)
	srv.AddUser(t, "alice", "alice-pw")
	other, err := localxmpp.SelfSignedCert(srv.Domain(), "not the server", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(t, srv, "alice", "alice-pw")
	ep.Cert = other.Leaf
	if c, err := clienttest.TrySlixmpp(t, ep); err == nil {
		c.Close()
		t.Error("slixmpp accepted a certificate other than the endpoint's")
	} else {
		t.Logf("slixmpp refused: %v", err)
	}
	if err := clienttest.TrySendxmppSend(t, ep, "alice@"+srv.Domain(), "x"); err == nil {
		t.Error("go-sendxmpp accepted a certificate other than the endpoint's")
	} else {
		t.Logf("go-sendxmpp refused: %v", err)
	}
	// The right certificate works for both (the test can fail).
	ep.Cert = srv.Certificate()
	clienttest.StartSlixmpp(t, ep).Close()
	clienttest.SendxmppSend(t, ep, "alice@"+srv.Domain(), "x")
}
