package webapp_test

import (
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// TestPoCLogoutLeavesCallLive (review rvweb3): Log out ends the session
// but not a call it placed: the page says "This session is over" while
// its microphone and camera still reach the contact.
func TestPoCLogoutLeavesCallLive(t *testing.T) {
	env := webtest.New(t, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}})
	alice, bob := connectBrowserCall(t, env)
	waitMedia(t, bob)
	alice.Click(`#logout`)
	alice.Wait("logged out", `document.body.dataset.login === "out"`)
	time.Sleep(time.Second)
	before := statsOf(t, bob)
	time.Sleep(3 * time.Second)
	after := statsOf(t, bob)
	t.Logf("bob's inbound from alice after her logout: audio packets %d -> %d, video frames %d -> %d; alice's page: %q",
		before.Audio.Packets, after.Audio.Packets, before.Video.FramesDecoded, after.Video.FramesDecoded, alice.Text(".fatal"))
	if after.Audio.Packets > before.Audio.Packets+50 {
		t.Logf("VULNERABLE: alice's media still reaches bob after Log out")
	}
}
