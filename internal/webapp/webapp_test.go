package webapp

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/attest"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testServer returns a server whose API echoes the path it got and the
// headers the web layer must strip.
func testServer(t *testing.T) (*Server, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	apiH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"path": r.URL.Path, "method": r.Method, "cookie": r.Header.Get("Cookie"), "csrf": r.Header.Get(CSRFHeader),
			"leg": legOf(r)})
	})
	s, err := New(Config{Listen: "127.0.0.1:0", API: apiH, Account: "alice@example.test", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

// client drives the handler in process, as a browser on the app's page
// would: right Host, right Origin, cookie and CSRF token once logged in.
type client struct {
	t      *testing.T
	s      *Server
	h      http.Handler
	cookie string
	base   string // the session's base path
	csrf   string
	leg    string // the session's leg_fingerprint
}

func newClient(t *testing.T, s *Server) *client { return &client{t: t, s: s, h: s.Handler()} }

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func withoutHeader(k string) reqOpt { return func(r *http.Request) { r.Header.Del(k) } }
func withHost(h string) reqOpt      { return func(r *http.Request) { r.Host = h } }

func (c *client) do(method, path, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	c.t.Helper()
	if c.base != "" && (strings.HasPrefix(path, "/api/") || path == "/logout") {
		path = c.base + path
	}
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = c.s.host
	if method != http.MethodGet {
		r.Header.Set("Origin", c.s.Origin())
		r.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		r.AddCookie(&http.Cookie{Name: c.s.cookie, Value: c.cookie})
	}
	if c.csrf != "" && method != http.MethodGet {
		r.Header.Set(CSRFHeader, c.csrf)
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w
}

func tokenOf(t *testing.T, url string) string {
	t.Helper()
	_, tok, ok := strings.Cut(url, "/#token=")
	if !ok {
		t.Fatalf("login URL %q has no #token=", url)
	}
	return tok
}

// login logs c in with a fresh token and fetches the session.
func (c *client) login() {
	c.t.Helper()
	u, _ := c.s.LoginURL()
	w := c.do("POST", "/login", `{"token":"`+tokenOf(c.t, u)+`"}`)
	var li LoginInfo
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &li) != nil {
		c.t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	c.base = li.Base
	for _, ck := range w.Result().Cookies() {
		if ck.Name == c.s.cookie {
			c.cookie = ck.Value
			if ck.Path != li.Base+"/" {
				c.t.Fatalf("cookie path %q, base %q", ck.Path, li.Base)
			}
		}
	}
	w = c.do("GET", "/api/session", "")
	if w.Code != http.StatusOK {
		c.t.Fatalf("session: %d %s", w.Code, w.Body)
	}
	var si SessionInfo
	if err := json.Unmarshal(w.Body.Bytes(), &si); err != nil {
		c.t.Fatal(err)
	}
	if si.Account != "alice@example.test" || !strings.HasPrefix(si.LegFingerprint, "sha-256 ") || si.CSRF == "" {
		c.t.Fatalf("session = %+v", si)
	}
	c.csrf, c.leg = si.CSRF, si.LegFingerprint
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("response %d is not a JSON error: %q", w.Code, w.Body)
	}
	return e.Error
}

func TestLoginCookie(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	u, exp := s.LoginURL()
	if !strings.HasPrefix(u, s.Origin()+"/#token=") {
		t.Fatalf("URL %q", u)
	}
	if got := exp.Sub(s.auth.now()); got != TokenTTL {
		t.Errorf("token lives %v, want %v", got, TokenTTL)
	}
	w := c.do("POST", "/login", `{"token":"`+tokenOf(t, u)+`"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	cks := w.Result().Cookies()
	if len(cks) != 1 {
		t.Fatalf("cookies %v", cks)
	}
	ck := cks[0]
	var li LoginInfo
	if err := json.Unmarshal(w.Body.Bytes(), &li); err != nil || !strings.HasPrefix(li.Base, "/s/") || len(li.Base) != len("/s/")+43 {
		t.Fatalf("login answer %s", w.Body)
	}
	if ck.Name != s.CookieName() || !strings.HasPrefix(ck.Name, CookiePrefix) || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != li.Base+"/" ||
		ck.MaxAge != int(SessionTTL/time.Second) || len(ck.Value) != 43 {
		t.Errorf("cookie %+v", ck)
	}
	if strings.Contains(li.Base, ck.Value) || strings.Contains(li.Base, tokenOf(t, u)) {
		t.Error("the base path is the cookie or the token")
	}
	if strings.Contains(w.Header().Get("Set-Cookie"), tokenOf(t, u)) {
		t.Error("the cookie is the login token")
	}
}

func TestLoginRefused(t *testing.T) {
	s, clk := testServer(t)
	c := newClient(t, s)
	u, _ := s.LoginURL()
	tok := tokenOf(t, u)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"wrong token", `{"token":"` + strings.Repeat("A", 43) + `"}`, "not valid for this daemon"},
		{"malformed token", `{"token":"x"}`, "not valid for this daemon"},
		{"token prefix", `{"token":"` + tok[:42] + `"}`, "not valid for this daemon"},
		{"unknown field", `{"token":"` + tok + `","x":1}`, "one JSON object"},
		{"two objects", `{"token":"` + tok + `"}{}`, "one JSON object"},
		{"not JSON", `token=` + tok, "one JSON object"},
		{"too large", `{"token":"` + strings.Repeat("A", 2000) + `"}`, "one JSON object"},
	} {
		w := c.do("POST", "/login", tc.body)
		if w.Code/100 != 4 || !strings.Contains(errorOf(t, w), tc.want) || w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s: %d %s, want 4xx naming %q", tc.name, w.Code, w.Body, tc.want)
		}
	}
	// None of those spent the real token.
	if w := c.do("POST", "/login", `{"token":"`+tok+`"}`); w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	w := c.do("POST", "/login", `{"token":"`+tok+`"}`)
	if w.Code != http.StatusUnauthorized || !strings.Contains(errorOf(t, w), "already used") || !strings.Contains(errorOf(t, w), "run `securejingle ui` again") {
		t.Errorf("replay: %d %s", w.Code, w.Body)
	}
	u, _ = s.LoginURL()
	clk.add(TokenTTL)
	w = c.do("POST", "/login", `{"token":"`+tokenOf(t, u)+`"}`)
	if w.Code != http.StatusUnauthorized || !strings.Contains(errorOf(t, w), "expired") {
		t.Errorf("expired: %d %s", w.Code, w.Body)
	}
}

func TestTokenBound(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	first, _ := s.LoginURL()
	var last string
	for range MaxTokens {
		last, _ = s.LoginURL()
	}
	w := c.do("POST", "/login", `{"token":"`+tokenOf(t, first)+`"}`)
	if w.Code != http.StatusUnauthorized || !strings.Contains(errorOf(t, w), "expired") {
		t.Errorf("oldest of %d tokens: %d %s, want retired", MaxTokens+1, w.Code, w.Body)
	}
	if w := c.do("POST", "/login", `{"token":"`+tokenOf(t, last)+`"}`); w.Code != http.StatusOK {
		t.Errorf("newest token: %d %s", w.Code, w.Body)
	}
	for range 10 * maxTokenRecords {
		s.LoginURL()
	}
	s.auth.mu.Lock()
	n := len(s.auth.tokens)
	s.auth.mu.Unlock()
	if n > maxTokenRecords {
		t.Errorf("%d tokens remembered, bound %d", n, maxTokenRecords)
	}
}

func TestSessionBound(t *testing.T) {
	s, clk := testServer(t)
	first := newClient(t, s)
	first.login()
	for range MaxSessions - 1 {
		newClient(t, s).login()
	}
	if w := first.do("GET", "/api/v1/status", ""); w.Code != http.StatusOK {
		t.Fatalf("first session with %d sessions: %d", MaxSessions, w.Code)
	}
	newClient(t, s).login()
	if w := first.do("GET", "/api/v1/status", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("oldest session after %d logins: %d, want 401", MaxSessions+1, w.Code)
	}
	c := newClient(t, s)
	c.login()
	clk.add(SessionTTL - time.Second)
	if w := c.do("GET", "/api/v1/status", ""); w.Code != http.StatusOK {
		t.Fatalf("session before its end: %d", w.Code)
	}
	clk.add(time.Second)
	w := c.do("GET", "/api/v1/status", "")
	if w.Code != http.StatusUnauthorized || !strings.Contains(errorOf(t, w), "run `securejingle ui`") {
		t.Errorf("expired session: %d %s", w.Code, w.Body)
	}
}

func TestAPIForwarding(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	c.login()
	w := c.do("POST", "/api/v1/trust", `{}`)
	var got map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got["path"] != "/v1/trust" || got["method"] != "POST" || got["cookie"] != "" || got["csrf"] != "" {
		t.Errorf("the API saw %v", got)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if w := c.do("GET", "/api/v1/../../login", ""); w.Code == http.StatusOK && strings.Contains(w.Body.String(), `"path":"/login"`) {
		t.Errorf("dot segments reached %s", w.Body)
	}
	if w := c.do("GET", "/api/other", ""); w.Code != http.StatusNotFound {
		t.Errorf("/api/other: %d", w.Code)
	}
}

func TestRefusals(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	c.login()
	anon := newClient(t, s)
	for _, tc := range []struct {
		name   string
		c      *client
		method string
		path   string
		opts   []reqOpt
		code   int
		want   string
	}{
		{"no cookie GET", anon, "GET", "/api/v1/peers", nil, 401, "not logged in"},
		{"no cookie session", anon, "GET", "/api/session", nil, 401, "not logged in"},
		{"no cookie events", anon, "GET", "/api/v1/events", nil, 401, "not logged in"},
		{"bad cookie", c, "GET", "/api/v1/peers", []reqOpt{withHeader("Cookie", s.CookieName()+"="+strings.Repeat("A", 43))}, 401, "not logged in"},
		{"no CSRF", c, "POST", "/api/v1/trust", []reqOpt{withoutHeader(CSRFHeader)}, 403, CSRFHeader},
		{"wrong CSRF", c, "POST", "/api/v1/trust", []reqOpt{withHeader(CSRFHeader, strings.Repeat("A", 43))}, 403, CSRFHeader},
		{"foreign origin", c, "POST", "/api/v1/trust", []reqOpt{withHeader("Origin", "http://127.0.0.1:1")}, 403, "came from"},
		{"null origin", c, "POST", "/api/v1/trust", []reqOpt{withHeader("Origin", "null")}, 403, "came from"},
		{"no origin", c, "POST", "/api/v1/trust", []reqOpt{withoutHeader("Origin")}, 403, "came from"},
		{"origin with path", c, "POST", "/api/v1/trust", []reqOpt{withHeader("Origin", s.Origin()+"/")}, 403, "came from"},
		{"foreign origin login", anon, "POST", "/login", []reqOpt{withHeader("Origin", "http://evil.test")}, 403, "came from"},
		{"wrong host", c, "GET", "/api/v1/peers", []reqOpt{withHost("evil.test:" + strings.Split(s.host, ":")[1])}, 421, "does not answer for"},
		{"localhost host", c, "GET", "/", []reqOpt{withHost("localhost:" + strings.Split(s.host, ":")[1])}, 421, "does not answer for"},
		{"no host", c, "GET", "/", []reqOpt{withHost("")}, 421, "does not answer for"},
		{"wrong host login", anon, "POST", "/login", []reqOpt{withHost("rebind.test")}, 421, "does not answer for"},
		{"logout without CSRF", c, "POST", "/logout", []reqOpt{withoutHeader(CSRFHeader)}, 403, CSRFHeader},
	} {
		w := tc.c.do(tc.method, tc.path, "{}", tc.opts...)
		if w.Code != tc.code || !strings.Contains(errorOf(t, w), tc.want) {
			t.Errorf("%s: %d %s, want %d naming %q", tc.name, w.Code, w.Body, tc.code, tc.want)
		}
		if strings.Contains(w.Body.String(), `"path"`) {
			t.Errorf("%s reached the API", tc.name)
		}
	}
	// The session still works, and logout ends it.
	if w := c.do("GET", "/api/v1/peers", ""); w.Code != http.StatusOK {
		t.Fatalf("after refusals: %d", w.Code)
	}
	if w := c.do("POST", "/logout", ""); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if w := c.do("GET", "/api/v1/peers", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("after logout: %d", w.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	want := map[string]string{
		"Content-Security-Policy":      ContentSecurityPolicy,
		"X-Content-Type-Options":       "nosniff",
		"Referrer-Policy":              "no-referrer",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
		"Permissions-Policy":           "camera=(self), microphone=(self)",
	}
	for _, tc := range []struct {
		method, path string
		opts         []reqOpt
		code         int
	}{
		{"GET", "/", nil, 200},
		{"GET", "/app.js", nil, 200},
		{"GET", "/missing.js", nil, 404},
		{"GET", "/api/v1/peers", nil, 401},
		{"POST", "/login", nil, 400},
		{"GET", "/", []reqOpt{withHost("evil.test")}, 421},
	} {
		w := c.do(tc.method, tc.path, "", tc.opts...)
		if w.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
		if strings.HasPrefix(tc.path, "/api") && w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", tc.path, w.Header().Get("Cache-Control"))
		}
	}
	for _, p := range []string{"/", "/index.html", "/app.js", "/api.js", "/events.js", "/dom.js", "/style.css", "/views/contacts.js"} {
		w := c.do("GET", p, "")
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	if ct := c.do("GET", "/app.js", "").Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("app.js Content-Type %q", ct)
	}
	for _, p := range []string{"/views/", "/views", "/vendor/", "/../webapp.go", "/assets/app.js"} {
		if w := c.do("GET", p, ""); w.Code != 404 && w.Code != http.StatusTemporaryRedirect {
			t.Errorf("%s: %d, want 404 (no listings, nothing outside assets)", p, w.Code)
		}
	}
}

// TestAssetsSafe checks what the CSP would also refuse: no inline script
// or style, no external resource, no innerHTML in the app's own code.
func TestAssetsSafe(t *testing.T) {
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://", "style=", "<script>"} {
		err := walkAssets(func(name string, b []byte) {
			if strings.HasPrefix(name, "vendor/") {
				return
			}
			if strings.Contains(string(b), bad) && !(bad == "innerHTML" && name == "dom.js") && !(bad == "outerHTML" && name == "dom.js") {
				t.Errorf("%s contains %q", name, bad)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestQR(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	c.login()
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	key[0] = 7
	uri := attest.VerifyURI{JID: "alice@example.test", Key: key}.String()
	w := c.do("GET", "/api/qr?uri="+url.QueryEscape(uri), "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "image/png" || !strings.HasPrefix(w.Body.String(), "\x89PNG") {
		t.Fatalf("%d %q", w.Code, w.Header())
	}
	for _, q := range []string{"", "?uri=", "?uri=a", "?text=" + url.QueryEscape(uri), "?uri=" + url.QueryEscape(uri) + "&x=1",
		"?uri=" + url.QueryEscape(uri) + "&uri=" + url.QueryEscape(uri), "?uri=" + url.QueryEscape(uri+"=")} {
		if w := c.do("GET", "/api/qr"+q, ""); w.Code != 400 {
			t.Errorf("qr%s: %d", q, w.Code)
		}
	}
	if w := newClient(t, s).do("GET", "/api/qr?uri="+url.QueryEscape(uri), ""); w.Code != 401 {
		t.Errorf("qr without session: %d", w.Code)
	}

	w = c.do("POST", "/api/verify-uri", `{"uri":"`+uri+`"}`)
	var sk ScannedKey
	if err := json.Unmarshal(w.Body.Bytes(), &sk); err != nil || w.Code != 200 {
		t.Fatalf("verify-uri: %d %s", w.Code, w.Body)
	}
	if sk.JID != "alice@example.test" || sk.Key != base64.StdEncoding.EncodeToString(key) {
		t.Errorf("scanned %+v", sk)
	}
	for _, body := range []string{`{"uri":"https://example.test/"}`, `{"uri":"` + uri + `x"}`, `{"uri":"` + uri + `","x":1}`, `{}`, `[]`} {
		w := c.do("POST", "/api/verify-uri", body)
		if w.Code != 400 {
			t.Errorf("verify-uri %s: %d", body, w.Code)
		}
	}
	if w := c.do("POST", "/api/verify-uri", `{"uri":"`+uri+`"}`, withoutHeader(CSRFHeader)); w.Code != 403 {
		t.Errorf("verify-uri without CSRF: %d", w.Code)
	}
}

func TestTokenHandler(t *testing.T) {
	s, _ := testServer(t)
	w := httptest.NewRecorder()
	s.TokenHandler().ServeHTTP(w, httptest.NewRequest("POST", "/v1/web/login", nil))
	var l struct{ URL string }
	if err := json.NewDecoder(io.LimitReader(w.Body, 4096)).Decode(&l); err != nil || w.Code != 200 {
		t.Fatalf("%d %v", w.Code, err)
	}
	c := newClient(t, s)
	if w := c.do("POST", "/login", `{"token":"`+tokenOf(t, l.URL)+`"}`); w.Code != http.StatusOK {
		t.Errorf("login with the handler's token: %d %s", w.Code, w.Body)
	}
	// The web app itself has no such route.
	c.login()
	if w := c.do("POST", "/v1/web/login", ""); w.Code == 200 {
		t.Error("the web app serves the token endpoint")
	}
}

// TestCookieShadowing: a page on another port of this host sets cookies
// of the session cookie's name on longer paths, which the browser sends
// first (RFC 6265 §5.4); the session still works.
func TestCookieShadowing(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	c.login()
	shadow := s.CookieName() + "=" + strings.Repeat("A", 43) + "; " + s.CookieName() + "=junk; "
	for _, method := range []string{"GET", "POST"} {
		w := c.do(method, "/api/v1/trust", "{}", withHeader("Cookie", shadow+s.CookieName()+"="+c.cookie))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"path":"/v1/trust"`) {
			t.Errorf("%s with shadowing cookies: %d %s", method, w.Code, w.Body)
		}
	}
	// Another live session's cookie first: the session is the one whose
	// base the path names.
	other := newClient(t, s)
	other.login()
	if w := c.do("GET", "/api/v1/trust", "", withHeader("Cookie", s.CookieName()+"="+other.cookie+"; "+s.CookieName()+"="+c.cookie)); w.Code != http.StatusOK {
		t.Errorf("with another session's cookie first: %d %s", w.Code, w.Body)
	}
	// Shadowing cookies alone are no session.
	w := c.do("GET", "/api/v1/trust", "", withHeader("Cookie", shadow))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("shadowing cookies only: %d %s", w.Code, w.Body)
	}
}

