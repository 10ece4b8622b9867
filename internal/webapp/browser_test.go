package webapp_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/webapp"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// TestBrowserLogin: a link logs a tab in once; the same link again, a
// wrong token and no token at all each say what happened and what to do;
// the same link again also ends the session of its first use, whose tab
// says why.
func TestBrowserLogin(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	link := env.Alice.LoginURL(t)
	tab := env.NewTab(env.Alice)
	tab.Open(env.Alice.Origin + "/")
	tab.Wait("no session", `document.body.dataset.login === "none"`)
	if msg := tab.Text(".fatal"); !strings.Contains(msg, "Run `securejingle ui`") {
		t.Errorf("without a session the page shows %q", msg)
	}
	tab.Screenshot("not-logged-in")
	tab.Open(link)
	tab.Wait("logged in", `document.body.dataset.login === "ok"`)
	if got := tab.Text("#account"); got != env.Alice.JID {
		t.Errorf("account shown %q", got)
	}
	if h := tab.EvalString("location.hash"); strings.Contains(h, "token") {
		t.Errorf("the token stayed in the address bar: %q", h)
	}
	tab.Wait("contacts view", `!!document.querySelector("section.view-contacts [data-jid]")`)

	wrong := env.NewTab(env.Alice)
	wrong.Open(env.Alice.Origin + "/#token=" + strings.Repeat("A", 43))
	wrong.Wait("wrong token refused", `document.body.dataset.login === "failed"`)
	if msg := wrong.Text(".fatal"); !strings.Contains(msg, "not valid for this daemon") {
		t.Errorf("wrong token shows %q", msg)
	}
	// Another tab of the profile shares the session cookie.
	again := env.NewTab(env.Alice)
	again.Open(env.Alice.Origin + "/")
	again.Wait("session shared by the profile", `document.body.dataset.login === "ok"`)

	// Bob's app in the same browser: its own cookie, both stay logged in.
	bob := env.Login(env.Bob)
	if got := bob.Text("#account"); got != env.Bob.JID {
		t.Errorf("bob's tab shows %q", got)
	}
	tab.Go("devices", nil)
	tab.Wait("alice still logged in", `document.querySelector("section.view-devices")?.dataset.loaded >= 1`)

	// The link used a second time (review rvweb3 F5): refused, and the
	// session its first use opened is ended; that session's page says
	// why.
	replay := env.NewTab(env.Alice)
	replay.Open(link)
	replay.Wait("replay refused", `document.body.dataset.login === "failed"`)
	if msg := replay.Text(".fatal"); !strings.Contains(msg, "already used") || !strings.Contains(msg, "ended") {
		t.Errorf("replayed link shows %q", msg)
	}
	replay.Screenshot("replayed-link")
	tab.Wait("the first session told of the reuse", `document.body.dataset.login === "reused"`)
	if msg := tab.Text(".fatal"); !strings.Contains(msg, "someone else used the login link") {
		t.Errorf("the session of the first use shows %q", msg)
	}
	tab.Screenshot("link-reused")
}

// TestBrowserCrossSite: a page on another port of the app's host name
// (same site, so the SameSite=Strict cookie goes along: its owner learned
// the random name) cannot change anything: its
// requests carry its own Origin and no CSRF token. A name that resolves
// to 127.0.0.1 (DNS rebinding) is refused by the Host check.
func TestBrowserCrossSite(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true,
		Browser: map[string]any{"host-resolver-rules": "MAP rebind.test 127.0.0.1"}})
	app := env.Login(env.Alice)
	trustBefore := trustOf(t, env.Alice, env.Bob.JID)

	// Even a page that knew the session's base path (so that the cookie
	// goes along) is refused.
	base := app.EvalString(`localStorage.getItem("securejingle-base")`)
	target := env.Alice.Origin + base + "/api/v1/trust"
	body := `{"jid":"` + env.Bob.JID + `","action":"distrust"}`
	evil := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body>
