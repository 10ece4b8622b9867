package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
)

// TestLocalOffer: a local_offer reaches the backend alone, with the
// certificate of the web session whose request carried it (none on the
// control socket), and its answer comes back; local_offer with anything
// else, or too long, is refused before the backend.
func TestLocalOffer(t *testing.T) {
	ts, cf := startCallServer(t)
	ctx := context.Background()
	info, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test", CallMedia: api.CallMedia{LocalOffer: "v=0 offer"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.placed[0]; got.LocalOffer != "v=0 offer" || got.LegCertificate != nil || got.Audio || got.Video {
		t.Fatalf("backend got %+v", got)
	}
	if info.LocalAnswer != "answer to v=0 offer" {
		t.Fatalf("local_answer %q", info.LocalAnswer)
	}

	// The web app's requests carry the session's certificate.
	cert, fp, err := api.NewLegCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fp, "sha-256 ") || fp != api.LegFingerprint(cert) {
		t.Fatalf("leg fingerprint %q", fp)
	}
	h := ts.srv.Handler()
	post := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(api.WithLegCertificate(req.Context(), cert))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := post("/v1/calls", `{"to":"bob@example.test","local_offer":"v=0 web"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /v1/calls: %d %s", rec.Code, rec.Body)
	}
	var got api.CallInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.LocalAnswer != "answer to v=0 web" {
		t.Fatalf("answer %+v, %v", got, err)
	}
	if cf.placed[1].LegCertificate != cert {
		t.Fatal("the web session's certificate did not reach the backend")
	}
	// An incoming call answered from the page.
	cf.cmu.Lock()
	cf.calls["in1"] = api.CallInfo{ID: "in1", Direction: api.CallIncoming, Peer: "bob@example.test", State: api.CallRinging, Media: []string{"audio"}}
	cf.cmu.Unlock()
	if rec := post("/v1/calls/in1/answer", `{"local_offer":"v=0 web answer"}`); rec.Code != http.StatusOK {
		t.Fatalf("answer: %d %s", rec.Code, rec.Body)
	}
	cf.cmu.Lock()
	o := cf.answers["in1"]
	cf.cmu.Unlock()
	if o.LocalOffer != "v=0 web answer" || o.LegCertificate != cert {
		t.Fatalf("answer options %+v", o)
	}

	for name, m := range map[string]api.CallMedia{
		"with audio":      {LocalOffer: "v=0", Audio: ptr(true)},
		"with video":      {LocalOffer: "v=0", Video: ptr(false)},
		"with record_dir": {LocalOffer: "v=0", RecordDir: "/tmp"},
		"with a file":     {LocalOffer: "v=0", AudioFile: "/tmp/x.ogg"},
		"with duration":   {LocalOffer: "v=0", Duration: "1s"},
		"too long":        {LocalOffer: strings.Repeat("a", api.MaxLocalOfferLen+1)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ts.client.PlaceCall(ctx, api.CallRequest{To: "bob@example.test", CallMedia: m})
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("want 400 invalid, got %v", err)
			}
		})
	}
	if len(cf.placed) != 2 {
		t.Fatalf("invalid requests reached the backend: %d calls", len(cf.placed))
	}
	// A backend that cannot mute: 503.
	if _, err := ts.client.MuteCall(ctx, "c1", api.MuteRequest{Audio: ptr(true)}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("mute without a CallMuter: %v, want 503", err)
	}
}