// TestSecFetchSite: a request that a browser says came from another
// page (another loopback port is the same site, so the cookie goes
// along) is refused on /api, GETs and the event stream included; the
// app's own requests and clients that send no Sec-Fetch-Site pass.
func TestSecFetchSite(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	c.login()
	for _, site := range []string{"same-site", "cross-site", "none", ""} {
		for _, path := range []string{"/api/v1/peers", "/api/v1/events", "/api/session", "/api/qr?uri=x", "/api/v1/files/x/content"} {
			w := c.do("GET", path, "", withHeader("Sec-Fetch-Site", site))
			if w.Code != http.StatusForbidden || !strings.Contains(errorOf(t, w), "another page") {
				t.Errorf("GET %s, Sec-Fetch-Site %q: %d %s, want 403", path, site, w.Code, w.Body)
			}
		}
		if w := c.do("POST", "/api/v1/trust", "{}", withHeader("Sec-Fetch-Site", site)); w.Code != http.StatusForbidden {
			t.Errorf("POST, Sec-Fetch-Site %q: %d %s, want 403", site, w.Code, w.Body)
		}
	}
	for _, opt := range []reqOpt{withHeader("Sec-Fetch-Site", "same-origin"), withoutHeader("Sec-Fetch-Site")} {
		if w := c.do("GET", "/api/v1/peers", "", opt); w.Code != http.StatusOK {
			t.Errorf("the app's own request: %d %s", w.Code, w.Body)
		}
	}
	// The page itself may be opened from anywhere.
	if w := c.do("GET", "/", "", withHeader("Sec-Fetch-Site", "cross-site")); w.Code != http.StatusOK {
		t.Errorf("GET / from another site: %d", w.Code)
	}
}