<form id="f" method="POST" action="%s" enctype="text/plain"><input name='%s' value=''></form>
<form id="login" method="POST" action="%s/login" enctype="text/plain"><input name='{"token":"x","y":"' value='"}'></form>
</body></html>`, target, strings.TrimSuffix(body, "}")+`,"x":"`, env.Alice.Origin)
	}))
	appURL, err := url.Parse(env.Alice.Origin)
	if err != nil {
		t.Fatal(err)
	}
	evil = strings.Replace(evil, "127.0.0.1", appURL.Hostname(), 1)
	tab := env.NewTab(env.Alice)
	tab.Open(evil + "/")
	// fetch with the cookie (no-cors: the page cannot read the answer,
	// but the request is sent).
	tab.Eval(fmt.Sprintf(`fetch(%s, {method: "POST", mode: "no-cors", credentials: "include",
		headers: {"Content-Type": "text/plain"}, body: %s}).then(() => true, () => true)`, webtest.JSString(target), webtest.JSString(body)))
	// A cross-site form post navigates to the app's answer.
	tab.Eval(`document.getElementById("f").submit(), true`)
	tab.Wait("form answer", `location.href.endsWith("/api/v1/trust") && document.body && document.body.innerText.length > 0`)
	if text := tab.EvalString("document.body.innerText"); !strings.Contains(text, "refused: the request came from") {
		t.Errorf("cross-site form post answered %q", text)
	}
	tab.Screenshot("cross-site-post")
	if got := trustOf(t, env.Alice, env.Bob.JID); got != trustBefore {
		t.Fatalf("a cross-site request changed bob's trust from %s to %s", trustBefore, got)
	}
	tab.Open(evil + "/")
	tab.Eval(`document.getElementById("login").submit(), true`)
	tab.Wait("login answer", `location.href.endsWith("/login") && document.body && document.body.innerText.length > 0`)
	if text := tab.EvalString("document.body.innerText"); !strings.Contains(text, "refused: the request came from") {
		t.Errorf("cross-site login post answered %q", text)
	}

	// DNS rebinding: the page is reached under another name.
	u, _ := url.Parse(env.Alice.Origin)
	rebind := env.NewTab(env.Alice)
	rebind.Open("http://rebind.test:" + u.Port() + "/")
	rebind.Wait("rebinding answer", `document.body && document.body.innerText.length > 0`)
	if text := rebind.EvalString("document.body.innerText"); !strings.Contains(text, "does not answer for this host name") || strings.Contains(text, u.Host) {
		t.Errorf("rebound name answered %q", text)
	}
	rebind.Screenshot("wrong-host")
	if n := rebind.EvalString(`String(document.scripts.length)`); n != "0" {
		t.Errorf("the refused page has %s scripts", n)
	}
}

// trustOf returns the trust state of peer as u's daemon holds it.
func trustOf(t *testing.T, u *webtest.User, peer string) string {
	t.Helper()
	ps, err := u.Daemon.Client.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.JID == peer {
			return p.Trust
		}
	}
	return ""
}

