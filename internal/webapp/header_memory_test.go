package webapp

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// maxHeldHeaderMemory bounds the daemon's heap for one connection that
// holds a header just under MaxHeaderBytes, of the shortest lines (the
// costliest for Go's parser): about 13 times the header's size.
const maxHeldHeaderMemory = 4 << 20

// TestHeldHeaderMemory (review rvweb5 F2): every local user may hold
// MaxConns connections on each listening address, each with a header
// just under MaxHeaderBytes and a body that never comes. What they cost
// the daemon is bounded (with the bound at 1 MiB, each cost about
// 13 MiB).
func TestHeldHeaderMemory(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "POST /login HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nContent-Length: 100\r\n", s.Host(), s.Origin())
	for i := 0; hdr.Len() < MaxHeaderBytes-64; i++ {
		fmt.Fprintf(&hdr, "%x:\r\n", i)
	}
	hdr.WriteString("\r\n")
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const n = 32
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(hdr.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	// Give the server time to parse the headers; if it has not by then,
	// the measure is lower, never higher.
	time.Sleep(2 * time.Second)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	per := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / n
	t.Logf("header %d bytes; %d connections held: %.2f MiB of heap each", hdr.Len(), n, float64(per)/(1<<20))
	if per > maxHeldHeaderMemory {
		t.Errorf("a held connection costs %d bytes of heap, want at most %d", per, maxHeldHeaderMemory)
	}
}
