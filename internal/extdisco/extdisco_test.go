package extdisco

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// pionAccepts fails unless pion takes servers in a PeerConnection's
// configuration (it validates URLs and TURN credentials there). No
// network is touched: mDNS is off and nothing is gathered.
func pionAccepts(t testing.TB, servers []webrtc.ICEServer) {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		t.Fatalf("pion refuses %+v: %v", servers, err)
	}
	pc.Close()
}

const svcsOpen = `<services xmlns='urn:xmpp:extdisco:2'>`

func TestMalformed(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	many := svcsOpen + strings.Repeat(`<service type='stun' host='h'/>`, MaxServices+1) + `</services>`
	deep := svcsOpen + `<service type='stun' host='h'>` + strings.Repeat("<x>", maxDepth) + strings.Repeat("</x>", maxDepth) + `</service></services>`
	huge := svcsOpen + `<!--` + long(MaxElementSize) + `--></services>`
	tests := []struct {
		name string
		in   string
		err  error  // ErrMalformed or ErrLimit
		attr string // ParseError.Attr when not ""
	}{
		{"empty", ``, ErrMalformed, ""},
		{"text only", `hello`, ErrMalformed, ""},
		{"no namespace", `<services/>`, ErrMalformed, ""},
		{"other namespace", `<services xmlns='urn:xmpp:extdisco:1'/>`, ErrMalformed, ""},
		{"credentials root", `<credentials xmlns='urn:xmpp:extdisco:2'/>`, ErrMalformed, ""},
		{"unclosed", svcsOpen, ErrMalformed, ""},
		{"mismatched end", svcsOpen + `<service type='stun' host='h'></x></services>`, ErrMalformed, ""},
		{"two roots", `<services xmlns='urn:xmpp:extdisco:2'/><services xmlns='urn:xmpp:extdisco:2'/>`, ErrMalformed, ""},
		{"trailing text", `<services xmlns='urn:xmpp:extdisco:2'/>x`, ErrMalformed, ""},
		{"text in services", svcsOpen + `x</services>`, ErrMalformed, ""},
		{"doctype", `<!DOCTYPE services><services xmlns='urn:xmpp:extdisco:2'/>`, ErrMalformed, ""},
		{"entity", svcsOpen + `<service type='stun' host='&x;'/></services>`, ErrMalformed, ""},
		{"proc inst inside", svcsOpen + `<?php x?></services>`, ErrMalformed, ""},
		{"unknown element", svcsOpen + `<server type='stun' host='h'/></services>`, ErrMalformed, ""},
		{"root type", `<services xmlns='urn:xmpp:extdisco:2' type='T U'/>`, ErrMalformed, "type"},
		{"no type", svcsOpen + `<service host='h'/></services>`, ErrMalformed, "type"},
		{"no host", svcsOpen + `<service type='stun'/></services>`, ErrMalformed, "host"},
		{"repeated host", svcsOpen + `<service type='stun' host='a' host='b'/></services>`, ErrMalformed, "host"},
		{"type with space", svcsOpen + `<service type='st un' host='h'/></services>`, ErrMalformed, "type"},
		{"type upper", svcsOpen + `<service type='STUN' host='h'/></services>`, ErrMalformed, "type"},
		{"long type", svcsOpen + `<service type='` + long(MaxTokenLen+1) + `' host='h'/></services>`, ErrMalformed, "type"},
		{"host with query", svcsOpen + `<service type='turn' host='h?transport=tcp'/></services>`, ErrMalformed, "host"},
		{"host with user", svcsOpen + `<service type='turn' host='u@h'/></services>`, ErrMalformed, "host"},
		{"host with port", svcsOpen + `<service type='turn' host='h:3478'/></services>`, ErrMalformed, "host"},
		{"bracketed ipv6", svcsOpen + `<service type='turn' host='[::1]'/></services>`, ErrMalformed, "host"},
		{"ipv6 zone", svcsOpen + `<service type='turn' host='fe80::1%eth0'/></services>`, ErrMalformed, "host"},
		{"host hyphen", svcsOpen + `<service type='turn' host='-h.example'/></services>`, ErrMalformed, "host"},
		{"host empty label", svcsOpen + `<service type='turn' host='a..b'/></services>`, ErrMalformed, "host"},
		{"host trailing dot", svcsOpen + `<service type='turn' host='a.b.'/></services>`, ErrMalformed, "host"},
		{"host long label", svcsOpen + `<service type='turn' host='` + long(64) + `.b'/></services>`, ErrMalformed, "host"},
		{"host too long", svcsOpen + `<service type='turn' host='` + strings.Repeat("a.", 127) + `'/></services>`, ErrLimit, "host"},
		{"host unicode", svcsOpen + `<service type='turn' host='bücher.example'/></services>`, ErrMalformed, "host"},
		{"port zero", svcsOpen + `<service type='turn' host='h' port='0'/></services>`, ErrMalformed, "port"},
		{"port big", svcsOpen + `<service type='turn' host='h' port='65536'/></services>`, ErrMalformed, "port"},
		{"port sign", svcsOpen + `<service type='turn' host='h' port='+80'/></services>`, ErrMalformed, "port"},
		{"port negative", svcsOpen + `<service type='turn' host='h' port='-1'/></services>`, ErrMalformed, "port"},
		{"port leading zero", svcsOpen + `<service type='turn' host='h' port='080'/></services>`, ErrMalformed, "port"},
		{"port space", svcsOpen + `<service type='turn' host='h' port=' 80'/></services>`, ErrMalformed, "port"},
		{"port empty", svcsOpen + `<service type='turn' host='h' port=''/></services>`, ErrMalformed, "port"},
		{"transport upper", svcsOpen + `<service type='turn' host='h' transport='UDP'/></services>`, ErrMalformed, "transport"},
		{"username tab", svcsOpen + `<service type='turn' host='h' username='a&#9;b'/></services>`, ErrMalformed, "username"},
		{"password newline", svcsOpen + `<service type='turn' host='h' password='a&#10;b'/></services>`, ErrMalformed, "password"},
		{"username too long", svcsOpen + `<service type='turn' host='h' username='` + long(MaxCredentialLen+1) + `'/></services>`, ErrLimit, "username"},
		{"password too long", svcsOpen + `<service type='turn' host='h' password='` + long(MaxCredentialLen+1) + `'/></services>`, ErrLimit, "password"},
		{"name too long", svcsOpen + `<service type='turn' host='h' name='` + long(MaxNameLen+1) + `'/></services>`, ErrLimit, "name"},
		{"name control", svcsOpen + `<service type='turn' host='h' name='a&#127;'/></services>`, ErrMalformed, "name"},
		{"expires words", svcsOpen + `<service type='turn' host='h' expires='tomorrow'/></services>`, ErrMalformed, "expires"},
		{"expires offset", svcsOpen + `<service type='turn' host='h' expires='2023-11-14T23:13:20+01:00'/></services>`, ErrMalformed, "expires"},
		{"expires no zone", svcsOpen + `<service type='turn' host='h' expires='2023-11-14T22:13:20'/></services>`, ErrMalformed, "expires"},
		{"expires space", svcsOpen + `<service type='turn' host='h' expires='2023-11-14 22:13:20Z'/></services>`, ErrMalformed, "expires"},
		{"expires long", svcsOpen + `<service type='turn' host='h' expires='` + long(maxTimeLen+1) + `'/></services>`, ErrMalformed, "expires"},
		{"restricted yes", svcsOpen + `<service type='turn' host='h' restricted='yes'/></services>`, ErrMalformed, "restricted"},
		{"action unknown", svcsOpen + `<service type='turn' host='h' action='destroy'/></services>`, ErrMalformed, "action"},
		{"too many services", many, ErrLimit, ""},
		{"too deep", deep, ErrLimit, ""},
		{"too large", huge, ErrLimit, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcs, err := ParseServices([]byte(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("ParseServices: %+v, %v; want %v", svcs, err, tc.err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%T is not a *ParseError", err)
			}
			if tc.attr != "" && pe.Attr != tc.attr {
				t.Fatalf("error names attribute %q, want %q (%v)", pe.Attr, tc.attr, err)
			}
			if !strings.HasPrefix(err.Error(), "extdisco: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestAccepted: what XML allows and the XEP leaves open parses.
func TestAccepted(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Service
	}{
		{"prefixed", `<e:services xmlns:e='urn:xmpp:extdisco:2'><e:service type='stun' host='h'/></e:services>`,
			[]Service{{Type: "stun", Host: "h"}}},
		{"xml declaration and comments", `<?xml version='1.0'?><!-- c --><services xmlns='urn:xmpp:extdisco:2'><!-- c --></services><!-- c -->`, nil},
		{"foreign child skipped", svcsOpen + `<x xmlns='urn:example'><service type='stun' host='h'/></x></services>`, nil},
		{"unqualified child skipped", svcsOpen + `<service xmlns='' type='stun' host='h'/></services>`, nil},
		{"data form in service", svcsOpen + `<service type='stun' host='h'><x xmlns='jabber:x:data' type='result'><field var='v'><value>1</value></field></x></service></services>`,
			[]Service{{Type: "stun", Host: "h"}}},
		{"unknown and foreign attributes ignored", svcsOpen + `<service xmlns:o='urn:o' o:host='x' type='stun' host='h' color='red' xml:lang='en'/></services>`,
			[]Service{{Type: "stun", Host: "h"}}},
		{"ipv6 and booleans", svcsOpen + `<service type='turn' host='2001:db8::1' restricted='true'/><service type='turn' host='h' restricted='0'/></services>`,
			[]Service{{Type: "turn", Host: "2001:db8::1", Restricted: true}, {Type: "turn", Host: "h"}}},
		{"expires forms", svcsOpen + `<service type='turn' host='h' expires='2023-11-14T22:13:20.5+00:00'/></services>`,
			[]Service{{Type: "turn", Host: "h", Expires: time.Date(2023, 11, 14, 22, 13, 20, 5e8, time.UTC)}}},
		{"escaped credentials", svcsOpen + `<service type='turn' host='h' username='a&amp;b' password='&lt;&quot;&apos;&gt;'/></services>`,
			[]Service{{Type: "turn", Host: "h", Username: "a&b", Password: `<"'>`}}},
		{"max services", svcsOpen + strings.Repeat(`<service type='stun' host='h'/>`, MaxServices) + `</services>`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServices([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "max services" {
				if len(got) != MaxServices {
					t.Fatalf("%d services", len(got))
				}
				return
			}
			if !equalServices(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestICEServer(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cred := func(s Service) Service { s.Username, s.Password = "u", "p"; return s }
	tests := []struct {
		name string
		svc  Service
		url  string // "" = not used
	}{
		{"stun default port", Service{Type: "stun", Host: "h"}, "stun:h:3478"},
		{"stun udp", Service{Type: "stun", Host: "h", Port: 1, Transport: "udp"}, "stun:h:1"},
		{"stun tcp unused", Service{Type: "stun", Host: "h", Transport: "tcp"}, ""},
		{"stun ipv6", Service{Type: "stun", Host: "2001:db8::1", Port: 9}, "stun:[2001:db8::1]:9"},
		{"turn default", cred(Service{Type: "turn", Host: "h"}), "turn:h:3478?transport=udp"},
		{"turn tcp", cred(Service{Type: "turn", Host: "h", Port: 80, Transport: "tcp"}), "turn:h:80?transport=tcp"},
		{"turn ipv6", cred(Service{Type: "turn", Host: "::1"}), "turn:[::1]:3478?transport=udp"},
		{"turns default", cred(Service{Type: "turns", Host: "h"}), "turns:h:5349?transport=tcp"},
		{"turns dtls", cred(Service{Type: "turns", Host: "h", Transport: "udp"}), "turns:h:5349?transport=udp"},
		{"turn sctp unused", cred(Service{Type: "turn", Host: "h", Transport: "sctp"}), ""},
		{"turn without credentials", Service{Type: "turn", Host: "h"}, ""},
		{"turn without password", Service{Type: "turn", Host: "h", Username: "u"}, ""},
		{"restricted without credentials", Service{Type: "turn", Host: "h", Restricted: true}, ""},
		{"expired", cred(Service{Type: "turn", Host: "h", Expires: now.Add(-time.Second)}), ""},
		{"expires now", cred(Service{Type: "turn", Host: "h", Expires: now}), ""},
		{"expires later", cred(Service{Type: "turn", Host: "h", Expires: now.Add(time.Nanosecond)}), "turn:h:3478?transport=udp"},
		{"removed", cred(Service{Type: "turn", Host: "h", Action: ActionRemove}), ""},
		{"deleted", Service{Type: "stun", Host: "h", Action: ActionDelete}, ""},
		{"modified", Service{Type: "stun", Host: "h", Action: ActionModify}, "stun:h:3478"},
		{"ftp", cred(Service{Type: "ftp", Host: "h"}), ""},
		{"invalid host from a caller", Service{Type: "stun", Host: "h?x"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is, ok := tc.svc.ICEServer(now)
			if ok != (tc.url != "") {
				t.Fatalf("used %v (%+v), want %q", ok, is, tc.url)
			}
			if !ok {
				return
			}
			if !reflect.DeepEqual(is.URLs, []string{tc.url}) {
				t.Fatalf("URLs %v, want %s", is.URLs, tc.url)
			}
			if tc.svc.Type == "stun" {
				if is.Username != "" || is.Credential != nil {
					t.Fatalf("STUN server with credentials %+v", is)
				}
			} else if is.Username != "u" || is.Credential != "p" || is.CredentialType != webrtc.ICECredentialTypePassword {
				t.Fatalf("credentials %+v", is)
			}
			pionAccepts(t, []webrtc.ICEServer{is})
		})
	}
}

func TestICEServersBoundsAndDuplicates(t *testing.T) {
	now := time.Now()
	var svcs []Service
	for i := range 20 {
		svcs = append(svcs, Service{Type: "stun", Host: fmt.Sprintf("s%d.example", i)})
		svcs = append(svcs, Service{Type: "stun", Host: fmt.Sprintf("s%d.example", i), Port: DefaultPort}) // same URL
	}
	got := ICEServers(now, svcs)
	if len(got) != MaxICEServers {
		t.Fatalf("%d servers, want %d", len(got), MaxICEServers)
	}
	for i, s := range got {
		if want := fmt.Sprintf("stun:s%d.example:3478", i); s.URLs[0] != want {
			t.Fatalf("server %d is %s, want %s", i, s.URLs[0], want)
		}
	}
	pionAccepts(t, got)
	// Same URL, other credentials: both kept.
	two := ICEServers(now, []Service{
		{Type: "turn", Host: "h", Username: "a", Password: "1"},
		{Type: "turn", Host: "h", Username: "a", Password: "2"},
		{Type: "turn", Host: "h", Username: "a", Password: "1"},
	})
	if len(two) != 2 {
		t.Fatalf("%d servers, want 2", len(two))
	}
	if got := ICEServers(now, nil); got == nil || len(got) != 0 {
		t.Fatalf("ICEServers(nil) = %#v", got)
	}
}

func TestExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e1, e2 := now.Add(time.Hour), now.Add(2*time.Hour)
	svcs := []Service{
		{Type: "stun", Host: "h"},
		{Type: "turn", Host: "h", Username: "u", Password: "p", Expires: e2},
		{Type: "turn", Host: "h", Transport: "tcp", Username: "u", Password: "p", Expires: e1},
		{Type: "turn", Host: "gone", Username: "u", Password: "p", Expires: now.Add(-time.Hour)}, // expired: not counted
		{Type: "ftp", Host: "h", Expires: now.Add(time.Minute)},                                  // not ICE: not counted
	}
	if got := Expiry(now, svcs); !got.Equal(e1) {
		t.Fatalf("Expiry %v, want %v", got, e1)
	}
	if got := Expiry(now, svcs[:1]); !got.IsZero() {
		t.Fatalf("Expiry without expiries %v", got)
	}
}

func TestNeedsCredentials(t *testing.T) {
	for _, tc := range []struct {
		s    Service
		want bool
	}{
		{Service{Restricted: true}, true},
		{Service{Restricted: true, Username: "u"}, true},
		{Service{Restricted: true, Username: "u", Password: "p"}, false},
		{Service{}, false},
	} {
		if got := tc.s.NeedsCredentials(); got != tc.want {
			t.Errorf("%+v: NeedsCredentials %v", tc.s, got)
		}
	}
}

func TestCredentialsRequest(t *testing.T) {
	b, err := CredentialsRequest([]Service{{Type: "turn", Host: "h", Port: 3478, Username: "ignored"}, {Type: "turns", Host: "::1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `<credentials xmlns="urn:xmpp:extdisco:2"><service type="turn" host="h" port="3478"/><service type="turns" host="::1"/></credentials>`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if _, err := ParseCredentials(b); err != nil {
		t.Fatal(err)
	}
	if _, err := CredentialsRequest(nil); err == nil {
		t.Fatal("empty request built")
	}
	if _, err := CredentialsRequest([]Service{{Type: "turn", Host: "h'/><evil"}}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("injected host: %v", err)
	}
	if _, err := CredentialsRequest(make([]Service, MaxServices+1)); !errors.Is(err, ErrLimit) {
		t.Fatalf("too many: %v", err)
	}
}

func TestServicesRequest(t *testing.T) {
	if got := string(ServicesRequest("")); got != `<services xmlns="urn:xmpp:extdisco:2"/>` {
		t.Fatal(got)
	}
	if got := string(ServicesRequest("turn")); got != `<services xmlns="urn:xmpp:extdisco:2" type="turn"/>` {
		t.Fatal(got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("invalid type accepted")
		}
	}()
	ServicesRequest(`turn"/>`)
}

func TestMarshalRefusesInvalid(t *testing.T) {
	for _, s := range []Service{
		{Type: "", Host: "h"},
		{Type: "turn", Host: ""},
		{Type: "turn", Host: "h", Transport: "U D P"},
		{Type: "turn", Host: "h", Username: "a\x00"},
		{Type: "turn", Host: "h", Password: strings.Repeat("p", MaxCredentialLen+1)},
		{Type: "turn", Host: "h", Action: "explode"},
		{Type: "turn", Host: "h", Name: "\x1b[31m"},
	} {
		if b, err := MarshalServices("", []Service{s}); err == nil {
			t.Errorf("%+v marshalled: %s", s, b)
		}
	}
	if _, err := MarshalServices("A B", nil); err == nil {
		t.Error("invalid type filter marshalled")
	}
}
