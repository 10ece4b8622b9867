package coturntest

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// TestCredentials is a known answer for the TURN REST scheme, computed
// independently (Python's hmac module) and matching the Prosody-shaped
// vector in internal/extdisco/testdata.
func TestCredentials(t *testing.T) {
	exp := time.Unix(1700000000, 0)
	for _, tc := range []struct{ user, wantUser, wantPass string }{
		{"securejingle", "1700000000:securejingle", "9jvIzqyJ4ZF6N71Xp25up61tW/0="},
		{"", "1700000000", ""},
	} {
		u, p := CredentialsAt("north-secret", tc.user, exp)
		if u != tc.wantUser || (tc.wantPass != "" && p != tc.wantPass) {
			t.Errorf("CredentialsAt(%q) = %q, %q; want %q, %q", tc.user, u, p, tc.wantUser, tc.wantPass)
		}
	}
	// Sub-second expiries truncate; another secret gives another password.
	u1, p1 := CredentialsAt("north-secret", "x", exp.Add(999*time.Millisecond))
	u2, p2 := CredentialsAt("north-secret", "x", exp)
	_, p3 := CredentialsAt("south-secret", "x", exp)
	if u1 != u2 || p1 != p2 || p3 == p1 {
		t.Errorf("truncation or secret: %q %q %q %q %q", u1, u2, p1, p2, p3)
	}
	before := time.Now().Add(time.Hour).Unix()
	u, _ := Credentials("s", "bob", time.Hour)
	after := time.Now().Add(time.Hour).Unix()
	e, err := strconv.ParseInt(strings.TrimSuffix(u, ":bob"), 10, 64)
	if err != nil || e < before || e > after {
		t.Errorf("Credentials username %q, expiry not in [%d, %d]", u, before, after)
	}
}

// relayCandidates gathers the candidates of a relay-only PeerConnection
// with servers and returns them once gathering is complete.
func relayCandidates(t *testing.T, servers []webrtc.ICEServer) []webrtc.ICECandidate {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var cands []webrtc.ICECandidate
	done := make(chan struct{})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			close(done)
			return
		}
		cands = append(cands, *c)
	})
	if _, err := pc.CreateDataChannel("probe", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a hang guard
		t.Fatal("gathering did not complete")
	}
	return cands
}

// TestServer: coturn answers STUN, grants an allocation on loopback in
// its relay range for REST credentials of its secret, refuses another
// secret's and expired ones, and logs all of it.
func TestServer(t *testing.T) {
	s := Start(t)
	if err := stunPing(s.Addr()); err != nil {
		t.Fatal(err)
	}
	lo, hi := s.RelayPorts()
	if lo < relayLow || hi >= relayHigh || hi-lo+1 != relayPorts {
		t.Fatalf("relay range %d-%d", lo, hi)
	}

	good := relayCandidates(t, []webrtc.ICEServer{s.ICEServer("alice", time.Hour)})
	if len(good) != 1 {
		t.Fatalf("candidates %+v, want one relay candidate", good)
	}
	c := good[0]
	if c.Typ != webrtc.ICECandidateTypeRelay || c.Address != "127.0.0.1" || int(c.Port) < lo || int(c.Port) > hi {
		t.Fatalf("candidate %+v is not a relayed address of the server", c)
	}

	wrong := s.ICEServer("alice", time.Hour)
	wrong.Credential = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
	expiredUser, expiredPass := Credentials(s.Secret(), "alice", -time.Minute)
	expired := s.ICEServer("alice", time.Hour)
	expired.Username, expired.Credential = expiredUser, expiredPass
	for name, srv := range map[string]webrtc.ICEServer{"wrong password": wrong, "expired": expired} {
		if got := relayCandidates(t, []webrtc.ICEServer{srv}); len(got) != 0 {
			t.Errorf("%s: coturn granted %+v", name, got)
		}
	}

	log, err := s.Log()
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Allocations(); n != 1 {
		t.Errorf("%d successful allocations in the log, want 1\n%s", n, log)
	}
	if !bytes.Contains(log, []byte("realm <"+s.Realm()+">")) {
		t.Errorf("realm not in log\n%s", log)
	}
}

// TestFreePort: the port is free for UDP and TCP.
func TestFreePort(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	u, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
}
