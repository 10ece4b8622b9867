package filexfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

const (
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
)

// sendIQ sends an IQ of type typ with payload (one element, bytes) to to
// and returns the type of the answer and its first child element as bytes.
func sendIQ(ctx context.Context, s *xmpp.Session, typ stanza.IQType, to jid.JID, payload []byte) (stanza.IQType, []byte, error) {
	resp, err := s.SendIQElement(ctx, xml.NewDecoder(bytes.NewReader(payload)), stanza.IQ{To: to, Type: typ})
	if err != nil {
		return "", nil, err
	}
	defer resp.Close()
	tok, err := resp.Token()
	if err != nil {
		return "", nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return "", nil, fmt.Errorf("answer starts with %T", tok)
	}
	var rtype stanza.IQType
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			rtype = stanza.IQType(a.Value)
		}
	}
	b, err := firstChild(xmlstream.Inner(resp))
	return rtype, b, err
}

// firstChild returns the first element r yields, re-encoded as bytes with
// its namespace declared, or nil when there is none.
func firstChild(r xml.TokenReader) ([]byte, error) {
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	depth, started := 0, false
	for {
		tok, err := r.Token()
		if err == io.EOF || (err == nil && !started && tok == nil) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			started = true
			var as []xml.Attr
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
					as = append(as, a)
				}
			}
			t.Attr = as
			tok = t
		case xml.EndElement:
			if depth == 0 {
				continue
			}
			depth--
		}
		if started {
			if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
				return nil, err
			}
		}
		if started && depth == 0 {
			break
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// findProxy walks disco#items of the account's server and returns the
// first item whose disco#info names the XEP-0065 feature.
func findProxy(ctx context.Context, s *xmpp.Session, domain jid.JID) (jid.JID, error) {
	_, b, err := sendIQ(ctx, s, stanza.GetIQ, domain, []byte(`<query xmlns="`+nsDiscoItems+`"/>`))
	if err != nil {
		return jid.JID{}, err
	}
	var items struct {
		Items []struct {
			JID string `xml:"jid,attr"`
		} `xml:"item"`
	}
	if err := xml.Unmarshal(b, &items); err != nil {
		return jid.JID{}, fmt.Errorf("disco#items %s: %w", b, err)
	}
	for _, it := range items.Items {
		j, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		_, b, err := sendIQ(ctx, s, stanza.GetIQ, j, []byte(`<query xmlns="`+nsDiscoInfo+`"/>`))
		if err != nil {
			return jid.JID{}, err
		}
		var info struct {
			Features []struct {
				Var string `xml:"var,attr"`
			} `xml:"feature"`
		}
		if xml.Unmarshal(b, &info) != nil {
			continue
		}
		for _, f := range info.Features {
			if f.Var == filexfer.NSBytestreams {
				return j, nil
			}
		}
	}
	return jid.JID{}, errors.New("no XEP-0065 proxy in disco#items")
}

// TestIntegrationProsodyProxy65: two clients of a real Prosody use its
// mod_proxy65 as XEP-0260 has them use a nominated proxy candidate: the
// offerer (Alice) finds the proxy through disco#items and disco#info and
// asks it for its streamhost; the peer (Bob) connects with the DST.ADDR
// of Alice's candidate, then Alice, who activates the stream toward Bob
// (an activation by Bob fails). 4 MiB then cross unchanged, one way per
// stream, in each direction.
func TestIntegrationProsodyProxy65(t *testing.T) {
	p := prosodytest.Start(t, prosodytest.WithProxy65())
	p.AddUser(t, "alice", "alice-pw")
	p.AddUser(t, "bob", "bob-pw")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := prosodytest.Dial(t, ctx, p, "alice", "alice-pw", "laptop")
	bob := prosodytest.Dial(t, ctx, p, "bob", "bob-pw", "desk")
	for _, s := range []*xmpp.Session{alice, bob} {
		go s.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
	}
	aJID, bJID := alice.LocalAddr(), bob.LocalAddr()

	proxy, err := findProxy(ctx, alice, jid.MustParse(p.Domain()))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := p.Proxy65(); proxy.String() != want {
		t.Fatalf("disco found %s, want %s", proxy, want)
	}
	typ, b, err := sendIQ(ctx, alice, stanza.GetIQ, proxy, filexfer.StreamhostQuery())
	if err != nil || typ != stanza.ResultIQ {
		t.Fatalf("streamhost query: %s %s %v", typ, b, err)
	}
	hosts, err := filexfer.ParseStreamhosts(b)
	if err != nil {
		t.Fatalf("streamhost answer %s: %v", b, err)
	}
	cand, err := hosts[0].Candidate(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, addr := p.Proxy65(); net.JoinHostPort(cand.Host, fmt.Sprint(cand.Port)) != addr || cand.JID != proxy.String() {
		t.Fatalf("proxy candidate %+v, proxy listens on %s", cand, addr)
	}
	addr := net.JoinHostPort(cand.Host, fmt.Sprint(cand.Port))

	// stream sets up one bytestream through the proxy for a fresh sid:
	// Bob (the peer, who used Alice's proxy candidate) connects first,
	// then Alice, who activates it toward Bob.
	stream := func(t *testing.T) (ac, bc net.Conn) {
		sid := "s5b-" + rand.Text()
		dst := filexfer.DstAddr(sid, aJID.String(), bJID.String())
		bc, err := filexfer.DialS5B(ctx, addr, dst)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bc.Close() })
		ac, err = filexfer.DialS5B(ctx, addr, dst)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ac.Close() })
		// Bob cannot activate Alice's stream: the proxy hashes the
		// activator's JID into the address it looks for.
		q, err := filexfer.ActivateQuery(sid, aJID.String())
		if err != nil {
			t.Fatal(err)
		}
		if typ, b, err := sendIQ(ctx, bob, stanza.SetIQ, proxy, q); err != nil || typ != stanza.ErrorIQ {
			t.Fatalf("activation by the peer: %s %s %v; want an error", typ, b, err)
		}
		q, err = filexfer.ActivateQuery(sid, bJID.String())
		if err != nil {
			t.Fatal(err)
		}
		if typ, b, err := sendIQ(ctx, alice, stanza.SetIQ, proxy, q); err != nil || typ != stanza.ResultIQ {
			t.Fatalf("activation: %s %s %v", typ, b, err)
		}
		return ac, bc
	}

	// A file stream is one-way: the sender writes, then closes, and the
	// receiver reads to EOF. (Prosody 0.12's mod_proxy65 holds back the
	// last read of up to 4 KiB until more data or the close arrives, so
	// a stream that stays open may lack its tail; ours never does.)
	const size = 4 << 20
	for _, dir := range []string{"alice to bob", "bob to alice"} {
		t.Run(dir, func(t *testing.T) {
			ac, bc := stream(t)
			from, to := ac, bc
			if dir == "bob to alice" {
				from, to = bc, ac
			}
			data := make([]byte, size)
			rand.Read(data)
			errc := make(chan error, 1)
			go func() {
				_, err := from.Write(data)
				if err == nil {
					err = from.(*net.TCPConn).CloseWrite()
				}
				errc <- err
			}()
			h := sha256.New()
			to.SetReadDeadline(time.Now().Add(time.Minute)) // a hang guard, not a timing assertion
			n, err := io.Copy(h, to)
			if err != nil || n != size {
				t.Fatalf("received %d of %d bytes: %v", n, size, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatal("the bytes changed on the way")
			}
		})
	}
}

