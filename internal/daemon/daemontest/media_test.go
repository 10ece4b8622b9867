package daemontest

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestCallNetsParallel: tests that build their call networks in parallel
// get working ones, without a data race in vnet (run with -race).
func TestCallNetsParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			nets := CallNets(t, 2)
			rx, err := nets[0].ListenPacket("udp4", "10.0.0.2:5000")
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			tx, err := nets[1].ListenPacket("udp4", "10.0.0.3:5000")
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			msg := []byte(fmt.Sprintf("hello %d", i))
			if _, err := tx.WriteTo(msg, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 5000}); err != nil {
				t.Fatal(err)
			}
			rx.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang guard
			buf := make([]byte, 64)
			n, from, err := rx.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != string(msg) || from.String() != "10.0.0.3:5000" {
				t.Fatalf("received %q from %s", buf[:n], from)
			}
		})
	}
}
