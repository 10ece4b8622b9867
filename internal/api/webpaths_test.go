package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
)

// webDo serves one request of a web app session (api.WithWebSession, as
// the web server passes it on) and returns its status and body.
func webDo(t *testing.T, ts *testServer, web bool, method, path, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if web {
		r = r.WithContext(api.WithWebSession(r.Context()))
	}
	w := httptest.NewRecorder()
	ts.srv.Handler().ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestWebSessionNamesNoPaths: a web app session cannot name files or
// directories of the daemon's user: sending files by path, accepting
// into a directory, and a call's files or recording directory are 403,
// and the backend sees nothing of them; the same requests on the
// control socket work, and the web session's own ways (an accept
// without dir, a call without files) do too.
func TestWebSessionNamesNoPaths(t *testing.T) {
	fs, ff := startFileServer(t)
	dir := t.TempDir()
	secret := writeFile(t, filepath.Join(dir, "id_ed25519"), 10)
	for _, id := range []string{"in1", "in2"} {
		ff.xfers[id] = api.TransferInfo{ID: id, Direction: api.TransferIncoming, Peer: "bob@example.test", State: api.TransferPending}
	}
	send := `{"to":"bob@example.test","paths":[` + jsonString(secret) + `]}`
	accept := `{"dir":` + jsonString(dir) + `}`
	for _, c := range []struct{ path, body string }{
		{"/v1/files", send},
		{"/v1/files/in1/accept", accept},
	} {
		if code, msg := webDo(t, fs, true, "POST", c.path, c.body); code != http.StatusForbidden || !strings.Contains(msg, "web app cannot") {
			t.Errorf("web POST %s: %d %s, want 403", c.path, code, msg)
		}
	}
	ff.fmu.Lock()
	sent, accepted := len(ff.sent), len(ff.accepts)
	ff.fmu.Unlock()
	if sent != 0 || accepted != 0 {
		t.Fatalf("the backend saw %d sends and %d accepts of the web session", sent, accepted)
	}
	if code, msg := webDo(t, fs, true, "POST", "/v1/files/in1/accept", `{}`); code != http.StatusOK {
		t.Errorf("web accept without dir: %d %s", code, msg)
	}
	if code, msg := webDo(t, fs, false, "POST", "/v1/files/in2/accept", accept); code != http.StatusOK {
		t.Errorf("socket accept into a dir: %d %s", code, msg)
	}
	if code, msg := webDo(t, fs, false, "POST", "/v1/files", send); code != http.StatusCreated {
		t.Errorf("socket send by path: %d %s", code, msg)
	}

	cs, cf := startCallServer(t)
	ogg, _, _ := media(t, dir)
	cf.calls["in1"] = api.CallInfo{ID: "in1", Direction: api.CallIncoming, Peer: "bob@example.test", Media: []string{"audio"}, State: api.CallRinging}
	for _, c := range []struct{ path, body string }{
		{"/v1/calls", `{"to":"bob@example.test","audio_file":` + jsonString(ogg) + `}`},
		{"/v1/calls", `{"to":"bob@example.test","audio":true,"record_dir":` + jsonString(dir) + `}`},
		{"/v1/calls/in1/answer", `{"audio_file":` + jsonString(ogg) + `}`},
		{"/v1/calls/in1/answer", `{"record_dir":` + jsonString(dir) + `}`},
	} {
		if code, msg := webDo(t, cs, true, "POST", c.path, c.body); code != http.StatusForbidden || !strings.Contains(msg, "web app cannot") {
			t.Errorf("web POST %s %s: %d %s, want 403", c.path, c.body, code, msg)
		}
	}
	if len(cf.placed) != 0 || len(cf.answers) != 0 {
		t.Fatalf("the backend placed %d and answered %d calls of the web session", len(cf.placed), len(cf.answers))
	}
	if code, msg := webDo(t, cs, true, "POST", "/v1/calls", `{"to":"bob@example.test","audio":true}`); code != http.StatusCreated {
		t.Errorf("web call without files: %d %s", code, msg)
	}
	if code, msg := webDo(t, cs, false, "POST", "/v1/calls/in1/answer", `{"audio_file":`+jsonString(ogg)+`}`); code != http.StatusOK {
		t.Errorf("socket answer with a file: %d %s", code, msg)
	}
}

// TestWebSessionSendsNoIQ: POST /v1/iq, which speaks for the account to
// any peer with any payload, is 403 for a web app session (the page never
// uses it) and reaches the backend only from the control socket.
func TestWebSessionSendsNoIQ(t *testing.T) {
	fs, ff := startFileServer(t)
	body := `{"to":"bob@example.test/phone","type":"get","payload":"<time xmlns='urn:xmpp:time'/>"}`
	if code, msg := webDo(t, fs, true, "POST", "/v1/iq", body); code != http.StatusForbidden || !strings.Contains(msg, "web app cannot send IQs") {
		t.Fatalf("web POST /v1/iq: %d %s, want 403", code, msg)
	}
	ff.mu.Lock()
	n := len(ff.iqs)
	ff.mu.Unlock()
	if n != 0 {
		t.Fatalf("the backend got %d IQs of the web session", n)
	}
	if code, msg := webDo(t, fs, false, "POST", "/v1/iq", body); code != http.StatusOK {
		t.Fatalf("socket POST /v1/iq: %d %s", code, msg)
	}
}
