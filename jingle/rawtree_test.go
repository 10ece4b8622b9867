package jingle

import (
	"encoding/xml"
	"errors"
	"testing"
)

func TestRawChildrenAndNewRaw(t *testing.T) {
	j, err := Parse([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'>` +
		`<x:checksum xmlns:x='urn:example:ft' name='a'> <x:file><h xmlns='urn:example:h' algo='sha-256'>AAAA</h></x:file>tail</x:checksum></jingle>`))
	if err != nil {
		t.Fatal(err)
	}
	r := j.Info[0]
	kids, text, err := r.Children()
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 1 || kids[0].XMLName != (xml.Name{Space: "urn:example:ft", Local: "file"}) || text != " tail" {
		t.Fatalf("Children = %+v, %q", kids, text)
	}
	grand, _, err := kids[0].Children()
	if err != nil || len(grand) != 1 || grand[0].XMLName.Space != "urn:example:h" {
		t.Fatalf("grandchildren %+v, %v", grand, err)
	}
	if _, txt, _ := grand[0].Children(); txt != "AAAA" {
		t.Fatalf("hash text %q", txt)
	}
	// Rebuilding from the parts gives an equal element (text first).
	back, err := NewRaw(r.XMLName, r.Attrs, "", kids...)
	if err != nil {
		t.Fatal(err)
	}
	if back.Equal(r) {
		t.Fatal("dropping the text must change the element")
	}
	r2, err := NewRaw(r.XMLName, r.Attrs, " ", kids...)
	if err != nil {
		t.Fatal(err)
	}
	j.Info[0] = r2
	if _, err := j.Marshal(); err != nil {
		t.Fatalf("marshal with a NewRaw payload: %v", err)
	}
	if !r2.Equal(Raw{XMLName: r2.XMLName, Attrs: r2.Attrs, Inner: []byte(` <p:file xmlns:p='urn:example:ft'><h xmlns='urn:example:h' algo="sha-256">AAAA</h></p:file>`)}) {
		t.Fatal("Equal must compare inner XML in canonical form")
	}
}

func TestNewRawRefusesBadNames(t *testing.T) {
	for _, c := range []struct {
		name  xml.Name
		attrs []xml.Attr
		kids  []Raw
	}{
		{xml.Name{Space: "urn:x", Local: "a:b"}, nil, nil},
		{xml.Name{Space: "urn:x", Local: "a"}, []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: "urn:y"}}, nil},
		{xml.Name{Space: "urn:x", Local: "a"}, nil, []Raw{{XMLName: xml.Name{Space: "urn:x", Local: "k"}, Inner: []byte("<unclosed>")}}},
	} {
		_, err := NewRaw(c.name, c.attrs, "", c.kids...)
		var me *MarshalError
		var pe *ParseError
		if !errors.As(err, &me) || !errors.As(err, &pe) {
			t.Errorf("NewRaw(%v) = %v, want a MarshalError", c.name, err)
		}
	}
}

func TestTransportRawRoundTrip(t *testing.T) {
	tr := &Transport{Ufrag: "8hhy", Pwd: "asd88fgpdd777uzjYhagZg",
		Fingerprint: &Fingerprint{Hash: "sha-256", Setup: SetupActpass, Value: "02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2"},
		Candidates:  []Candidate{{Component: 1, Foundation: "1", ID: "c1", IP: "127.0.0.1", Port: 9, Priority: 1, Protocol: "udp", Type: "host"}}}
	back, err := TransportFromRaw(tr.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if back.Ufrag != tr.Ufrag || back.Fingerprint.Value != tr.Fingerprint.Value || len(back.Candidates) != 1 {
		t.Fatalf("round trip: %+v", back)
	}
	bad := tr.Raw()
	bad.Attrs = append(bad.Attrs, xml.Attr{Name: xml.Name{Local: "bogus"}, Value: "1"})
	var pe *ParseError
	if _, err := TransportFromRaw(bad); !errors.As(err, &pe) || pe.Field != "transport@bogus" {
		t.Fatalf("unknown attribute: %v", err)
	}
	if _, err := TransportFromRaw(Raw{XMLName: xml.Name{Space: NSDataChan, Local: "transport"}}); !errors.As(err, &pe) {
		t.Fatalf("wrong namespace: %v", err)
	}
}
