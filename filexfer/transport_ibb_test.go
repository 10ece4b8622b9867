package filexfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
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

const ibbDomain = "example.test"

// ibbClient is one logged-in session whose IQ-sets in the IBB namespace
// go to its IBBStreams, as the gateway routes them.
type ibbClient struct {
	sess *xmpp.Session
	ibb  *filexfer.IBBStreams
	jid  jid.JID
}

// serveIBB runs s with a handler that answers IBB IQ-sets through m.
func serveIBB(s *xmpp.Session, m *filexfer.IBBStreams) {
	go s.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "iq" {
			return nil
		}
		iq, err := stanza.NewIQ(*start)
		if err != nil || iq.Type != stanza.SetIQ {
			return nil
		}
		payload, err := firstChild(xmlstream.Inner(t))
		if err != nil {
			return err
		}
		resp, ok := m.HandleIQ(iq, payload)
		if !ok {
			return nil
		}
		_, err = xmlstream.Copy(t, xml.NewDecoder(bytes.NewReader(resp)))
		return err
	}))
}

func ibbPeers(t testing.TB, names ...string) map[string]*ibbClient {
	t.Helper()
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
	cs := map[string]*ibbClient{}
	for _, n := range names {
		if err := srv.AddUser(n, n+"-pw"); err != nil {
			t.Fatal(err)
		}
		j := jid.MustParse(n + "@" + ibbDomain + "/r")
		s, err := xmppx.Login(ctx, srv.Addr().String(), j, n+"-pw", srv.ClientTLSConfig(), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); s.Conn().Close() })
		c := &ibbClient{sess: s, ibb: filexfer.NewIBBStreams(s), jid: s.LocalAddr()}
		serveIBB(s, c.ibb)
		cs[n] = c
	}
	return cs
}

// transfer sends data from one pipe to the other: the sender writes and
// closes, the receiver reads to EOF.
func transfer(t *testing.T, send, recv filexfer.Pipe, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := send.Write(data)
		if cerr := send.Close(); err == nil {
			err = cerr
		}
		errc <- err
	}()
	got, err := io.ReadAll(recv)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("send: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, sent %d; equal prefix: %v", len(got), len(data), bytes.HasPrefix(data, got))
	}
	recv.Close()
}

// expectAsync registers the stream sid at m, so that an open sent once
// it returns is taken, and waits for the open on a goroutine: the
// channel gets the pipe, or nil after reporting the error.
func expectAsync(t testing.TB, ctx context.Context, m *filexfer.IBBStreams, peer jid.JID, sid string, bs uint16, role filexfer.IBBRole) <-chan filexfer.Pipe {
	t.Helper()
	ch := make(chan filexfer.Pipe, 1)
	reg, err := m.Register(peer, sid, bs, role)
	if err != nil {
		t.Error(err)
		ch <- nil
		return ch
	}
	go func() {
		p, err := reg.Wait(ctx)
		if err != nil {
			t.Error(err)
		}
		ch <- p
	}()
	return ch
}

func TestIBBTransfer(t *testing.T) {
	p := ibbPeers(t, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, size := range []int{0, 1, 767, 768, 769, 4096, 100 << 10} {
		data := make([]byte, size)
		rand.Read(data)
		for _, senderOpens := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/sender-opens=%v", size, senderOpens), func(t *testing.T) {
				sid := fmt.Sprintf("ibb-%d-%v", i, senderOpens)
				var send, recv filexfer.Pipe
				// The expecting side registers before the other opens
				// (the gateway registers before the element naming the
				// sid goes out): the open is never refused for coming
				// first.
				expecter, opener, role, openRole := bob, alice, filexfer.IBBReceive, filexfer.IBBSend
				if !senderOpens {
					// The receiver opens (the Jingle initiator asked
					// for the file); the sender's first block may come
					// before the receiver's open has its answer.
					expecter, opener, role, openRole = alice, bob, filexfer.IBBSend, filexfer.IBBReceive
				}
				reg, err := expecter.ibb.Register(opener.jid, sid, 4096, role)
				if err != nil {
					t.Fatal(err)
				}
				ch := make(chan error, 1)
				var waited filexfer.Pipe
				go func() {
					var err error
					waited, err = reg.Wait(ctx)
					ch <- err
				}()
				opened, err := opener.ibb.Open(ctx, expecter.jid, sid, 4096, openRole)
				if err != nil {
					t.Fatal(err)
				}
				if err := <-ch; err != nil {
					t.Fatal(err)
				}
				send, recv = opened, waited
				if !senderOpens {
					send, recv = waited, opened
				}
				transfer(t, send, recv, data)
			})
		}
	}
}

