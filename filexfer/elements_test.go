package filexfer

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/jingle"
	"github.com/securejingle/securejingle/policy"
)

// contentOf parses inner as the children of one content of a
// session-initiate.
func contentOf(t testing.TB, inner string) *jingle.Content {
	t.Helper()
	j, err := jingle.Parse([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1' initiator='a@example.org/r'>` +
		`<content creator='initiator' name='c' senders='initiator'>` + inner + `</content></jingle>`))
	if err != nil {
		t.Fatalf("jingle.Parse: %v", err)
	}
	return &j.Contents[0]
}

// rawOf returns the one element of inner as a content child.
func rawOf(t testing.TB, inner string) jingle.Raw {
	t.Helper()
	c := contentOf(t, inner)
	if len(c.Other) != 1 {
		t.Fatalf("want one element, got %d", len(c.Other))
	}
	return c.Other[0]
}

// fixture reads the Jingle element of testdata/conversations/name.
func fixture(t testing.TB, name string) *jingle.Jingle {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "conversations", name))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jingleOf(b)
	if err != nil || len(js) != 1 {
		t.Fatalf("%s: want one jingle element, got %d (%v)", name, len(js), err)
	}
	j, err := jingle.Parse(js[0])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return j
}

const ft = `xmlns='urn:xmpp:jingle:apps:file-transfer:5'`

func desc(file string) string {
	return `<description ` + ft + `><file>` + file + `</file></description>`
}

func sha256b64(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestParseDescriptionFields(t *testing.T) {
	r := rawOf(t, desc(`<date>2024-05-12T18:15:33.25+02:00</date><desc>holiday</desc><media-type>image/jpeg</media-type>`+
		`<name>../../etc/passwd</name><range offset='65536' length='100'/><size>1048576</size>`+
		`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>`+sha256b64(7)+`</hash><hash-used xmlns='urn:xmpp:hashes:2' algo='sha-512'/>`+
		`<x xmlns='urn:example:ext' a='1'>kept</x>`))
	d, ok, err := ParseDescription(r)
	if !ok || err != nil {
		t.Fatalf("ParseDescription: %v %v", ok, err)
	}
	f := d.File
	want := time.Date(2024, 5, 12, 16, 15, 33, 250e6, time.UTC)
	if !f.Date.Equal(want) || f.Desc != "holiday" || f.MediaType != "image/jpeg" || f.MediaTypeCamel ||
		f.Name != "../../etc/passwd" || !f.HasSize || f.Size != 1<<20 ||
		f.Range == nil || f.Range.Offset != 65536 || f.Range.Length != 100 ||
		len(f.Hashes) != 1 || f.Hashes[0].Algo != "sha-256" || !bytes.Equal(f.Hashes[0].Value, bytes.Repeat([]byte{7}, 32)) ||
		!reflect.DeepEqual(f.HashesUsed, []string{"sha-512"}) || len(f.Other) != 1 {
		t.Fatalf("fields: %+v", f)
	}
	out, err := d.Raw()
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := ParseDescription(out)
	if err != nil || !sameValue(reflect.ValueOf(d), reflect.ValueOf(back)) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, d, back)
	}
	h, ok := StrongestHash(f.Hashes)
	if !ok || h.Algo != "sha-256" {
		t.Fatalf("StrongestHash = %v, %v", h, ok)
	}
}

func TestNamesKeptVerbatim(t *testing.T) {
	for _, name := range []string{"../../etc/passwd", "/abs/path", `C:\Windows\system32`, "a\tb\nc", " spaced ", "ünïcödé.txt", "x/../../y"} {
		var b strings.Builder
		xml.EscapeText(&b, []byte(name))
		r := rawOf(t, desc(`<name>`+b.String()+`</name>`))
		d, _, err := ParseDescription(r)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if d.File.Name != name {
			t.Fatalf("name %q read as %q", name, d.File.Name)
		}
		out, err := d.Raw()
		if err != nil {
			t.Fatal(err)
		}
		back, _, _ := ParseDescription(out)
		if back.File.Name != name {
			t.Fatalf("name %q written back as %q", name, back.File.Name)
		}
	}
}

