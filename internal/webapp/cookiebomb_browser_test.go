package webapp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/browsertest"
	"github.com/securejingle/securejingle/internal/webapp"
	"github.com/securejingle/securejingle/internal/webapp/webtest"
)

// cookieBombJS sets n large cookies (4000 bytes each) for the page's
// host, every path, a year long, and returns the length of
// document.cookie.
const cookieBombJS = `((n) => {
  for (let i = 0; i < n; i++) document.cookie = "b" + i + "=" + "x".repeat(4000) + "; path=/; max-age=31536000";
  return document.cookie.length;
})(%d)`

// TestBrowserCookieBomb (reviews rvweb3 F3, rvweb5 F2): a page on
// another port of the app's host name sets large cookies for the host
// (cookies are not isolated by port); every later request of the browser
// to the app carries them. Cookies up to most of MaxHeaderBytes do not
// keep the user out. The residual, as docs/api.md says: as many as the
// browser keeps (Chromium: 180 of 4 KiB) make the app answer 431 until
// the host's cookies are cleared; such a page needs the random host name
// of this start (TestWrongHostDoesNotNameOrigin).
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
	const some = 12 // 48 KB: under MaxHeaderBytes with the rest of a request's header
	var n int
	if err := json.Unmarshal(tab.Eval(fmt.Sprintf(cookieBombJS, some)), &n); err != nil {
		t.Fatal(err)
	}
	if n < some*4000 || n >= webapp.MaxHeaderBytes-8<<10 {
		t.Fatalf("the browser kept %d bytes of cookies: want %d", n, some*4000)
	}
	alice := env.Login(env.Alice)
	alice.Go("contacts", nil)

	// The residual: a full bomb keeps the user out.
	if err := json.Unmarshal(tab.Eval(fmt.Sprintf(cookieBombJS, 180)), &n); err != nil {
		t.Fatal(err)
	}
	if n < 2*webapp.MaxHeaderBytes {
		t.Fatalf("the browser kept %d bytes of cookies: want a bomb well past %d", n, webapp.MaxHeaderBytes)
	}
	t.Logf("cookies the browser sends with every request to the host: %d bytes", n)
	if got := alice.EvalString(`fetch("/").then(r => String(r.status))`); got != "431" {
		t.Errorf("the app answered the bombed browser %s: want 431 (the documented residual)", got)
	}
}
