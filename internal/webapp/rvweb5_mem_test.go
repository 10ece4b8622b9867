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

func TestRvweb5HeaderMemory(t *testing.T) {
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
	var cs []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(hdr.Bytes())
		cs = append(cs, c)
	}
	time.Sleep(3 * time.Second)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("header %d bytes; %d conns held: heap in use +%d MiB (%.1f MiB per conn)", hdr.Len(), n, (m1.HeapInuse-m0.HeapInuse)>>20, float64(m1.HeapInuse-m0.HeapInuse)/float64(n)/(1<<20))
	for _, c := range cs {
		c.Close()
	}
}
