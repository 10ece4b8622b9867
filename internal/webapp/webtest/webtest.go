// Package webtest runs the web app end to end for browser tests: daemons
// of alice and bob (internal/daemon/daemontest, on the embedded loopback
// XMPP server) with their web apps on 127.0.0.1, a headless Chromium
// (internal/browsertest), tabs logged in with one-time links, and
// screenshots saved under the test output folder.
//
// Like browsertest it skips unless SECUREJINGLE_INTEGRATION=1.
package webtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/integration"
)

// OutputEnv names the folder screenshots go to; without it they go to
// <os.TempDir()>/securejingle-test-output. Either way under webapp/.
const OutputEnv = "SECUREJINGLE_TEST_OUTPUT"

// HangGuard bounds every wait; it only stops a hung test.
const HangGuard = daemontest.HangGuard

// Viewport is the size of every tab, in CSS pixels.
var Viewport = struct{ Width, Height int64 }{1024, 800}

// Options adjust [New].
type Options struct {
	// Daemon are further options for both daemons (after daemontest's).
	Daemon []daemon.Option
	// AliceDaemon and BobDaemon are further options for one daemon only
	// (after Daemon), such as each its own daemon.WithCallNet on one
	// simulated network.
	AliceDaemon, BobDaemon []daemon.Option
	// Browser are extra Chromium flags (browsertest.Start).
	Browser map[string]any
	// NoIntroduce skips the chat exchange by which alice and bob pin each
	// other's account key (TOFU) with established sessions.
	NoIntroduce bool
	// Config is appended to both accounts' daemon configurations before
	// they start (TOML tables such as [alerts] or [files]).
	Config string
}

// An Env is a running test world. Its methods are for the test's own
// goroutine.
type Env struct {
	t       testing.TB
	XMPP    *daemontest.Env
	Alice   *User
	Bob     *User
	opts    Options
	browser *browsertest.Browser
}

// A User is one account's daemon with its web app.
type User struct {
	Name    string // "alice"
	JID     string // bare JID
	Account *daemontest.Account
	Daemon  *daemontest.Daemon
	Origin  string // http://127.0.0.1:port of the web app
}

// New starts the XMPP server, the daemons of alice and bob (connected,
// each knowing the other's device and, unless o.NoIntroduce, with
// sessions both ways) and, on first use, the browser.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if !integration.Required() {
		t.Skipf("browser test: set %s=1 (make check does) to run it against Debian's chromium", integration.Env)
	}
	e := &Env{t: t, XMPP: daemontest.New(t), opts: o}
	if o.Config != "" {
		e.XMPP.Alice.AppendConfig(t, o.Config)
		e.XMPP.Bob.AppendConfig(t, o.Config)
	}
	e.Alice = e.start(e.XMPP.Alice, o.AliceDaemon...)
	e.Bob = e.start(e.XMPP.Bob, o.BobDaemon...)
	daemontest.WaitPeerDevice(t, e.Alice.Daemon.Client, e.Bob.JID)
	daemontest.WaitPeerDevice(t, e.Bob.Daemon.Client, e.Alice.JID)
	if !o.NoIntroduce {
		e.Introduce(e.Alice, e.Bob)
	}
	return e
}

// Start runs the daemon of another account or device (for instance
// e.XMPP.OtherDevice(t, e.XMPP.Alice, "tablet")), waits until it is
// connected and returns it with its web app.
func (e *Env) Start(a *daemontest.Account) *User {
	e.t.Helper()
	return e.start(a)
}

// start runs a's daemon, with e's Daemon options and then more, and
// finds its web app.
func (e *Env) start(a *daemontest.Account, more ...daemon.Option) *User {
	e.t.Helper()
	d := daemontest.StartWith(e.t, a, append(append([]daemon.Option(nil), e.opts.Daemon...), more...)...)
	daemontest.WaitConnected(e.t, d.Client)
	u := &User{Name: a.Name, JID: a.JID, Account: a, Daemon: d}
	link := u.LoginURL(e.t)
	origin, _, ok := strings.Cut(link, "/#token=")
	if !ok {
		e.t.Fatalf("%s: login link %q", a.Name, link)
	}
	u.Origin = origin
	return u
}

