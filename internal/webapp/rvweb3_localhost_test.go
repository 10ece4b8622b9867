package webapp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/browsertest"
)

// TestPoCRandomLocalhostOrigin (review rvweb3, the suggested fix): a
// random label under .localhost reaches the loopback server without DNS
// and is a secure context (camera, microphone, WebRTC), so the app's
// origin can be unpredictable per daemon start.
func TestPoCRandomLocalhostOrigin(t *testing.T) {
	b := browsertest.Start(t, nil)
	sfs := make(chan string, 1)
	u := browsertest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/probe" {
			sfs <- r.Header.Get("Sec-Fetch-Site")
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><title>" + r.Host + "</title>"))
	}))
	host := "k3j9x0q2w8e7r6t5y4u1i2o3p4a5s6d7.localhost:" + u[strings.LastIndex(u, ":")+1:]
	tab := b.NewTab()
	browsertest.Open(t, tab, "http://"+host+"/")
	got, err := browsertest.Eval[[]any](tab, `[document.title, isSecureContext, location.origin]`, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("title (Host seen) %v, isSecureContext %v, origin %v", got[0], got[1], got[2])
	// A page on another 127.0.0.1 port is another site for it.
	other := browsertest.BlankPage(t)
	tab2 := b.NewTab()
	browsertest.Open(t, tab2, other)
	if _, err := browsertest.Eval[any](tab2, `fetch("http://`+host+`/probe", {mode: "no-cors"}).then(() => 1, () => 0)`, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("Sec-Fetch-Site of a request from %s: %q", other, <-sfs)
}
