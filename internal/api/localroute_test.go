package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
)

// TestLocalRoute: a route added with WithLocalRoute is served on the
// socket and never by WebHandler, which serves the rest of the API.
func TestLocalRoute(t *testing.T) {
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"url":"http://127.0.0.1:1/#token=x","expires":"2030-01-01T00:00:00Z"}`))
	})
	ts := startServer(t, api.WithLocalRoute("POST "+api.WebLoginPath, local))
	l, err := ts.client.WebLogin(context.Background())
	if err != nil || l.URL != "http://127.0.0.1:1/#token=x" || !l.Expires.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("on the socket: %+v %v", l, err)
	}
	h := ts.srv.WebHandler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", api.WebLoginPath, nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("WebHandler serves the local route: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/status", nil))
	if w.Code != http.StatusOK {
		t.Errorf("WebHandler GET /v1/status: %d %s", w.Code, w.Body)
	}
}
