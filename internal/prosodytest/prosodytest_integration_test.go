package prosodytest_test

import (
	"context"
	"encoding/xml"
	"errors"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/prosodytest"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// hangGuard bounds every test so that a broken server makes it fail instead
// of hanging; it is not a performance assertion.
const hangGuard = 60 * time.Second

// Namespaces of the features exercised below.
const (
	nsCarbons = "urn:xmpp:carbons:2"
	nsMAM     = "urn:xmpp:mam:2"
	testNode  = "urn:securejingle:prosodytest:0"
)

// message is what the inbox records of an incoming <message/>.
type message struct {
	From     string `xml:"from,attr"`
	To       string `xml:"to,attr"`
	Type     string `xml:"type,attr"`
	Body     string `xml:"body"`
	Received *struct {
		Forwarded struct {
			Message struct {
				From string `xml:"from,attr"`
				To   string `xml:"to,attr"`
				Body string `xml:"body"`
			} `xml:"jabber:client message"`
		} `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:carbons:2 received"`
}

// presence is what the inbox records of an incoming <presence/>.
type presence struct {
	From string `xml:"from,attr"`
	Type string `xml:"type,attr"`
}

// inbox collects the messages and presences a session receives.
type inbox struct {
	msgs chan message
	pres chan presence
}

// serve starts sess.Serve with an inbox handler; roster pushes are
// acknowledged, other IQs get mellium's default error.
func serve(t *testing.T, sess *xmpp.Session) *inbox {
	t.Helper()
	in := &inbox{msgs: make(chan message, 256), pres: make(chan presence, 256)}
	self := sess.LocalAddr().Bare()
	h := xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		// The handler's reader starts after *start; put it back so that
		// encoding/xml sees a well-formed element.
		d := xml.NewTokenDecoder(xmlstream.MultiReader(
			xmlstream.Token(*start), xmlstream.Inner(r), xmlstream.Token(start.End())))
		switch start.Name.Local {
		case "message":
			var m message
			if err := d.Decode(&m); err != nil {
				return err
			}
			select {
			case in.msgs <- m:
			default:
				panic("prosodytest_test: message inbox overflow")
			}
		case "presence":
			var p presence
			if err := d.Decode(&p); err != nil {
				return err
			}
			select {
			case in.pres <- p:
			default:
				panic("prosodytest_test: presence inbox overflow")
			}
		case "iq":
			iq, err := stanza.NewIQ(*start)
			if err != nil {
				return err
			}
			if iq.Type == stanza.SetIQ && (iq.From.Equal(jid.JID{}) || iq.From.Equal(self)) {
				_, err = xmlstream.Copy(r, iq.Result(nil))
				return err
			}
		}
		return nil
	})
	served := make(chan error, 1)
	go func() { served <- sess.Serve(h) }()
	t.Cleanup(func() {
		sess.Close()
		sess.Conn().Close()
		<-served
	})
	return in
}

