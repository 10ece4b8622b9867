package webapp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var originRE = regexp.MustCompile(`^http://[a-z2-7]{32}\.localhost:[0-9]+$`)

// TestOriginRandomPerStart (review rvweb3 F1): on 127.0.0.1 the served
// origin is a random name under .localhost, new at every start on the
// same port; the Host check wants exactly it, not the address.
func TestOriginRandomPerStart(t *testing.T) {
	s1, _ := testServer(t)
	port := s1.Addr().(*net.TCPAddr).Port
	o1 := s1.Origin()
	s1.Close()
	s2, err := New(Config{Listen: "127.0.0.1:" + strconv.Itoa(port), API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, o := range []string{o1, s2.Origin()} {
		if !originRE.MatchString(o) {
			t.Errorf("origin %q: want http://<32 base32 characters>.localhost:port", o)
		}
	}
	if o1 == s2.Origin() {
		t.Errorf("two starts on port %d served the same origin %s", port, o1)
	}
	if u, _ := s2.LoginURL(); !strings.HasPrefix(u, s2.Origin()+"/#token=") {
		t.Errorf("login URL %q", u)
	}
	c := newClient(t, s2)
	if w := c.do("GET", "/", ""); w.Code != http.StatusOK {
		t.Errorf("GET / on %s: %d", s2.host, w.Code)
	}
	for _, h := range []string{s2.Addr().String(), "localhost:" + strconv.Itoa(port), strings.ToUpper(s2.host), strings.TrimPrefix(o1, "http://")} {
		if w := c.do("GET", "/", "", withHost(h)); w.Code != http.StatusMisdirectedRequest {
			t.Errorf("GET / with Host %q: %d, want 421", h, w.Code)
		}
	}
}

// TestOriginServedOverHTTP: the origin is reachable from Go through
// DialLocalhost, on 127.0.0.1 and on ::1.
func TestOriginServedOverHTTP(t *testing.T) {
	s, _ := testServer(t)
	go s.Serve()
	hc := &http.Client{Transport: &http.Transport{DialContext: DialLocalhost}}
	res, err := hc.Get(s.Origin() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("GET %s/: %d", s.Origin(), res.StatusCode)
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort(ip, strconv.Itoa(s.Addr().(*net.TCPAddr).Port)))
		}}}
		res, err := hc.Get(s.Origin() + "/")
		if err != nil {
			if ip == "::1" && len(s.ls) == 1 {
				continue // no IPv6 here
			}
			t.Fatalf("%s: %v", ip, err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET / on %s: %d", ip, res.StatusCode)
		}
	}
}

// TestListenHoldsOtherLoopback (review rvweb3 F1): browsers connect a
// .localhost name to ::1 first: the server holds the port there too, so
// that no one else can serve the origin from it; and it does not start
// when someone else already holds it, saying who and what to do.
func TestListenHoldsOtherLoopback(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	s, _ := testServer(t)
	port := strconv.Itoa(s.Addr().(*net.TCPAddr).Port)
	if l, err := net.Listen("tcp", "[::1]:"+port); err == nil {
		l.Close()
		t.Fatalf("[::1]:%s was free while the web app served 127.0.0.1:%s", port, port)
	}
	s.Close()

	squat, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	port = strconv.Itoa(squat.Addr().(*net.TCPAddr).Port)
	_, err = New(Config{Listen: "127.0.0.1:" + port, API: http.NotFoundHandler()})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("New with [::1]:%s held by another: %v, want EADDRINUSE", port, err)
	}
	for _, want := range []string{"uid " + strconv.Itoa(os.Getuid()), "impersonate", "another port", "site data"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestListenPortInUse: the configured address itself taken.
func TestListenPortInUse(t *testing.T) {
	squat, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	_, err = New(Config{Listen: squat.Addr().String(), API: http.NotFoundHandler()})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "uid "+strconv.Itoa(os.Getuid())) || !strings.Contains(err.Error(), "impersonate") {
		t.Fatalf("New on a port in use: %v", err)
	}
	t.Log(err)
}

func TestParseProcAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
	}{
		{"0100007F:1D34", "127.0.0.1", 7476},
		{"00000000:0050", "0.0.0.0", 80},
		{"00000000000000000000000001000000:1D34", "::1", 7476},
		{"0000000000000000FFFF00000100007F:0016", "127.0.0.1", 22},
	} {
		a, p, ok := parseProcAddr(tc.in)
		if !ok || a != netip.MustParseAddr(tc.addr) || p != tc.port {
			t.Errorf("parseProcAddr(%q) = %v, %d, %v; want %s, %d", tc.in, a, p, ok, tc.addr, tc.port)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:", "0100007:1D34", "0100007F:10000", "G100007F:1D34"} {
		if _, _, ok := parseProcAddr(bad); ok {
			t.Errorf("parseProcAddr(%q) accepted", bad)
		}
	}
}
