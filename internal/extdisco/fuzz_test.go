package extdisco

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParse: whatever a server sends, parsing terminates without panic and
// within the limits; what parses marshals and parses back to the same; and
// the ICE servers made of it are bounded and carry only well-formed URIs.
func FuzzParse(f *testing.F) {
	names := allVectors(f)
	for _, n := range names {
		f.Add(vector(f, n))
	}
	if len(names) == 0 {
		f.Fatal("no seeds")
	}
	f.Add([]byte(svcsOpen + `<service type='turns' host='::1' port='1' transport='udp' username='u' password='p' expires='2030-01-01T00:00:00.123Z' restricted='1' name='n' action='modify'/></services>`))
	f.Add([]byte(`<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='h'/></credentials>`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, root := range []string{elemServices, elemCredentials} {
			typ, svcs, err := parse(b, root)
			if err != nil {
				continue
			}
			if len(svcs) > MaxServices {
				t.Fatalf("%d services", len(svcs))
			}
			out, err := marshal(root, typ, svcs)
			if err != nil {
				t.Fatalf("parsed services do not marshal: %v\n%+v", err, svcs)
			}
			typ2, svcs2, err := parse(out, root)
			if err != nil || typ2 != typ || !equalServices(svcs, svcs2) {
				t.Fatalf("round trip: %q %+v %v\nwas %q %+v\n%s", typ2, svcs2, err, typ, svcs, out)
			}
			servers := ICEServers(now, svcs)
			if len(servers) > MaxICEServers {
				t.Fatalf("%d ICE servers", len(servers))
			}
			for _, s := range servers {
				if len(s.URLs) != 1 {
					t.Fatalf("URLs %v", s.URLs)
				}
				u, err := url.Parse(s.URLs[0])
				if err != nil || strings.ContainsAny(u.Opaque, "?#@/ ") {
					t.Fatalf("URI %q: %v", s.URLs[0], err)
				}
				switch u.Scheme {
				case "stun":
					if u.RawQuery != "" {
						t.Fatalf("STUN URI with a query: %q", s.URLs[0])
					}
				case "turn", "turns":
					if u.RawQuery != "transport=udp" && u.RawQuery != "transport=tcp" {
						t.Fatalf("TURN URI %q", s.URLs[0])
					}
				default:
					t.Fatalf("scheme of %q", s.URLs[0])
				}
			}
		}
	})
}
