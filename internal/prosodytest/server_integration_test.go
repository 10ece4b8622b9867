package prosodytest

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestStartRetriesTakenPort makes the first c2s port unavailable, as when
// another process grabs the random port between freePort and Prosody's bind,
// and checks that Start notices and comes up on another port.
func TestStartRetriesTakenPort(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	s := Start(t, func(o *options) error { o.firstPort = taken; return nil })
	if s.Addr() == net.JoinHostPort("127.0.0.1", strconv.Itoa(taken)) {
		t.Fatalf("server claims the taken port %d", taken)
	}
	s.AddUser(t, "frank", "frank-secret")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.CheckPassword(ctx, "frank", "frank-secret"); err != nil {
		t.Fatal(err)
	}
}