// LoginURL asks u's daemon, over its Unix socket, for a one-time login
// link, as `securejingle ui` does.
func (u *User) LoginURL(t testing.TB) string {
	t.Helper()
	l, err := u.Daemon.Client.WebLogin(context.Background())
	if err != nil {
		t.Fatalf("%s: login link: %v", u.Name, err)
	}
	return l.URL
}

// Introduce makes a and b pin each other's account key with established
// sessions: a chat message each way and one more from a, each sent once
// the one before arrived.
func (e *Env) Introduce(a, b *User) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	defer cancel()
	streams := map[*User]*api.EventStream{}
	for _, u := range []*User{a, b} {
		s, err := u.Daemon.Client.Events(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		defer s.Close()
		streams[u] = s
	}
	for _, m := range []struct {
		from, to *User
		body     string
	}{{a, b, "hello " + b.Name}, {b, a, "hi " + a.Name}, {a, b, "confirmed"}} {
		if err := m.from.Daemon.Client.SendChat(ctx, m.to.JID, m.body); err != nil {
			e.t.Fatalf("%s -> %s: %v", m.from.Name, m.to.Name, err)
		}
		for {
			ev, err := streams[m.to].Next()
			if err != nil {
				e.t.Fatalf("%s waiting for %q: %v", m.to.Name, m.body, err)
			}
			if ev.Kind == "chat" && ev.Body == m.body {
				break
			}
		}
	}
	for _, p := range [][2]*User{{a, b}, {b, a}} {
		daemontest.Poll(e.t, p[0].Name+" holds an established session with "+p[1].Name, func() bool {
			v, err := p[0].Daemon.Client.Verify(ctx, p[1].JID)
			if err != nil {
				return false
			}
			for _, d := range v.Devices {
				if d.Established {
					return v.Trust == "tofu" || v.Trust == "verified"
				}
			}
			return false
		})
	}
}

// SetBrowserFlags sets extra Chromium flags for the browser, which must
// not have started yet (a file for the fake camera, made from a daemon's
// data, say).
func (e *Env) SetBrowserFlags(flags map[string]any) {
	e.t.Helper()
	if e.browser != nil {
		e.t.Fatal("webtest: the browser already runs")
	}
	e.opts.Browser = flags
}

// Browser returns the shared browser, started on first use with
// o.Browser flags.
func (e *Env) Browser() *browsertest.Browser {
	if e.browser == nil {
		e.browser = browsertest.Start(e.t, e.opts.Browser)
	}
	return e.browser
}

// A Tab is one browser tab, usually logged in to a user's web app.
type Tab struct {
	t    testing.TB
	Ctx  context.Context
	User *User
}

// NewTab opens a tab in the shared browser, not logged in.
func (e *Env) NewTab(u *User) *Tab {
	e.t.Helper()
	ctx := e.Browser().NewTab()
	tb := &Tab{t: e.t, Ctx: ctx, User: u}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(Viewport.Width, Viewport.Height)); err != nil {
		e.t.Fatalf("viewport: %v", err)
	}
	return tb
}

// Login opens a tab and logs it in to u's web app with a fresh link; it
// returns once the shell has its session.
func (e *Env) Login(u *User) *Tab {
	e.t.Helper()
	tb := e.NewTab(u)
	tb.Open(u.LoginURL(e.t))
	tb.Wait(u.Name+" logged in", `document.body.dataset.login === "ok"`)
	return tb
}

// SetViewport resizes the tab to width x height CSS pixels.
func (tb *Tab) SetViewport(width, height int64) {
	tb.t.Helper()
	if err := chromedp.Do(tb.Ctx, chromedp.EmulateViewport(width, height)); err != nil {
		tb.t.Fatalf("%s: viewport: %v", tb.name(), err)
	}
}

