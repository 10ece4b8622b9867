package extdisco

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// vector reads testdata/name and returns the payload element of its IQ.
func vector(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p, err := iqPayload(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// iqPayload returns the bytes from the first child element of the root
// element of raw up to the root's end tag (which must be </iq>): an
// example that is not well-formed still gives its payload. The payload
// declares its own namespace, as XEP examples do.
func iqPayload(raw []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			return nil, err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				end := bytes.LastIndex(raw, []byte("</iq>"))
				if end < int(off) {
					return nil, errors.New("no </iq>")
				}
				return bytes.TrimSpace(raw[off:end]), nil
			}
		case xml.EndElement:
			depth--
		}
	}
}

// allVectors lists testdata/INDEX.tsv, and fails if a listed file is
// missing or a file is not listed.
func allVectors(t testing.TB) []string {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join("testdata", "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, line := range strings.Split(strings.TrimSpace(string(idx)), "\n") {
		if i == 0 {
			continue
		}
		names = append(names, strings.Split(line, "\t")[0])
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if len(files) != len(names) || len(names) == 0 {
		t.Fatalf("INDEX.tsv lists %d vectors, testdata holds %d", len(names), len(files))
	}
	return names
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestXEPExamples parses every example of XEP-0215 v0.7 §3 (and Prosody's
// shape) and checks every attribute.
func TestXEPExamples(t *testing.T) {
	allVectors(t)
	prosodyExpires := mustTime(t, "2023-11-14T22:13:20Z")
	prosodyTURN := Service{Type: "turn", Host: "127.0.0.1", Port: 3478, Transport: "udp",
		Username: "1700000000:securejingle", Password: "9jvIzqyJ4ZF6N71Xp25up61tW/0=",
		Expires: prosodyExpires, Restricted: true}
	prosodyTURNTCP := prosodyTURN
	prosodyTURNTCP.Transport = "tcp"
	tests := []struct {
		file  string
		root  string // services or credentials
		typ   string
		want  []Service
		isErr error
	}{
		{file: "xep0215-001.xml", root: elemServices},
		{file: "xep0215-002.xml", root: elemServices, want: []Service{
			{Type: "stun", Host: "stun.shakespeare.lit", Port: 9998, Transport: "udp"},
			{Type: "turn", Host: "relay.shakespeare.lit", Port: 9999, Transport: "udp", Username: "nb78932lkjlskjfdb7g8", Password: "jj929jkj5sadjfj93v3n"},
			{Type: "stun", Host: "192.0.2.1", Port: 8888, Transport: "udp"},
			{Type: "turn", Host: "192.0.2.1", Port: 8889, Transport: "udp", Username: "auu98sjl2wk3e9fjdsl7", Password: "93jn3bakj9s832lrjbbz"},
			{Type: "ftp", Host: "ftp.shakespeare.lit", Port: 20, Transport: "tcp", Username: "guest", Password: "guest", Name: "Shakespearean File Server"},
		}},
		{file: "xep0215-003.xml", root: elemServices, typ: "turn"},
		{file: "xep0215-004.xml", root: elemServices, typ: "turn", want: []Service{
			{Type: "turn", Host: "turn.shakespeare.lit", Port: 9999, Transport: "udp", Username: "nb78932lkjlskjfdb7g8", Password: "jj929jkj5sadjfj93v3n"},
			{Type: "turn", Host: "192.0.2.1", Port: 8889, Transport: "udp", Username: "auu98sjl2wk3e9fjdsl7", Password: "93jn3bakj9s832lrjbbz"},
		}},
		{file: "xep0215-005.xml", root: elemServices, isErr: ErrMalformed},
		{file: "xep0215-006.xml", root: elemCredentials, want: []Service{{Type: "turn", Host: "turn.shakespeare.lit"}}},
		{file: "xep0215-007.xml", root: elemCredentials, want: []Service{
			{Type: "turn", Host: "turn.shakespeare.lit", Username: "nb78932lkjlskjfdb7g8", Password: "jj929jkj5sadjfj93v3n"},
		}},
		{file: "prosody-turn-external.xml", root: elemServices, want: []Service{
			{Type: "stun", Host: "127.0.0.1", Port: 3478, Transport: "udp"},
			{Type: "stun", Host: "127.0.0.1", Port: 3478, Transport: "tcp"},
			prosodyTURN, prosodyTURNTCP,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := vector(t, tc.file)
			typ, got, err := parse(p, tc.root)
			if tc.isErr != nil {
				if !errors.Is(err, tc.isErr) {
					t.Fatalf("error %v, want %v", err, tc.isErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if typ != tc.typ {
				t.Errorf("type filter %q, want %q", typ, tc.typ)
			}
			if !equalServices(got, tc.want) {
				t.Errorf("services\n got %+v\nwant %+v", got, tc.want)
			}
			// Our own serialisation parses back to the same.
			var again []byte
			if tc.root == elemServices {
				again, err = MarshalServices(typ, got)
			} else {
				again, err = MarshalCredentials(got)
			}
			if err != nil {
				t.Fatal(err)
			}
			typ2, got2, err := parse(again, tc.root)
			if err != nil || typ2 != typ || !equalServices(got2, got) {
				t.Fatalf("round trip: %q %+v %v\n%s", typ2, got2, err, again)
			}
		})
	}
}

// TestRequestsMatchExamples: the requests we build say what the XEP's
// examples 1, 3 and 6 say.
func TestRequestsMatchExamples(t *testing.T) {
	cred, err := CredentialsRequest([]Service{{Type: "turn", Host: "turn.shakespeare.lit"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, root string
		ours       []byte
	}{
		{"xep0215-001.xml", elemServices, ServicesRequest("")},
		{"xep0215-003.xml", elemServices, ServicesRequest("turn")},
		{"xep0215-006.xml", elemCredentials, cred},
	} {
		t1, s1, err1 := parse(vector(t, tc.file), tc.root)
		t2, s2, err2 := parse(tc.ours, tc.root)
		if err1 != nil || err2 != nil || t1 != t2 || !equalServices(s1, s2) {
			t.Errorf("%s: example (%q %+v %v) differs from ours (%q %+v %v) %s", tc.file, t1, s1, err1, t2, s2, err2, tc.ours)
		}
	}
}

// TestCorrectedPush: the push of example 5, with its first <service>
// closed, parses with its actions, and the removed service gives no ICE
// server.
func TestCorrectedPush(t *testing.T) {
	p := vector(t, "xep0215-005.xml")
	if _, err := ParseServices(p); !errors.Is(err, ErrMalformed) {
		t.Fatalf("the push as published parsed: %v", err)
	}
	fixed := bytes.Replace(p, []byte(`password='gh9023ljjdk109iajqn'>`), []byte(`password='gh9023ljjdk109iajqn'/>`), 1)
	svcs, err := ParseServices(fixed)
	if err != nil {
		t.Fatal(err)
	}
	acts := []Action{svcs[0].Action, svcs[1].Action, svcs[2].Action}
	if !reflect.DeepEqual(acts, []Action{ActionAdd, ActionAdd, ActionDelete}) {
		t.Fatalf("actions %v", acts)
	}
	if svcs[2].Type != "turn" || svcs[2].Host != "192.0.2.1" || svcs[2].Port != 8889 {
		t.Fatalf("removed service %+v", svcs[2])
	}
	got := urls(ICEServers(time.Now(), svcs))
	want := []string{"turn:stun.shakespeare.lit:9999?transport=udp", "turn:192.0.2.2:7778?transport=udp"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ICE servers %v, want %v", got, want)
	}
}

// TestXEPExampleICEServers: example 2 gives two STUN and two TURN servers
// (the FTP server is not for ICE) that pion accepts.
func TestXEPExampleICEServers(t *testing.T) {
	svcs, err := ParseServices(vector(t, "xep0215-002.xml"))
	if err != nil {
		t.Fatal(err)
	}
	servers := ICEServers(time.Now(), svcs)
	want := []webrtc.ICEServer{
		{URLs: []string{"stun:stun.shakespeare.lit:9998"}},
		{URLs: []string{"turn:relay.shakespeare.lit:9999?transport=udp"}, Username: "nb78932lkjlskjfdb7g8", Credential: "jj929jkj5sadjfj93v3n", CredentialType: webrtc.ICECredentialTypePassword},
		{URLs: []string{"stun:192.0.2.1:8888"}},
		{URLs: []string{"turn:192.0.2.1:8889?transport=udp"}, Username: "auu98sjl2wk3e9fjdsl7", Credential: "93jn3bakj9s832lrjbbz", CredentialType: webrtc.ICECredentialTypePassword},
	}
	if !reflect.DeepEqual(servers, want) {
		t.Fatalf("ICE servers\n got %+v\nwant %+v", servers, want)
	}
	pionAccepts(t, servers)
}

// TestProsodyVector: the TURN REST credentials in Prosody's shape are
// base64(HMAC-SHA1(secret, username)), the username starts with the
// expiry that 'expires' says, and they stop being used when they expire.
func TestProsodyVector(t *testing.T) {
	svcs, err := ParseServices(vector(t, "prosody-turn-external.xml"))
	if err != nil {
		t.Fatal(err)
	}
	turn := svcs[2]
	m := hmac.New(sha1.New, []byte("north-secret"))
	m.Write([]byte(turn.Username))
	if got := base64.StdEncoding.EncodeToString(m.Sum(nil)); got != turn.Password {
		t.Fatalf("password %q, HMAC gives %q", turn.Password, got)
	}
	if exp := turn.Expires.Unix(); !strings.HasPrefix(turn.Username, "1700000000:") || exp != 1700000000 {
		t.Fatalf("username %q, expires %d", turn.Username, exp)
	}
	before := turn.Expires.Add(-time.Second)
	got := urls(ICEServers(before, svcs))
	want := []string{"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("before expiry: %v, want %v", got, want)
	}
	if e := Expiry(before, svcs); !e.Equal(turn.Expires) {
		t.Fatalf("Expiry %v, want %v", e, turn.Expires)
	}
	if got := urls(ICEServers(turn.Expires, svcs)); !reflect.DeepEqual(got, []string{"stun:127.0.0.1:3478"}) {
		t.Fatalf("at expiry: %v", got)
	}
	if e := Expiry(turn.Expires, svcs); !e.IsZero() {
		t.Fatalf("Expiry after expiry: %v", e)
	}
}

func urls(servers []webrtc.ICEServer) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.URLs...)
	}
	return out
}

func equalServices(a, b []Service) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.Expires.Equal(y.Expires) {
			return false
		}
		x.Expires, y.Expires = time.Time{}, time.Time{}
		if x != y {
			return false
		}
	}
	return true
}
