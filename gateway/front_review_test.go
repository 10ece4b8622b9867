package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// Regression tests of the gateway-mode review (issue 11). Each case
// logs LEAK/INJECTED when the attack works; the test fails then, so a
// fix turns it green.

// TestFrontClientLeaks: what a plain local client sends to a
// contact that runs securejingle (bob, devices known, encrypted chat
// works) and that reaches the server in clear.
func TestFrontClientLeaks(t *testing.T) {
	srv, a, b := pair(t)
	wire := recordWire(srv)
	fa, fb := startFront(t, a), startFront(t, b)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	bc := fb.login(t, "bob@"+testDomain+"/client")
	bob := "bob@" + testDomain
	cases := map[string]string{
		"leak-headline":   `<message type="headline" to="` + bob + `" id="l1"><body>leak-headline</body></message>`,
		"leak-groupchat":  `<message type="groupchat" to="` + bob + `/phone" id="l2"><body>leak-groupchat</body></message>`,
		"leak-subject":    `<message type="chat" to="` + bob + `" id="l3"><subject>leak-subject</subject></message>`,
		"leak-xhtml":      `<message type="chat" to="` + bob + `" id="l4"><html xmlns="http://jabber.org/protocol/xhtml-im"><body xmlns="http://www.w3.org/1999/xhtml">leak-xhtml</body></html></message>`,
		"leak-reaction":   `<message type="chat" to="` + bob + `" id="l5"><reactions xmlns="urn:xmpp:reactions:0" id="x"><reaction>leak-reaction</reaction></reactions></message>`,
		"leak-oob":        `<message type="chat" to="` + bob + `" id="l6"><x xmlns="jabber:x:oob"><url>https://example.org/leak-oob</url></x></message>`,
		"leak-omemo-body": `<message type="chat" to="` + bob + `" id="l7"><encrypted xmlns="eu.siacs.conversations.axolotl"/><body>leak-omemo-body</body></message>`,
		"leak-error":      `<message type="error" to="` + bob + `" id="l8"><body>leak-error</body></message>`,
		// RFC 6121 §5.2.2: an unknown type is handled as normal by the
		// server and the recipient's client, so it is shown.
		"leak-type-Chat": `<message type="Chat" to="` + bob + `" id="l9"><body>leak-type-Chat</body></message>`,
		"leak-no-to":     `<message type="chat" id="l10"><body>leak-no-to</body></message>`,
	}
	for _, raw := range cases {
		ac.send(t, raw)
	}
	// A marker that goes encrypted: once bob's client has it, every
	// stanza above has been handled by alice's front.
	ac.send(t, `<message type="chat" to="`+bob+`" id="mk"><body>review marker</body></message>`)
	bc.wait(t, "the marker", chatWith("review marker"))
	time.Sleep(200 * time.Millisecond)
	var onWire strings.Builder
	for _, st := range wire.all() {
		onWire.Write(st.Raw)
		onWire.WriteByte('\n')
	}
	for text := range cases {
		if strings.Contains(onWire.String(), text) {
			t.Errorf("LEAK: %s reached the server in clear (to a securejingle contact)", text)
		}
	}
}