// waitFor returns the first value from ch for which ok is true, or fails the
// test when ctx ends first.
func waitFor[T any](t *testing.T, ctx context.Context, ch <-chan T, what string, ok func(T) bool) T {
	t.Helper()
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

func sameJID(s string, want jid.JID) bool {
	j, err := jid.Parse(s)
	return err == nil && j.Equal(want)
}

// chat is an outgoing chat message.
type chat struct {
	stanza.Message
	Body string `xml:"body"`
}

// iq sends payload in an IQ of type typ to `to` and, for a result, decodes
// the first child of the reply into resp (if not nil). An error reply is
// returned as a stanza.Error.
func iq(ctx context.Context, sess *xmpp.Session, typ stanza.IQType, to jid.JID, payload, resp any) error {
	r, err := sess.EncodeIQElement(ctx, payload, stanza.IQ{Type: typ, To: to})
	if err != nil {
		return err
	}
	defer r.Close()
	tok, err := r.Token()
	if err != nil {
		return err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return errors.New("reply does not start with an element")
	}
	if _, err := stanza.UnmarshalIQError(r, start); err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	d := xml.NewTokenDecoder(xmlstream.Inner(r))
	for {
		tok, err := d.Token()
		if err != nil {
			return err // io.EOF: empty result where a payload was expected
		}
		if se, ok := tok.(xml.StartElement); ok {
			return d.DecodeElement(resp, &se)
		}
	}
}

// PEP (XEP-0163) request and response shapes.
type (
	testItem struct {
		XMLName xml.Name `xml:"urn:securejingle:prosodytest:0 test"`
		Text    string   `xml:",chardata"`
	}
	pubsubPublish struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
		Publish struct {
			Node string `xml:"node,attr"`
			Item struct {
				ID      string `xml:"id,attr"`
				Payload testItem
			} `xml:"item"`
		} `xml:"publish"`
	}
	pubsubItemsQuery struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
		Items   struct {
			Node string `xml:"node,attr"`
		} `xml:"items"`
	}
	pubsubItemsResult struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
		Items   struct {
			Node string `xml:"node,attr"`
			Item []struct {
				ID      string   `xml:"id,attr"`
				Payload testItem `xml:"urn:securejingle:prosodytest:0 test"`
			} `xml:"item"`
		} `xml:"items"`
	}
	carbonsEnable struct {
		XMLName xml.Name `xml:"urn:xmpp:carbons:2 enable"`
	}
	discoInfoQuery struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
	}
	discoInfo struct {
		XMLName  xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
	}
)

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	srv := prosodytest.Start(t)
	if srv.Domain() != prosodytest.DefaultDomain {
		t.Fatalf("Domain() = %q, want %q", srv.Domain(), prosodytest.DefaultDomain)
	}
	// Users are added while the server runs: prosodyctl writes the account
	// store directly.
	srv.AddUser(t, "alice", "alice-secret")
	srv.AddUser(t, "bob", "bob-secret")
	srv.Subscribe(t, "alice", "bob")

	alice := prosodytest.Dial(t, ctx, srv, "alice", "alice-secret", "phone")
	bob := prosodytest.Dial(t, ctx, srv, "bob", "bob-secret", "laptop")
	aliceIn, bobIn := serve(t, alice), serve(t, bob)
	aliceJID, bobJID := alice.LocalAddr(), bob.LocalAddr()
	if want := jid.MustParse("alice@" + srv.Domain() + "/phone"); !aliceJID.Equal(want) {
		t.Fatalf("bound JID %s, want %s", aliceJID, want)
	}
	if !alice.ConnectionState().HandshakeComplete {
		t.Fatal("session is not over TLS")
	}

	t.Run("presence", func(t *testing.T) {
		if err := bob.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
			t.Fatal(err)
		}
		if err := alice.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
			t.Fatal(err)
		}
		// Alice's initial presence is broadcast to her contact bob, and
		// the server's probe brings bob's presence to alice.
		waitFor(t, ctx, bobIn.pres, "alice's presence at bob", func(p presence) bool {
			return p.Type == "" && sameJID(p.From, aliceJID)
		})
		waitFor(t, ctx, aliceIn.pres, "bob's presence at alice", func(p presence) bool {
			return p.Type == "" && sameJID(p.From, bobJID)
		})
	})

	t.Run("message", func(t *testing.T) {
		const body = "hello bob, over a real Prosody"
		msg := chat{Message: stanza.Message{To: bobJID, Type: stanza.ChatMessage}, Body: body}
		if err := alice.Encode(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, ctx, bobIn.msgs, "alice's message at bob", func(m message) bool {
			return m.Body != ""
		})
		if !sameJID(got.From, aliceJID) || got.Body != body || got.Type != "chat" {
			t.Fatalf("bob got %+v, want chat from %s with body %q", got, aliceJID, body)
		}
	})

	t.Run("pep", func(t *testing.T) {
		var pub pubsubPublish
		pub.Publish.Node = testNode
		pub.Publish.Item.ID = "current"
		pub.Publish.Item.Payload.Text = "device list v1"
		if err := iq(ctx, alice, stanza.SetIQ, jid.JID{}, pub, nil); err != nil {
			t.Fatalf("publish: %v", err)
		}
		query := pubsubItemsQuery{}
		query.Items.Node = testNode
		// Alice reads her own node, bob reads it as a presence subscriber
		// (PEP's default access model is "presence").
		for _, reader := range []*xmpp.Session{alice, bob} {
			var res pubsubItemsResult
			if err := iq(ctx, reader, stanza.GetIQ, aliceJID.Bare(), query, &res); err != nil {
				t.Fatalf("%s retrieving items: %v", reader.LocalAddr(), err)
			}
			if len(res.Items.Item) != 1 || res.Items.Item[0].ID != "current" ||
				res.Items.Item[0].Payload.Text != "device list v1" {
				t.Fatalf("%s got items %+v, want the published one", reader.LocalAddr(), res.Items)
			}
		}
	})

	t.Run("pep-access", func(t *testing.T) {
		// A user who is not alice's contact is refused: a negative that
		// shows the previous subtest's read really depended on the roster.
		srv.AddUser(t, "mallory", "mallory-secret")
		mallory := prosodytest.Dial(t, ctx, srv, "mallory", "mallory-secret", "")
		serve(t, mallory)
		query := pubsubItemsQuery{}
		query.Items.Node = testNode
		var res pubsubItemsResult
		err := iq(ctx, mallory, stanza.GetIQ, aliceJID.Bare(), query, &res)
		var se stanza.Error
		if !errors.As(err, &se) {
			t.Fatalf("stranger reading alice's PEP node: err = %v, want a stanza error", err)
		}
		if se.Condition != stanza.Forbidden {
			t.Fatalf("stranger reading alice's PEP node: condition %q, want %q", se.Condition, stanza.Forbidden)
		}
	})

	t.Run("carbons", func(t *testing.T) {
		tablet := prosodytest.Dial(t, ctx, srv, "alice", "alice-secret", "tablet")
		tabletIn := serve(t, tablet)
		if err := tablet.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
			t.Fatal(err)
		}
		var info discoInfo
		if err := iq(ctx, tablet, stanza.GetIQ, jid.MustParse(srv.Domain()), discoInfoQuery{}, &info); err != nil {
			t.Fatalf("disco#info: %v", err)
		}
		advertised := false
		for _, f := range info.Features {
			advertised = advertised || f.Var == nsCarbons
		}
		if !advertised {
			t.Fatalf("server does not advertise %s: %+v", nsCarbons, info.Features)
		}
		// Before the tablet enables carbons, bob's first message reaches
		// only the phone. The server routes it (carbon copies included)
		// before it answers the tablet's enable IQ below, and the tablet's
		// inbox is filled in stream order, so if a copy of it were made
		// it would be the first carbon the tablet sees.
		const before = "before carbons were enabled"
		msg := chat{Message: stanza.Message{To: aliceJID, Type: stanza.ChatMessage}, Body: before}
		if err := bob.Encode(ctx, msg); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, aliceIn.msgs, "bob's first message at alice's phone", func(m message) bool {
			return m.Body == before && sameJID(m.From, bobJID)
		})
		if err := iq(ctx, tablet, stanza.SetIQ, jid.JID{}, carbonsEnable{}, nil); err != nil {
			t.Fatalf("enabling carbons: %v", err)
		}
		const body = "for alice's phone, copied to her tablet"
		msg.Body = body
		if err := bob.Encode(ctx, msg); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, aliceIn.msgs, "bob's message at alice's phone", func(m message) bool {
			return m.Body == body && sameJID(m.From, bobJID)
		})
		got := waitFor(t, ctx, tabletIn.msgs, "carbon copy at alice's tablet", func(m message) bool {
			return m.Received != nil
		})
		fwd := got.Received.Forwarded.Message
		// Prosody 0.12 omits the from of a carbon, which then means the
		// account's bare JID (RFC 6120 §8.1.2.1); a client must accept
		// carbons only from there (XEP-0280 §11).
		if !(got.From == "" || sameJID(got.From, aliceJID.Bare())) || !sameJID(fwd.From, bobJID) ||
			!sameJID(fwd.To, aliceJID) || fwd.Body != body {
			t.Fatalf("carbon %+v / forwarded %+v, want copy of bob's message %q to %s", got, fwd, body, aliceJID)
		}
	})

	t.Run("offline", func(t *testing.T) {
		// mod_offline stores a message to an account with no session and
		// delivers it after the account's initial presence.
		srv.AddUser(t, "erin", "erin-secret")
		erinJID := jid.MustParse("erin@" + srv.Domain())
		const body = "stored while erin was away"
		msg := chat{Message: stanza.Message{To: erinJID, Type: stanza.ChatMessage}, Body: body}
		if err := alice.Encode(ctx, msg); err != nil {
			t.Fatal(err)
		}
		// A round trip on alice's stream: the server has stored the
		// message before it answers.
		if err := iq(ctx, alice, stanza.GetIQ, jid.MustParse(srv.Domain()), discoInfoQuery{}, nil); err != nil {
			t.Fatal(err)
		}
		erin := prosodytest.Dial(t, ctx, srv, "erin", "erin-secret", "")
		erinIn := serve(t, erin)
		if err := erin.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, ctx, erinIn.msgs, "offline message at erin", func(m message) bool {
			return m.Body != ""
		})
		if got.Body != body || !sameJID(got.From, aliceJID) {
			t.Fatalf("erin got %+v, want %q from %s", got, body, aliceJID)
		}
	})
}

func TestWrongPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	srv := prosodytest.Start(t)
	srv.AddUser(t, "carol", "right-password")

	if err := srv.CheckPassword(ctx, "carol", "right-password"); err != nil {
		t.Fatalf("PLAIN with the right password: %v", err)
	}
	for _, c := range []struct{ user, pass string }{
		{"carol", "wrong-password"},
		{"carol", "right-password "},
		{"nobody", "right-password"},
	} {
		if err := srv.CheckPassword(ctx, c.user, c.pass); !errors.Is(err, prosodytest.ErrNotAuthorized) {
			t.Errorf("PLAIN as %q/%q: err = %v, want ErrNotAuthorized", c.user, c.pass, err)
		}
		sess, err := srv.Login(ctx, c.user, c.pass, "")
		if err == nil {
			sess.Close()
			sess.Conn().Close()
			t.Errorf("SCRAM login as %q/%q succeeded", c.user, c.pass)
		}
	}
	// The same account still logs in with SCRAM-SHA-1 after the failures.
	sess, err := srv.Login(ctx, "carol", "right-password", "")
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
	sess.Conn().Close()

	// Re-registering changes the password.
	srv.AddUser(t, "carol", "new-password")
	if err := srv.CheckPassword(ctx, "carol", "right-password"); !errors.Is(err, prosodytest.ErrNotAuthorized) {
		t.Errorf("old password after change: err = %v, want ErrNotAuthorized", err)
	}
	if err := srv.CheckPassword(ctx, "carol", "new-password"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestOptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	const domain = "chat.securejingle.test"
	srv := prosodytest.Start(t, prosodytest.WithDomain(domain), prosodytest.WithModules("mam"))
	if srv.Domain() != domain {
		t.Fatalf("Domain() = %q, want %q", srv.Domain(), domain)
	}
	if err := srv.Certificate().VerifyHostname(domain); err != nil {
		t.Fatal(err)
	}
	srv.AddUser(t, "dave", "dave-secret")
	dave := prosodytest.Dial(t, ctx, srv, "dave", "dave-secret", "")
	serve(t, dave)
	var info discoInfo
	if err := iq(ctx, dave, stanza.GetIQ, dave.LocalAddr().Bare(), discoInfoQuery{}, &info); err != nil {
		t.Fatalf("disco#info: %v", err)
	}
	var mam bool
	for _, f := range info.Features {
		mam = mam || f.Var == nsMAM
	}
	if !mam {
		t.Fatalf("account does not advertise MAM with WithModules(\"mam\"): %+v", info.Features)
	}
}
