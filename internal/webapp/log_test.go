package webapp_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/webapp"
)

// TestRefusedRequestLogOmitsBase (review rvweb3 F4): a refused request
// under a session's base (a download link pasted into the address bar:
// Sec-Fetch-Site "none"; another host; another origin; no CSRF token)
// is logged without the base's secret, and still with the rest of its
// path.
func TestRefusedRequestLogOmitsBase(t *testing.T) {
	var logs bytes.Buffer
	srv, err := webapp.New(webapp.Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler()
	link, _ := srv.LoginURL()
	tok := link[strings.Index(link, "#token=")+7:]
	r := httptest.NewRequest("POST", srv.Origin()+"/login", strings.NewReader(`{"token":"`+tok+`"}`))
	r.Host = srv.Host()
	r.Header.Set("Origin", srv.Origin())
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var li webapp.LoginInfo
	if err := json.Unmarshal(w.Body.Bytes(), &li); err != nil || li.Base == "" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	cookie := w.Result().Cookies()[0]
	secret := strings.TrimPrefix(li.Base, "/s/")
	for _, tc := range []struct {
		name, method string
		edit         func(r *http.Request)
	}{
		{"sec-fetch-site none", "GET", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "none") }},
		{"another host", "GET", func(r *http.Request) { r.Host = "evil.example:80" }},
		{"another origin", "POST", func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:1") }},
		{"no csrf", "POST", func(r *http.Request) { r.Header.Set("Origin", srv.Origin()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			r := httptest.NewRequest(tc.method, srv.Origin()+li.Base+"/api/v1/files/x/content", nil)
			r.Host = srv.Host()
			r.AddCookie(cookie)
			tc.edit(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code < 400 {
				t.Fatalf("answered %d: want a refusal", w.Code)
			}
			got := logs.String()
			if strings.Contains(got, secret) {
				t.Errorf("the log holds the base's secret: %s", got)
			}
			if !strings.Contains(got, "/api/v1/files/x/content") {
				t.Errorf("the log lost the path: %q", got)
			}
		})
	}
}