// TestFrontServerInjection: a hostile server injects cleartext
// "from bob" into alice's client while alice and bob have a secured
// session, and speaks as the alert JID, by wrapping the stanza.
func TestFrontServerInjection(t *testing.T) {
	srv, a, b := pair(t)
	fa, fb := startFront(t, a), startFront(t, b)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	bc := fb.login(t, "bob@"+testDomain+"/client")
	alice, bob := "alice@"+testDomain, "bob@"+testDomain
	// A secured session: bob's device wrote to alice's first.
	bc.send(t, `<message type="chat" to="`+alice+`" id="s1"><body>secured hello</body></message>`)
	ac.wait(t, "bob's encrypted message", chatWith("secured hello"))
	if !a.hasSecuredSession(bob) {
		t.Fatal("no secured session")
	}
	alertJID := alice + "/" + FrontAlertResource
	inject := map[string]string{
		// Control: refused by default-refuse-cleartext-downgrade.
		"inj-direct": `<message type="chat" from="` + bob + `/phone" to="` + alice + `/client"><body>inj-direct</body></message>`,
		"inj-mam": `<message from="` + alice + `" to="` + alice + `/client"><result xmlns="urn:xmpp:mam:2" queryid="q1" id="a1"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2026-12-07T10:00:00Z"/>` +
			`<message xmlns="jabber:client" type="chat" from="` + bob + `/phone" to="` + alice + `"><body>inj-mam</body></message></forwarded></result></message>`,
		"inj-headline": `<message type="headline" from="` + bob + `/phone" to="` + alice + `/client"><body>inj-headline</body></message>`,
		"inj-sent-foreign": `<message from="` + bob + `/phone" to="` + alice + `/client"><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">` +
			`<message xmlns="jabber:client" type="chat" from="` + alice + `/other" to="` + bob + `"><body>inj-sent-foreign</body></message></forwarded></sent></message>`,
		"inj-alert-carbon": `<message from="` + alice + `" to="` + alice + `/client"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">` +
			`<message xmlns="jabber:client" type="chat" from="` + alertJID + `" to="` + alice + `/other"><body>inj-alert-carbon</body></message></forwarded></received></message>`,
		"inj-alert-mam": `<message from="` + alice + `" to="` + alice + `/client"><result xmlns="urn:xmpp:mam:2" queryid="q1" id="a2"><forwarded xmlns="urn:xmpp:forward:0">` +
			`<message xmlns="jabber:client" type="chat" from="` + alertJID + `" to="` + alice + `"><body>inj-alert-mam</body></message></forwarded></result></message>`,
	}
	for _, raw := range inject {
		st, err := localxmpp.ParseStanza([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Inject(st); err != nil {
			t.Fatal(err)
		}
	}
	marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="` + alice + `/client"><body>marker</body></message>`))
	if err := srv.Inject(marker); err != nil {
		t.Fatal(err)
	}
	ac.wait(t, "the marker", chatWith("marker"))
	for len(ac.in) > 0 {
		ac.seen = append(ac.seen, <-ac.in)
	}
	for text := range inject {
		for _, st := range ac.seen {
			if strings.Contains(string(raw(st)), text) {
				t.Errorf("INJECTED: %s reached alice's client", text)
			}
		}
	}
}

func raw(st *Stanza) []byte {
	var b []byte
	for _, c := range st.Children {
		b = append(b, c.Raw...)
	}
	return b
}

// TestFrontOfflineRosterContact: dave runs securejingle (his bundle
// is in PEP) but is offline and was never seen by alice's daemon; he is a
// roster contact, so SendChatMessage does not look in PEP, and the
// client's chat goes to the server in clear (flagged only).
func TestFrontOfflineRosterContact(t *testing.T) {
	srv := startServer(t)
	for _, u := range []string{"alice", "dave"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	d := startGateway(t, srv, "dave@"+testDomain+"/desk", "dave-password", gwOptions{})
	time.Sleep(500 * time.Millisecond) // his bundle published
	d.stop()
	<-d.done
	if err := srv.Subscribe(jid.MustParse("alice@"+testDomain), jid.MustParse("dave@"+testDomain)); err != nil {
		t.Fatal(err)
	}
	wire := recordWire(srv)
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{})
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<message type="chat" to="dave@`+testDomain+`" id="d1"><body>to offline dave</body></message>`)
	time.Sleep(time.Second)
	if n, err := a.DiscoverBundles(context.Background(), jid.MustParse("dave@"+testDomain)); err != nil || n == 0 {
		t.Logf("control failed: dave's bundle is not in PEP: n=%d err=%v", n, err)
	}
	for _, st := range wire.all() {
		if strings.Contains(string(st.Raw), "to offline dave") && !strings.Contains(string(st.Raw), "<c ") {
			t.Errorf("LEAK: chat to an offline securejingle roster contact went in clear: %s", st.Raw)
		}
	}
}

// TestFrontDaemonSessionDown: the daemon's own session is down
// while a local client's upstream is up. Chat to bob (devices known) is
// bounced (sound); chat to erin, a stranger running securejingle whose
// bundle is in PEP, falls to policy because the PEP lookup failed, and
// goes in clear.
func TestFrontDaemonSessionDown(t *testing.T) {
	srv, a, _ := pair(t)
	if err := srv.AddUser("erin", "erin-password"); err != nil {
		t.Fatal(err)
	}
	startGateway(t, srv, "erin@"+testDomain+"/box", "erin-password", gwOptions{})
	time.Sleep(500 * time.Millisecond)
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	a.stop()
	<-a.done
	ac.send(t, `<message type="chat" to="bob@`+testDomain+`" id="b1"><body>to bob while down</body></message>`)
	ac.wait(t, "bob's bounce", func(st *Stanza) bool { return st.Type == "error" && st.ID == "b1" })
	ac.send(t, `<message type="chat" to="erin@`+testDomain+`" id="e1"><body>to erin while down</body></message>`)
	time.Sleep(time.Second)
	for _, st := range wire.all() {
		if strings.Contains(string(st.Raw), "while down") && strings.Contains(string(st.Raw), "<body>") {
			t.Errorf("LEAK (fail open): %s", st.Raw)
		}
	}
}

// TestFrontIncomingWhileDaemonDown: bob writes while alice's
// daemon session is down and her client is up: the envelope reaches the
// client's upstream (bare-JID routing), the front drops it, and nothing
// tells anyone.
func TestFrontIncomingWhileDaemonDown(t *testing.T) {
	srv, a, b := pair(t)
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.wait(t, "own presence", func(st *Stanza) bool { return st.Kind == "presence" })
	a.stop()
	<-a.done
	time.Sleep(300 * time.Millisecond)
	if err := b.SendChat(context.Background(), jid.MustParse("alice@"+testDomain), "while alice's daemon is down"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	routed := false
	for _, st := range wire.all() {
		if st.Name == "message" && st.From.Bare().String() == "bob@"+testDomain && strings.Contains(string(st.Raw), "urn:x-securejingle") {
			routed = true
		}
	}
	for len(ac.in) > 0 {
		ac.seen = append(ac.seen, <-ac.in)
	}
	got := false
	for _, st := range ac.seen {
		if st.Kind == "message" && (st.From.Bare().String() == "bob@"+testDomain || isAlertFrom("bob@"+testDomain)(st)) {
			got = true // the message, or a notice of it
		}
	}
	if routed && !got {
		t.Errorf("LOST: bob's encrypted message reached alice's client session upstream and was dropped; the client got nothing and nothing alerted")
	}
}

// TestFrontPlainJingleReachesClient: an unprotected Jingle call
// offer "from bob" (who runs securejingle; the server can write one with
// its own DTLS fingerprint) reaches alice's plain client, which the
// built-in default-refuse-unprotected-jingle refuses at the daemon's own
// session.
func TestFrontPlainJingleReachesClient(t *testing.T) {
	srv, a, _ := pair(t)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	alice, bob := "alice@"+testDomain, "bob@"+testDomain
	ac.wait(t, "own presence", func(st *Stanza) bool { return st.Kind == "presence" })
	offer := `<iq type="set" id="j1" from="` + bob + `/phone" to="` + alice + `/client"><jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s1" initiator="` + bob + `/phone">` +
		`<content creator="initiator" name="a"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="111" name="opus" clockrate="48000" channels="2"/></description>` +
		`<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="pwpwpwpwpwpwpwpwpwpwpw"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">AA:BB</fingerprint></transport></content></jingle></iq>`
	st, err := localxmpp.ParseStanza([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Inject(st); err != nil {
		t.Fatal(err)
	}
	propose, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + bob + `/phone" to="` + alice + `/client"><propose xmlns="urn:xmpp:jingle-message:0" id="jm1"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></propose></message>`))
	if err := srv.Inject(propose); err != nil {
		t.Fatal(err)
	}
	marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="` + alice + `/client"><body>marker</body></message>`))
	srv.Inject(marker)
	ac.wait(t, "the marker", chatWith("marker"))
	for len(ac.in) > 0 {
		ac.seen = append(ac.seen, <-ac.in)
	}
	for _, s := range ac.seen {
		if s.Kind == "iq" && s.ID == "j1" {
			t.Errorf("INJECTED: unprotected Jingle offer from securejingle contact reached the client (fingerprint chosen by the server)")
		}
		if s.Kind == "message" && s.Child("urn:xmpp:jingle-message:0", "propose") != nil {
			t.Errorf("INJECTED: unprotected JMI propose from securejingle contact reached the client")
		}
	}
}

// TestFrontStrangerHiddenKeys documents a limit (docs/protocol.md §22.8):
// erin, a stranger who runs securejingle with the default access control,
// publishes her bundles to her contacts only (access model "presence"), so
// her server answers alice's PEP lookup not-authorized, exactly as it does
// for an account with no such node: erin cannot be told from a plain
// stranger, and alice's chat goes to policy as cleartext to a stranger
// (the default flags it: an alert in the client). With the session down
// the same lookup bounces (TestFrontDaemonSessionDown).
func TestFrontStrangerHiddenKeys(t *testing.T) {
	srv, a, _ := pair(t)
	if err := srv.AddUser("erin", "erin-password"); err != nil {
		t.Fatal(err)
	}
	startGateway(t, srv, "erin@"+testDomain+"/box", "erin-password", gwOptions{})
	time.Sleep(500 * time.Millisecond)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<message type="chat" to="erin@`+testDomain+`" id="e1"><body>to erin while up</body></message>`)
	ac.wait(t, "the cleartext flag", isAlertFrom("erin@"+testDomain))
	_, err := a.DiscoverBundles(context.Background(), jid.MustParse("erin@"+testDomain))
	var iq *IQError
	if !errors.As(err, &iq) || iq.Condition() != "not-authorized" || !a.noKeysAnswer("erin@"+testDomain, err) {
		t.Errorf("lookup of a stranger's hidden keys: %v", err)
	}
}

// TestFrontHintForgery (expected to pass: checked sound): a
// cleartext message from a non-securejingle account carrying the front's
// hint, in the default or a prefixed namespace form, never reaches the
// client; the same message without it does.
func TestFrontHintForgery(t *testing.T) {
	srv, a, _ := pair(t)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.wait(t, "own presence", func(st *Stanza) bool { return st.Kind == "presence" })
	alice, carol := "alice@"+testDomain, "carol@"+testDomain
	for _, raw := range []string{
		`<message type="chat" from="` + carol + `/x" to="` + alice + `/client"><body>hint-default</body><protected xmlns="` + nsFront + `" trust="verified"/></message>`,
		`<message type="chat" from="` + carol + `/x" to="` + alice + `/client" xmlns:f="` + nsFront + `"><body>hint-prefixed</body><f:protected trust="verified"/></message>`,
		`<message type="chat" from="` + carol + `/x" to="` + alice + `/client"><body>hint-nested</body><x xmlns="urn:example"><protected xmlns="` + nsFront + `" trust="verified"/></x></message>`,
		`<message type="chat" from="` + carol + `/x" to="` + alice + `/client"><body>marker-plain</body></message>`,
	} {
		st, err := localxmpp.ParseStanza([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Inject(st); err != nil {
			t.Fatal(err)
		}
	}
	ac.wait(t, "the plain marker", chatWith("marker-plain"))
	for len(ac.in) > 0 {
		ac.seen = append(ac.seen, <-ac.in)
	}
	for _, st := range ac.seen {
		if strings.HasPrefix(body(st), "hint-") {
			t.Errorf("forged hint reached the client: %s", raw(st))
		}
	}
}

// TestFrontClearWhereNotProtected: what still goes in clear, and must:
// group chat to a room the client joined (and its occupants), bodyless
// metadata to a contact, and an error answer to a contact, stripped to
// its <error/>.
func TestFrontClearWhereNotProtected(t *testing.T) {
	srv, a, b := pair(t)
	wire := recordWire(srv)
	fa, fb := startFront(t, a), startFront(t, b)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	bc := fb.login(t, "bob@"+testDomain+"/client")
	bob, room := "bob@"+testDomain, "room@conference."+testDomain
	ac.send(t, `<presence to="`+room+`/alice"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	ac.send(t, `<message type="groupchat" to="`+room+`" id="g1"><body>room-text</body></message>`)
	ac.send(t, `<message type="chat" to="`+room+`/carol" id="g2"><body>room-private</body></message>`)
	ac.send(t, `<message type="chat" to="`+bob+`" id="c1"><composing xmlns="http://jabber.org/protocol/chatstates"/><origin-id xmlns="urn:xmpp:sid:0" id="o1"/></message>`)
	ac.send(t, `<message type="error" to="`+bob+`/phone" id="e1"><body>echoed-text</body><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`)
	// Left the room: group chat to it is a message to an account again.
	ac.send(t, `<presence type="unavailable" to="`+room+`/alice"/>`)
	ac.send(t, `<message type="groupchat" to="`+room+`" id="g3"><body>after-leaving</body></message>`)
	ac.wait(t, "the bounce after leaving", func(st *Stanza) bool { return st.Type == "error" && st.ID == "g3" })
	ac.send(t, `<message type="chat" to="`+bob+`" id="mk"><body>clear marker</body></message>`)
	bc.wait(t, "the marker", chatWith("clear marker"))
	got := map[string]bool{}
	for _, st := range wire.all() {
		r := string(st.Raw)
		for _, k := range []string{"room-text", "room-private", "composing", "echoed-text", "after-leaving"} {
			if strings.Contains(r, k) {
				got[k] = true
			}
		}
		if st.ID == "e1" && !strings.Contains(r, "service-unavailable") {
			t.Errorf("the error answer lost its error: %s", r)
		}
	}
	for _, k := range []string{"room-text", "room-private", "composing"} {
		if !got[k] {
			t.Errorf("%s did not reach the server", k)
		}
	}
	for _, k := range []string{"echoed-text", "after-leaving"} {
		if got[k] {
			t.Errorf("%s reached the server in clear", k)
		}
	}
}

// TestFrontArchiveAndCarbonsPass: what the wrappers rules must still let
// through: a result of the client's own archive query (from the own bare
// JID, its queryid) of cleartext from a plain contact, and a sent carbon
// of the own account; a result with another queryid or from another
// archive is dropped.
func TestFrontArchiveAndCarbonsPass(t *testing.T) {
	srv, a, _ := pair(t)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.wait(t, "own presence", func(st *Stanza) bool { return st.Kind == "presence" })
	alice, carol := "alice@"+testDomain, "carol@"+testDomain
	ac.send(t, `<iq type="set" id="mq"><query xmlns="urn:xmpp:mam:2" queryid="qq"/></iq>`)
	ac.wait(t, "the query's answer", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "mq" })
	result := func(from, qid, text string) string {
		return `<message from="` + from + `" to="` + alice + `/client"><result xmlns="urn:xmpp:mam:2" queryid="` + qid + `" id="r"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2026-12-07T10:00:00Z"/>` +
			`<message xmlns="jabber:client" type="chat" from="` + carol + `/x" to="` + alice + `"><body>` + text + `</body></message></forwarded></result></message>`
	}
	for _, raw := range []string{
		result(alice, "qq", "archive-ok"),
		result(alice, "other", "archive-bad-id"),
		result(carol, "qq", "archive-bad-from"),
		`<message from="` + alice + `" to="` + alice + `/client"><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">` +
			`<message xmlns="jabber:client" type="chat" from="` + alice + `/other" to="` + carol + `"><body>sent-ok</body></message></forwarded></sent></message>`,
		`<message type="chat" from="` + testDomain + `" to="` + alice + `/client"><body>marker</body></message>`,
	} {
		st, err := localxmpp.ParseStanza([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Inject(st); err != nil {
			t.Fatal(err)
		}
	}
	ac.wait(t, "the marker", chatWith("marker"))
	for len(ac.in) > 0 {
		ac.seen = append(ac.seen, <-ac.in)
	}
	got := map[string]bool{}
	for _, st := range ac.seen {
		for _, k := range []string{"archive-ok", "archive-bad-id", "archive-bad-from", "sent-ok"} {
			if strings.Contains(string(raw(st)), k) {
				got[k] = true
			}
		}
	}
	if !got["archive-ok"] || !got["sent-ok"] {
		t.Errorf("genuine archive result or sent carbon lost: %v", got)
	}
	if got["archive-bad-id"] || got["archive-bad-from"] {
		t.Errorf("a forged archive result reached the client: %v", got)
	}
}

// TestFrontCapsClientPriority: a client's positive presence priority goes
// upstream as 0, the gateway's own, so that messages to the bare JID still
// reach the gateway's session.
func TestFrontCapsClientPriority(t *testing.T) {
	srv, a, _ := pair(t)
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<presence id="pp"><priority>50</priority></presence>`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, st := range wire.all() {
			if st.Name == "presence" && st.ID == "pp" {
				if r := string(st.Raw); strings.Contains(r, ">50<") || !strings.Contains(r, ">0</priority>") {
					t.Errorf("priority not capped: %s", r)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the presence never reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFrontQueueReserve: with the server's stanzas filling a client's
// queue as far as they may (the writer stalled), the gateway's own
// stanzas (decrypted chat, alerts) still fit: no disconnect.
func TestFrontQueueReserve(t *testing.T) {
	c := &frontClient{f: &Front{log: testLogger()}, out: make(chan []byte, frontQueue), space: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		for {
			select {
			case <-c.done:
				return
			default:
			}
			c.forward([]byte("<message/>"))
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.out) < frontQueue-frontReserve {
		if time.Now().After(deadline) {
			t.Fatalf("the server's stanzas stopped at %d", len(c.out))
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // forward is waiting now (not a speed check)
	for range frontReserve / 2 {
		c.enqueue([]byte("<message><body>decrypted</body></message>"))
	}
	select {
	case <-c.done:
		t.Fatal("the client was disconnected")
	default:
	}
	if got := len(c.out); got != frontQueue-frontReserve+frontReserve/2 {
		t.Errorf("queue %d", got)
	}
	close(c.done)
}

// TestFrontReplyToAlertStaysLocal: a reply to the alert JID never goes
// upstream; the client is told where it went.
func TestFrontReplyToAlertStaysLocal(t *testing.T) {
	srv, a, _ := pair(t)
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<message type="chat" to="alice@`+testDomain+`/`+FrontAlertResource+`" id="r1"><body>reply-to-alert</body></message>`)
	ac.wait(t, "the notice", isAlertFrom("not sent anywhere"))
	for _, st := range wire.all() {
		if strings.Contains(string(st.Raw), "reply-to-alert") {
			t.Errorf("the reply reached the server: %s", st.Raw)
		}
	}
}

// TestFrontCloseEndsStreams: Front.Close ends each client's stream with
// system-shutdown, written by the client's writer (under -race: no
// second goroutine writes to the client meanwhile).
func TestFrontCloseEndsStreams(t *testing.T) {
	_, a, _ := pair(t)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.wait(t, "own presence", func(st *Stanza) bool { return st.Kind == "presence" })
	fa.f.Close()
	select {
	case err := <-ac.done:
		if err == nil || !strings.Contains(err.Error(), "system-shutdown") {
			t.Errorf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's stream did not end")
	}
}

// TestFrontUnusableKeysBounce: carol publishes a securejingle bundle node
// whose item does not verify: she runs (or claims) securejingle, so the
// client's chat to her is bounced, not sent in clear as to an account
// without it.
func TestFrontUnusableKeysBounce(t *testing.T) {
	srv, a, _ := pair(t)
	carol := carolOn(t, srv)
	carol.send(t, `<iq type="set" id="pub"><pubsub xmlns="`+nsPubSub+`"><publish node="`+nsBundlesNode+`"><item id="7"><bundle xmlns="`+e2e.NS+`">junk</bundle></item></publish>`+openPublishOptions+`</pubsub></iq>`)
	carol.wait(t, "the publish result", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "pub" && st.Type == "result" })
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<message type="chat" to="carol@`+testDomain+`" id="u1"><body>unusable-keys</body></message>`)
	b := ac.wait(t, "the bounce", func(st *Stanza) bool { return st.Type == "error" && st.ID == "u1" })
	if e := b.Child(nsClient, "error"); e == nil || !strings.Contains(string(e.Raw), "none of them can be encrypted to") {
		t.Errorf("bounce %+v", b.Children)
	}
	for _, st := range wire.all() {
		if strings.Contains(string(st.Raw), "unusable-keys") && st.Name == "message" && st.To.Bare().String() == "carol@"+testDomain {
			t.Errorf("sent in clear: %s", st.Raw)
		}
	}
}

const openPublishOptions = `<publish-options><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
	`<field var="pubsub#access_model"><value>open</value></field></x></publish-options>`
