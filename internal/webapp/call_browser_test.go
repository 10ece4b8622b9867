package webapp_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// callStats is what views/call.js callStats() reads from getStats().
type callStats struct {
	Audio struct {
		Packets int64 `json:"packets"`
		Samples int64 `json:"samples"`
	} `json:"audio"`
	Video struct {
		Packets       int64 `json:"packets"`
		FramesDecoded int64 `json:"framesDecoded"`
	} `json:"video"`
	RTT        *float64 `json:"rtt"`
	SRTPCipher string   `json:"srtpCipher"`
	Connection string   `json:"connection"`
}

func statsOf(t testing.TB, tab *webtest.Tab) callStats {
	t.Helper()
	var s callStats
	if err := json.Unmarshal(tab.Eval(`import("/views/call.js").then(m => m.callStats())`), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitMedia waits until the tab's getStats() shows audio and video
// frames decoded from the other browser.
func waitMedia(t testing.TB, tab *webtest.Tab) callStats {
	t.Helper()
	deadline := time.Now().Add(webtest.HangGuard)
	for {
		s := statsOf(t, tab)
		if s.Audio.Packets > 100 && s.Audio.Samples > 0 && s.Video.FramesDecoded > 30 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: getStats shows %+v: want inbound audio and decoded video frames", tab.User.Name, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserCall: alice calls bob from her page (Chromium's fake
// camera and microphone); bob's page rings, he accepts; each page's
// getStats() shows audio and video frames decoded that crossed
// browser → daemon → daemon → browser; both views show the identity,
// the binding check and both legs' SRTP; mute and camera switch the
// tracks and show on bob's side; alice hangs up and both views say the call ended.
func TestBrowserCall(t *testing.T) {
	env := webtest.New(t, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}})
	alice, bob := connectBrowserCall(t, env)
	for _, tab := range []*webtest.Tab{alice, bob} {
		s := waitMedia(t, tab)
		rtt := -1.0
		if s.RTT != nil {
			rtt = *s.RTT
		}
		t.Logf("%s: %d audio packets, %d video frames decoded, local leg RTT %.4f s, %s", tab.User.Name, s.Audio.Packets, s.Video.FramesDecoded, rtt, s.SRTPCipher)
		if s.SRTPCipher == "" {
			t.Errorf("%s: no SRTP cipher in getStats", tab.User.Name)
		}
		if srtp := tab.Text(".call [data-field=srtp]"); !strings.HasPrefix(srtp, "SRTP_") {
			t.Errorf("%s: SRTP to the contact %q", tab.User.Name, srtp)
		}
	}
	alice.Wait("relayed packets counted", `!document.querySelector(".call [data-field=relayed]").textContent.startsWith("0 ")`)
	alice.Screenshot("call")
	// Readable at 400 px, the ringer too: nothing scrolls sideways.
	bob.SetViewport(400, 800)
	if w := bob.EvalString(`String(document.documentElement.scrollWidth)`); w != "400" {
		t.Errorf("the call view at 400 px is %s px wide", w)
	}
	bob.Screenshot("call-400px")
	alice.Eval(`document.querySelector(".ring") === null`)

	// Mute and camera off switch the tracks; again switches them back.
	alice.Click(`.call [data-action="mute"]`)
	alice.Click(`.call [data-action="video"]`)
	alice.Wait("muted", `document.querySelector('.call [data-action="mute"]').getAttribute("aria-pressed") === "true"`)
	bob.Wait("alice's mute shown", `(e => e && e.textContent.includes("microphone and camera"))(document.querySelector(".call [data-field=peer-muted]"))`)
	alice.Click(`.call [data-action="mute"]`)
	alice.Click(`.call [data-action="video"]`)
	bob.Wait("alice's unmute shown", `document.querySelector(".call [data-field=peer-muted]") === null`)

	alice.Click(`.call [data-action="hangup"]`)
	for _, tab := range []*webtest.Tab{alice, bob} {
		tab.Wait("ended", `(p => p && p.dataset.state === "ended")(document.querySelector(".call"))`)
		if got := tab.Text(".call"); !strings.Contains(got, "Call ended (success)") {
			t.Errorf("%s: %q", tab.User.Name, got)
		}
	}
}

// TestBrowserCallDeclined: bob declines from the ringer; alice's view
// says so.
func TestBrowserCallDeclined(t *testing.T) {
	env := webtest.New(t, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}})
	alice, bob := env.Login(env.Alice), env.Login(env.Bob)
	alice.Go("call", url.Values{"jid": {env.Bob.JID}})
	alice.Click(`section.view-call [data-jid] [data-action="call-audio"]`)
	bob.Click(`.ring [data-action="decline"]`)
	alice.Wait("declined", `(p => p && p.dataset.state === "ended" && p.textContent.includes("decline"))(document.querySelector(".call"))`)
	bob.Wait("the ringer is gone", `document.querySelector(".ring") === null`)
}

// TestBrowserCallPinned: an answer whose DTLS fingerprint is not the
// session's pinned one is refused by the page (checkPinned), which says
// why.
func TestBrowserCallPinned(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	tab := env.Login(env.Alice)
	pinned := tab.EvalString(`fetch(localStorage.getItem("securejingle-base") + "/api/session").then(r => r.json()).then(s => s.leg_fingerprint)`)
	if !strings.HasPrefix(pinned, "sha-256 ") {
		t.Fatalf("leg_fingerprint %q", pinned)
	}
	other := "sha-256 " + strings.Repeat("AB:", 31) + "AB"
	got := tab.EvalString(`import("/views/call.js").then(m => {
		try { m.checkPinned("v=0\r\na=fingerprint:` + other + `\r\n", ` + webtest.JSString(pinned) + `); return "accepted"; }
		catch (e) { return e.message; } })`)
	if !strings.Contains(got, "another DTLS certificate") {
		t.Errorf("a foreign fingerprint: %q", got)
	}
	ok := tab.EvalString(`import("/views/call.js").then(m => {
		try { m.checkPinned("v=0\r\na=fingerprint:` + strings.ToLower(pinned) + `\r\n", ` + webtest.JSString(pinned) + `); return "accepted"; }
		catch (e) { return e.message; } })`)
	if ok != "accepted" {
		t.Errorf("the pinned fingerprint: %q", ok)
	}
}
