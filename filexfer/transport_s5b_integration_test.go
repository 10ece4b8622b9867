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
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	depth, started := 0, false
	for {
		tok, err := resp.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && started {
				err := enc.Flush()
				return rtype, out.Bytes(), err // the first child only
			}
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
			if depth == 0 { // the end of the iq
				enc.Flush()
				return rtype, out.Bytes(), nil
			}
			depth--
		}
		if started {
			if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
				return "", nil, err
			}
		}
	}
	enc.Flush()
	return rtype, out.Bytes(), nil
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

// TestIntegrationProsodyProxy65: two clients of a real Prosody negotiate
// a bytestream through its mod_proxy65, as XEP-0260 has them do for a
// nominated proxy candidate: the offerer (Alice) discovers the proxy
// through disco and asks it for its streamhost, the peer (Bob) connects
// first, then Alice, who activates the stream toward Bob; 4 MiB cross in
// each direction unchanged. Activation by the wrong party fails.
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

	sid := "s5b-" + rand.Text()
	dst := filexfer.DstAddr(sid, aJID.String(), bJID.String())
	bc, err := filexfer.DialS5B(ctx, addr, dst) // Bob used Alice's proxy candidate
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	ac, err := filexfer.DialS5B(ctx, addr, dst) // Alice joins it
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()

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

	const size = 4 << 20
	for _, dir := range []struct {
		name     string
		from, to net.Conn
	}{{"alice to bob", ac, bc}, {"bob to alice", bc, ac}} {
		data := make([]byte, size)
		rand.Read(data)
		errc := make(chan error, 1)
		go func() {
			_, err := dir.from.Write(data)
			errc <- err
		}()
		h := sha256.New()
		if _, err := io.CopyN(h, dir.to, size); err != nil {
			t.Fatalf("%s: %v", dir.name, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%s: write: %v", dir.name, err)
		}
		if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("%s: the bytes changed on the way", dir.name)
		}
	}
	// Closing one side ends the other's stream.
	ac.Close()
	bc.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := bc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the offerer closed: %d, %v; want EOF", n, err)
	}
}
