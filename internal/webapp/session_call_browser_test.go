package webapp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// waitCallEnded waits until u's daemon lists every call as ended and
// returns them; the test fails if one is still live after HangGuard.
func waitCallEnded(t *testing.T, u *webtest.User) []api.CallInfo {
	t.Helper()
	deadline := time.Now().Add(webtest.HangGuard)
	for {
		cs, err := u.Daemon.Client.Calls(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, c := range cs {
			if c.State != api.CallEnded {
				live++
			}
		}
		if len(cs) > 0 && live == 0 {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: calls %+v: want every call ended once the web session that holds it ended", u.Name, cs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserLogoutEndsCall (review rvweb3 F2): Log out during a call
// hangs the call up: both daemons list it as ended, bob's page says so,
// and alice's page closed its peer connection (camera and
// microphone released).
func TestBrowserLogoutEndsCall(t *testing.T) {
	env := webtest.New(t, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}})
	alice, bob := connectBrowserCall(t, env)
	waitMedia(t, bob)
	alice.Click(`#logout`)
	alice.Wait("logged out", `document.body.dataset.login === "out"`)
	waitCallEnded(t, env.Alice)
	waitCallEnded(t, env.Bob)
	bob.Wait("call ended on bob's page", `(p => p && p.dataset.state === "ended")(document.querySelector(".call"))`)
	if s := statsOf(t, alice); s.Connection != "" && s.Connection != "closed" {
		t.Errorf("alice's page still has a peer connection (%q) after Log out", s.Connection)
	}
}

// TestBrowserSessionEndHangsUpCall (review rvweb3 F2): the daemon is the
// authority: when a web session ends (here by a POST /logout that does
// not hang up first, from a page that ignores the end of its session),
// the daemon hangs up the calls the session placed or answered, with a
// detail that says why.
func TestBrowserSessionEndHangsUpCall(t *testing.T) {
	env := webtest.New(t, webtest.Options{Daemon: []daemon.Option{daemon.WithCallLoopback()}})
	alice, bob := connectBrowserCall(t, env)
	waitMedia(t, bob)
	// The page neither hears of the end of its session nor hangs up.
	alice.Eval(`window.addEventListener("sj-logged-out", (e) => e.stopImmediatePropagation(), true), true`)
	alice.Eval(`(async () => {
  const base = localStorage.getItem("securejingle-base");
  const s = await (await fetch(base + "/api/session")).json();
  const r = await fetch(base + "/logout", { method: "POST", headers: { "X-SecureJingle-CSRF": s.csrf } });
  if (r.status !== 204) throw new Error("logout: " + r.status);
  return true;
})()`)
	cs := waitCallEnded(t, env.Alice)
	if d := cs[len(cs)-1].Detail; !strings.Contains(d, "session") {
		t.Errorf("alice's call ended with detail %q: want the end of the web session named", d)
	}
	waitCallEnded(t, env.Bob)
	bob.Wait("call ended on bob's page", `(p => p && p.dataset.state === "ended")(document.querySelector(".call"))`)
}
