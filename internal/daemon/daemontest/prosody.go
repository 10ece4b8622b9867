package daemontest

import (
	"testing"

	"github.com/securejingle/securejingle/internal/prosodytest"
)

// NewProsody is [New] on the real Prosody p (started by the test with the
// options it needs, e.g. prosodytest.WithHostile or WithTURN, and the
// default domain [Domain]): it creates alice and bob there as mutual
// contacts, with the passwords New uses, and writes both accounts' keys
// and configurations. The Env's Server is nil.
func NewProsody(t testing.TB, p *prosodytest.Server) *Env {
	t.Helper()
	if p.Domain() != Domain {
		t.Fatalf("daemontest: Prosody serves %s, the accounts are on %s", p.Domain(), Domain)
	}
	for _, u := range []string{"alice", "bob"} {
		p.AddUser(t, u, u+"-password")
	}
	p.Subscribe(t, "alice", "bob")
	e := &Env{ClientTLS: p.TLSConfig()}
	e.writeAccounts(t, p.Addr(), p.Certificate())
	return e
}