// TestCookieAloneIsNoSession: the session cookie without the session's
// base path (as a server on another port would replay it, had it got
// it) reads nothing, not even the CSRF token; another session's base
// does not do either.
func TestCookieAloneIsNoSession(t *testing.T) {
	s, _ := testServer(t)
	c := newClient(t, s)
	c.login()
	other := newClient(t, s)
	other.login()
	for _, base := range []string{"", other.base, "/s/" + strings.Repeat("A", 43), "/s"} {
		for _, p := range []string{"/api/session", "/api/v1/peers", "/api/qr?uri=x"} {
			w := c.do("GET", p, "", func(r *http.Request) { r.URL.Path = base + strings.Split(p, "?")[0] })
			if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), c.csrf) || strings.Contains(w.Body.String(), `"path"`) {
				t.Errorf("cookie with base %q, GET %s: %d %s, want 401", base, p, w.Code, w.Body)
			}
		}
	}
	if w := c.do("GET", "/api/session", ""); w.Code != http.StatusOK {
		t.Errorf("under its base: %d %s", w.Code, w.Body)
	}
}

// TestRequestsEndWithSession: a request in flight (an event stream) ends
// when its session does: at logout, when newer logins retire it, and at
// its expiry.
func TestRequestsEndWithSession(t *testing.T) {
	clk := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	started := make(chan struct{}, 1)
	apiH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // a stream: until the client or the session goes
	})
	s, err := New(Config{Listen: "127.0.0.1:0", API: apiH, Account: "alice@example.test", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	stream := func(c *client) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.do("GET", "/api/v1/events", "")
		}()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not start")
		}
		return done
	}
	ended := func(what string, done chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the stream outlived its session (%s)", what)
		}
	}
	for _, tc := range []struct {
		name string
		end  func(c *client)
	}{
		{"logout", func(c *client) {
			if w := c.do("POST", "/logout", ""); w.Code != http.StatusNoContent {
				t.Fatalf("logout: %d %s", w.Code, w.Body)
			}
		}},
		{"retired by newer logins", func(*client) {
			for range MaxSessions {
				newClient(t, s).login()
			}
		}},
		{"expiry", func(*client) {
			clk.add(SessionTTL)
			newClient(t, s).login() // looks at the sessions
		}},
	} {
		c := newClient(t, s)
		c.login()
		done := stream(c)
		tc.end(c)
		ended(tc.name, done)
	}
}