// TestIntegrationProsodyIBB: an in-band bytestream between two clients
// of a real Prosody (which relays the IQs and enforces its own stanza
// limits): 256 KiB in 8 KiB blocks arrive unchanged, and a third
// account's data for the sid is refused.
func TestIntegrationProsodyIBB(t *testing.T) {
	p := prosodytest.Start(t)
	p.AddUser(t, "alice", "alice-pw")
	p.AddUser(t, "bob", "bob-pw")
	p.AddUser(t, "mallory", "mallory-pw")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := prosodytest.Dial(t, ctx, p, "alice", "alice-pw", "laptop")
	bob := prosodytest.Dial(t, ctx, p, "bob", "bob-pw", "desk")
	mallory := prosodytest.Dial(t, ctx, p, "mallory", "mallory-pw", "x")
	aIBB, bIBB := filexfer.NewIBBStreams(alice), filexfer.NewIBBStreams(bob)
	serveIBB(alice, aIBB)
	serveIBB(bob, bIBB)
	go mallory.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))

	const sid, bs = "ibb-prosody", 8192
	ch := expectAsync(t, ctx, bIBB, alice.LocalAddr(), sid, bs, filexfer.IBBReceive)
	send, err := aIBB.Open(ctx, bob.LocalAddr(), sid, bs, filexfer.IBBSend)
	if err != nil {
		t.Fatal(err)
	}
	recv := <-ch
	if recv == nil {
		t.FailNow()
	}
	q := []byte(`<data xmlns="http://jabber.org/protocol/ibb" sid="` + sid + `" seq="0">ZXZpbA==</data>`)
	if typ, b, err := sendIQ(ctx, mallory, stanza.SetIQ, bob.LocalAddr(), q); err != nil || typ != stanza.ErrorIQ {
		t.Fatalf("a stranger's block: %s %s %v; want an error", typ, b, err)
	}
	data := make([]byte, 256<<10)
	rand.Read(data)
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
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, sent %d", len(got), len(data))
	}
	recv.Close()
}
