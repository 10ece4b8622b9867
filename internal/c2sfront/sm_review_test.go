package c2sfront

// Security review of XEP-0198 on the local stream (h/rvsm): proofs of
// concept. Each test states what the front should do; on the code
// reviewed (main 776428e) they fail.

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReviewStanzaCounterNestedStream: an element named "stream" nested
// inside a stanza (any namespace: a remote contact chooses the payload
// of a message or a subscription request, and the server relays it
// unchanged) is taken by the written-side tag tracker for a stream
// header and resets its depth to 1. The stanza carrying it is not
// counted, stanza-named elements inside it are counted as stanzas, and
// after it the depth stays at 0, so no later stanza is counted at all.
func TestReviewStanzaCounterNestedStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want uint32
	}{
		{"stream child, then two stanzas", `<message xmlns="jabber:client"><stream xmlns="urn:x:evil">t</stream></message>` +
			`<message xmlns="jabber:client"><body>b</body></message><presence xmlns="jabber:client"></presence>`, 3},
		{"stanza names inside a stream child", `<message xmlns="jabber:client"><stream xmlns="urn:x:evil"><message></message><message></message><iq></iq></stream></message>`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := &smState{kick: make(chan struct{}, 1), counting: true}
			c := newStanzaCounter(sm)
			if _, err := c.write(io.Discard, []byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if sm.sent != tc.want {
				t.Fatalf("counted %d stanzas, want %d", sm.sent, tc.want)
			}
		})
	}
}

// TestReviewSMNestedStreamDisconnects: end to end, a message with a
// <stream xmlns='…'/> child written to an SM client (as the composer
// forwards a contact's message) makes the front's count fall behind; the
// client's correct <a/> is then answered with handled-count-too-high
// and its stream is ended. A contact can do this to every SM client of
// the user, on every reconnection.
func TestReviewSMNestedStreamDisconnects(t *testing.T) {
	h := newSMHandler()
	s, addr := newTestServer(t, h.handle)
	c := smBound(t, s, addr, "r")
	sess := <-h.sess
	c.enable()
	sendRaw(t, sess, "<message from='bob@example.org/x' to='alice@example.org/r'><body>1</body></message>")
	sendRaw(t, sess, "<message from='mallory@example.net/x' to='alice@example.org/r'><body>2</body><stream xmlns='urn:x:evil'>x</stream></message>")
	sendRaw(t, sess, "<message from='bob@example.org/x' to='alice@example.org/r'><body>3</body></message>")
	for n := 0; n < 3; {
		e := c.next()
		switch {
		case e.XMLName.Local == "message":
			n++
		case e.is("r"):
		default:
			t.Fatalf("got %+v", e)
		}
	}
	c.send(smA(3)) // the client has the three messages
	c.send(smR)
	for {
		e := c.next()
		if e.XMLName.Local == "error" {
			t.Fatalf("the client's correct <a h='3'/> ended its stream: %s", e.Inner)
		}
		if e.is("a") {
			break
		}
	}
	if n, _ := sess.Unacked(); n != 0 {
		t.Fatalf("Unacked %d after the client acknowledged all three, want 0", n)
	}
}

// slowReturnListener's connections return from a write only after a
// pause once slow is set: the bytes are on the wire, but the writer
// (here the TLS record under the front's stanza counter) goes on later,
// as a writer preempted right after its write does.
type slowReturnListener struct {
	net.Listener
	slow *atomic.Bool
}

func (l slowReturnListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return slowReturnConn{c, l.slow}, nil
}

type slowReturnConn struct {
	net.Conn
	slow *atomic.Bool
}

func (c slowReturnConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.slow.Load() {
		time.Sleep(300 * time.Millisecond)
	}
	return n, err
}

// TestReviewSMAckBeforeCount: XEP-0198 §4 lets the client send <a/> at
// any time. The stanza counter counts the bytes after the write into the
// connection returns, so a client that acknowledges a stanza as soon as
// it has it can be ahead of the count: its correct <a h='1'/> is judged
// handled-count-too-high and its stream is ended.
func TestReviewSMAckBeforeCount(t *testing.T) {
	h := newSMHandler()
	var slow atomic.Bool
	s, addr := newTestServer(t, h.handle, func(l net.Listener) net.Listener { return slowReturnListener{l, &slow} })
	c := smBound(t, s, addr, "r")
	sess := <-h.sess
	c.enable()
	slow.Store(true)
	sent := make(chan error, 1)
	go func() {
		sent <- sess.XMPP().Send(context.Background(), xml.NewDecoder(strings.NewReader("<message from='bob@example.org/x' to='alice@example.org/r'><body>1</body></message>")))
	}()
	if e := c.next(); e.XMLName.Local != "message" {
		t.Fatalf("got %+v", e)
	}
	c.send(smA(1)) // unsolicited, for the message just read
	slow.Store(false)
	c.send(smR)
	for {
		e := c.next()
		if e.XMLName.Local == "error" {
			t.Fatalf("the client's correct <a h='1'/> ended its stream: %s", e.Inner)
		}
		if e.is("a") {
			break
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if n, _ := sess.Unacked(); n != 0 {
		t.Fatalf("Unacked %d, want 0", n)
	}
}
