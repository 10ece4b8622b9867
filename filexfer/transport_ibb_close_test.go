package filexfer_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/xmppx"
)

// TestIBBCloseAroundOpenAnswer (review rv9d, low): when we open a
// receiving stream (Open with IBBReceive), a peer may send its <close/>
// before or right after its answer to our <open/>. The close before the
// answer used to be handed to mellium, which had no stream yet
// (item-not-found), leaving a pipe whose Read never returned, not even on
// Close; the close right after the answer made the reader's delivery race
// with OpenIQ registering the stream (run with -race). A close while our
// open is in flight is now kept, like early data blocks, and delivered
// once the stream exists: Read ends.
func TestIBBCloseAroundOpenAnswer(t *testing.T) {
	for _, first := range []bool{true, false} {
		name := map[bool]string{true: "close-first", false: "close-after"}[first]
		t.Run(name, func(t *testing.T) { closeAroundOpenAnswer(t, name, first) })
	}
}

func closeAroundOpenAnswer(t *testing.T, sid string, closeFirst bool) {
	srv, err := localxmpp.New(ibbDomain)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := func(n string) *xmpp.Session {
		if err := srv.AddUser(n, n+"-pw"); err != nil {
			t.Fatal(err)
		}
		s, err := xmppx.Login(ctx, srv.Addr().String(), jid.MustParse(n+"@"+ibbDomain+"/r"), n+"-pw", srv.ClientTLSConfig(), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); s.Conn().Close() })
		return s
	}
	mal := login("mallory")
	bobS := login("bob")
	bob := filexfer.NewIBBStreams(bobS)
	serveIBB(bobS, bob)
	// mallory answers our open and sends a <close/> of the sid, in the
	// order of the case.
	go mal.Serve(xmpp.HandlerFunc(func(t2 xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "iq" {
			return nil
		}
		iq, err := stanza.NewIQ(*start)
		if err != nil || iq.Type != stanza.SetIQ {
			return nil
		}
		payload, err := firstChild(xmlstream.Inner(t2))
		if err != nil || !bytes.Contains(payload, []byte("<open")) {
			return err
		}
		cl := `<iq xmlns='jabber:client' type='set' id='c' to='` + iq.From.String() + `'><close xmlns='http://jabber.org/protocol/ibb' sid='` + sid + `'/></iq>`
		steps := []xml.TokenReader{xml.NewDecoder(bytes.NewReader([]byte(cl))), iq.Result(nil)}
		if !closeFirst {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, r := range steps {
			if _, err := xmlstream.Copy(t2, r); err != nil {
				return err
			}
		}
		return nil
	}))
	p, err := bob.Open(ctx, mal.LocalAddr(), sid, 4096, filexfer.IBBReceive)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(p)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Errorf("Read still blocked 15 s after the peer's <close/>: mellium never saw the close")
		p.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("and Close does not end the Read either: the reading goroutine is stuck for good")
		}
	}
}
