package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/c2sfront"
	"github.com/securejingle/securejingle/internal/clienttest"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

// xep0115 reads one of the XEP-0115 examples of testdata/xep-examples.
func xep0115(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "xep-examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleQuery returns the <query/> of an example file holding an iq, or
// the file itself when it is a bare <query/>.
func exampleQuery(t testing.TB, name string) []byte {
	t.Helper()
	b := xep0115(t, name)
	if i := bytes.Index(b, []byte("<iq")); i >= 0 {
		st, err := parseStanza(b[i:])
		if err != nil {
			t.Fatal(err)
		}
		return st.Child(nsDiscoInfo, "query").Raw
	}
	return b[bytes.Index(b, []byte("<query")):]
}

// caps returns the <c/> attributes of a presence's bytes.
func capsAttrs(t testing.TB, presence []byte) (hash, node, ver, ext string) {
	t.Helper()
	st, err := parseStanza(presence)
	if err != nil {
		t.Fatalf("%v: %q", err, presence)
	}
	c := st.Child(nsCaps, "c")
	if c == nil {
		t.Fatalf("no <c/> in %q", presence)
	}
	var v struct {
		Hash string `xml:"hash,attr"`
		Node string `xml:"node,attr"`
		Ver  string `xml:"ver,attr"`
		Ext  string `xml:"ext,attr"`
	}
	if err := xml.Unmarshal(c.Raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.Hash, v.Node, v.Ver, v.Ext
}

// TestCapsVerXEP0115 checks the verification strings of XEP-0115 §5.2
// (simple, published in examples 1 and 3) and §5.3 (complex, with
// identities in two languages and a softwareinfo form). Example 4, the
// XEP's own answer to example 3, lacks the identity's name and the caps
// feature of §5.2: it does not hash to the ver it is published under, so
// it is only parsed here.
func TestCapsVerXEP0115(t *testing.T) {
	for _, tc := range []struct {
		file, ver, s string
	}{
		{"xep0115-5.2.xml", "QgayPKawpkPSDYmwT/WM94uAlu0=",
			"client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"},
		{"xep0115-5.3.xml", "q07IKJEyjvHSyhy//CH0CxmKi8w=",
			"client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
				"http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<" +
				"ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"},
	} {
		info, err := parseDiscoInfo(exampleQuery(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if got := string(info.verInput()); got != tc.s {
			t.Errorf("%s: S = %q, want %q", tc.file, got, tc.s)
		}
		v, err := info.ver(capsSHA1)
		if err != nil || v != tc.ver {
			t.Errorf("%s: ver = %q, %v; want %q", tc.file, v, err, tc.ver)
		}
		if !strings.HasSuffix(info.Node, "#"+tc.ver) {
			t.Errorf("%s: node %q does not end in the published ver", tc.file, info.Node)
		}
		h := sha256.Sum256([]byte(tc.s))
		if v, err := info.ver(capsSHA256); err != nil || v != base64.StdEncoding.EncodeToString(h[:]) {
			t.Errorf("%s: sha-256 ver = %q, %v", tc.file, v, err)
		}
		if _, err := info.ver("md5"); err == nil {
			t.Errorf("%s: md5 accepted", tc.file)
		}
	}
	info, err := parseDiscoInfo(exampleQuery(t, "xep0115-004.xml"))
	if err != nil || len(info.Features) != 3 || !strings.HasSuffix(info.Node, "#QgayPKawpkPSDYmwT/WM94uAlu0=") {
		t.Fatalf("example 4: %v %#v", err, info)
	}
	// Examples 1 and 3 publish and ask for the simple example's ver.
	if _, _, ver, _ := capsAttrs(t, xep0115(t, "xep0115-001.xml")[bytes.Index(xep0115(t, "xep0115-001.xml"), []byte("<presence")):]); ver != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("example 1 ver %q", ver)
	}
	if !bytes.Contains(xep0115(t, "xep0115-003.xml"), []byte("#QgayPKawpkPSDYmwT/WM94uAlu0=")) {
		t.Fatal("example 3 asks for another node")
	}
}

// TestCapsVerFormOrder: forms are hashed in FORM_TYPE order, fields in var
// order and values sorted, whatever the document order; a form without a
// hidden FORM_TYPE is not hashed (XEP-0115 §5.4 step 3.6).
func TestCapsVerFormOrder(t *testing.T) {
	form := func(ft string, hidden bool, fields ...string) string {
		typ := ""
		if hidden {
			typ = ` type="hidden"`
		}
		s := `<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE"` + typ + `><value>` + ft + `</value></field>`
		for _, f := range fields {
			v, vals, _ := strings.Cut(f, "=")
			s += `<field var="` + v + `">`
			for _, x := range strings.Split(vals, ",") {
				s += `<value>` + x + `</value>`
			}
			s += `</field>`
		}
		return s + `</x>`
	}
	q := func(parts ...string) *discoInfo {
		info, err := parseDiscoInfo([]byte(`<query xmlns="` + nsDiscoInfo + `"><identity category="client" type="pc"/>` + strings.Join(parts, "") + `</query>`))
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	a := q(form("urn:b", true, "z=2,1", "y=x"), form("urn:a", true, "k=v"), `<feature var="f2"/><feature var="f1"/>`)
	b := q(`<feature var="f1"/>`, form("urn:a", true, "k=v"), `<feature var="f2"/>`, form("urn:b", true, "y=x", "z=1,2"))
	want := "client/pc//<f1<f2<urn:a<k<v<urn:b<y<x<z<1<2<"
	if string(a.verInput()) != want || string(b.verInput()) != want {
		t.Fatalf("S = %q / %q, want %q", a.verInput(), b.verInput(), want)
	}
	// A form whose FORM_TYPE is not hidden is kept but not hashed.
	c := q(form("urn:a", true, "k=v"), form("urn:c", false, "p=q"))
	if string(c.verInput()) != "client/pc//<urn:a<k<v<" || len(c.Forms) != 2 {
		t.Fatalf("S = %q with %d forms", c.verInput(), len(c.Forms))
	}
	// Two forms without a hidden FORM_TYPE of the same value are not a
	// duplicate (neither is hashed).
	q(form("urn:c", false), form("urn:c", false))
}

// TestOwnCapsVer: the gateway's own ver is the hash of
// "client/pc//securejingle<" and its sorted features, as before the
// general code, and discoInfo serves exactly what it hashes.
func TestOwnCapsVer(t *testing.T) {
	g := &Gateway{features: []string{nsDiscoInfo, nsCaps, e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify", nsCarbons}}
	feats := slices.Sorted(slices.Values(g.features))
	want := "client/pc//securejingle<" + strings.Join(feats, "<") + "<"
	if got := string(g.ownInfo().verInput()); got != want {
		t.Fatalf("S = %q, want %q", got, want)
	}
	if v := g.capsVer(); v != "tPrlWovhfYZiD3wLJrh4DVly1i8=" { // docs/protocol.md §4.2
		t.Fatalf("ver %q, the spec shows tPrlWovhfYZiD3wLJrh4DVly1i8=", v)
	}
	st, err := parseStanza(build("iq", map[string]string{"type": "get", "id": "q1", "from": "bob@example.org/x"},
		element(nsDiscoInfo, "query", "", "node", capsNode+"#"+g.capsVer())))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parseStanza(g.discoInfo(st))
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseDiscoInfo(res.Child(nsDiscoInfo, "query").Raw)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := info.ver(capsSHA1); v != g.capsVer() || info.Node != capsNode+"#"+g.capsVer() {
		t.Fatalf("served info hashes to %q at node %q, advertised %q", v, info.Node, g.capsVer())
	}
}

// TestParseDiscoInfoRejects: malformed and hostile inputs are refused
// with errDiscoInfo, and what XEP-0115 §5.4 calls ill-formed too.
func TestParseDiscoInfoRejects(t *testing.T) {
	q := func(inner string) string { return `<query xmlns="` + nsDiscoInfo + `">` + inner + `</query>` }
	id := `<identity category="client" type="pc"/>`
	rep := func(format string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, format, i)
		}
		return b.String()
	}
	long := strings.Repeat("a", maxDiscoString+1)
	ft := `<field var="FORM_TYPE" type="hidden"><value>urn:x</value></field>`
	for name, in := range map[string]string{
		"not xml":              `<query`,
		"other root":           `<x xmlns="jabber:x:data"/>`,
		"other namespace":      `<query xmlns="jabber:iq:roster"/>`,
		"trailing element":     q(id) + `<query xmlns="` + nsDiscoInfo + `"/>`,
		"text":                 q(id + `hello`),
		"duplicate identity":   q(id + id),
		"duplicate identity2":  q(`<identity category="client" type="pc" xml:lang="en" name="A"/><identity xml:lang="en" name="A" type="pc" category="client"/>`),
		"identity no type":     q(`<identity category="client"/>`),
		"identity no category": q(`<identity type="pc"/>`),
		"identity child":       q(`<identity category="client" type="pc"><x/></identity>`),
		"two names":            q(`<identity category="client" type="pc" name="a" name="b"/>`),
		"duplicate feature":    q(id + `<feature var="a"/><feature var="a"/>`),
		"feature no var":       q(`<feature/>`),
		"long var":             q(`<feature var="` + long + `"/>`),
		"long node":            `<query xmlns="` + nsDiscoInfo + `" node="` + long + `"/>`,
		"too many identities":  q(rep(`<identity category="c" type="t%d"/>`, maxDiscoIdentities+1)),
		"too many features":    q(rep(`<feature var="f%d"/>`, maxDiscoFeatures+1)),
		"too many forms":       q(rep(`<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:%d</value></field></x>`, maxDiscoForms+1)),
		"too many fields":      q(`<x xmlns="jabber:x:data">` + ft + rep(`<field var="v%d"/>`, maxDiscoFields) + `</x>`),
		"too many values":      q(`<x xmlns="jabber:x:data">` + ft + `<field var="v">` + rep(`<value>%d</value>`, maxDiscoValues+1) + `</field></x>`),
		"too many others":      q(rep(`<other xmlns="urn:o" n="%d"/>`, maxDiscoOther+1)),
		"long value":           q(`<x xmlns="jabber:x:data">` + ft + `<field var="v"><value>` + long + `</value></field></x>`),
		"markup in value":      q(`<x xmlns="jabber:x:data">` + ft + `<field var="v"><value>a<b/></value></field></x>`),
		"same FORM_TYPE":       q(`<x xmlns="jabber:x:data">` + ft + `</x><x xmlns="jabber:x:data">` + ft + `</x>`),
		"FORM_TYPE two values": q(`<x xmlns="jabber:x:data"><field var="FORM_TYPE" type="hidden"><value>urn:a</value><value>urn:b</value></field></x>`),
		"FORM_TYPE no value":   q(`<x xmlns="jabber:x:data"><field var="FORM_TYPE" type="hidden"/></x>`),
		"duplicate field":      q(`<x xmlns="jabber:x:data">` + ft + `<field var="v"/><field var="v"/></x>`),
		"too large":            q(strings.Repeat(" ", maxDiscoBytes)),
		"unclosed":             `<query xmlns="` + nsDiscoInfo + `"><feature var="a"/>`,
	} {
		if _, err := parseDiscoInfo([]byte(in)); !errors.Is(err, errDiscoInfo) {
			t.Errorf("%s: err = %v, want errDiscoInfo", name, err)
		}
	}
	// What the limits allow still parses.
	for name, in := range map[string]string{
		"max features":        q(rep(`<feature var="f%d"/>`, maxDiscoFeatures)),
		"FORM_TYPE repeated":  q(`<x xmlns="jabber:x:data"><field var="FORM_TYPE" type="hidden"><value>urn:a</value><value>urn:a</value></field></x>`),
		"same feature prefix": q(`<feature var="a"/><feature var="a "/>`),
		"other elements":      q(id + `<other xmlns="urn:o"><deep><deeper/></deep></other>`),
		"empty":               q(""),
	} {
		if _, err := parseDiscoInfo([]byte(in)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDiscoInfoMarshalRoundTrip: marshal then parse gives back the info.
func TestDiscoInfoMarshalRoundTrip(t *testing.T) {
	for _, f := range []string{"xep0115-004.xml", "xep0115-5.2.xml", "xep0115-5.3.xml"} {
		info, err := parseDiscoInfo(exampleQuery(t, f))
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseDiscoInfo(info.marshal())
		if err != nil || !reflect.DeepEqual(info, back) {
			t.Fatalf("%s: %v\n%#v\n%#v", f, err, info, back)
		}
	}
}

var (
	capsClient = jid.MustParse("alice@example.org/laptop")
	capsPeer   = jid.MustParse("bob@example.net/phone")
)

const clientNode = "http://code.google.com/p/exodus"

// clientVer is the ver of §5.2's info (xep0115-5.2.xml).
const clientVer = "QgayPKawpkPSDYmwT/WM94uAlu0="

func mustStanza(t testing.TB, b []byte) *Stanza {
	t.Helper()
	st, err := parseStanza(b)
	if err != nil {
		t.Fatalf("%v: %q", err, b)
	}
	return st
}

func clientPresenceStanza(t testing.TB, ver, ext string, extra ...[]byte) *Stanza {
	attrs := []string{"hash", "sha-1", "node", clientNode, "ver", ver}
	if ext != "" {
		attrs = append(attrs, "ext", ext)
	}
	kids := append([][]byte{element(nsClient, "status", "here")}, element(nsCaps, "c", "", attrs...))
	return mustStanza(t, build("presence", nil, append(kids, extra...)...))
}

// answerQuery returns the client's result to a disco#info query it got.
func answerQuery(t testing.TB, query []byte, info []byte) *Stanza {
	q := mustStanza(t, query)
	if q.Type != "get" || q.To.Resourcepart() == "" || q.Child(nsDiscoInfo, "query") == nil {
		t.Fatalf("query %q", query)
	}
	return mustStanza(t, build("iq", map[string]string{"type": "result", "id": q.ID, "to": q.From.String()}, info))
}

func newTestRewriter(timeout time.Duration) (*capsRewriter, chan []byte) {
	released := make(chan []byte, 8)
	g := &Gateway{features: []string{nsDiscoInfo, nsCaps, e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify", nsCarbons}}
	return newCapsRewriter(capsClient, g.ownInfo(), capsAugmentFeatures(), timeout, func(b []byte) { released <- b }), released
}

// peerQuery is a disco#info query from the peer to the client.
func peerQuery(t testing.TB, id, node string) *Stanza {
	var attrs []string
	if node != "" {
		attrs = []string{"node", node}
	}
	return mustStanza(t, build("iq", map[string]string{"type": "get", "id": id, "to": capsClient.String(), "from": capsPeer.String()},
		element(nsDiscoInfo, "query", "", attrs...)))
}

// resultInfo parses the disco#info of a result and checks it verifies.
func resultInfo(t testing.TB, b []byte) *discoInfo {
	t.Helper()
	st := mustStanza(t, b)
	q := st.Child(nsDiscoInfo, "query")
	if st.Type != "result" || q == nil {
		t.Fatalf("not a disco#info result: %q", b)
	}
	info, err := parseDiscoInfo(q.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestCapsRewriterRoundTrip: presence → the client is asked → its answer
// → the presence goes up with the augmented ver; a peer asking for that
// node gets the client's info with our features, at that node, from the
// client's JID, and it hashes to the ver in the presence.
func TestCapsRewriterRoundTrip(t *testing.T) {
	r, released := newTestRewriter(time.Hour)
	defer r.stop()
	pres := clientPresenceStanza(t, clientVer, "")
	up, query := r.clientPresence(pres)
	if up != nil || query == nil {
		t.Fatalf("unknown caps: up %q, query %q", up, query)
	}
	if q := mustStanza(t, query); !bytes.Contains(q.Child(nsDiscoInfo, "query").Raw, []byte(`node="`+clientNode+"#"+clientVer+`"`)) {
		t.Fatalf("query for another node: %q", query)
	}
	up, consumed := r.clientResult(answerQuery(t, query, exampleQuery(t, "xep0115-5.2.xml")))
	if !consumed || up == nil {
		t.Fatalf("client answer: consumed %v, up %q", consumed, up)
	}
	hash, node, ver, ext := capsAttrs(t, up)
	if hash != "sha-1" || node != clientNode || ver == clientVer || ver == "" || ext != "" {
		t.Fatalf("augmented caps hash=%q node=%q ver=%q ext=%q", hash, node, ver, ext)
	}
	if st := mustStanza(t, up); st.Child(nsClient, "status") == nil || len(st.Children) != 2 {
		t.Fatalf("presence lost its other children: %q", up)
	}
	// A peer asks for the advertised node: answered here.
	answer := r.inboundQuery(peerQuery(t, "p1", clientNode+"#"+ver), time.Now())
	if answer == nil {
		t.Fatal("query for the augmented node not answered")
	}
	a := mustStanza(t, answer)
	if a.ID != "p1" || !a.From.Equal(capsClient) || !a.To.Equal(capsPeer) {
		t.Fatalf("answer routing: %q", answer)
	}
	info := resultInfo(t, answer)
	if v, _ := info.ver(capsSHA1); v != ver || info.Node != clientNode+"#"+ver {
		t.Fatalf("answer hashes to %q at %q, presence says %q", v, info.Node, ver)
	}
	want := []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc", e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify"}
	if !reflect.DeepEqual(info.Features, want) || len(info.Identities) != 1 {
		t.Fatalf("augmented info %#v", info)
	}
	// The next presence with those caps goes up at once.
	up, query = r.clientPresence(clientPresenceStanza(t, clientVer, ""))
	if _, _, v, _ := capsAttrs(t, up); v != ver || query != nil {
		t.Fatalf("known caps: ver %q, query %q", v, query)
	}
	// A query for the client's own node#ver goes to the client unchanged.
	if answer := r.inboundQuery(peerQuery(t, "p2", clientNode+"#"+clientVer), time.Now()); answer != nil {
		t.Fatalf("query for the client's node answered: %q", answer)
	}
	select {
	case b := <-released:
		t.Fatalf("released %q", b)
	default:
	}
}

// TestCapsRewriterNoDuplicates: a client that already lists a feature of
// ours does not get it twice.
func TestCapsRewriterNoDuplicates(t *testing.T) {
	r, _ := newTestRewriter(time.Hour)
	defer r.stop()
	_, query := r.clientPresence(clientPresenceStanza(t, "v1", ""))
	own := []byte(`<query xmlns="` + nsDiscoInfo + `"><identity category="client" type="pc"/><feature var="` + e2e.NS + `"/><feature var="urn:x"/></query>`)
	up, _ := r.clientResult(answerQuery(t, query, own))
	_, _, ver, _ := capsAttrs(t, up)
	info := resultInfo(t, r.inboundQuery(peerQuery(t, "p", clientNode+"#"+ver), time.Now()))
	if want := []string{e2e.NS, "urn:x", nsBundlesNode + "+notify", nsDevicesNode + "+notify"}; !reflect.DeepEqual(info.Features, want) {
		t.Fatalf("features %q, want %q", info.Features, want)
	}
}

// TestCapsRewriterPlainQuery: a peer's disco#info without a node goes to
// the client, whose answer goes up with our features; other results and
// an answer that does not parse go up unchanged.
func TestCapsRewriterPlainQuery(t *testing.T) {
	r, _ := newTestRewriter(time.Hour)
	defer r.stop()
	q := peerQuery(t, "d1", "")
	if answer := r.inboundQuery(q, time.Now()); answer != nil {
		t.Fatalf("plain query answered: %q", answer)
	}
	res := func(id string, payload []byte) *Stanza {
		return mustStanza(t, build("iq", map[string]string{"type": "result", "id": id, "to": capsPeer.String()}, payload))
	}
	plain := []byte(`<query xmlns="` + nsDiscoInfo + `"><identity category="client" type="pc"/><feature var="urn:x"/></query>`)
	// An unrelated id is not touched.
	other := res("d2", plain)
	if up, consumed := r.clientResult(other); consumed || up != nil {
		t.Fatalf("untracked result rewritten: %q", up)
	}
	up, consumed := r.clientResult(res("d1", plain))
	if consumed {
		t.Fatal("peer result consumed")
	}
	if info := resultInfo(t, up); !slices.Contains(info.Features, e2e.NS) || !slices.Contains(info.Features, "urn:x") || info.Node != "" {
		t.Fatalf("plain result not augmented: %q", up)
	}
	// Once answered, the id is no longer tracked.
	again := res("d1", plain)
	if up, _ := r.clientResult(again); up != nil {
		t.Fatalf("second answer rewritten: %q", up)
	}
	// A result that does not parse passes unchanged.
	r.inboundQuery(peerQuery(t, "d3", ""), time.Now())
	bad := res("d3", []byte(`<query xmlns="`+nsDiscoInfo+`"><feature var="a"/><feature var="a"/></query>`))
	if up, consumed := r.clientResult(bad); consumed || up != nil {
		t.Fatalf("ill-formed result: %q", up)
	}
}

// TestCapsRewriterNoCaps: presence without caps, or with unusable ones,
// gets the gateway's own <c/>, and the gateway's node is answered with
// the gateway's info.
func TestCapsRewriterNoCaps(t *testing.T) {
	r, _ := newTestRewriter(time.Hour)
	defer r.stop()
	for _, p := range [][]byte{
		build("presence", nil, element(nsClient, "show", "away")),
		build("presence", nil, element(nsCaps, "c", "", "hash", "sha-1", "node", clientNode)),
		build("presence", nil, element(nsCaps, "c", "", "hash", "sha-1", "node", "a", "ver", "b"), element(nsCaps, "c", "", "hash", "sha-1", "node", "a", "ver", "c")),
	} {
		up, query := r.clientPresence(mustStanza(t, p))
		if query != nil {
			t.Fatalf("%q: query %q", p, query)
		}
		hash, node, ver, _ := capsAttrs(t, up)
		if hash != "sha-1" || node != capsNode || ver != r.ourVer || len(mustStanza(t, up).Children) != len(mustStanza(t, p).Children)-bytes.Count(p, []byte("<c "))+1 {
			t.Fatalf("%q → %q", p, up)
		}
	}
	if v, _ := resultInfo(t, r.inboundQuery(peerQuery(t, "o", capsNode+"#"+r.ourVer), time.Now())).ver(capsSHA1); v != r.ourVer {
		t.Fatalf("own node answered with ver %q", v)
	}
	// Other presence types pass unchanged.
	sub := mustStanza(t, build("presence", map[string]string{"type": "subscribe", "to": capsPeer.Bare().String()}))
	if up, q := r.clientPresence(sub); q != nil || !bytes.Equal(up, marshalStanza(sub, nil)) {
		t.Fatalf("subscribe: %q", up)
	}
}

// TestCapsRewriterTimeout: a client that never answers its own query does
// not hold its presence for longer than the timeout: it goes up
// unaugmented; a late answer sends it again augmented.
func TestCapsRewriterTimeout(t *testing.T) {
	r, released := newTestRewriter(20 * time.Millisecond)
	defer r.stop()
	up, query := r.clientPresence(clientPresenceStanza(t, clientVer, "ext1"))
	if up != nil || query == nil {
		t.Fatal("presence not held")
	}
	var got []byte
	select {
	case got = <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("presence held forever")
	}
	if _, node, ver, ext := capsAttrs(t, got); node != clientNode || ver != clientVer || ext != "ext1" {
		t.Fatalf("released %q", got)
	}
	// Same caps again while the answer is still missing: up at once,
	// unaugmented, no second query.
	up, q2 := r.clientPresence(clientPresenceStanza(t, clientVer, "ext1"))
	if _, _, ver, _ := capsAttrs(t, up); ver != clientVer || q2 != nil {
		t.Fatalf("second presence: %q, query %q", up, q2)
	}
	up, consumed := r.clientResult(answerQuery(t, query, exampleQuery(t, "xep0115-5.2.xml")))
	if !consumed {
		t.Fatal("late answer not consumed")
	}
	if _, node, ver, ext := capsAttrs(t, up); node != clientNode || ver == clientVer || ext != "ext1" {
		t.Fatalf("late answer: %q", up)
	}
}

// TestCapsRewriterClientError: a client that answers its own query with
// an error gets its presence sent unaugmented, once asked.
func TestCapsRewriterClientError(t *testing.T) {
	r, _ := newTestRewriter(time.Hour)
	defer r.stop()
	_, query := r.clientPresence(clientPresenceStanza(t, "v1", ""))
	q := mustStanza(t, query)
	errIQ := mustStanza(t, build("iq", map[string]string{"type": "error", "id": q.ID}, element(nsStanzas, "item-not-found", "")))
	up, consumed := r.clientResult(errIQ)
	if !consumed {
		t.Fatal("error answer not consumed")
	}
	if _, _, ver, _ := capsAttrs(t, up); ver != "v1" {
		t.Fatalf("error answer: %q", up)
	}
	up, q2 := r.clientPresence(clientPresenceStanza(t, "v1", ""))
	if _, _, ver, _ := capsAttrs(t, up); ver != "v1" || q2 != nil {
		t.Fatalf("asked again: %q %q", up, q2)
	}
}

// TestCapsRewriterSupersede: a newer presence replaces the held one; an
// unavailable presence drops it; a directed one is not held.
func TestCapsRewriterSupersede(t *testing.T) {
	r, released := newTestRewriter(time.Hour)
	defer r.stop()
	_, query := r.clientPresence(clientPresenceStanza(t, clientVer, ""))
	newer := clientPresenceStanza(t, clientVer, "", element(nsClient, "show", "dnd"))
	if up, q := r.clientPresence(newer); up != nil || q != nil {
		t.Fatalf("same caps while asking: %q %q", up, q)
	}
	up, _ := r.clientResult(answerQuery(t, query, exampleQuery(t, "xep0115-5.2.xml")))
	if mustStanza(t, up).Child(nsClient, "show") == nil {
		t.Fatalf("the older presence went up: %q", up)
	}
	// Unknown caps, then unavailable: the held presence is dropped.
	r.clientPresence(clientPresenceStanza(t, "v2", ""))
	if up, _ := r.clientPresence(mustStanza(t, build("presence", map[string]string{"type": "unavailable"}))); up == nil {
		t.Fatal("unavailable held")
	}
	r.mu.Lock()
	pending := r.pending
	r.mu.Unlock()
	if pending != nil {
		t.Fatal("held presence kept after unavailable")
	}
	// A directed presence with unknown caps goes up unchanged and asks.
	d := mustStanza(t, build("presence", map[string]string{"to": "room@muc.example.org/alice"}, element(nsCaps, "c", "", "hash", "sha-1", "node", clientNode, "ver", "v3")))
	up, q := r.clientPresence(d)
	if _, _, ver, _ := capsAttrs(t, up); ver != "v3" || q == nil {
		t.Fatalf("directed: %q %q", up, q)
	}
	select {
	case b := <-released:
		t.Fatalf("released %q", b)
	default:
	}
}

// TestCapsRewriterBounds: the cache and the tracked queries stay bounded
// whatever the client and peers send.
func TestCapsRewriterBounds(t *testing.T) {
	r, _ := newTestRewriter(time.Hour)
	defer r.stop()
	info := exampleQuery(t, "xep0115-5.2.xml")
	for i := range 3 * maxCapsCache {
		_, query := r.clientPresence(clientPresenceStanza(t, fmt.Sprint("v", i), ""))
		r.clientResult(answerQuery(t, query, info))
	}
	now := time.Now()
	for i := range 4 * maxCapsTracked {
		r.inboundQuery(peerQuery(t, fmt.Sprint("q", i), ""), now)
	}
	r.mu.Lock()
	nc, nt := len(r.cache), len(r.tracked)
	r.mu.Unlock()
	if nc != maxCapsCache || nt != maxCapsTracked {
		t.Fatalf("cache %d, tracked %d", nc, nt)
	}
	// Expired entries make room.
	r.inboundQuery(peerQuery(t, "late", ""), now.Add(capsTrackedTTL))
	r.mu.Lock()
	nt = len(r.tracked)
	r.mu.Unlock()
	if nt != 1 {
		t.Fatalf("tracked %d after expiry", nt)
	}
}

// TestCapsRewriterStop: after stop, a held presence is not released.
func TestCapsRewriterStop(t *testing.T) {
	r, released := newTestRewriter(time.Millisecond)
	r.clientPresence(clientPresenceStanza(t, clientVer, ""))
	r.mu.Lock()
	p := r.pending
	r.mu.Unlock()
	r.stop()
	r.expire(p) // as a timer that fired concurrently with stop would
	select {
	case b := <-released:
		t.Fatalf("released after stop: %q", b)
	default:
	}
}

// FuzzParseDiscoInfo: the parser never panics, and what it accepts
// marshals to bytes that parse back to the same info and ver.
func FuzzParseDiscoInfo(f *testing.F) {
	for _, name := range []string{"xep0115-004.xml", "xep0115-5.2.xml", "xep0115-5.3.xml"} {
		f.Add(exampleQuery(f, name))
	}
	f.Add([]byte(`<query xmlns="` + nsDiscoInfo + `" node="n"><identity category="c" type="t" xml:lang="en" name="&lt;x"/><x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>u</value></field><field var="a" label="l"><value>&#xD;</value></field><field type="fixed"><value>f</value></field></x><other xmlns="urn:o"/></query>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseDiscoInfo(b)
		if err != nil {
			if !errors.Is(err, errDiscoInfo) {
				t.Fatalf("error %v is not errDiscoInfo", err)
			}
			return
		}
		m := info.marshal()
		back, err := parseDiscoInfo(m)
		if err != nil {
			t.Fatalf("marshalled info does not parse: %v\n%q", err, m)
		}
		if !reflect.DeepEqual(info, back) {
			t.Fatalf("round trip changed the info:\n%#v\n%#v", info, back)
		}
		v1, _ := info.ver(capsSHA1)
		v2, _ := back.ver(capsSHA1)
		if v1 != v2 {
			t.Fatal("round trip changed the ver")
		}
	})
}

// TestCapsRewriterReleaseOrder: a presence the client sends while a timed
// out one is being released goes up after it, never before (the server
// would keep the older one). The pause gives a wrong implementation the
// chance to overtake; it cannot make a right one fail.
func TestCapsRewriterReleaseOrder(t *testing.T) {
	var (
		mu      sync.Mutex
		log     []string
		entered = make(chan struct{})
		unblock = make(chan struct{})
	)
	add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	g := &Gateway{features: []string{e2e.NS}}
	r := newCapsRewriter(capsClient, g.ownInfo(), capsAugmentFeatures(), time.Millisecond, func(b []byte) {
		close(entered)
		<-unblock // a slow write upstream
		add("held")
	})
	defer r.stop()
	r.clientPresence(clientPresenceStanza(t, clientVer, ""))
	<-entered
	done := make(chan struct{})
	go func() {
		defer close(done)
		if up, _ := r.clientPresence(clientPresenceStanza(t, clientVer, "", element(nsClient, "show", "dnd"))); up != nil {
			add("newer")
		}
	}()
	time.Sleep(50 * time.Millisecond)
	close(unblock)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(log, []string{"held", "newer"}) {
		t.Fatalf("upstream order %q", log)
	}
}

// TestCapsProfanity: a real client (Profanity 0.13, Debian's package)
// logs in to the c2s listener and sends presence with its caps; the
// rewriter asks it for its node#ver, the client's answer hashes (by our
// code) to the ver the client computed itself, and the presence that
// would go up carries the augmented ver, which the answer served to
// peers hashes to.
func TestCapsProfanity(t *testing.T) {
	account := jid.MustParse("alice@example.org")
	const password = "local password for the caps test"
	cred, err := c2sfront.NewCredential(password, 4096)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		clientVer, clientNode string // from the client's presence
		answer                []byte // the client's own answer
		up                    []byte // the augmented presence
		rw                    *capsRewriter
	}
	done := make(chan outcome, 1)
	type clientAnswer struct {
		consumed bool
		q        *Child
	}
	var (
		mu      sync.Mutex
		answers []clientAnswer // the client's answers to the rewriter's questions
	)
	srv, err := c2sfront.New(c2sfront.Config{Account: account, Credential: cred, Logger: slog.New(slog.DiscardHandler)}, func(s *c2sfront.Session) {
		ctx := context.Background()
		g := &Gateway{features: []string{nsDiscoInfo, nsCaps, e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify", nsCarbons}}
		rw := newCapsRewriter(s.JID(), g.ownInfo(), capsAugmentFeatures(), 30*time.Second, nil)
		defer rw.stop()
		send := func(b []byte) {
			if st, err := localxmpp.ParseStanza(b); err == nil {
				_ = s.Send(ctx, st)
			}
		}
		var o outcome
		for {
			ls, err := s.Next()
			if err != nil {
				return
			}
			st, err := parseStanza(ls.Raw)
			if err != nil {
				continue
			}
			switch {
			case st.Kind == "presence":
				if cc, ok := capsOf(st); ok {
					o.clientNode, o.clientVer = cc.node, cc.ver
				}
				if _, query := rw.clientPresence(st); query != nil {
					send(query)
				}
			case st.Kind == "iq" && (st.Type == "result" || st.Type == "error"):
				q := st.Child(nsDiscoInfo, "query")
				if q != nil {
					o.answer = q.Raw
				}
				up, consumed := rw.clientResult(st)
				if strings.HasPrefix(st.ID, "caps-") {
					mu.Lock()
					answers = append(answers, clientAnswer{consumed, q})
					mu.Unlock()
				}
				if consumed && up != nil {
					o.up, o.rw = up, rw
					select {
					case done <- o:
					default:
					}
				}
			case st.Kind == "iq":
				// A minimal server: an empty result, from where the
				// request went (Profanity needs a from).
				attrs := map[string]string{"type": "result", "id": st.ID, "to": s.JID().String()}
				if !st.To.Equal(jid.JID{}) {
					attrs["from"] = st.To.String()
				} else {
					attrs["from"] = account.Domainpart()
				}
				var payload [][]byte
				if st.Type == "get" && len(st.Children) == 1 {
					c := st.Children[0]
					if c.Name.Space == nsDiscoInfo {
						payload = append(payload, []byte(`<query xmlns="`+nsDiscoInfo+`"><identity category="server" type="im"/></query>`))
					} else {
						payload = append(payload, element(c.Name.Space, c.Name.Local, ""))
					}
				}
				send(build("iq", attrs, payload...))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	cert := clienttest.PinnedCert(t, l.Addr().String(), account.Domainpart(), srv.Fingerprint())
	clienttest.StartProfanity(t, clienttest.Endpoint{Addr: l.Addr().String(), JID: account, Password: password, Cert: cert})
	var o outcome
	select {
	case o = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Profanity's presence and caps answer did not arrive")
	}
	if o.clientVer == "" || o.answer == nil {
		t.Fatalf("no caps or no answer from Profanity: %+v", o)
	}
	info, err := parseDiscoInfo(o.answer)
	if err != nil {
		t.Fatalf("Profanity's disco#info: %v\n%s", err, o.answer)
	}
	if v, _ := info.ver(capsSHA1); v != o.clientVer {
		t.Fatalf("Profanity's info hashes to %q here, it advertised %q:\nS = %q", v, o.clientVer, info.verInput())
	}
	_, node, ver, _ := capsAttrs(t, o.up)
	if node != o.clientNode || ver == o.clientVer {
		t.Fatalf("presence going up: %q", o.up)
	}
	answer := o.rw.inboundQuery(mustStanza(t, build("iq", map[string]string{"type": "get", "id": "x", "to": o.rw.client.String(), "from": capsPeer.String()},
		element(nsDiscoInfo, "query", "", "node", node+"#"+ver))), time.Now())
	served := resultInfo(t, answer)
	if v, _ := served.ver(capsSHA1); v != ver || !slices.Contains(served.Features, e2e.NS) || len(served.Features) != len(info.Features)+len(capsAugmentFeatures()) {
		t.Fatalf("served info (ver %q, presence %q): %#v", v, ver, served)
	}
	t.Logf("Profanity %s#%s → %s (%d features)", o.clientNode, o.clientVer, ver, len(served.Features))
	// Profanity sends a second presence with new caps at once (after the
	// server's disco): the first question is abandoned, and its answer is
	// still consumed (not sent upstream) and hashes to the ver it is for.
	mu.Lock()
	defer mu.Unlock()
	for _, a := range answers {
		if !a.consumed || a.q == nil {
			t.Fatalf("answer to the rewriter passed on: %+v", a)
		}
		info, err := parseDiscoInfo(a.q.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := info.ver(capsSHA1); !strings.HasSuffix(info.Node, "#"+v) {
			// Asked for its previous ver, Profanity answers with its
			// current info: not remembered for that ver.
			_, node, _ := strings.Cut(info.Node, "#")
			if o.rw.lookup(o.clientNode, node) != nil {
				t.Errorf("answer for %s remembered, but it hashes to %s", info.Node, v)
			}
		}
	}
	t.Logf("%d answers from Profanity", len(answers))
}

// TestCapsProsodyPEP: a real server (Prosody 0.12's mod_pep) checks the
// augmented caps: it asks the session for node#ver', the rewriter answers
// from the client's info (§5.3's, with a form) plus our features, and
// Prosody, having verified the hash, sends the session the PEP
// notifications of the bundles node that only the added
// "bundles+notify" asks for.
func TestCapsProsodyPEP(t *testing.T) {
	p := prosodytest.Start(t)
	p.AddUser(t, "alice", "alice-pw")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess := prosodytest.Dial(t, ctx, p, "alice", "alice-pw", "laptop")
	g := &Gateway{features: []string{nsDiscoInfo, nsCaps, e2e.NS, nsBundlesNode + "+notify", nsDevicesNode + "+notify", nsCarbons}}
	rw := newCapsRewriter(sess.LocalAddr(), g.ownInfo(), capsAugmentFeatures(), time.Hour, nil)
	defer rw.stop()
	answered := make(chan string, 8) // nodes the server asked for and got an answer
	results := make(chan *Stanza, 8)
	events := make(chan *Stanza, 8)
	go sess.Serve(xmpp.HandlerFunc(func(tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		st, err := readStanza(tr, start)
		if err != nil {
			return nil
		}
		switch {
		case st.Kind == "iq" && st.Type == "get":
			if answer := rw.inboundQuery(st, time.Now()); answer != nil {
				_, err := xmlstream.Copy(tr, tokens(answer))
				answered <- string(st.Children[0].Raw)
				return err
			}
		case st.Kind == "iq":
			results <- st
		case st.Kind == "message" && st.Child(nsPubSub+"#event", "event") != nil:
			events <- st
		}
		return nil
	}))
	wait := func(what string, ch <-chan *Stanza, id string) *Stanza {
		t.Helper()
		for {
			select {
			case st := <-ch:
				if id == "" || st.ID == id {
					return st
				}
			case <-ctx.Done():
				t.Fatalf("no %s", what)
			}
		}
	}
	// The client's presence, held; its answer; the presence goes up.
	pres := mustStanza(t, build("presence", nil, element(nsCaps, "c", "", "hash", "sha-1", "node", "http://psi-im.org", "ver", "q07IKJEyjvHSyhy//CH0CxmKi8w=")))
	_, query := rw.clientPresence(pres)
	up, consumed := rw.clientResult(answerQuery(t, query, exampleQuery(t, "xep0115-5.3.xml")))
	if !consumed || up == nil {
		t.Fatal("no augmented presence")
	}
	_, node, ver, _ := capsAttrs(t, up)
	if err := sess.Send(ctx, tokens(up)); err != nil {
		t.Fatal(err)
	}
	select {
	case q := <-answered:
		if !strings.Contains(q, node+"#"+ver) {
			t.Fatalf("server asked %q", q)
		}
	case <-ctx.Done():
		t.Fatal("Prosody did not ask for the augmented node")
	}
	// A round trip, so the server has processed the answer; then publish
	// to the bundles node.
	if err := sess.Send(ctx, tokens(build("iq", map[string]string{"type": "get", "id": "ping1"}, element(nsPing, "ping", "")))); err != nil {
		t.Fatal(err)
	}
	wait("ping result", results, "ping1")
	item := `<pubsub xmlns="` + nsPubSub + `"><publish node="` + nsBundlesNode + `"><item id="1"><x xmlns="urn:example:caps"/></item></publish></pubsub>`
	if err := sess.Send(ctx, tokens(build("iq", map[string]string{"type": "set", "id": "pub1"}, []byte(item)))); err != nil {
		t.Fatal(err)
	}
	if r := wait("publish result", results, "pub1"); r.Type != "result" {
		t.Fatalf("publish: %+v", r)
	}
	ev := wait("PEP notification", events, "")
	if !bytes.Contains(ev.Child(nsPubSub+"#event", "event").Raw, []byte(nsBundlesNode)) {
		t.Fatalf("event %+v", ev)
	}

	// Prosody keys what it learnt by the hash it computed itself: a second
	// resource with the same caps is not asked again only if that hash is
	// the ver we advertised. (Prosody answers the presence's disco query,
	// if any, before the ping.)
	desk := prosodytest.Dial(t, ctx, p, "alice", "alice-pw", "desk")
	deskIQ := make(chan *Stanza, 8)
	deskEvents := make(chan *Stanza, 8)
	go desk.Serve(xmpp.HandlerFunc(func(tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		st, err := readStanza(tr, start)
		switch {
		case err != nil:
		case st.Kind == "iq":
			deskIQ <- st
		case st.Kind == "message" && st.Child(nsPubSub+"#event", "event") != nil:
			deskEvents <- st
		}
		return nil
	}))
	if err := desk.Send(ctx, tokens(up)); err != nil {
		t.Fatal(err)
	}
	if err := desk.Send(ctx, tokens(build("iq", map[string]string{"type": "get", "id": "ping2"}, element(nsPing, "ping", "")))); err != nil {
		t.Fatal(err)
	}
	for st := wait("desk's ping result", deskIQ, ""); st.ID != "ping2"; st = wait("desk's ping result", deskIQ, "") {
		if st.Child(nsDiscoInfo, "query") != nil {
			t.Fatalf("Prosody asked again for the same caps (its hash is not our ver %s): %+v", ver, st)
		}
	}
	item = strings.Replace(item, `id="1"`, `id="2"`, 1)
	if err := sess.Send(ctx, tokens(build("iq", map[string]string{"type": "set", "id": "pub2"}, []byte(item)))); err != nil {
		t.Fatal(err)
	}
	wait("desk's PEP notification", deskEvents, "")
}

// TestCapsRewriterUnverified: an answer that does not hash to the client's
// ver still augments the presence waiting for it (and peers get that
// info), but is not remembered for the ver: the next presence asks again.
func TestCapsRewriterUnverified(t *testing.T) {
	r, _ := newTestRewriter(time.Hour)
	defer r.stop()
	info := []byte(`<query xmlns="` + nsDiscoInfo + `"><identity category="client" type="pc"/><feature var="urn:x"/></query>`)
	_, query := r.clientPresence(clientPresenceStanza(t, "not-the-hash", ""))
	up, consumed := r.clientResult(answerQuery(t, query, info))
	_, _, ver, _ := capsAttrs(t, up)
	if !consumed || ver == "not-the-hash" {
		t.Fatalf("presence not augmented: %q", up)
	}
	if answer := r.inboundQuery(peerQuery(t, "p", clientNode+"#"+ver), time.Now()); answer == nil {
		t.Fatal("augmented node not answered")
	}
	if up, q := r.clientPresence(clientPresenceStanza(t, "not-the-hash", "")); up != nil || q == nil {
		t.Fatalf("unverified info used again: %q %q", up, q)
	}
	// A legacy <c/> (no hash) cannot be checked: its answer is kept.
	legacy := mustStanza(t, build("presence", nil, element(nsCaps, "c", "", "node", clientNode, "ver", "1.0", "ext", "voice")))
	_, query = r.clientPresence(legacy)
	r.clientResult(answerQuery(t, query, info))
	if up, q := r.clientPresence(legacy); q != nil || up == nil {
		t.Fatalf("legacy caps asked again: %q %q", up, q)
	} else if h, _, v, ext := capsAttrs(t, up); h != "sha-1" || v == "1.0" || ext != "voice" {
		t.Fatalf("legacy presence: %q", up)
	}
}

// TestCapsRewriterAbandoned: the client changes caps before answering;
// the older question's answer is consumed (never sent upstream) and, if it
// verifies, remembered; the held presence is the newer one.
func TestCapsRewriterAbandoned(t *testing.T) {
	r, released := newTestRewriter(time.Hour)
	defer r.stop()
	_, q1 := r.clientPresence(clientPresenceStanza(t, clientVer, ""))
	other := []byte(`<query xmlns="` + nsDiscoInfo + `"><identity category="client" type="pc"/><feature var="urn:y"/></query>`)
	otherInfo, _ := parseDiscoInfo(other)
	otherVer, _ := otherInfo.ver(capsSHA1)
	up, q2 := r.clientPresence(clientPresenceStanza(t, otherVer, ""))
	if up != nil || q2 == nil {
		t.Fatalf("new caps: %q %q", up, q2)
	}
	if up, consumed := r.clientResult(answerQuery(t, q1, exampleQuery(t, "xep0115-5.2.xml"))); !consumed || up != nil {
		t.Fatalf("abandoned answer: consumed %v, up %q", consumed, up)
	}
	if r.lookup(clientNode, clientVer) == nil {
		t.Fatal("verified abandoned answer not remembered")
	}
	up, consumed := r.clientResult(answerQuery(t, q2, other))
	if _, _, ver, _ := capsAttrs(t, up); !consumed || ver == otherVer {
		t.Fatalf("current answer: %q", up)
	}
	select {
	case b := <-released:
		t.Fatalf("released %q", b)
	default:
	}
}