// Open navigates the tab to rawURL.
func (tb *Tab) Open(rawURL string) {
	tb.t.Helper()
	browsertest.Open(tb.t, tb.Ctx, rawURL)
}

// Go shows view with params (may be nil) in the logged-in app.
func (tb *Tab) Go(view string, params url.Values) {
	tb.t.Helper()
	h := "#/" + view
	if len(params) > 0 {
		h += "?" + params.Encode()
	}
	tb.Eval(fmt.Sprintf("location.hash = %s, true", jsString(h)))
	tb.Wait("view "+view, fmt.Sprintf(`!!document.querySelector("main > section.view-%s")`, view))
}

// Eval runs js in the tab (awaiting a promise) and returns its JSON
// value; the test fails on an exception.
func (tb *Tab) Eval(js string) json.RawMessage {
	tb.t.Helper()
	v, err := browsertest.Eval[json.RawMessage](tb.Ctx, js, HangGuard)
	if err != nil {
		tb.t.Fatalf("%s: eval %s: %v", tb.name(), js, err)
	}
	return v
}

// EvalString runs js and returns its string value.
func (tb *Tab) EvalString(js string) string {
	tb.t.Helper()
	var s string
	if err := json.Unmarshal(tb.Eval(js), &s); err != nil {
		tb.t.Fatalf("%s: %s is not a string: %v", tb.name(), js, err)
	}
	return s
}

// Wait evaluates the boolean expression js until it is true, failing the
// test after [HangGuard] with what and the page's text.
func (tb *Tab) Wait(what, js string) {
	tb.t.Helper()
	deadline := time.Now().Add(HangGuard)
	for {
		ok, err := browsertest.Eval[bool](tb.Ctx, "!!("+js+")", HangGuard)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := browsertest.Eval[string](tb.Ctx, "document.body ? document.body.innerText : ''", 5*time.Second)
			tb.t.Fatalf("%s: gave up waiting: %s (%s; last error %v)\npage:\n%s", tb.name(), what, js, err, text)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Click clicks the first element matching the CSS selector, once it is
// there and enabled.
func (tb *Tab) Click(selector string) {
	tb.t.Helper()
	sel := jsString(selector)
	tb.Wait("clickable "+selector, fmt.Sprintf("(e => e && !e.disabled)(document.querySelector(%s))", sel))
	tb.Eval(fmt.Sprintf("document.querySelector(%s).click(), true", sel))
}

// Text returns the text of the first element matching selector ("" for
// none).
func (tb *Tab) Text(selector string) string {
	tb.t.Helper()
	return tb.EvalString(fmt.Sprintf("(e => e ? e.textContent : '')(document.querySelector(%s))", jsString(selector)))
}

// Screenshot saves the whole page as <test>-<name>.png under
// [OutputDir] and returns the file.
func (tb *Tab) Screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, HangGuard)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name(), err)
	}
	dir := OutputDir(tb.t)
	file := filepath.Join(dir, safeName(tb.t.Name())+"-"+safeName(name)+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s", file)
	return file
}

func (tb *Tab) name() string {
	if tb.User == nil {
		return "tab"
	}
	return tb.User.Name + "'s tab"
}

// OutputDir returns (and creates) the folder of screenshots:
// $SECUREJINGLE_TEST_OUTPUT/webapp, or
// <os.TempDir()>/securejingle-test-output/webapp.
func OutputDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv(OutputEnv)
	if base == "" {
		base = filepath.Join(os.TempDir(), "securejingle-test-output")
	}
	dir := filepath.Join(base, "webapp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// safeName keeps letters, digits, '-' and '_' of s.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// JSString quotes s as a JavaScript string literal, for tests building
// expressions.
func JSString(s string) string { return jsString(s) }
