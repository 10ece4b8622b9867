package c2sfront

import (
	"errors"
	"io"
	"strings"
	"testing"

	"mellium.im/xmpp/stream"

	"github.com/securejingle/securejingle/internal/localxmpp"
)

// reads is a Handler that reports every stanza and the final error.
type reads struct {
	st  chan localxmpp.Stanza
	err chan error
}

func (r *reads) handle(s *Session) {
	for {
		st, err := s.Next()
		if err != nil {
			r.err <- err
			return
		}
		r.st <- st
	}
}

func TestBadLocalInput(t *testing.T) {
	huge := "<message to='bob@example.org'><body>" + strings.Repeat("a", MaxStanzaSize+readSlack+1) + "</body></message>"
	cases := []struct {
		name, in string
		want     stream.Error
	}{
		{"malformed", "<message><body>x</bodyy></message>", stream.NotWellFormed},
		{"huge", huge, stream.PolicyViolation},
		{"other account", "<message from='mallory@example.org/x' to='bob@example.org'><body>x</body></message>", stream.InvalidFrom},
		{"other resource", "<message from='alice@example.org/not-mine' to='bob@example.org'><body>x</body></message>", stream.InvalidFrom},
		{"not a stanza", "<foo xmlns='jabber:client'/>", stream.UnsupportedStanzaType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &reads{st: make(chan localxmpp.Stanza, 4), err: make(chan error, 1)}
			s, addr := newTestServer(t, r.handle)
			xs, err := dial(t, s, addr, "alice", testPassword, "res")
			if err != nil {
				t.Fatal(err)
			}
			// A good stanza first: it must come through, with from checked
			// against the bound JID.
			good := "<message from='" + xs.LocalAddr().String() + "' to='bob@example.org'><body>ok</body></message>"
			go func() {
				io.WriteString(xs.Conn(), good)
				io.WriteString(xs.Conn(), c.in)
			}()
			if st := <-r.st; st.To.String() != "bob@example.org" {
				t.Fatalf("good stanza: %s", st)
			}
			select {
			case st := <-r.st:
				t.Fatalf("bad input delivered: %s", st)
			case err = <-r.err:
			}
			var se stream.Error
			if !errors.As(err, &se) || se.Err != c.want.Err {
				t.Fatalf("got %v, want stream error %s", err, c.want.Err)
			}
		})
	}
}

func TestClientCloses(t *testing.T) {
	r := &reads{st: make(chan localxmpp.Stanza, 4), err: make(chan error, 1)}
	s, addr := newTestServer(t, r.handle)
	xs, err := dial(t, s, addr, "alice", testPassword, "res")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(xs.Conn(), "<presence/>")
	if st := <-r.st; st.Name != "presence" {
		t.Fatalf("got %s", st)
	}
	xs.Close()
	if err := <-r.err; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}
