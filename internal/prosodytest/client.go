package prosodytest

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/securejingle/securejingle/internal/xmppx"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/roster"
	"mellium.im/xmpp/stanza"
)

// subscribeTimeout bounds [Server.Subscribe] as a whole.
const subscribeTimeout = 30 * time.Second

// Login dials [Server.Addr] and negotiates a client session for
// local@Domain()/resource: STARTTLS verified against [Server.CertPool], SASL
// SCRAM-SHA-1 (PLAIN as fallback) and resource binding (an empty resource
// lets the server pick one). ctx bounds the dial and the negotiation; once
// Login returns, cancelling ctx has no effect on the session.
//
// The session does not read its input until the caller runs Serve (which
// blocks, so usually `go sess.Serve(h)`); SendIQ waits for Serve. The caller
// must end the session with sess.Close() and sess.Conn().Close().
func (s *Server) Login(ctx context.Context, local, password, resource string) (*xmpp.Session, error) {
	origin, err := jid.New(local, s.domain, resource)
	if err != nil {
		return nil, fmt.Errorf("prosodytest: bad address: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	// mellium only checks ctx between tokens; a deadline also unblocks reads
	// from a server that stops answering.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return nil, fmt.Errorf("prosodytest: %w", err)
		}
	}
	sess, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(s.TLSConfig()),
		xmpp.SASL("", password, sasl.ScramSha1, sasl.Plain),
		xmppx.BindResource(origin),
	)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("prosodytest: logging in as %s: %w", origin, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		sess.Conn().Close()
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	return sess, nil
}

// Dial is [Server.Login] for tests: it calls t.Fatal if the login fails and
// closes the session in t.Cleanup (which runs before the server is stopped).
// The caller still has to run Serve, for example `go sess.Serve(handler)`.
func Dial(t testing.TB, ctx context.Context, s *Server, local, password, resource string) *xmpp.Session {
	t.Helper()
	sess, err := s.Login(ctx, local, password, resource)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSession(sess) })
	return sess
}

// closeSession ends the output stream and closes the connection, which also
// makes a running Serve return.
func closeSession(sess *xmpp.Session) {
	_ = sess.Close()
	_ = sess.Conn().Close()
}

// Subscribe makes the existing accounts a and b (localparts created with
// [Server.AddUser]) mutual roster contacts with subscription "both". Prosody
// 0.12's prosodyctl has no roster command, so Subscribe logs both users in
// and performs the RFC 6121 §3 exchange (a subscribes, b approves, b
// subscribes, a approves), with a ping round trip after each step so the
// server has processed it, then checks both rosters. It calls t.Fatal on
// any failure.
func (s *Server) Subscribe(t testing.TB, a, b string) {
	t.Helper()
	if a == b {
		t.Fatalf("prosodytest: cannot subscribe %q to itself", a)
	}
	s.mu.Lock()
	pa, okA := s.passwords[a]
	pb, okB := s.passwords[b]
	s.mu.Unlock()
	if !okA || !okB {
		t.Fatalf("prosodytest: Subscribe(%q, %q): both users must be created with AddUser first", a, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
	defer cancel()
	if err := s.subscribe(ctx, a, pa, b, pb); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) subscribe(ctx context.Context, a, pa, b, pb string) (err error) {
	const resource = "prosodytest-subscribe"
	var sessA, sessB *xmpp.Session
	for _, u := range []struct {
		sess            **xmpp.Session
		local, password string
	}{{&sessA, a, pa}, {&sessB, b, pb}} {
		sess, err := s.Login(ctx, u.local, u.password, resource)
		if err != nil {
			return err
		}
		served := make(chan error, 1)
		h := ackPushes(sess.LocalAddr().Bare())
		go func() { served <- sess.Serve(h) }()
		defer func() {
			closeSession(sess)
			<-served
		}()
		*u.sess = sess
	}
	jidA, jidB := sessA.LocalAddr().Bare(), sessB.LocalAddr().Bare()
	domain := jid.MustParse(s.domain)

	steps := []struct {
		from *xmpp.Session
		typ  stanza.PresenceType
		to   jid.JID
	}{
		{sessA, stanza.SubscribePresence, jidB},
		{sessB, stanza.SubscribedPresence, jidA},
		{sessB, stanza.SubscribePresence, jidA},
		{sessA, stanza.SubscribedPresence, jidB},
	}
	for _, st := range steps {
		p := stanza.Presence{To: st.to, Type: st.typ}
		if err := st.from.Send(ctx, p.Wrap(nil)); err != nil {
			return fmt.Errorf("prosodytest: sending %s presence: %w", st.typ, err)
		}
		// The server handles one session's stanzas in order, so the ping's
		// answer means the presence has been processed.
		if err := ping.Send(ctx, st.from, domain); err != nil {
			return fmt.Errorf("prosodytest: ping after %s presence: %w", st.typ, err)
		}
	}

	for _, c := range []struct {
		sess    *xmpp.Session
		contact jid.JID
	}{{sessA, jidB}, {sessB, jidA}} {
		sub, err := subscription(ctx, c.sess, c.contact)
		if err != nil {
			return err
		}
		if sub != "both" {
			return fmt.Errorf("prosodytest: after Subscribe, %s has %s with subscription %q, want \"both\"",
				c.sess.LocalAddr().Bare(), c.contact, sub)
		}
	}
	return nil
}

// errNotInRoster is returned by subscription when the contact is missing.
var errNotInRoster = errors.New("prosodytest: contact not in roster")

// subscription fetches the roster and returns contact's subscription state.
func subscription(ctx context.Context, sess *xmpp.Session, contact jid.JID) (string, error) {
	iter := roster.Fetch(ctx, sess)
	defer iter.Close()
	sub, found := "", false
	for iter.Next() {
		if item := iter.Item(); item.JID.Equal(contact) {
			sub, found = item.Subscription, true
		}
	}
	if err := iter.Err(); err != nil {
		return "", fmt.Errorf("prosodytest: fetching roster of %s: %w", sess.LocalAddr().Bare(), err)
	}
	if !found {
		return "", fmt.Errorf("%w: %s in roster of %s", errNotInRoster, contact, sess.LocalAddr().Bare())
	}
	return sub, nil
}

// ackPushes returns a handler that answers roster pushes (IQ sets from the
// account itself, RFC 6121 §2.1.6) with an empty result and ignores
// everything else; other IQs get mellium's service-unavailable error.
func ackPushes(self jid.JID) xmpp.Handler {
	return xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "iq" {
			return nil
		}
		iq, err := stanza.NewIQ(*start)
		if err != nil {
			return err
		}
		if iq.Type != stanza.SetIQ || !(iq.From.Equal(jid.JID{}) || iq.From.Equal(self)) {
			return nil
		}
		_, err = xmlstream.Copy(t, iq.Result(nil))
		return err
	})
}
