package webapp

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
)

// legOf is the leg_fingerprint of the certificate an API request carries
// ("" for none).
func legOf(r *http.Request) string {
	if c := api.LegCertificate(r.Context()); c != nil {
		return api.LegFingerprint(c)
	}
	return ""
}

// TestSessionLegCertificate: each session has a local call leg
// certificate of its own; GET /api/session gives its fingerprint for
// the page to pin, and every API request of the session carries that
// certificate (the one a call placed from the page presents).
func TestSessionLegCertificate(t *testing.T) {
	s, _ := testServer(t)
	a, b := newClient(t, s), newClient(t, s)
	a.login()
	b.login()
	if a.leg == "" || a.leg == b.leg {
		t.Fatalf("leg fingerprints %q and %q: want one per session", a.leg, b.leg)
	}
	for _, c := range []*client{a, b} {
		for _, m := range []string{"GET", "POST"} {
			w := c.do(m, "/api/v1/calls", "{}")
			var got map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("%s: %d %s", m, w.Code, w.Body)
			}
			if got["leg"] != c.leg {
				t.Fatalf("%s /api/v1/calls carried leg %q, the session pinned %q", m, got["leg"], c.leg)
			}
		}
	}
}
