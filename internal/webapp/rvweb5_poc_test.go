package webapp

import (
	"bufio"
	"fmt"
	"io"
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