// TestBrowserVerifySAS: both pages show the same SAS; each side marks the
// other verified and sees its shield change, in the verify view and in
// the contact list.
func TestBrowserVerifySAS(t *testing.T) {
	env := webtest.New(t, webtest.Options{})
	alice, bob := env.Login(env.Alice), env.Login(env.Bob)
	alice.Go("contacts", nil)
	bobCard := `document.querySelector('section.view-contacts li[data-jid="` + env.Bob.JID + `"] .shield')`
	alice.Wait("bob's card", bobCard)
	if got := alice.EvalString(bobCard + `.dataset.trust`); got != "tofu" {
		t.Fatalf("bob's shield before: %q", got)
	}
	alice.Screenshot("contacts")

	alice.Go("verify", url.Values{"jid": {env.Bob.JID}})
	bob.Go("verify", url.Values{"jid": {env.Alice.JID}})
	for _, tb := range []*webtest.Tab{alice, bob} {
		tb.Wait("SAS", `/\d/.test(document.getElementById("sas")?.textContent || "")`)
		tb.Wait("own QR code", `document.getElementById("own-qr")?.complete && document.getElementById("own-qr").naturalWidth > 0`)
	}
	sa, sb := alice.Text("#sas"), bob.Text("#sas")
	if sa == "" || sa != sb {
		t.Fatalf("SAS differ: alice %q, bob %q", sa, sb)
	}
	alice.Screenshot("verify")
	for _, tb := range []*webtest.Tab{alice, bob} {
		tb.Click("#mark-verified")
		tb.Wait("shield verified", `document.querySelector("section.view-verify h1 .shield")?.dataset.trust === "verified"`)
	}
	if got := trustOf(t, env.Alice, env.Bob.JID); got != "verified" {
		t.Errorf("alice's daemon holds bob as %s", got)
	}
	if got := trustOf(t, env.Bob, env.Alice.JID); got != "verified" {
		t.Errorf("bob's daemon holds alice as %s", got)
	}
	bob.Screenshot("verified")
	alice.Go("contacts", nil)
	alice.Wait("bob verified in the list", bobCard+`?.dataset.trust === "verified"`)
	if got := alice.Text(`li[data-jid="` + env.Bob.JID + `"] .shield`); !strings.Contains(got, "verified (sas)") {
		t.Errorf("bob's shield reads %q", got)
	}

	alice.Go("devices", nil)
	alice.Wait("own devices", `document.querySelector("section.view-devices tr[data-device]")`)
	if got := alice.Text("section.view-devices tbody"); !strings.Contains(got, "(this device)") {
		t.Errorf("devices view: %q", got)
	}
	alice.Screenshot("devices")

	// Readable at 400 px: no view scrolls sideways.
	alice.SetViewport(400, 800)
	for _, v := range []struct {
		view   string
		params url.Values
		ready  string
	}{
		{"contacts", nil, `document.querySelector("section.view-contacts [data-jid]")`},
		{"verify", url.Values{"jid": {env.Bob.JID}}, `document.getElementById("own-qr")?.complete`},
		{"devices", nil, `document.querySelector("section.view-devices tr[data-device]")`},
	} {
		alice.Go(v.view, v.params)
		alice.Wait(v.view+" drawn", v.ready)
		if w := alice.EvalString(`String(document.documentElement.scrollWidth)`); w != "400" {
			t.Errorf("%s at 400 px is %s px wide", v.view, w)
		}
		alice.Screenshot(v.view + "-400px")
	}
}

// TestBrowserVerifyQR: alice's camera (Chromium's fake capture, fed a y4m
// of bob's QR code) scans bob's code; the page verifies bob by it.
func TestBrowserVerifyQR(t *testing.T) {
	// The daemons first, then the video of bob's code, then the browser.
	env := webtest.New(t, webtest.Options{})
	v, err := env.Bob.Daemon.Client.Verify(context.Background(), env.Bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	y4m := filepath.Join(t.TempDir(), "bob-qr.y4m")
	writeQRVideo(t, y4m, v.QR)
	env.SetBrowserFlags(map[string]any{"use-file-for-fake-video-capture": y4m})
	alice := env.Login(env.Alice)
	alice.Go("verify", url.Values{"jid": {env.Bob.JID}})
	alice.Wait("verify page", `document.getElementById("scan-qr")`)
	alice.Click("#scan-qr")
	alice.Wait("shield verified", `document.querySelector("section.view-verify h1 .shield")?.dataset.trust === "verified"`)
	if got := alice.Text(".result"); !strings.Contains(got, "verified (qr)") {
		t.Errorf("result %q", got)
	}
	if alice.EvalString(`String(!!document.querySelector("video"))`) != "false" {
		t.Error("the camera is still on after the scan")
	}
	alice.Screenshot("verified-by-qr")
	ps, err := env.Alice.Daemon.Client.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.JID == env.Bob.JID && (p.Trust != "verified" || p.Method != "qr") {
			t.Errorf("alice holds bob as %s by %s", p.Trust, p.Method)
		}
	}
}

