package webapp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

func TestRvweb5MappedListen(t *testing.T) {
	for _, a := range []string{"[::ffff:127.0.0.1]:0", "127.0.0.2:0", "127.0.0.1:0"} {
		s, err := New(Config{Listen: a, API: http.NotFoundHandler()})
		if err != nil {
			t.Logf("%s: %v", a, err)
			continue
		}
		t.Logf("%s -> origin %s, listeners %d", a, s.Origin(), len(s.ls))
		s.Close()
	}
}

func TestRvweb5HostLeak(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(bufio.NewReader(c))
	t.Logf("origin %s\nresponse: %s", s.Origin(), b)
}