// TestHostileElements feeds malformed and hostile elements to every
// parser and checks that each is refused with an ElementError naming the
// offending part.
func TestHostileElements(t *testing.T) {
	long := strings.Repeat("a", MaxFileNameLen+1)
	var many strings.Builder
	for i := 0; i <= MaxS5BCandidates; i++ {
		fmt.Fprintf(&many, `<candidate cid='c%d' host='10.0.0.1' jid='a@b/c' port='1' priority='1'/>`, i)
	}
	var hashes strings.Builder
	for _, a := range []string{"sha-1", "sha-224", "sha-256", "sha-384", "sha-512", "sha3-256", "sha3-512", "blake2b-256", "blake2b-512"} {
		n, _ := DigestSize(a)
		fmt.Fprintf(&hashes, `<hash xmlns='urn:xmpp:hashes:2' algo='%s'>%s</hash>`, a, base64.StdEncoding.EncodeToString(make([]byte, n)))
	}
	s5b := func(inner string) string {
		return `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'>` + inner + `</transport>`
	}
	cand := func(attrs string) string { return s5b(`<candidate ` + attrs + `/>`) }
	sec := func(attrs, inner string) string {
		return `<security xmlns='urn:xmpp:jingle:jet:0' name='c' ` + attrs + `>` + inner + `</security>`
	}
	ours := `cipher='urn:x-securejingle:1:file:aes-256-gcm' type='urn:x-securejingle:1'`
	key := `<key xmlns='urn:x-securejingle:1:file'>` + sha256b64(1) + `</key>`
	cases := []struct {
		name, xml, field string
	}{
		{"size 2^63", desc(`<size>9223372036854775808</size>`), "description/file/size"},
		{"size overflow", desc(`<size>99999999999999999999999</size>`), "description/file/size"},
		{"size negative", desc(`<size>-1</size>`), "description/file/size"},
		{"size plus", desc(`<size>+5</size>`), "description/file/size"},
		{"size leading zero", desc(`<size>007</size>`), "description/file/size"},
		{"size hex", desc(`<size>0x10</size>`), "description/file/size"},
		{"size empty", desc(`<size/>`), "description/file/size"},
		{"size child", desc(`<size><b/></size>`), "description/file/size/b"},
		{"name too long", desc(`<name>` + long + `</name>`), "description/file/name"},
		{"name empty", desc(`<name></name>`), "description/file/name"},
		{"name twice", desc(`<name>a</name><name>b</name>`), "description/file/name"},
		{"name attribute", desc(`<name x='1'>a</name>`), "description/file/name@x"},
		{"desc too long", desc(`<desc>` + strings.Repeat("d", MaxFileDescLen+1) + `</desc>`), "description/file/desc"},
		{"media type", desc(`<media-type>not a type</media-type>`), "description/file/media-type"},
		{"two media types", desc(`<media-type>a/b</media-type><mediaType>a/b</mediaType>`), "description/file/mediaType"},
		{"date", desc(`<date>yesterday</date>`), "description/file/date"},
		{"date lower t", desc(`<date>2024-05-12t18:15:33Z</date>`), "description/file/date"},
		{"date zero", desc(`<date>0001-01-01T00:00:00Z</date>`), "description/file/date"},
		{"two files", `<description ` + ft + `><file/><file/></description>`, "description/file"},
		{"no file", `<description ` + ft + `/>`, "description/file"},
		{"unknown ft element", desc(`<bogus/>`), "description/file/bogus"},
		{"unknown description attribute", `<description ` + ft + ` x='1'><file/></description>`, "description@x"},
		{"text in file", desc(`hello`), "description/file"},
		{"hash no padding", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+AfvuGdqkty2+KP48</hash>`), "description/file/hash"},
		{"hash whitespace", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+Afv uGdqkty2+KP48=</hash>`), "description/file/hash"},
		{"hash padding bits", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+AfvuGdqkty2+KP49=</hash>`), "description/file/hash"},
		{"hash not base64", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>!!!!</hash>`), "description/file/hash"},
		{"hash wrong length", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>w0mcJylzCn+AfvuGdqkty2+KP48=</hash>`), "description/file/hash"},
		{"hash empty", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'></hash>`), "description/file/hash"},
		{"hash upper-case algo", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='SHA-256'>` + sha256b64(0) + `</hash>`), "description/file/hash@algo"},
		{"hash no algo", desc(`<hash xmlns='urn:xmpp:hashes:2'>` + sha256b64(0) + `</hash>`), "description/file/hash@algo"},
		{"hash duplicate algo", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>` + sha256b64(0) + `</hash><hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>` + sha256b64(1) + `</hash>`), "description/file/hash@algo"},
		{"too many hashes", desc(hashes.String()), "description/file/hash"},
		{"unknown algo too long", desc(`<hash xmlns='urn:xmpp:hashes:2' algo='foo'>` + base64.StdEncoding.EncodeToString(make([]byte, MaxHashLen+1)) + `</hash>`), "description/file/hash"},
		{"hash-used duplicate", desc(`<hash-used xmlns='urn:xmpp:hashes:2' algo='sha-1'/><hash-used xmlns='urn:xmpp:hashes:2' algo='sha-1'/>`), "description/file/hash-used@algo"},
		{"unknown hashes element", desc(`<hashes xmlns='urn:xmpp:hashes:2'/>`), "description/file/hashes"},
		{"range offset beyond size", desc(`<range offset='11'/><size>10</size>`), "description/file/range@offset"},
		{"range length beyond size", desc(`<range offset='5' length='6'/><size>10</size>`), "description/file/range@length"},
		{"range overflow", desc(`<range offset='9223372036854775807' length='1'/>`), "description/file/range@length"},
		{"range length zero", desc(`<range length='0'/>`), "description/file/range@length"},
		{"range offset negative", desc(`<range offset='-1'/>`), "description/file/range@offset"},
		{"range child", desc(`<range><x xmlns='urn:example'/></range>`), "description/file/range/x"},
		{"hash hidden in extension", desc(`<x xmlns='urn:example'><hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>` + sha256b64(0) + `</hash></x>`), "description/file/x/hash"},
		{"key hidden in extension", desc(`<x xmlns='urn:example'>` + key + `</x>`), "description/file/x/key"},

		{"security no name", `<security xmlns='urn:xmpp:jingle:jet:0' ` + ours + `>` + key + `</security>`, "security@name"},
		{"security no cipher", sec(`type='urn:x-securejingle:1'`, key), "security@cipher"},
		{"security no type", sec(`cipher='x'`, key), "security@type"},
		{"our envelope unknown suite", sec(`cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding' type='urn:x-securejingle:1'`, key), "security@cipher"},
		{"our envelope no key", sec(ours, ``), "security/key"},
		{"our envelope two keys", sec(ours, key+key), "security/key"},
		{"our envelope foreign child", sec(ours, key+`<x xmlns='urn:example'/>`), "security/x"},
		{"our key short", sec(ours, `<key xmlns='urn:x-securejingle:1:file'>`+base64.StdEncoding.EncodeToString(make([]byte, 31))+`</key>`), "security/key"},
		{"our key long", sec(ours, `<key xmlns='urn:x-securejingle:1:file'>`+base64.StdEncoding.EncodeToString(make([]byte, 33))+`</key>`), "security/key"},
		{"our key bad base64", sec(ours, `<key xmlns='urn:x-securejingle:1:file'>AAAA AAAA</key>`), "security/key"},
		{"our key child", sec(ours, `<key xmlns='urn:x-securejingle:1:file'><x/></key>`), "security/key/x"},
		{"chunk size small", sec(ours, `<key xmlns='urn:x-securejingle:1:file' chunk-size='1023'>`+sha256b64(1)+`</key>`), "security/key@chunk-size"},
		{"chunk size large", sec(ours, `<key xmlns='urn:x-securejingle:1:file' chunk-size='4194305'>`+sha256b64(1)+`</key>`), "security/key@chunk-size"},
		{"our key in foreign envelope", sec(`cipher='x' type='eu.siacs.conversations.axolotl'`, key), "security/key"},
		{"our key deep in foreign envelope", sec(`cipher='x' type='eu.siacs.conversations.axolotl'`, `<encrypted xmlns='eu.siacs.conversations.axolotl'>`+key+`</encrypted>`), "security/encrypted/key"},

		{"too many candidates", s5b(many.String()), "transport/candidate"},
		{"duplicate cid", s5b(`<candidate cid='x' host='10.0.0.1' jid='a@b/c' priority='1'/><candidate cid='x' host='10.0.0.2' jid='a@b/c' priority='1'/>`), "transport/candidate@cid"},
		{"port zero", cand(`cid='x' host='10.0.0.1' jid='a@b/c' port='0' priority='1'`), "transport/candidate@port"},
		{"port too big", cand(`cid='x' host='10.0.0.1' jid='a@b/c' port='65536' priority='1'`), "transport/candidate@port"},
		{"priority zero", cand(`cid='x' host='10.0.0.1' jid='a@b/c' priority='0'`), "transport/candidate@priority"},
		{"priority 2^31", cand(`cid='x' host='10.0.0.1' jid='a@b/c' priority='2147483648'`), "transport/candidate@priority"},
		{"priority missing", cand(`cid='x' host='10.0.0.1' jid='a@b/c'`), "transport/candidate@priority"},
		{"host with space", cand(`cid='x' host='a b' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"host bad ipv4", cand(`cid='x' host='10.0.0.256' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"host zone", cand(`cid='x' host='fe80::1%eth0' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"host label dash", cand(`cid='x' host='-a.example' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"host empty label", cand(`cid='x' host='a..example' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"host url", cand(`cid='x' host='http://x' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"host missing", cand(`cid='x' jid='a@b/c' priority='1'`), "transport/candidate@host"},
		{"jid missing", cand(`cid='x' host='10.0.0.1' priority='1'`), "transport/candidate@jid"},
		{"cid with space", cand(`cid='x y' host='10.0.0.1' jid='a@b/c' priority='1'`), "transport/candidate@cid"},
		{"candidate type", cand(`cid='x' host='10.0.0.1' jid='a@b/c' priority='1' type='relay'`), "transport/candidate@type"},
		{"no sid", `<transport xmlns='urn:xmpp:jingle:transports:s5b:1'/>`, "transport@sid"},
		{"dstaddr upper", `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' dstaddr='972B7BF47291CA609517F67F86B5081086052DAD'/>`, "transport@dstaddr"},
		{"dstaddr short", `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' dstaddr='972b'/>`, "transport@dstaddr"},
		{"mode", `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' mode='sctp'/>`, "transport@mode"},
		{"used and error", s5b(`<candidate-used cid='x'/><candidate-error/>`), "transport/candidate-error"},
		{"candidates and activated", s5b(`<candidate cid='x' host='10.0.0.1' jid='a@b/c' priority='1'/><activated cid='x'/>`), "transport/activated"},
		{"used without cid", s5b(`<candidate-used/>`), "transport/candidate-used@cid"},
		{"error with cid", s5b(`<proxy-error cid='x'/>`), "transport/proxy-error@cid"},
		{"unknown s5b element", s5b(`<candidates/>`), "transport/candidates"},

		{"block-size zero", `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='0' sid='s'/>`, "transport@block-size"},
		{"block-size 65536", `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='65536' sid='s'/>`, "transport@block-size"},
		{"block-size missing", `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='s'/>`, "transport@block-size"},
		{"ibb sid missing", `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096'/>`, "transport@sid"},
		{"ibb stanza", `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='s' stanza='presence'/>`, "transport@stanza"},
		{"ibb unknown child", `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='s'><open/></transport>`, "transport/open"},

		{"sctp-port zero", `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' sctp-port='0'/>`, "transport@sctp-port"},
		{"max-message-size 2^32", `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' max-message-size='4294967296'/>`, "transport@max-message-size"},
		{"datachannel unknown attribute", `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' streams='1024'/>`, "transport@streams"},
		{"datachannel unknown child", `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'><channel/></transport>`, "transport/channel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawOf(t, c.xml)
			err := parseAny(r)
			var ee *ElementError
			if !errors.As(err, &ee) || !errors.Is(err, ErrMalformedElement) {
				t.Fatalf("want an ElementError, got %v", err)
			}
			if ee.Field != c.field {
				t.Fatalf("field %q, want %q (%v)", ee.Field, c.field, err)
			}
		})
	}
}

