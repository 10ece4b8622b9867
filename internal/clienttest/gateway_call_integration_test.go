package clienttest_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/localpeer"
	"github.com/securejingle/securejingle/internal/xmppx"
	"github.com/securejingle/securejingle/jingle"
)

// jingleStanza is what the plain Jingle endpoint reads of a stanza.
type jingleStanza struct {
	XMLName xml.Name
	ID      string         `xml:"id,attr"`
	Type    string         `xml:"type,attr"`
	From    string         `xml:"from,attr"`
	Jingle  *jingle.Jingle `xml:"urn:xmpp:jingle:1 jingle"`
}

// plainJingle is an unmodified plain Jingle client: a mellium session to
// a gateway's front and the project's pion endpoint, speaking XEP-0167
// with XEP-0320 DTLS-SRTP and XEP-0176 ICE-UDP in clear.
type plainJingle struct {
	full string
	sess *xmpp.Session
	peer *localpeer.Peer
	in   chan jingleStanza
}

func newPlainJingle(t *testing.T, ep clienttest.Endpoint, resource, name string) *plainJingle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := ep.JID.Bare().String() + "/" + resource
	sess, err := xmppx.Login(ctx, ep.Addr, jid.MustParse(full), ep.Password, tlsFor(ep), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Conn().Close() })
	e := &plainJingle{full: full, sess: sess, peer: localpeer.New(t, name, nil), in: make(chan jingleStanza, 256)}
	go func() {
		defer close(e.in)
		d := xml.NewTokenDecoder(sess.TokenReader())
		for {
			tok, err := d.Token()
			if err != nil {
				return
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			var st jingleStanza
			if err := d.DecodeElement(&st, &start); err != nil {
				return
			}
			select {
			case e.in <- st:
			default:
			}
		}
	}()
	e.send(t, `<presence/>`)
	return e
}

