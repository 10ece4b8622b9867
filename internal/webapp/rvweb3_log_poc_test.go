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

// TestPoCBaseInLog (review rvweb3, low): a refused request under a base
// (here Sec-Fetch-Site "none": a download link pasted into the address
// bar, or reopened from the download list) logs the whole path, the
// session's secret base included.
func TestPoCBaseInLog(t *testing.T) {
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
	r.Host = srv.Addr().String()
	r.Header.Set("Origin", srv.Origin())
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var li webapp.LoginInfo
	if err := json.Unmarshal(w.Body.Bytes(), &li); err != nil || li.Base == "" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("GET", srv.Origin()+li.Base+"/api/v1/files/x/content", nil)
	r.Host = srv.Addr().String()
	r.Header.Set("Sec-Fetch-Site", "none")
	r.AddCookie(w.Result().Cookies()[0])
	w2 := httptest.NewRecorder()
	h.ServeHTTP(w2, r)
	if strings.Contains(logs.String(), li.Base) {
		t.Logf("VULNERABLE: the log holds the base: %s", logs.String())
	}
}
