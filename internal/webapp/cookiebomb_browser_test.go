package webapp_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// cookieBombJS sets as many large cookies for the page's host as
// Chromium keeps (180 of 4 KiB), every path, a year long, and returns the
// length of document.cookie.
const cookieBombJS = `(() => {
  for (let i = 0; i < 180; i++) document.cookie = "b" + i + "=" + "x".repeat(4000) + "; path=/; max-age=31536000";
  return document.cookie.length;
})()`

// TestBrowserCookieBomb (review rvweb3 F3): a page on another port of
// the app's host name sets as many large cookies as the browser keeps for the
// host (cookies are not isolated by port); every later request of the
// browser to the app carries them. The app still loads and logs in.
func TestBrowserCookieBomb(t *testing.T) {
	env := webtest.New(t, webtest.Options{NoIntroduce: true})
	evil := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>evil</title>`))
	}))
	tab := env.NewTab(env.Alice)
	// The app is on a random name under .localhost (Chromium refuses
	// Domain=localhost cookies from other names there): the page is on
	// another port of that same name, as if its owner learned it.
	app, err := url.Parse(env.Alice.Origin)
	if err != nil {
		t.Fatal(err)
	}
	tab.Open(strings.Replace(evil, "127.0.0.1", app.Hostname(), 1) + "/")
	var n int
	if err := json.Unmarshal(tab.Eval(cookieBombJS), &n); err != nil {
		t.Fatal(err)
	}
	if n < 64<<10 {
		t.Fatalf("the browser kept %d bytes of cookies: want a bomb well past the old 16 KiB bound", n)
	}
	t.Logf("cookies the browser sends with every request to the host: %d bytes", n)
	alice := env.Login(env.Alice)
	alice.Go("contacts", nil)
}
