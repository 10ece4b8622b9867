package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/webapp"
)

// TestWebApp: the daemon serves the web app; a login link from the Unix
// socket logs a client in once; the session reaches the control API under
// /api/v1/ but never the login endpoint, which the socket alone has.
func TestWebApp(t *testing.T) {
	ctx := context.Background()
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	daemontest.WaitConnected(t, alice.Client)

	l, err := alice.Client.WebLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	origin, tok, ok := strings.Cut(l.URL, "/#token=")
	if !ok || !strings.HasPrefix(origin, "http://") || !strings.Contains(origin, ".localhost:") {
		t.Fatalf("login URL %q: want a random name under .localhost", l.URL)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: daemontest.HangGuard, Transport: &http.Transport{DialContext: webapp.DialLocalhost}}
	base := "" // the session's base path, once logged in
	at := func(path string) string {
		if strings.HasPrefix(path, "/api/") {
			return origin + base + path
		}
		return origin + path
	}
	post := func(path, body string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", at(path), strings.NewReader(body))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	get := func(path string, out any) int {
		t.Helper()
		resp, err := hc.Get(at(path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
		}
		return resp.StatusCode
	}
	if code := get("/api/v1/status", nil); code != http.StatusUnauthorized {
		t.Fatalf("status before login: %d", code)
	}
	resp := post("/login", `{"token":"`+tok+`"}`, nil)
	var li webapp.LoginInfo
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&li) != nil || li.Base == "" {
		t.Fatalf("login: %d %+v", resp.StatusCode, li)
	}
	base = li.Base
	var si webapp.SessionInfo
	if code := get("/api/session", &si); code != 200 || si.Account != env.Alice.JID || si.CSRF == "" {
		t.Fatalf("session: %d %+v", code, si)
	}
	var st api.Status
	if code := get("/api/v1/status", &st); code != 200 || st.Account != env.Alice.JID || st.Fingerprint == "" {
		t.Fatalf("status through the web app: %d %+v", code, st)
	}
	// The web session cannot mint login links, with or without CSRF.
	csrf := map[string]string{webapp.CSRFHeader: si.CSRF}
	for _, p := range []string{"/api" + api.WebLoginPath, api.WebLoginPath, "/api/v1/web/login/"} {
		resp := post(p, "{}", csrf)
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode == 200 || strings.Contains(string(b), "#token=") {
			t.Errorf("POST %s through the web app: %d %s", p, resp.StatusCode, b)
		}
	}
	// A trust change through the web app needs the CSRF token.
	body := `{"jid":"` + env.Bob.JID + `","action":"distrust"}`
	if resp := post("/api/v1/trust", body, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("trust without CSRF: %d", resp.StatusCode)
	}
	var peers api.PeersResponse
	get("/api/v1/peers", &peers)
	for _, p := range peers.Peers {
		if p.JID == env.Bob.JID && p.Trust == "distrusted" {
			t.Fatal("a request without the CSRF token changed trust")
		}
	}
	// The web session names no files of the daemon's user, even with
	// the CSRF token: its own configuration file is not sent to bob.
	send := `{"to":"` + env.Bob.JID + `","paths":["` + env.Alice.ConfigPath + `"]}`
	if resp := post("/api/v1/files", send, csrf); resp.StatusCode != http.StatusForbidden {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		t.Errorf("send by path through the web app: %d %s", resp.StatusCode, b)
	}
	// The cookie goes under the session's base only.
	u, _ := url.Parse(origin + base + "/api/session")
	if len(jar.Cookies(u)) != 1 {
		t.Errorf("cookies %v", jar.Cookies(u))
	}
	u, _ = url.Parse(origin + "/api/session")
	if len(jar.Cookies(u)) != 0 {
		t.Errorf("cookies outside the base %v", jar.Cookies(u))
	}
	// The link used again is refused, and ends the session it opened.
	if resp := post("/login", `{"token":"`+tok+`"}`, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed login: %d", resp.StatusCode)
	}
	var ended struct{ Reason string }
	if code := get("/api/session", &ended); code != http.StatusUnauthorized || ended.Reason != webapp.ReasonLinkReused {
		t.Errorf("session after the link's second use: %d %+v", code, ended)
	}
}

// TestWebAppOff: with [web] enabled = false nothing listens and the login
// endpoint says how to turn it on.
func TestWebAppOff(t *testing.T) {
	env := daemontest.New(t)
	b, err := os.ReadFile(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(b), "[web]\n", "[web]\nenabled = false\n", 1)
	if off == string(b) {
		t.Fatal("no [web] table in the generated configuration")
	}
	if err := os.WriteFile(env.Alice.ConfigPath, []byte(off), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := daemontest.Start(t, env.Alice)
	_, err = alice.Client.WebLogin(context.Background())
	if err == nil || !strings.Contains(err.Error(), "enabled = true") {
		t.Fatalf("login link with the web app off: %v", err)
	}
}