// TestConnectionBound: the web port is open to every local user; a
// local process that opens more than MaxConns connections does not get
// more served at once (each costs the daemon a file descriptor): the
// next one is served when one of the others closes.
func TestConnectionBound(t *testing.T) {
	s, _ := testServer(t)
	var mu sync.Mutex
	active, peak := 0, 0
	s.srv.ConnState = func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case http.StateNew:
			active++
			peak = max(peak, active)
		case http.StateClosed, http.StateHijacked:
			active--
		}
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range MaxConns {
		held = append(held, dial())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := active
		mu.Unlock()
		if n == MaxConns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections served, want %d", n, MaxConns)
		}
	}
	extra := dial()
	defer extra.Close()
	fmt.Fprintf(extra, "GET /style.css HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", s.host)
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(extra).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("the waiting connection: %q, %v", line, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > MaxConns {
		t.Errorf("%d connections served at once, bound %d", peak, MaxConns)
	}
}

// TestLinkReuseEndsSession (review rvweb3 F5): a login link used a second
// time (by whoever read it: the terminal, xdg-open's command line) is
// refused, and the session its first use opened is ended: its requests
// and calls end, and its page is told why (401, reason link-reused). A
// session ended by logout is not reported so.
func TestLinkReuseEndsSession(t *testing.T) {
	s, clk := testServer(t)
	first, thief := newClient(t, s), newClient(t, s)
	u, _ := s.LoginURL()
	w := first.do("POST", "/login", `{"token":"`+tokenOf(t, u)+`"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var li LoginInfo
	json.Unmarshal(w.Body.Bytes(), &li)
	first.base, first.cookie = li.Base, w.Result().Cookies()[0].Value
	if w := first.do("GET", "/api/session", ""); w.Code != http.StatusOK {
		t.Fatalf("session: %d", w.Code)
	}
	sess, _ := s.auth.session(first.cookie)
	for range 2 {
		w = thief.do("POST", "/login", `{"token":"`+tokenOf(t, u)+`"}`)
		if w.Code != http.StatusUnauthorized || !strings.Contains(errorOf(t, w), "already used") || w.Header().Get("Set-Cookie") != "" {
			t.Fatalf("second use: %d %s", w.Code, w.Body)
		}
	}
	select {
	case <-sess.ctx.Done():
	default:
		t.Fatal("the session of the link's first use lives on")
	}
	w = first.do("GET", "/api/session", "")
	var e errorBody
	if w.Code != http.StatusUnauthorized || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Reason != ReasonLinkReused || !strings.Contains(e.Error, "someone else used the login link") {
		t.Errorf("the ended session's page is told %d %s", w.Code, w.Body)
	}

	// Logout is not a reuse.
	c := newClient(t, s)
	defer func() {
		// Past the link's lifetime a reuse only answers "used": whoever
		// once saw the link cannot end the session by sending the
		// browser to it.
		late := newClient(t, s)
		u, _ := s.LoginURL()
		w := late.do("POST", "/login", `{"token":"`+tokenOf(t, u)+`"}`)
		if w.Code != http.StatusOK {
			t.Fatalf("login: %d %s", w.Code, w.Body)
		}
		late.cookie = w.Result().Cookies()[0].Value
		lsess, _ := s.auth.session(late.cookie)
		clk.add(TokenTTL + time.Second)
		if w := newClient(t, s).do("POST", "/login", `{"token":"`+tokenOf(t, u)+`"}`); w.Code != http.StatusUnauthorized {
			t.Fatalf("late reuse: %d %s", w.Code, w.Body)
		}
		select {
		case <-lsess.ctx.Done():
			t.Fatal("a reuse after the link's lifetime ended the session it opened")
		default:
		}
	}()
	c.login()
	if w := c.do("POST", "/logout", ""); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d", w.Code)
	}
	w = c.do("GET", "/api/session", "")
	if e := (errorBody{}); w.Code != http.StatusUnauthorized || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Reason != "" {
		t.Errorf("after logout: %d %s", w.Code, w.Body)
	}
}
