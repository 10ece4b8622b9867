package access

import (
	"testing"
	"time"
)

// FuzzAllow checks that any requester string gets a well-formed decision
// and never panics, and that invalid requesters are never tracked.
func FuzzAllow(f *testing.F) {
	for _, s := range []string{"a@example.org", "example.org", "a@b/c", "@x", "a@", "A@Sub.Example.ORG.", "a@b@c", "\xff"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	cfg := DefaultConfig()
	cfg.Mode = AllowedDomains
	cfg.Domains = []string{"example.org", "*.example.org"}
	f.Fuzz(func(t *testing.T, requester string, onRoster bool) {
		ctl, err := New(cfg, func() time.Time { return time.Unix(0, 0) })
		if err != nil {
			t.Fatal(err)
		}
		d := ctl.Allow(requester, onRoster)
		if d.Reason < ReasonAllowed || d.Reason > ReasonInvalidRequester || d.Allowed != (d.Reason == ReasonAllowed) {
			t.Fatalf("bad decision %+v", d)
		}
		s := ctl.Stats()
		if !d.Allowed && (s.Strangers != 0 || (s.Roster != 0 && d.Reason == ReasonInvalidRequester)) {
			t.Fatalf("refused requester tracked: %+v %+v", d, s)
		}
	})
}