// TestIBBOpenRightAfterRegister: an open the peer sends as soon as
// Register returned is taken, every time. (Before Register, the gateway
// called Expect on a goroutine and sent the element naming the sid
// without waiting for the registration: under load the peer's open came
// first and was refused with item-not-found, or raced on mellium's
// listener being set up.)
func TestIBBOpenRightAfterRegister(t *testing.T) {
	p := ibbPeers(t, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 30 {
		sid := fmt.Sprintf("now-%d", i)
		ch := expectAsync(t, ctx, bob.ibb, alice.jid, sid, 4096, filexfer.IBBReceive)
		send, err := alice.ibb.Open(ctx, bob.jid, sid, 4096, filexfer.IBBSend)
		if err != nil {
			t.Fatalf("open %d right after Register: %v", i, err)
		}
		recv := <-ch
		if recv == nil {
			t.FailNow()
		}
		transfer(t, send, recv, []byte("x"))
	}
}

// ibbIQ sends a raw IBB payload from c to to and returns the answer's
// type and error condition.
func ibbIQ(t *testing.T, c *ibbClient, to jid.JID, payload string) (stanza.IQType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	typ, b, err := sendIQ(ctx, c.sess, stanza.SetIQ, to, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Conds []struct{ XMLName xml.Name } `xml:",any"`
	}
	if len(b) > 0 {
		xml.Unmarshal(b, &e)
	}
	for _, c := range e.Conds {
		if c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" {
			return typ, c.XMLName.Local
		}
	}
	return typ, ""
}

func open(sid string, bs int, extra string) string {
	return fmt.Sprintf(`<open xmlns='http://jabber.org/protocol/ibb' sid='%s' block-size='%d'%s/>`, sid, bs, extra)
}

func data(sid string, seq int, b []byte) string {
	return fmt.Sprintf(`<data xmlns='http://jabber.org/protocol/ibb' sid='%s' seq='%d'>%s</data>`, sid, seq, base64.StdEncoding.EncodeToString(b))
}

