package gateway

import (
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/policy"
)

// A XEP-0234 session-initiate offering a file over plain IBB (no
// security element), as a client library sends it.
const plainJingleOffer = `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="js1" initiator="alice@` + testDomain + `/client">` +
	`<content creator="initiator" name="f" senders="initiator"><description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file><name>notes.txt</name><size>5</size></file></description>` +
	`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096" sid="ibb1"/></content></jingle>`

// frontFileCases are the stanzas of plain transfers and upload links a
// client sends: each to an account of its own, so that each alert is its
// own (the notifier de-duplicates per peer and rule).
var frontFileCases = []struct {
	name, peer, stanza, text string
	alert                    bool
}{
	{"ibb-open", "ibb", `<iq type="set" id="ID" to="PEER/r"><open xmlns="http://jabber.org/protocol/ibb" block-size="4096" sid="s1" stanza="iq"/></iq>`, "in-band bytestream", true},
	{"ibb-data-iq", "ibbdata", `<iq type="set" id="ID" to="PEER/r"><data xmlns="http://jabber.org/protocol/ibb" seq="0" sid="s1">c2VjcmV0IGJ5dGVz</data></iq>`, "plain bytestream", false},
	{"ibb-data-message", "ibbmsg", `<message id="ID" to="PEER/r"><data xmlns="http://jabber.org/protocol/ibb" seq="0" sid="s1">c2VjcmV0IGJ5dGVz</data></message>`, "plain bytestream", false},
	{"socks5", "s5b", `<iq type="set" id="ID" to="PEER/r"><query xmlns="http://jabber.org/protocol/bytestreams" sid="s2" mode="tcp"><streamhost jid="alice@` + testDomain + `/client" host="127.0.0.1" port="5086"/></query></iq>`, "SOCKS5", true},
	{"si", "si", `<iq type="set" id="ID" to="PEER/r"><si xmlns="http://jabber.org/protocol/si" id="s3" profile="http://jabber.org/protocol/si/profile/file-transfer"><file xmlns="http://jabber.org/protocol/si/profile/file-transfer" name="notes.txt" size="5"/></si></iq>`, "stream initiation", true},
	{"jingle", "jingle", `<iq type="set" id="ID" to="PEER/r">` + plainJingleOffer + `</iq>`, "no securejingle key: plain in-band bytestream", true},
	{"upload-link", "upload", `<message type="chat" id="ID" to="PEER"><body>https://upload.example/abc/notes.txt</body><x xmlns="jabber:x:oob"><url>https://upload.example/abc/notes.txt</url></x></message>`, "stored in clear on upload.example", true},
	{"aesgcm-in-clear", "aesgcm", `<message type="chat" id="ID" to="PEER"><body>aesgcm://upload.example/abc/notes.txt#00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677</body></message>`, "key would go in clear", true},
}

func fileCase(s, peer, id string) string {
	return strings.NewReplacer("ID", id, "PEER", peer+"@"+testDomain).Replace(s)
}

