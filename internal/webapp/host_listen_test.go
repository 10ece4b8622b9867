package webapp

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestWrongHostDoesNotNameOrigin (review rvweb5 F3): a request for the
// port under another name (any local user can send one) must not learn
// the served random host name, which is what keeps a squatter off the
// origin.
func TestWrongHostDoesNotNameOrigin(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	for _, h := range []string{"evil.example", "127.0.0.1:" + strings.Split(s.Host(), ":")[1], ""} {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", h)
		b, _ := io.ReadAll(bufio.NewReader(c))
		c.Close()
		label, _, _ := strings.Cut(s.Host(), ".")
		if !strings.Contains(string(b), " 421 ") || strings.Contains(string(b), label) {
			t.Errorf("Host %q answered %q: want a 421 that does not name %s", h, b, s.Host())
		}
	}
}

// TestListenMappedLoopback (review rvweb5 F4): 127.0.0.1 written as an
// IPv4-mapped IPv6 address is 127.0.0.1, served under a random name and
// on both loopback addresses, not under a fixed origin; an address other
// than 127.0.0.1 and ::1 has a fixed origin, and the server warns of it.
func TestListenMappedLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen string
		fixed  bool
	}{
		{"[::ffff:127.0.0.1]:0", false},
		{"127.0.0.1:0", false},
		{"127.0.0.2:0", true},
	} {
		var logs strings.Builder
		s, err := New(Config{Listen: tc.listen, API: http.NotFoundHandler(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Errorf("%s: %v", tc.listen, err)
			continue
		}
		h, _, _ := net.SplitHostPort(s.Host())
		if s.FixedOrigin() != tc.fixed || strings.HasSuffix(h, localhostSuffix) == tc.fixed {
			t.Errorf("%s: origin %s, FixedOrigin %v: want fixed %v", tc.listen, s.Origin(), s.FixedOrigin(), tc.fixed)
		}
		if warned := strings.Contains(logs.String(), "the origin is fixed"); warned != tc.fixed {
			t.Errorf("%s: warned of a fixed origin %v, want %v (log %q)", tc.listen, warned, tc.fixed, logs.String())
		}
		if a := s.Addr().(*net.TCPAddr).IP; !tc.fixed && !a.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("%s: listens on %v", tc.listen, a)
		}
		s.Close()
	}
}