// writeQRVideo writes a short YUV4MPEG2 video of payload's QR code, black
// on white, for --use-file-for-fake-video-capture.
func writeQRVideo(t *testing.T, file, payload string) {
	t.Helper()
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	bm := q.Bitmap() // with quiet zone; true = dark
	const w, h, frames = 640, 480, 4
	scale := (h - 40) / len(bm)
	x0, y0 := (w-scale*len(bm))/2, (h-scale*len(bm))/2
	y := make([]byte, w*h)
	for i := range y {
		y[i] = 235
	}
	for r := range bm {
		for c := range bm[r] {
			if !bm[r][c] {
				continue
			}
			for dy := range scale {
				for dx := range scale {
					y[(y0+r*scale+dy)*w+x0+c*scale+dx] = 16
				}
			}
		}
	}
	chroma := make([]byte, w*h/2)
	for i := range chroma {
		chroma[i] = 128
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	fmt.Fprintf(bw, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", w, h)
	for range frames {
		bw.WriteString("FRAME\n")
		bw.Write(y)
		bw.Write(chroma)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserHostileResource: a device of bob's account whose resource
// is HTML and script shows as text; it is not on bob's device list, so
// alice's contact list warns about it. The screenshot of that list is
// docs/img/contacts-warning.png.
func TestBrowserHostileResource(t *testing.T) {
	env := webtest.New(t, webtest.Options{})
	// Short: the resource names the tablet's socket directory.
	const hostile = `<b>x</b><img src=x onerror=pwned=1>`
	tablet := daemontest.Start(t, env.XMPP.OtherDevice(t, env.XMPP.Bob, hostile))
	daemontest.WaitConnected(t, tablet.Client)
	alice := env.Login(env.Alice)
	alice.Go("contacts", nil)
	alice.Wait("the hostile resource listed", `(document.querySelector('li[data-jid="`+env.Bob.JID+`"]')?.textContent || "").includes("<img")`)
	if got := alice.Text(`li[data-jid="` + env.Bob.JID + `"] dl`); !strings.Contains(got, hostile) {
		t.Errorf("resource shown as %q", got)
	}
	if n := alice.EvalString(`String(document.querySelectorAll("main img, main script, main b").length)`); n != "0" {
		t.Errorf("%s elements made from the resource", n)
	}
	if p := alice.EvalString(`String(window.pwned)`); p != "undefined" {
		t.Errorf("script ran: window.pwned = %s", p)
	}
	alice.Wait("uncertified device warning", `document.querySelector('section.view-contacts [data-warning="uncertified"]')`)
	shot := alice.Screenshot("contacts-warning")
	if os.Getenv("SECUREJINGLE_UPDATE_SCREENSHOTS") == "1" {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "contacts-warning.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Other views show the warning as a banner too.
	alice.Go("devices", nil)
	alice.Wait("banner above the devices view", `document.querySelector('#banners [data-warning="uncertified"]')`)
}

// TestBrowserDevices: a second device of alice's account is not on her
// device list; its own page says so and adds it; her first device's page
// then lists it and removes it again, in two steps.
func TestBrowserDevices(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	tablet := env.Start(env.XMPP.OtherDevice(t, env.XMPP.Alice, "tablet"))
	tt := env.Login(tablet)
	tt.Go("devices", nil)
	tt.Wait("not certified", `document.querySelector('[data-warning="this-uncertified"]')`)
	tt.Screenshot("uncertified")
	tt.Click("#add-device")
	tt.Wait("certified", `!document.querySelector('[data-warning="this-uncertified"]') && document.querySelectorAll("section.view-devices tr[data-device]").length === 2`)
	st, err := tablet.Daemon.Client.Status(context.Background())
	if err != nil || !st.Certified {
		t.Fatalf("tablet after add: %+v %v", st, err)
	}

	laptop := env.Login(env.Alice)
	laptop.Go("devices", nil)
	row := fmt.Sprintf(`document.querySelector('section.view-devices tr[data-device="%d"]')`, st.Device)
	laptop.Wait("tablet listed", row)
	button := fmt.Sprintf(`section.view-devices button[data-remove="%d"]`, st.Device)
	laptop.Click(button)
	if got := laptop.Text(button); !strings.Contains(got, "Really remove device") {
		t.Fatalf("first click: %q", got)
	}
	if info, _ := env.Alice.Daemon.Client.Devices(context.Background()); len(info.Devices) != 2 {
		t.Fatalf("one click removed the device: %+v", info)
	}
	laptop.Click(button)
	laptop.Wait("tablet removed", "!"+row)
	info, err := env.Alice.Daemon.Client.Devices(context.Background())
	if err != nil || len(info.Devices) != 1 {
		t.Fatalf("after remove: %+v %v", info, err)
	}
	laptop.Screenshot("removed")
}

// TestBrowserCookieStaysHome: browsers send a host's cookies to every
// port of it, so a server of another local user on another loopback
// port would receive the session cookie whenever the user's browser
// loads one of its pages, and could read the API (GET /api/session
// gives the CSRF token too) and act as the user. The cookie's path is a
// secret of the session: no page of another port gets it, whatever
// path it asks for.
func TestBrowserCookieStaysHome(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	app := env.Login(env.Alice)
	app.Go("devices", nil)
	app.Wait("devices view", `document.querySelector("section.view-devices")?.dataset.loaded >= 1`)

	var mu sync.Mutex
	var got []string
	evil := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+": "+r.Header.Get("Cookie"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><body>evil</body></html>`)
	}))
	tab := env.NewTab(env.Alice)
	tab.Open(evil + "/")
	// The paths the app uses, as the other server would guess them.
	for _, p := range []string{"/api/v1/peers", "/api/session", "/logout", "/s/", "/x"} {
		tab.Eval(fmt.Sprintf(`fetch(%s, {credentials: "include"}).then(() => true, () => true)`, webtest.JSString(evil+p)))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 6 {
		t.Fatalf("the other server saw %d requests: %q", len(got), got)
	}
	for _, g := range got {
		if strings.Contains(g, webapp.CookiePrefix) {
			t.Errorf("a server on another port got the session cookie: %s", g)
		}
	}
}

// TestBrowserTrustedTypes: on the app's page the browser refuses a
// string given to an HTML sink (Trusted Types with no policy), so a
// mistake in the page that would inject markup throws instead.
func TestBrowserTrustedTypes(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	tab := env.Login(env.Alice)
	got := tab.EvalString(`(() => {
		const d = document.createElement("div");
		try { d.innerHTML = "<img src=x>"; } catch (e) { return "refused: " + e.name; }
		return "taken: " + d.childElementCount;
	})()`)
	if !strings.HasPrefix(got, "refused: TypeError") {
		t.Errorf("innerHTML with a string on the app's page: %s", got)
	}
	if got := tab.EvalString(`(() => { try { document.write("<b>x</b>"); } catch (e) { return "refused"; } return "taken"; })()`); got != "refused" {
		t.Errorf("document.write on the app's page: %s", got)
	}
}

// TestBrowserLogout: the page's Log out ends its session on the daemon:
// the session's API answers 401 from then on, even to a request that
// brings the old cookie and base, and the page says how to log in again.
func TestBrowserLogout(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	tab := env.Login(env.Alice)
	base := tab.EvalString(`localStorage.getItem("securejingle-base")`)
	session := webtest.JSString(base + "/api/session")
	if got := tab.EvalString(`fetch(` + session + `).then(r => String(r.status))`); got != "200" {
		t.Fatalf("session before logout: %s", got)
	}
	tab.Click("#logout")
	tab.Wait("logged out", `document.body.dataset.login === "out"`)
	if msg := tab.Text(".fatal"); !strings.Contains(msg, "securejingle ui") {
		t.Errorf("after logout the page shows %q", msg)
	}
	if got := tab.EvalString(`fetch(` + session + `).then(r => String(r.status))`); got != "401" {
		t.Errorf("the session's API after logout: %s, want 401", got)
	}
	if got := tab.EvalString(`String(localStorage.getItem("securejingle-base"))`); got != "null" {
		t.Errorf("the base is still kept: %s", got)
	}
	again := env.NewTab(env.Alice)
	again.Open(env.Alice.Origin + "/")
	again.Wait("no session in a new tab", `document.body.dataset.login === "none"`)
}

// TestBrowserSessionEndedElsewhere: a session that ends while its page
// only listens (logged out from another tab of it, retired, expired)
// ends the page's event stream, and the page says the session ended
// instead of retrying forever.
func TestBrowserSessionEndedElsewhere(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	tab := env.Login(env.Alice)
	base := tab.EvalString(`localStorage.getItem("securejingle-base")`)
	other := env.NewTab(env.Alice)
	other.Open(env.Alice.Origin + "/")
	other.Wait("the same session in another tab", `document.body.dataset.login === "ok"`)
	// The other tab ends the session behind the first one's back.
	csrf := other.EvalString(`fetch(` + webtest.JSString(base+"/api/session") + `).then(r => r.json()).then(s => s.csrf)`)
	if got := other.EvalString(`fetch(` + webtest.JSString(base+"/logout") + `, {method: "POST", headers: {"X-SecureJingle-CSRF": ` +
		webtest.JSString(csrf) + `}}).then(r => String(r.status))`); got != "204" {
		t.Fatalf("logout: %s", got)
	}
	tab.Wait("the page sees its session ended", `document.body.dataset.login === "ended"`)
}