// TestFrontFilesRefused: with the built-in rules, every plain transfer and
// upload link a local client sends to a contact is answered with a
// policy-violation error naming the cause and the fix, alerted in the
// client (for what starts a transfer), and nothing of it reaches the
// server.
func TestFrontFilesRefused(t *testing.T) {
	srv, a, _ := pair(t)
	wire := recordWire(srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	for _, tc := range frontFileCases {
		t.Run(tc.name, func(t *testing.T) {
			id := "f-" + tc.name
			ac.send(t, fileCase(tc.stanza, tc.peer, id))
			st := ac.wait(t, "the refusal", func(st *Stanza) bool { return st.ID == id && st.Type == "error" })
			e := st.Child(nsClient, "error")
			if e == nil || !strings.Contains(string(e.Raw), "policy-violation") || !strings.Contains(string(e.Raw), tc.text) ||
				!strings.Contains(string(e.Raw), "securejingle send") {
				t.Errorf("refusal %s", stanzaText(st))
			}
			if st.From.Bare().String() != tc.peer+"@"+testDomain {
				t.Errorf("refusal from %s, want the addressee", st.From)
			}
			if tc.alert {
				ac.wait(t, "the alert", isAlertFrom(tc.peer+"@"+testDomain))
			}
		})
	}
	// Nothing of them went upstream: a marker sent after them is on the
	// wire, and none of them before it.
	ac.send(t, `<message type="normal" to="`+testDomain+`" id="marker"><body>marker</body></message>`)
	deadline := time.After(15 * time.Second)
	for {
		select {
		case st := <-wire.ch:
			if strings.HasPrefix(st.ID, "f-") {
				t.Errorf("the server saw %s", st.Raw)
			}
			if st.ID == "marker" {
				return
			}
		case <-deadline:
			t.Fatal("the marker never reached the server")
		}
	}
}

// compilePolicy compiles a policy from rules in the config's TOML.
func compilePolicy(t *testing.T, rules string) *policy.Policy {
	t.Helper()
	cfg, err := policy.ParseConfig([]byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// allowPlainFiles is a policy that flags (allows with a warning) plain
// file transfers to carol.
func allowPlainFiles(t *testing.T) *policy.Policy {
	return compilePolicy(t, `
[[rule]]
name = "carol-plain-files"
kind = "file-transfer"
peer = "carol@`+testDomain+`"
protection = "cleartext"
action = "flag"
severity = "warning"
message = "Plain files to carol are allowed here."
`)
}

// TestFrontFilesAllowedByPolicy: when a rule allows (flags) plain files
// to a contact, the client's IBB open and upload link reach the contact
// unchanged, with the warning in the client.
func TestFrontFilesAllowedByPolicy(t *testing.T) {
	pol := allowPlainFiles(t)
	srv, a, _ := pairWith(t, func(g *Gateway) { g.policy = pol })
	carol := carolOn(t, srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	ac.send(t, `<iq type="set" id="open1" to="carol@`+testDomain+`/plain"><open xmlns="http://jabber.org/protocol/ibb" block-size="4096" sid="s1" stanza="iq"/></iq>`)
	carol.wait(t, "the IBB open", func(st *Stanza) bool {
		return st.ID == "open1" && st.Child("http://jabber.org/protocol/ibb", "open") != nil
	})
	ac.wait(t, "the warning", isAlertFrom("Plain files to carol are allowed here."))
	ac.send(t, `<message type="chat" id="link1" to="carol@`+testDomain+`"><body>https://upload.example/x</body><x xmlns="jabber:x:oob"><url>https://upload.example/x</url></x></message>`)
	got := carol.wait(t, "the link", chatWith("https://upload.example/x"))
	if got.Child(nsOOB, "x") == nil {
		t.Errorf("the link lost its OOB element: %s", stanzaText(got))
	}
}

// TestFrontFilesAESGCMLinkEncrypted: an aesgcm:// link to a contact with
// securejingle is flagged as client-side encrypted (e2e-unverified) and
// reaches the contact inside the engine's encryption: never in clear on
// the wire.
func TestFrontFilesAESGCMLinkEncrypted(t *testing.T) {
	srv, a, b := pair(t)
	wire := recordWire(srv)
	fa, fb := startFront(t, a), startFront(t, b)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	bc := fb.login(t, "bob@"+testDomain+"/client")
	const link = "aesgcm://upload.example/abc/photo.jpg#00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677"
	ac.send(t, `<message type="chat" id="g1" to="bob@`+testDomain+`"><body>`+link+`</body><x xmlns="jabber:x:oob"><url>`+link+`</url></x></message>`)
	bc.wait(t, "the link", chatWith(link))
	ac.wait(t, "the classification", isAlertFrom("unverified encrypted file transfer to bob@"+testDomain))
	for _, st := range wire.all() {
		if strings.Contains(string(st.Raw), "aesgcm://") {
			t.Errorf("the server saw the link: %s", st.Raw)
		}
	}
}

// TestFrontFilesIncomingRefused: a plain IBB open a contact sends to the
// client's resource (which the daemon's own session never sees) is
// refused as the daemon refuses its own: not-acceptable to the sender, an
// alert in the client, and the client never sees the offer.
func TestFrontFilesIncomingRefused(t *testing.T) {
	srv, a, _ := pair(t)
	carol := carolOn(t, srv)
	fa := startFront(t, a)
	ac := fa.login(t, "alice@"+testDomain+"/client")
	// The client's stanzas are read once its upstream session is bound:
	// a ping answered means carol can reach that resource.
	ac.send(t, `<iq type="get" id="ping1" to="`+testDomain+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	ac.wait(t, "the ping's answer", func(st *Stanza) bool { return st.ID == "ping1" })
	carol.send(t, `<iq type="set" id="in1" to="alice@`+testDomain+`/client"><open xmlns="http://jabber.org/protocol/ibb" block-size="4096" sid="s9" stanza="iq"/></iq>`)
	st := carol.wait(t, "the answer", func(st *Stanza) bool { return st.ID == "in1" })
	if st.Type != "error" || !strings.Contains(stanzaText(st), "not-acceptable") {
		t.Errorf("carol got %s %s", st.Type, stanzaText(st))
	}
	ac.wait(t, "the alert", isAlertFrom("carol@"+testDomain))
	marker, _ := localxmpp.ParseStanza([]byte(`<message type="chat" from="` + testDomain + `" to="alice@` + testDomain + `/client"><body>marker</body></message>`))
	if err := srv.Inject(marker); err != nil {
		t.Fatal(err)
	}
	ac.wait(t, "the marker", chatWith("marker"))
	for _, s := range ac.seen {
		if s.ID == "in1" {
			t.Errorf("the client saw the offer: %s", stanzaText(s))
		}
	}
}

// TestFileToGatewayModeContact: bob's local client ("bob/a", sorting
// before his daemon's "phone") advertises his daemon's device in its
// presence (§22.5); a file sent to bob's bare JID goes to the daemon's
// own resource, the one that answers for the device, not to the client.
func TestFileToGatewayModeContact(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	fb := startFront(t, b)
	fb.login(t, "bob@"+testDomain+"/a")
	deadline := time.Now().Add(15 * time.Second)
	for a.Contacts("bob@" + testDomain)["a"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("alice never saw bob's client with his device")
		}
		time.Sleep(10 * time.Millisecond)
	}
	src := writeFile(t, t.TempDir(), "notes.txt", []byte("hello"))
	out, err := a.SendFiles(testCtx(t), jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.PeerFull != "bob@"+testDomain+"/phone" {
		t.Errorf("the file went to %s, want bob's daemon bob@%s/phone", out.PeerFull, testDomain)
	}
	b.waitTransfer(t, out.ID, "pending offer", inState(TransferPending))
}