// TestIBBFilter: only the negotiated peer opens the expected sid, over
// the iq carrier, within the block size; strangers and malformed
// payloads are answered with errors and change nothing.
func TestIBBFilter(t *testing.T) {
	p := ibbPeers(t, "alice", "bob", "mallory")
	alice, bob, mallory := p["alice"], p["bob"], p["mallory"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Nothing expected: any open is refused.
	if typ, cond := ibbIQ(t, mallory, bob.jid, open("s1", 4096, "")); typ != stanza.ErrorIQ || cond != "item-not-found" {
		t.Fatalf("unexpected open: %s %s", typ, cond)
	}

	ch := expectAsync(t, ctx, bob.ibb, alice.jid, "s1", 4096, filexfer.IBBReceive)
	for name, tc := range map[string]struct {
		from    *ibbClient
		payload string
		cond    string
	}{
		"stranger opens the sid": {mallory, open("s1", 4096, ""), "item-not-found"},
		"message carrier":        {alice, open("s1", 4096, ` stanza='message'`), "feature-not-implemented"},
		"block size too large":   {alice, open("s1", 8192, ""), "resource-constraint"},
		"data before open":       {alice, data("s1", 0, []byte("x")), "not-acceptable"},
		"unknown element":        {alice, `<ping xmlns='http://jabber.org/protocol/ibb' sid='s1'/>`, "bad-request"},
		"child element":          {alice, `<close xmlns='http://jabber.org/protocol/ibb' sid='s1'><x/></close>`, "bad-request"},
		"bad block-size":         {alice, open("s1", 0, ""), "bad-request"},
		"unknown attribute":      {alice, `<close xmlns='http://jabber.org/protocol/ibb' sid='s1' x='1'/>`, "bad-request"},
		"missing sid":            {alice, `<close xmlns='http://jabber.org/protocol/ibb'/>`, "bad-request"},
	} {
		if typ, cond := ibbIQ(t, tc.from, bob.jid, tc.payload); typ != stanza.ErrorIQ || cond != tc.cond {
			t.Errorf("%s: %s %q, want error %q", name, typ, cond, tc.cond)
		}
	}
	// The real open still works after all that.
	if typ, cond := ibbIQ(t, alice, bob.jid, open("s1", 4096, "")); typ != stanza.ResultIQ {
		t.Fatalf("open: %s %s", typ, cond)
	}
	recv := <-ch
	if recv == nil {
		t.FailNow()
	}
	if typ, cond := ibbIQ(t, alice, bob.jid, open("s1", 4096, "")); typ != stanza.ErrorIQ || cond != "not-acceptable" {
		t.Errorf("second open: %s %s", typ, cond)
	}
	for name, tc := range map[string]struct {
		from    *ibbClient
		payload string
		cond    string
	}{
		"stranger's data":   {mallory, data("s1", 0, []byte("evil")), "item-not-found"},
		"stranger's close":  {mallory, `<close xmlns='http://jabber.org/protocol/ibb' sid='s1'/>`, "item-not-found"},
		"block over size":   {alice, data("s1", 0, make([]byte, 4097)), "bad-request"},
		"wrong seq":         {alice, data("s1", 5, []byte("x")), "unexpected-request"},
		"seq not canonical": {alice, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='00'>eA==</data>`, "bad-request"},
		"seq out of range":  {alice, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='65536'>eA==</data>`, "bad-request"},
		// N good quads and then '=': the old count took 4098 bytes
		// for 4096, and mellium took the quads (and the seq) before it
		// refused the rest, so the genuine block 0 below was refused.
		"padding hides a larger block": {alice, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='0'>` + base64.StdEncoding.EncodeToString(make([]byte, 4098)) + `========</data>`, "bad-request"},
		"padding inside":               {alice, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='0'>eA==eA==</data>`, "bad-request"},
		"not a multiple of 4":          {alice, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='0'>eA=</data>`, "bad-request"},
		"payload over limit":           {alice, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='0'>` + strings.Repeat("A", 100<<10) + `</data>`, "bad-request"},
	} {
		if typ, cond := ibbIQ(t, tc.from, bob.jid, tc.payload); typ != stanza.ErrorIQ || cond != tc.cond {
			t.Errorf("%s: %s %q, want error %q", name, typ, cond, tc.cond)
		}
	}
	// The genuine stream is intact: a block of exactly the block size,
	// then the close.
	block := bytes.Repeat([]byte{7}, 4096)
	if typ, cond := ibbIQ(t, alice, bob.jid, data("s1", 0, block)); typ != stanza.ResultIQ {
		t.Fatalf("data: %s %s", typ, cond)
	}
	// (mellium counts a block whose base64 it then refuses.)
	if typ, cond := ibbIQ(t, alice, bob.jid, `<data xmlns='http://jabber.org/protocol/ibb' sid='s1' seq='1'>!!!!</data>`); typ != stanza.ErrorIQ || cond != "bad-request" {
		t.Errorf("not base64: %s %s", typ, cond)
	}
	if typ, cond := ibbIQ(t, alice, bob.jid, `<close xmlns='http://jabber.org/protocol/ibb' sid='s1'/>`); typ != stanza.ResultIQ {
		t.Fatalf("close: %s %s", typ, cond)
	}
	got, err := io.ReadAll(recv)
	if err != nil || !bytes.Equal(got, block) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	recv.Close()
	// Once closed, the sid is gone.
	if typ, cond := ibbIQ(t, alice, bob.jid, data("s1", 1, []byte("x"))); typ != stanza.ErrorIQ || cond != "item-not-found" {
		t.Errorf("data after close: %s %s", typ, cond)
	}
}

// TestIBBExpectCancel: once Expect's context ends, the open it waited
// for is refused.
func TestIBBExpectCancel(t *testing.T) {
	p := ibbPeers(t, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bob.ibb.Expect(ctx, alice.jid, "s2", 4096, filexfer.IBBReceive); !errors.Is(err, context.Canceled) {
		t.Fatalf("Expect: %v", err)
	}
	if typ, cond := ibbIQ(t, alice, bob.jid, open("s2", 4096, "")); typ != stanza.ErrorIQ || cond != "item-not-found" {
		t.Fatalf("open after cancel: %s %s", typ, cond)
	}
}

// TestIBBCloseUnblocksRead: closing the receiving pipe ends a Read that
// waits for data, and tells the sender, whose next write fails.
func TestIBBCloseUnblocksRead(t *testing.T) {
	p := ibbPeers(t, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch := expectAsync(t, ctx, bob.ibb, alice.jid, "s3", 4096, filexfer.IBBReceive)
	send, err := alice.ibb.Open(ctx, bob.jid, "s3", 4096, filexfer.IBBSend)
	if err != nil {
		t.Fatal(err)
	}
	recv := <-ch
	if recv == nil {
		t.FailNow()
	}
	done := make(chan error, 1)
	go func() {
		_, err := recv.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // Read waits (correctness does not depend on it)
	recv.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("Read after Close: %v, want EOF", err)
	}
	if _, err := recv.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("second Read: %v", err)
	}
	if _, err := recv.Write([]byte("x")); !errors.Is(err, filexfer.ErrIBBRole) {
		t.Fatalf("Write on a receiving pipe: %v", err)
	}
	if _, err := send.Read(make([]byte, 1)); !errors.Is(err, filexfer.ErrIBBRole) {
		t.Fatalf("Read on a sending pipe: %v", err)
	}
	// The sender learns it: its close or next block fails.
	_, werr := send.Write(bytes.Repeat([]byte{1}, 5000))
	cerr := send.Close()
	if werr == nil && cerr == nil {
		t.Fatal("sender did not notice the receiver closed")
	}
}

func TestIBBArguments(t *testing.T) {
	p := ibbPeers(t, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"bare peer":      func() error { _, err := alice.ibb.Open(ctx, bob.jid.Bare(), "a1", 4096, filexfer.IBBSend); return err },
		"empty sid":      func() error { _, err := alice.ibb.Open(ctx, bob.jid, "", 4096, filexfer.IBBSend); return err },
		"sid with space": func() error { _, err := alice.ibb.Open(ctx, bob.jid, "a b", 4096, filexfer.IBBSend); return err },
		"block size 0":   func() error { _, err := alice.ibb.Open(ctx, bob.jid, "a2", 0, filexfer.IBBSend); return err },
		"no role":        func() error { _, err := alice.ibb.Open(ctx, bob.jid, "a4", 4096, 0); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkIBBTransfer: 1 MiB per op over the embedded server, the
// sender writing 64 KiB at a time with a 64 KiB-1 block size.
func BenchmarkIBBTransfer(b *testing.B) {
	p := ibbPeers(b, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	const size = 1 << 20
	data := make([]byte, size)
	rand.Read(data)
	b.SetBytes(size)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		sid := fmt.Sprintf("bench-%d", i)
		ch := expectAsync(b, ctx, bob.ibb, alice.jid, sid, filexfer.IBBMaxBlockSize, filexfer.IBBReceive)
		send, err := alice.ibb.Open(ctx, bob.jid, sid, filexfer.IBBMaxBlockSize, filexfer.IBBSend)
		if err != nil {
			b.Fatal(err)
		}
		recv := <-ch
		go func() {
			for off := 0; off < size; off += 64 << 10 {
				send.Write(data[off : off+64<<10])
			}
			send.Close()
		}()
		n, err := io.Copy(io.Discard, recv)
		if err != nil || n != size {
			b.Fatalf("%d, %v", n, err)
		}
		recv.Close()
	}
}

// TestIBBRefusedOpenDoesNotStall: an open that mellium refuses is answered
// at once. The filter used to wait for a stream that never came, for up
// to five seconds on the session's reader with the stream's lock held,
// and a peer could repeat that stall for every sid it knew of.
func TestIBBRefusedOpenDoesNotStall(t *testing.T) {
	defer filexfer.SetIBBAcceptWait(time.Hour)() // the old wait never ends
	p := ibbPeers(t, "alice", "bob")
	alice, bob := p["alice"], p["bob"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg, err := bob.ibb.Register(alice.jid, "refused", 4096, filexfer.IBBReceive)
	if err != nil {
		t.Fatal(err)
	}
	bob.ibb.CloseIBBListener("refused")
	answered := make(chan string, 1)
	go func() {
		typ, cond := ibbIQ(t, alice, bob.jid, open("refused", 4096, ""))
		answered <- string(typ) + " " + cond
	}()
	select {
	case a := <-answered:
		if a != "error not-acceptable" {
			t.Fatalf("refused open answered %q, want error not-acceptable", a)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the refused open was not answered: HandleIQ waits on the session's reader")
	}
	if _, err := reg.Wait(ctx); err == nil {
		t.Fatal("Wait took a stream mellium refused")
	}
	// bob's reader is free: another stream still opens and carries bytes.
	ch := expectAsync(t, ctx, bob.ibb, alice.jid, "after", 4096, filexfer.IBBReceive)
	send, err := alice.ibb.Open(ctx, bob.jid, "after", 4096, filexfer.IBBSend)
	if err != nil {
		t.Fatal(err)
	}
	recv := <-ch
	if recv == nil {
		t.FailNow()
	}
	transfer(t, send, recv, []byte("still flowing"))
}
