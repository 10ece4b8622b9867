package prosodytest

import (
	"context"
	"errors"
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

// TestHostileRefusesBadCommands: the module answers a malformed command with
// an error naming it, and changes nothing.
func TestHostileRefusesBadCommands(t *testing.T) {
	s := Start(t, WithHostile())
	h := s.Hostile(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, cmd := range []command{
		{"op": "no-such-op"},
		{"op": "reroute", "to": "alice@example.test"}, // no new_to
		{"op": "reroute", "to": "not a jid@@", "new_to": "bob@example.test"},
		{"op": "rewrite", "stanza": "message"}, // nothing to do
		{"op": "rewrite", "stanza": "bogus", "drop": true},
		{"op": "rewrite", "add": []string{"<unclosed>"}},
		{"op": "answer", "to": "bob@example.test", "child": map[string]string{"ns": "x"}},
		{"op": "inject", "xml": "<foo xmlns='urn:x'/>", "to": "bob@example.test"},
		{"op": "hits", "rule": "r999"},
	} {
		if _, err := h.do(ctx, cmd); !errors.Is(err, ErrHostileCommand) {
			t.Errorf("%v: err = %v, want ErrHostileCommand", cmd, err)
		}
	}
	// Injecting to an account without sessions delivers nothing.
	res, err := h.do(ctx, command{"op": "inject", "xml": "<message><body>x</body></message>", "to": "nobody@example.test"})
	if err != nil || res.Delivered != 0 {
		t.Fatalf("inject to nobody: %+v, %v", res, err)
	}
}