// parseAny runs the parser for r's element.
func parseAny(r jingle.Raw) error {
	var err error
	var ok bool
	for _, p := range []func(jingle.Raw) (bool, error){
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseDescription(r); return ok, err },
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseSecurity(r); return ok, err },
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseS5BTransport(r); return ok, err },
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseIBBTransport(r); return ok, err },
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseDataChannelTransport(r); return ok, err },
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseChecksum(r); return ok, err },
		func(r jingle.Raw) (bool, error) { _, ok, err := ParseReceived(r); return ok, err },
	} {
		if ok, err = p(r); ok {
			return err
		}
	}
	return errors.New("no parser for " + fmtName(r.XMLName))
}

func TestHostileSessionInfo(t *testing.T) {
	info := func(x string) jingle.Raw {
		j, err := jingle.Parse([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'>` + x + `</jingle>`))
		if err != nil {
			t.Fatal(err)
		}
		return j.Info[0]
	}
	for _, c := range []struct{ name, xml, field string }{
		{"checksum no hash", `<checksum ` + ft + ` name='c'><file/></checksum>`, "checksum/file"},
		{"checksum no file", `<checksum ` + ft + ` name='c'/>`, "checksum/file"},
		{"checksum two files", `<checksum ` + ft + ` name='c'><file/><file/></checksum>`, "checksum/file"},
		{"checksum no name", `<checksum ` + ft + `><file><hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>` + sha256b64(0) + `</hash></file></checksum>`, "checksum@name"},
		{"checksum creator", `<checksum ` + ft + ` creator='both' name='c'/>`, "checksum@creator"},
		{"received child", `<received ` + ft + ` name='c'><file/></received>`, "received/file"},
		{"received no name", `<received ` + ft + `/>`, "received@name"},
	} {
		err := parseAny(info(c.xml))
		var ee *ElementError
		if !errors.As(err, &ee) || ee.Field != c.field {
			t.Errorf("%s: want an ElementError on %s, got %v", c.name, c.field, err)
		}
	}
}

func TestParseContentRules(t *testing.T) {
	s5b := `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'/>`
	ibb := `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='s'/>`
	sec := NewSecurity("c", CipherAES256GCM, make([]byte, 32), 0)
	sr, err := sec.Raw()
	if err != nil {
		t.Fatal(err)
	}
	secXML := rawXML(t, sr)
	for _, c := range []struct{ name, inner, field string }{
		{"two transports", desc(``) + s5b + ibb, `content["c"]/transport`},
		{"two descriptions", desc(``) + desc(``), `content["c"]/description`},
		{"two security elements", desc(``) + ibb + secXML + secXML, `content["c"]/security`},
		{"security for another content", desc(``) + ibb + strings.Replace(secXML, "name='c'", "name='d'", 1), `content["c"]/security@name`},
		{"malformed transport", desc(``) + `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='s'/>`, `content["c"]/transport@block-size`},
	} {
		_, err := ParseContent(contentOf(t, c.inner))
		var ee *ElementError
		if !errors.As(err, &ee) || ee.Field != c.field {
			t.Errorf("%s: want an ElementError on %s, got %v", c.name, c.field, err)
		}
	}
	j, err := jingle.Parse([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'><content creator='initiator' name='c'>` + desc(``) + ibb + `</content></jingle>`))
	if err != nil {
		t.Fatal(err)
	}
	var ee *ElementError
	if _, err := ParseContent(&j.Contents[0]); !errors.As(err, &ee) || ee.Field != `content["c"]@senders` {
		t.Fatalf("senders both: %v", err)
	}
	fc, err := ParseContent(contentOf(t, desc(``)+ibb))
	if err != nil || fc.Request || fc.Transport != TransportIBB || fc.IBB == nil || fc.IBB.BlockSize != 4096 {
		t.Fatalf("offer: %+v %v", fc, err)
	}
}

// rawXML returns the XML of r as jingle writes it in a content.
func rawXML(t testing.TB, r jingle.Raw) string { return elementXML(t, r, false) }

// elementXML returns the XML of r as jingle writes it in a content, or in
// a session-info with info set.
func elementXML(t testing.TB, r jingle.Raw, info bool) string {
	t.Helper()
	j := &jingle.Jingle{Action: jingle.ActionSessionInfo, SID: "x", Info: []jingle.Raw{r}}
	if !info {
		j = &jingle.Jingle{Action: jingle.ActionSessionInitiate, SID: "x",
			Contents: []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "c", Other: []jingle.Raw{r}}}}
	}
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !info {
		s = s[strings.Index(s, "<content"):]
	}
	s = s[strings.Index(s, ">")+1:]
	if !info {
		return s[:strings.LastIndex(s, "</content>")]
	}
	return s[:strings.LastIndex(s, "</jingle>")]
}

func TestRawRefusesWhatDoesNotParse(t *testing.T) {
	var ee *ElementError
	for name, f := range map[string]func() error{
		"description with a size beyond the cap": func() error {
			_, err := (&Description{File: File{Size: MaxOfferedSize + 1, HasSize: true}}).Raw()
			return err
		},
		"hash of the wrong size": func() error {
			_, err := (&Description{File: File{Hashes: []Hash{{Algo: "sha-256", Value: []byte{1}}}}}).Raw()
			return err
		},
		"name with a NUL (not XML)": func() error {
			_, err := (&Description{File: File{Name: "a\x00b"}}).Raw()
			return err
		},
		"range without size beyond the cap": func() error {
			_, err := (&Description{File: File{Range: &Range{Offset: MaxOfferedSize, Length: 1}}}).Raw()
			return err
		},
		"short key": func() error { _, err := NewSecurity("c", CipherAES256GCM, make([]byte, 16), 0).Raw(); return err },
		"unknown suite": func() error {
			_, err := NewSecurity("c", "urn:example:rot13", make([]byte, 32), 0).Raw()
			return err
		},
		"key in a foreign envelope": func() error {
			_, err := (&Security{Name: "c", Cipher: "x", Type: OMEMOEnvelope, Key: make([]byte, 32)}).Raw()
			return err
		},
		"s5b candidate without jid": func() error {
			_, err := (&S5BTransport{SID: "s", Candidates: []S5BCandidate{{CID: "a", Host: "10.0.0.1", Priority: 1}}}).Raw()
			return err
		},
		"s5b two infos": func() error {
			_, err := (&S5BTransport{SID: "s", CandidateUsed: "a", ProxyError: true}).Raw()
			return err
		},
		"ibb without block size": func() error { _, err := (&IBBTransport{SID: "s"}).Raw(); return err },
		"own namespace as extension": func() error {
			_, err := (&IBBTransport{SID: "s", BlockSize: 4096, Other: []jingle.Raw{{XMLName: name(NSHashes, "hash")}}}).Raw()
			return err
		},
		"received without name": func() error { _, err := (&Received{}).Raw(); return err },
	} {
		if err := f(); !errors.As(err, &ee) || !errors.Is(err, ErrMalformedElement) {
			t.Errorf("%s: want an ElementError, got %v", name, err)
		}
	}
}

func TestSecurityRoundTripAndRedaction(t *testing.T) {
	key := bytes.Repeat([]byte{0xA5}, 32)
	s := NewSecurity("c", CipherChaCha20Poly1305, key, 1<<20)
	r, err := s.Raw()
	if err != nil {
		t.Fatal(err)
	}
	back, ok, err := ParseSecurity(r)
	if !ok || err != nil || !back.Ours() || back.Suite() != CipherChaCha20Poly1305 || !bytes.Equal(back.Key, key) || back.Chunk() != 1<<20 {
		t.Fatalf("round trip: %v %v %v", ok, err, back)
	}
	hexKey := fmt.Sprintf("%x", key)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{s, *s} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, hexKey) || strings.Contains(out, base64.StdEncoding.EncodeToString(key)) || strings.Contains(out, "165") {
				t.Fatalf("%s prints the key: %s", verb, out)
			}
		}
	}
	// Trailing ":0" on cipher and type is read as the same suite.
	r2 := rawOf(t, `<security xmlns='urn:xmpp:jingle:jet:0' name='c' cipher='urn:x-securejingle:1:file:aes-256-gcm:0' type='urn:x-securejingle:1:0'>`+
		`<key xmlns='urn:x-securejingle:1:file'>`+sha256b64(2)+`</key></security>`)
	s2, _, err := ParseSecurity(r2)
	if err != nil || !s2.Ours() || s2.Suite() != CipherAES256GCM || s2.Chunk() != SecurityDefaultChunkSize {
		t.Fatalf(":0 spelling: %v %v", s2, err)
	}
	if s2.Cipher != "urn:x-securejingle:1:file:aes-256-gcm:0" {
		t.Fatalf("cipher not kept verbatim: %q", s2.Cipher)
	}
	if NormalizeCipher("urn:xmpp:ciphers:aes-128-gcm-nopadding:0") != "urn:xmpp:ciphers:aes-128-gcm-nopadding" {
		t.Fatal("NormalizeCipher")
	}
}