func (e *plainJingle) send(t *testing.T, raw string) {
	t.Helper()
	if err := e.sess.Send(context.Background(), xml.NewDecoder(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
}

// wait returns the first stanza ok accepts (others are dropped).
func (e *plainJingle) wait(t *testing.T, what string, ok func(jingleStanza) bool) jingleStanza {
	t.Helper()
	guard := time.After(30 * time.Second)
	for {
		select {
		case st, open := <-e.in:
			if !open {
				t.Fatalf("%s: stream ended waiting for %s", e.full, what)
			}
			if ok(st) {
				return st
			}
		case <-guard:
			t.Fatalf("%s: no %s", e.full, what)
		}
	}
}

// request sends j to to and waits for its result.
func (e *plainJingle) request(t *testing.T, to string, j *jingle.Jingle) {
	t.Helper()
	j.XMLName = xml.Name{Space: jingle.NS, Local: "jingle"}
	raw, err := xml.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	id := "pj" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
	e.send(t, `<iq type="set" id="`+id+`" to="`+to+`">`+string(raw)+`</iq>`)
	res := e.wait(t, "the answer to "+string(j.Action), func(st jingleStanza) bool { return st.XMLName.Local == "iq" && st.ID == id })
	if res.Type != "result" {
		t.Fatalf("%s: %s answered %s", e.full, j.Action, res.Type)
	}
}

// waitJingle waits for a Jingle request of action and acknowledges it.
func (e *plainJingle) waitJingle(t *testing.T, action jingle.Action) jingleStanza {
	t.Helper()
	st := e.wait(t, string(action), func(st jingleStanza) bool {
		return st.XMLName.Local == "iq" && st.Type == "set" && st.Jingle != nil && st.Jingle.Action == action
	})
	e.send(t, `<iq type="result" id="`+st.ID+`" to="`+st.From+`"/>`)
	return st
}

// TestGatewayCallBetweenPlainClients is issue 11's call check: two
// unmodified plain Jingle endpoints (the project's pion endpoint in plain
// XEP-0320 mode), each logged in to its account's securejingle daemon in
// gateway mode on a real Prosody, call each other. Each daemon terminates
// its client's session on loopback and relays the media over the
// protected, bound session between the daemons: media flows both ways,
// both daemons report the call connected with the binding check passed,
// and Prosody's stanza log has no Jingle or JMI element, no DTLS
// fingerprint, candidate or payload type, and neither endpoint's
// fingerprint value.
func TestGatewayCallBetweenPlainClients(t *testing.T) {
	_, h, alice, bob, ad, bd := gatewayDaemons(t)
	ac := newPlainJingle(t, alice, "jingle", "alice")
	bc := newPlainJingle(t, bob, "jingle", "bob")

	contents, groups := ac.peer.JingleOffer(t)
	ac.request(t, bc.full, &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "plaincall1", Initiator: ac.full, Contents: contents, Groups: groups})
	init := bc.waitJingle(t, jingle.ActionSessionInitiate)
	ans, ansGroups := bc.peer.JingleAnswer(t, init.Jingle)
	bc.request(t, init.From, &jingle.Jingle{Action: jingle.ActionSessionAccept, SID: init.Jingle.SID, Initiator: init.Jingle.Initiator, Responder: bc.full, Contents: ans, Groups: ansGroups})
	accept := ac.waitJingle(t, jingle.ActionSessionAccept)
	ac.peer.JingleAnswered(t, accept.Jingle)
	// Media is relayed once both legs are up and the binding check of
	// the remote leg passed: the endpoints play from then on.
	for _, d := range []*daemontest.Daemon{ad, bd} {
		daemontest.Poll(t, "the call connected, bound and relayed", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			calls, err := d.Client.Calls(ctx)
			return err == nil && len(calls) == 1 && calls[0].State == "connected" && calls[0].Binding == "passed" && calls[0].LocalLeg == "connected"
		})
	}
	ac.peer.StartPlayback()
	bc.peer.StartPlayback()
	ac.peer.Received(t)
	bc.peer.Received(t)

	// Both daemons relayed media both ways.
	for _, d := range []*daemontest.Daemon{ad, bd} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		calls, err := d.Client.Calls(ctx)
		cancel()
		if err != nil || len(calls) != 1 || calls[0].RelayedToPeer < localpeer.Packets || calls[0].RelayedToLocal < localpeer.Packets {
			t.Errorf("calls %+v (%v): want one call relayed both ways", calls, err)
		}
	}
	ac.request(t, bc.full, &jingle.Jingle{Action: jingle.ActionSessionTerminate, SID: "plaincall1", Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}})
	if term := bc.waitJingle(t, jingle.ActionSessionTerminate); term.Jingle.Reason == nil || term.Jingle.Reason.Condition != jingle.ReasonSuccess {
		t.Errorf("bob's client got terminate %+v", term.Jingle.Reason)
	}

	var fps []string
	for _, e := range []*plainJingle{ac, bc} {
		for _, l := range strings.Split(e.peer.LocalDescription(), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=fingerprint:"); ok {
				_, hex, _ := strings.Cut(v, " ")
				fps = append(fps, hex)
			}
		}
	}
	if len(fps) != 2 {
		t.Fatalf("endpoint fingerprints %v", fps)
	}
	entries := h.Log(t)
	if len(entries) == 0 {
		t.Fatal("empty stanza log")
	}
	for _, e := range entries {
		d := xml.NewDecoder(strings.NewReader(e.XML))
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if el, ok := tok.(xml.StartElement); ok && (strings.HasPrefix(el.Name.Space, "urn:xmpp:jingle") ||
				el.Name.Local == "fingerprint" || el.Name.Local == "candidate" || el.Name.Local == "payload-type") {
				t.Errorf("Prosody saw <%s xmlns=%q>: %s", el.Name.Local, el.Name.Space, e.XML)
			}
		}
		for _, fp := range fps {
			if strings.Contains(e.XML, fp) {
				t.Errorf("Prosody saw an endpoint's fingerprint: %s", e.XML)
			}
		}
	}
}
