package webapp_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/webapp"
)

// TestBrowserOldTabImpostor (review rvweb5 F1): the daemon stops while
// a tab is open; another local user binds the port at once. The old tab
// does not reconnect to the impostor: it sends it no CSRF token and no
// body (GETs only, with the cookie of an ended session), and once it
// has seen the break (its next GET /api/session) no request at all, and
// says that the connection is lost.
func TestBrowserOldTabImpostor(t *testing.T) {
	b := browsertest.Start(t, nil)
	srv, err := webapp.New(webapp.Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler(), Account: "alice@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	link, _ := srv.LoginURL()
	tab := b.NewTab()
	browsertest.Open(t, tab, link)
	if _, err := browsertest.Eval[bool](tab, loggedInJS, 10*time.Second); err != nil {
		t.Fatalf("not logged in: %v", err)
	}
	port := srv.Addr().(*net.TCPAddr).Port
	srv.Close()
	got := make(chan string, 64)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s %s csrf=%q cookie=%v body=%s", r.Method, r.URL.Path, r.Header.Get("X-SecureJingle-CSRF"), r.Header.Get("Cookie") != "", body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/api/session"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"account":"impostor@evil","csrf":"x","leg_fingerprint":"sha-256 00","expires":"2030-01-01T00:00:00Z"}`)
		case strings.HasSuffix(r.URL.Path, "/api/v1/events"):
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"kind\":\"message\",\"from\":\"bob@example.org\",\"body\":\"from the impostor\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{}`)
		}
	})
	for _, a := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Logf("impostor listen %s: %v", a, err)
			continue
		}
		s := &http.Server{Handler: h}
		go s.Serve(l)
		t.Cleanup(func() { s.Close() })
	}
	// The user, in the old tab, sends a chat message.
	if _, err := browsertest.Eval[bool](tab, `new Promise(r => { const f = () => document.body.dataset.login === "lost" ? r(true) : setTimeout(f, 50); f(); })`, 15*time.Second); err != nil {
		state, _ := browsertest.Eval[string](tab, `document.body.dataset.login`, 0)
		t.Errorf("old tab login state after the swap: %q (%v), want lost", state, err)
	}
	check := func(s string) {
		t.Logf("impostor got: %s", s)
		if !strings.HasPrefix(s, "GET ") || !strings.Contains(s, `csrf=""`) || !strings.HasSuffix(s, "body=") {
			t.Errorf("the impostor got %s", s)
		}
	}
	for drained := false; !drained; {
		select {
		case s := <-got:
			check(s)
		default:
			drained = true
		}
	}
	res, err := browsertest.Eval[string](tab, `import('/api.js').then(m => m.default.post('/v1/messages', {to: 'bob@example.org', body: 'my secret plaintext'})).then(() => 'sent', e => 'err ' + e.message)`, 10*time.Second)
	if err != nil || !strings.HasPrefix(res, "err connection to the daemon lost") {
		t.Errorf("a post from the old tab: %q (%v), want refused by the page", res, err)
	}
	time.Sleep(4 * time.Second) // an EventSource would retry within 3 s
	for {
		select {
		case s := <-got:
			check(s)
			t.Errorf("a request reached the impostor after the page stopped: %s", s)
		default:
			return
		}
	}
}