func TestTransportsRoundTrip(t *testing.T) {
	for _, x := range []string{
		`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' dstaddr='972b7bf47291ca609517f67f86b5081086052dad' mode='udp'>` +
			`<candidate cid='a' host='2001:db8::1' jid='a@b/c' port='1' priority='2147483647' type='tunnel'/>` +
			`<candidate cid='b' host='streamer.example.' jid='streamer.example' priority='1'/></transport>`,
		`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><activated cid='b'/></transport>`,
		`<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='65535' sid='s' stanza='message'/>`,
		`<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' sctp-port='5000' max-message-size='0'/>`,
	} {
		r := rawOf(t, x)
		out, v, kind := typedOf(t, r)
		if v == nil || !out.Equal(r) {
			t.Fatalf("%s: %v %v", x, kind, v)
		}
	}
	dc, _, err := ParseDataChannelTransport(rawOf(t, `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' max-message-size='0'/>`))
	if err != nil || !dc.HasMaxMessageSize || dc.MaxMessageSize != 0 || dc.SCTPPort != 0 || dc.ICE != nil {
		t.Fatalf("max-message-size 0: %+v %v", dc, err)
	}
	c, _, _ := ParseS5BTransport(rawOf(t, `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='b' host='h.example' jid='j' priority='1'/></transport>`))
	if c.Candidates[0].PortOrDefault() != 1080 {
		t.Fatal("default port")
	}
}

