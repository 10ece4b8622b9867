package filexfer

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseStreamhosts(t *testing.T) {
	// XEP-0065 Example 6 and the answer of Prosody 0.12's mod_proxy65
	// (attributes in another order, single quotes, whitespace).
	for _, tc := range []struct {
		in   string
		want []Streamhost
	}{
		{`<query xmlns='http://jabber.org/protocol/bytestreams'>
    <streamhost host='24.24.24.1' jid='streamer.example.com' port='7625'/>
  </query>`, []Streamhost{{JID: "streamer.example.com", Host: "24.24.24.1", Port: 7625}}},
		{`<?xml version="1.0"?><query xmlns="http://jabber.org/protocol/bytestreams" sid="x1"><streamhost port="5000" host="127.0.0.1" jid="proxy.example.test"/></query>`,
			[]Streamhost{{JID: "proxy.example.test", Host: "127.0.0.1", Port: 5000}}},
		{`<b:query xmlns:b="http://jabber.org/protocol/bytestreams"><b:streamhost jid="p.example" host="::1"/><b:streamhost jid="p.example" host="proxy.example" port="1"/></b:query>`,
			[]Streamhost{{JID: "p.example", Host: "::1"}, {JID: "p.example", Host: "proxy.example", Port: 1}}},
	} {
		got, err := ParseStreamhosts([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: %+v, want %+v", tc.in, got, tc.want)
		}
		b, err := MarshalStreamhosts(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseStreamhosts(b)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	}
}

func TestParseStreamhostsMalformed(t *testing.T) {
	const ns = `xmlns='http://jabber.org/protocol/bytestreams'`
	many := strings.Repeat(`<streamhost jid='p' host='127.0.0.1' port='1'/>`, MaxStreamhosts+1)
	for name, in := range map[string]string{
		"empty":             ``,
		"not xml":           `hello`,
		"wrong namespace":   `<query xmlns='jabber:iq:version'><streamhost jid='p' host='1.2.3.4'/></query>`,
		"wrong root":        `<streamhost ` + ns + ` jid='p' host='1.2.3.4'/>`,
		"no streamhost":     `<query ` + ns + `/>`,
		"unknown child":     `<query ` + ns + `><activate>x</activate></query>`,
		"foreign child":     `<query ` + ns + `><x xmlns='urn:x'/><streamhost jid='p' host='1.2.3.4'/></query>`,
		"too many":          `<query ` + ns + `>` + many + `</query>`,
		"missing host":      `<query ` + ns + `><streamhost jid='p'/></query>`,
		"missing jid":       `<query ` + ns + `><streamhost host='1.2.3.4'/></query>`,
		"bad host":          `<query ` + ns + `><streamhost jid='p' host='a b'/></query>`,
		"dotted non-ip":     `<query ` + ns + `><streamhost jid='p' host='1.2.3.999'/></query>`,
		"port 0":            `<query ` + ns + `><streamhost jid='p' host='1.2.3.4' port='0'/></query>`,
		"port 65536":        `<query ` + ns + `><streamhost jid='p' host='1.2.3.4' port='65536'/></query>`,
		"port leading zero": `<query ` + ns + `><streamhost jid='p' host='1.2.3.4' port='0080'/></query>`,
		"port sign":         `<query ` + ns + `><streamhost jid='p' host='1.2.3.4' port='+80'/></query>`,
		"jid whitespace":    `<query ` + ns + `><streamhost jid='p q' host='1.2.3.4'/></query>`,
		"unknown attr":      `<query ` + ns + `><streamhost jid='p' host='1.2.3.4' zeroconf='x'/></query>`,
		"repeated via ns":   `<query ` + ns + ` xmlns:a='urn:a'><streamhost jid='p' host='1.2.3.4' a:jid='q'/></query>`,
		"query attr":        `<query ` + ns + ` mode='tcp'><streamhost jid='p' host='1.2.3.4'/></query>`,
		"query empty sid":   `<query ` + ns + ` sid=''><streamhost jid='p' host='1.2.3.4'/></query>`,
		"streamhost text":   `<query ` + ns + `><streamhost jid='p' host='1.2.3.4'>x</streamhost></query>`,
		"nested":            `<query ` + ns + `><streamhost jid='p' host='1.2.3.4'><streamhost jid='p' host='1.2.3.4'/></streamhost></query>`,
		"query text":        `<query ` + ns + `>x<streamhost jid='p' host='1.2.3.4'/></query>`,
		"trailing element":  `<query ` + ns + `><streamhost jid='p' host='1.2.3.4'/></query><query ` + ns + `/>`,
		"trailing text":     `<query ` + ns + `><streamhost jid='p' host='1.2.3.4'/></query>x`,
		"unclosed":          `<query ` + ns + `><streamhost jid='p' host='1.2.3.4'/>`,
		"doctype":           `<!DOCTYPE query><query ` + ns + `><streamhost jid='p' host='1.2.3.4'/></query>`,
		"pi":                `<query ` + ns + `><?x y?><streamhost jid='p' host='1.2.3.4'/></query>`,
		"invalid utf-8":     "<query " + ns + "><streamhost jid='p\xff' host='1.2.3.4'/></query>",
		"too large":         `<query ` + ns + `>` + strings.Repeat(" ", MaxBytestreamsQuery) + `<streamhost jid='p' host='1.2.3.4'/></query>`,
	} {
		if _, err := ParseStreamhosts([]byte(in)); !errors.Is(err, ErrMalformedElement) {
			t.Errorf("%s: %v, want ErrMalformedElement", name, err)
		}
	}
	if _, err := MarshalStreamhosts([]Streamhost{{JID: "p", Host: "bad host"}}); err == nil {
		t.Error("MarshalStreamhosts wrote a bad host")
	}
}

func TestActivateQuery(t *testing.T) {
	b, err := ActivateQuery("vxf9n471bn46", "target@example.org/bar")
	if err != nil {
		t.Fatal(err)
	}
	const want = `<query xmlns="http://jabber.org/protocol/bytestreams" sid="vxf9n471bn46"><activate>target@example.org/bar</activate></query>`
	if string(b) != want {
		t.Fatalf("%s\nwant %s", b, want)
	}
	sid, target, err := ParseActivate(b)
	if err != nil || sid != "vxf9n471bn46" || target != "target@example.org/bar" {
		t.Fatalf("ParseActivate: %q %q %v", sid, target, err)
	}
	// XEP-0065 Example 23, as written there.
	sid, target, err = ParseActivate([]byte(`<query xmlns='http://jabber.org/protocol/bytestreams' sid='vxf9n471bn46'>
    <activate>target@example.org/bar</activate>
  </query>`))
	if err != nil || sid != "vxf9n471bn46" || target != "target@example.org/bar" {
		t.Fatalf("ParseActivate(example): %q %q %v", sid, target, err)
	}
	for _, bad := range [][2]string{{"", "t@x/y"}, {"a b", "t@x/y"}, {"s", ""}, {"s", "t x"}, {strings.Repeat("s", MaxSIDLen+1), "t@x/y"}} {
		if _, err := ActivateQuery(bad[0], bad[1]); !errors.Is(err, ErrMalformedElement) {
			t.Errorf("ActivateQuery(%q, %q): %v", bad[0], bad[1], err)
		}
	}
	const ns = `xmlns='http://jabber.org/protocol/bytestreams'`
	for name, in := range map[string]string{
		"no sid":         `<query ` + ns + `><activate>t@x/y</activate></query>`,
		"no activate":    `<query ` + ns + ` sid='s'/>`,
		"two activate":   `<query ` + ns + ` sid='s'><activate>t@x/y</activate><activate>t@x/y</activate></query>`,
		"empty activate": `<query ` + ns + ` sid='s'><activate/></query>`,
		"streamhost":     `<query ` + ns + ` sid='s'><streamhost jid='p' host='1.2.3.4'/></query>`,
		"extra attr":     `<query ` + ns + ` sid='s' mode='tcp'><activate>t@x/y</activate></query>`,
		"activate attr":  `<query ` + ns + ` sid='s'><activate a='b'>t@x/y</activate></query>`,
		"foreign child":  `<query ` + ns + ` sid='s'><activate>t@x/y</activate><x xmlns='urn:x'/></query>`,
	} {
		if _, _, err := ParseActivate([]byte(in)); !errors.Is(err, ErrMalformedElement) {
			t.Errorf("%s: %v, want ErrMalformedElement", name, err)
		}
	}
}

func TestStreamhostCandidate(t *testing.T) {
	c, err := Streamhost{JID: "proxy.example.test", Host: "127.0.0.1"}.Candidate(3)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != S5BProxy || c.Port != 1080 || c.Priority != 10<<16|3 || c.JID != "proxy.example.test" {
		t.Fatalf("%+v", c)
	}
}

// FuzzParseStreamhosts: whatever parses marshals and parses back to the
// same streamhosts.
func FuzzParseStreamhosts(f *testing.F) {
	f.Add([]byte(`<query xmlns='http://jabber.org/protocol/bytestreams'><streamhost host='24.24.24.1' jid='streamer.example.com' port='7625'/></query>`))
	f.Add([]byte(`<query xmlns="http://jabber.org/protocol/bytestreams"><streamhost jid="p" host="::1"/><streamhost jid="q" host="a.example"/></query>`))
	f.Add([]byte(`<query xmlns="http://jabber.org/protocol/bytestreams" sid="s"><activate>t@x/y</activate></query>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if hs, err := ParseStreamhosts(b); err == nil {
			out, err := MarshalStreamhosts(hs)
			if err != nil {
				t.Fatalf("parsed %+v does not marshal: %v", hs, err)
			}
			again, err := ParseStreamhosts(out)
			if err != nil || !reflect.DeepEqual(again, hs) {
				t.Fatalf("round trip %+v -> %+v, %v", hs, again, err)
			}
		} else if !errors.Is(err, ErrMalformedElement) {
			t.Fatalf("error %v does not match ErrMalformedElement", err)
		}
		if sid, target, err := ParseActivate(b); err == nil {
			out, err := ActivateQuery(sid, target)
			if err != nil {
				t.Fatalf("parsed %q %q does not marshal: %v", sid, target, err)
			}
			s2, t2, err := ParseActivate(out)
			if err != nil || s2 != sid || t2 != target {
				t.Fatalf("round trip %q %q -> %q %q, %v", sid, target, s2, t2, err)
			}
		} else if !errors.Is(err, ErrMalformedElement) {
			t.Fatalf("error %v does not match ErrMalformedElement", err)
		}
	})
}
