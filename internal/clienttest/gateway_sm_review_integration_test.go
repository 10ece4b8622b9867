package clienttest_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

// TestReviewGatewaySMStreamChild (security review h/rvsm): a contact
// (carol, any account that can send alice a message) sends two plain
// messages, the second with an empty <stream xmlns='urn:x:evil'/> child,
// which Prosody relays unchanged and the gateway forwards to alice's
// local client. The front's written-side tag tracker takes the nested
// <stream> for a stream header and stops counting; its <r/> is then
// answered by slixmpp with the true count, which the front judges
// handled-count-too-high: alice's stream is ended. It should go on.
func TestReviewGatewaySMStreamChild(t *testing.T) {
	srv := prosodytest.Start(t)
	env := daemontest.NewProsody(t, srv)
	srv.AddUser(t, "carol", "carol-pw")
	alice, _ := startGatewayDaemon(t, env.Alice)
	a := clienttest.StartSlixmppSM(t, alice)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	carol := prosodytest.Dial(t, ctx, srv, "carol", "carol-pw", "raw")
	for _, m := range []string{
		"<message type='chat' to='" + env.Alice.JID + "'><body>first</body></message>",
		"<message type='chat' to='" + env.Alice.JID + "'><body>second</body><stream xmlns='urn:x:evil'/></message>",
	} {
		if err := carol.Send(ctx, xml.NewDecoder(strings.NewReader(m))); err != nil {
			t.Fatal(err)
		}
	}
	a.WaitMessage(func(m clienttest.Message) bool { return m.Body == "second" })
	// The front asks 500 ms after the stanzas it wrote; slixmpp answers.
	a.WaitSMAnswer(2)
	time.Sleep(time.Second)
	a.Send("carol@"+srv.Domain(), "still managed", "sm-after")
	a.RequestAck()
	a.WaitAcked("sm-after")
}