func TestConversationsFixtures(t *testing.T) {
	protected := Arrival{Protected: true, Certified: true}
	t.Run("datachannel-omemo", func(t *testing.T) {
		j := fixture(t, "offer-datachannel-omemo.xml")
		fc, err := ParseContent(&j.Contents[0])
		if err != nil {
			t.Fatal(err)
		}
		f := fc.Description.File
		if f.Name != "IMG_20240512_181533.jpg" || f.Size != 2487613 || f.MediaType != "image/jpeg" || !f.MediaTypeCamel || f.Range != nil || len(f.Hashes) != 0 {
			t.Fatalf("file %+v", f)
		}
		dc := fc.DataChannel
		if fc.Transport != TransportDataChannel || dc.SCTPPort != 5000 || dc.MaxMessageSize != 262144 || dc.ICE == nil || dc.ICE.Fingerprint == nil || len(dc.ICE.Candidates) != 1 {
			t.Fatalf("data channel %+v", dc)
		}
		if fc.Security == nil || fc.Security.Ours() || fc.Security.Type != OMEMOEnvelope || len(fc.Security.Envelope) != 1 || fc.Security.Key != nil {
			t.Fatalf("security %v", fc.Security)
		}
		o, err := ClassifyOffer(j, protected)
		if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseForeignEnvelope || o.Protection() != policy.ProtectionCleartext {
			t.Fatalf("class %+v %v", o, err)
		}
		checkExample(t, mustMarshal(t, j), "conversations")
	})
	t.Run("s5b", func(t *testing.T) {
		j := fixture(t, "offer-s5b.xml")
		fc, err := ParseContent(&j.Contents[0])
		if err != nil {
			t.Fatal(err)
		}
		s := fc.S5B
		if s == nil || len(s.Candidates) != 3 || s.Candidates[2].Type != S5BProxy || s.Candidates[2].Priority != 655360 || s.Candidates[1].Host != "2001:db8::23" {
			t.Fatalf("s5b %+v", s)
		}
		o, err := ClassifyOffer(j, protected)
		if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseNoSecurity || o.Contents[0].Transport != TransportS5B {
			t.Fatalf("class %+v %v", o, err)
		}
		checkExample(t, mustMarshal(t, j), "conversations")
	})
	t.Run("legacy-omemo-ibb", func(t *testing.T) {
		j := fixture(t, "offer-legacy-omemo-ibb.xml")
		o, err := ClassifyOffer(j, protected)
		if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseLegacyOMEMO || o.Contents[0].Transport != TransportIBB {
			t.Fatalf("class %+v %v", o, err)
		}
		checkExample(t, mustMarshal(t, j), "conversations")
	})
	t.Run("transport-replace", func(t *testing.T) {
		j := fixture(t, "transport-replace-ibb.xml")
		o, err := ClassifyUpdate(j, protected, func(jingle.Creator, string) (*Security, bool) { return nil, true })
		if err != nil || o.Class != ClassCleartext || o.Contents[0].Cause != CauseSessionCleartext || o.Contents[0].Transport != TransportIBB {
			t.Fatalf("class %+v %v", o, err)
		}
	})
	t.Run("checksum", func(t *testing.T) {
		j := fixture(t, "checksum.xml")
		c, ok, err := ParseChecksum(j.Info[0])
		if !ok || err != nil || c.Creator != "" || len(c.File.Hashes) != 2 {
			t.Fatalf("checksum %+v %v", c, err)
		}
		h, ok := StrongestHash(c.File.Hashes)
		if !ok || h.Algo != "sha-256" || c.File.Hashes[0].Acceptable() {
			t.Fatalf("strongest %v %v; sha-1 must not be acceptable", h, ok)
		}
		checkExample(t, mustMarshal(t, j), "conversations")
	})
	t.Run("received", func(t *testing.T) {
		j := fixture(t, "received.xml")
		r, ok, err := ParseReceived(j.Info[0])
		if !ok || err != nil || r.Name != "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9" {
			t.Fatalf("received %+v %v", r, err)
		}
	})
}

func mustMarshal(t testing.TB, j *jingle.Jingle) []byte {
	t.Helper()
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
