package clienttest_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"mellium.im/xmpp/jid"
)

// echoFront is a c2sfront listener whose handler plays a minimal server:
// IQs get an empty result (a get its query element, empty), a broadcast
// presence comes back to every session (as a server reflects it), and a
// chat message to echo@DOMAIN comes back to every session from that JID
// with "echo: " before the body. It shows that real clients log in to the
// local listener (STARTTLS with its certificate, SASL, bind) and exchange
// stanzas through a Session, before any composer exists.
type echoFront struct {
	srv  *c2sfront.Server
	addr string
	mu   sync.Mutex
	sess map[*c2sfront.Session]bool
}

var frontAccount = jid.MustParse("alice@example.org")

const frontPassword = "local password for the front"

func startEchoFront(t *testing.T) (*echoFront, clienttest.Endpoint) {
	t.Helper()
	cred, err := c2sfront.NewCredential(frontPassword, 4096)
	if err != nil {
		t.Fatal(err)
	}
	f := &echoFront{sess: map[*c2sfront.Session]bool{}}
	f.srv, err = c2sfront.New(c2sfront.Config{Account: frontAccount, Credential: cred, Logger: slog.New(slog.DiscardHandler)}, f.handle)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	f.addr = l.Addr().String()
	// As a user would: pin the fingerprint the listener logged.
	cert := clienttest.PinnedCert(t, f.addr, frontAccount.Domainpart(), f.srv.Fingerprint())
	return f, clienttest.Endpoint{Addr: f.addr, JID: frontAccount, Password: frontPassword, Cert: cert}
}

func (f *echoFront) handle(s *c2sfront.Session) {
	f.mu.Lock()
	f.sess[s] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.sess, s)
		f.mu.Unlock()
	}()
	ctx := context.Background()
	for {
		st, err := s.Next()
		if err != nil {
			return
		}
		switch st.Name {
		case "iq":
			if st.Type != "get" && st.Type != "set" {
				continue
			}
			// The result of a get is its query element, empty (an empty
			// roster, no disco features), disco#info with an identity.
			payload := ""
			if st.Type == "get" {
				var q struct {
					Child struct{ XMLName xml.Name } `xml:",any"`
				}
				switch {
				case xml.Unmarshal(st.Raw, &q) != nil || q.Child.XMLName.Local == "":
				case q.Child.XMLName.Space == "http://jabber.org/protocol/disco#info":
					payload = "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='server' type='im'/></query>"
				default:
					payload = fmt.Sprintf("<%s xmlns='%s'/>", q.Child.XMLName.Local, esc(q.Child.XMLName.Space))
				}
			}
			// A result comes from where the request went (Profanity 0.13
			// crashes on a disco#info result to a domain that has none).
			from := ""
			if !st.To.Equal(jid.JID{}) {
				from = fmt.Sprintf(" from='%s'", esc(st.To.String()))
			}
			f.send(ctx, s, fmt.Sprintf("<iq type='result' id='%s' to='%s'%s>%s</iq>", esc(st.ID), esc(s.JID().String()), from, payload))
		case "presence":
			if st.To.Equal(jid.JID{}) && st.Type == "" {
				f.broadcast(ctx, fmt.Sprintf("<presence from='%s'/>", esc(s.JID().String())))
			}
		case "message":
			var m struct {
				Body string `xml:"body"`
			}
			if xml.Unmarshal(st.Raw, &m) != nil || m.Body == "" || st.To.Bare().String() != "echo@"+frontAccount.Domainpart() {
				continue
			}
			f.broadcast(ctx, fmt.Sprintf("<message type='chat' from='echo@%s/bot' to='%s'><body>echo: %s</body></message>",
				frontAccount.Domainpart(), esc(frontAccount.String()), esc(m.Body)))
		}
	}
}

func (f *echoFront) send(ctx context.Context, s *c2sfront.Session, raw string) {
	st, err := localxmpp.ParseStanza([]byte(raw))
	if err != nil {
		panic(err) // built above from escaped parts
	}
	_ = s.Send(ctx, st)
}

func (f *echoFront) broadcast(ctx context.Context, raw string) {
	f.mu.Lock()
	var list []*c2sfront.Session
	for s := range f.sess {
		list = append(list, s)
	}
	f.mu.Unlock()
	for _, s := range list {
		f.send(ctx, s, raw)
	}
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// TestClientsLogInToFront: slixmpp, go-sendxmpp and Profanity log in to
// the c2sfront listener (pinned certificate, SASL with the local
// password) and exchange chat with it.
func TestClientsLogInToFront(t *testing.T) {
	_, ep := startEchoFront(t)
	echo := "echo@" + frontAccount.Domainpart()

	slix := clienttest.StartSlixmpp(t, ep)
	slix.Send(echo, "from slixmpp", "")
	slix.WaitMessage(func(m clienttest.Message) bool { return m.Body == "echo: from slixmpp" && bareOf(m.From) == echo })

	p := clienttest.StartProfanity(t, ep)
	p.Send(echo, "from profanity")
	p.WaitMessage(echo, "echo: from profanity")

	l := clienttest.StartSendxmppListener(t, ep)
	clienttest.SendxmppSend(t, ep, echo, "from go-sendxmpp")
	l.WaitMessage(func(m clienttest.Message) bool { return m.Body == "echo: from go-sendxmpp" && m.From == echo })

	// A wrong local password is refused.
	bad := ep
	bad.Password = "not the password"
	if _, err := clienttest.TrySlixmpp(t, bad); err == nil {
		t.Fatal("slixmpp logged in with a wrong password")
	}
}

func bareOf(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// TestSlixmppStreamManagementFront: slixmpp with its XEP-0198 plugin
// enables stream management on the front; the front acknowledges each of
// its messages, and the front's own requests are answered with an h that
// matches what the front wrote: the front's unacknowledged count falls to
// 0 and the stream goes on (a lower count than slixmpp's would have been
// a handled-count-too-high, a higher one would stay above 0).
func TestSlixmppStreamManagementFront(t *testing.T) {
	f, ep := startEchoFront(t)
	echo := "echo@" + frontAccount.Domainpart()
	slix := clienttest.StartSlixmppSM(t, ep)
	for i := range 3 {
		id := fmt.Sprintf("sm-%d", i)
		body := fmt.Sprintf("counted %d", i)
		slix.Send(echo, body, id)
		slix.RequestAck()
		slix.WaitAcked(id)
		slix.WaitMessage(func(m clienttest.Message) bool { return m.Body == "echo: "+body })
	}
	h := slix.WaitSMAnswer(3)
	f.mu.Lock()
	var sess *c2sfront.Session
	for s := range f.sess {
		sess = s
	}
	f.mu.Unlock()
	daemontest.Poll(t, "the front's count of unacknowledged stanzas at 0", func() bool {
		n, on := sess.Unacked()
		if !on {
			t.Fatal("the front's session has stream management off")
		}
		return n == 0
	})
	handled, lastAck, sent := slix.SMState()
	t.Logf("slixmpp: answered the front with h=%d; handled %d, last ack %d, sent %d", h, handled, lastAck, sent)
	if lastAck != sent {
		t.Fatalf("the front acknowledged %d of slixmpp's %d stanzas", lastAck, sent)
	}
	slix.Send(echo, "still on", "sm-last")
	slix.RequestAck()
	slix.WaitAcked("sm-last")
}
