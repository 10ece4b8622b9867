package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/coturntest"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/jingle"
)

// TestIntegrationTURNThroughProsody: a real Prosody hands a logged-in
// gateway the real coturn it fronts (mod_turn_external, XEP-0215), over
// UDP and TCP, with TURN REST API credentials that coturntest computes the
// same way; for each transport, two relay-only pion PeerConnections
// configured with those servers connect through coturn on loopback and
// exchange data both ways. Every candidate either side produced is a
// relayed address of coturn; what goes to the peer (each candidate as
// relayOnlyCandidate rewrites it) carries no local address; the selected
// pair is relay–relay; and coturn's log shows the allocations and the
// permissions for the peer under the credentials Prosody handed out.
func TestIntegrationTURNThroughProsody(t *testing.T) {
	const (
		user = "securejingle"
		ttl  = 10 * time.Minute
	)
	turn := coturntest.Start(t)
	p := prosodytest.Start(t, prosodytest.WithTURN(prosodytest.TURN{
		Host: turn.Host(), Port: turn.Port(), Secret: turn.Secret(), User: user, TTL: ttl, TCP: true,
	}))
	p.AddUser(t, "alice", "alice-pw")
	a := startProsodyGateway(t, p, "alice", "alice-pw", "laptop")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// (a) The servers and their credentials: STUN over UDP (pion has no
	// use for the STUN-over-TCP entry), TURN over UDP and over TCP.
	before := time.Now()
	servers, err := a.ExternalServices(ctx)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"stun:" + turn.Addr(),
		"turn:" + turn.Addr() + "?transport=udp",
		"turn:" + turn.Addr() + "?transport=tcp",
	}
	if len(servers) != len(want) {
		t.Fatalf("servers %+v, want %v", servers, want)
	}
	for i, s := range servers {
		if len(s.URLs) != 1 || s.URLs[0] != want[i] {
			t.Fatalf("server %d: %+v, want %s", i, s, want[i])
		}
	}
	if s := servers[0]; s.Username != "" || s.Credential != nil {
		t.Errorf("STUN server with credentials: %+v", s)
	}
	ts := servers[1]
	expStr, gotUser, ok := strings.Cut(ts.Username, ":")
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if !ok || err != nil || gotUser != user {
		t.Fatalf("TURN username %q is not EXPIRY:%s", ts.Username, user)
	}
	if lo, hi := before.Add(ttl).Unix()-1, after.Add(ttl).Unix()+1; exp < lo || exp > hi {
		t.Fatalf("expiry %d not in [%d, %d]", exp, lo, hi)
	}
	wantUser, wantPass := coturntest.CredentialsAt(turn.Secret(), user, time.Unix(exp, 0))
	for _, s := range servers[1:] {
		if s.Username != wantUser || s.Credential != wantPass || s.CredentialType != webrtc.ICECredentialTypePassword {
			t.Fatalf("%s: credentials %q/%v, the TURN REST API gives %q/%q", s.URLs[0], s.Username, s.Credential, wantUser, wantPass)
		}
	}

	// (b) Two relay-only peers through coturn, for each transport to it.
	for _, tc := range []struct {
		transport string
		turn      webrtc.ICEServer
	}{{"udp", servers[1]}, {"tcp", servers[2]}} {
		t.Run(tc.transport, func(t *testing.T) {
			tcpBefore := turnTCPConnections(t, turn)
			relayCall(ctx, t, turn, []webrtc.ICEServer{servers[0], tc.turn})
			if tc.transport == "tcp" {
				if n := turnTCPConnections(t, turn) - tcpBefore; n < 2 {
					t.Errorf("coturn accepted %d TCP connections, want one per peer", n)
				}
			}
		})
	}
}

// turnTCPConnections counts the TCP connections coturn has logged.
func turnTCPConnections(t *testing.T, turn *coturntest.Server) int {
	t.Helper()
	log, err := turn.Log()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(log, []byte("tcp or tls connected to"))
}

// relayCall connects two relay-only PeerConnections configured with
// servers through turn, signaling in-process, and checks what the brief
// of TestIntegrationTURNThroughProsody says.
func relayCall(ctx context.Context, t *testing.T, turn *coturntest.Server, servers []webrtc.ICEServer) {
	lo, hi := turn.RelayPorts()
	allocsBefore := turn.Allocations()
	offerer, answerer := newRelayPeer(t, servers), newRelayPeer(t, servers)
	dc, err := offerer.pc.CreateDataChannel("data", nil)
	if err != nil {
		t.Fatal(err)
	}
	const messages = 20
	gotAtAnswerer := make(chan string, messages)
	gotAtOfferer := make(chan string, messages)
	answerer.pc.OnDataChannel(func(d *webrtc.DataChannel) {
		d.OnMessage(func(m webrtc.DataChannelMessage) {
			gotAtAnswerer <- string(m.Data)
			d.SendText("echo " + string(m.Data))
		})
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) { gotAtOfferer <- string(m.Data) })
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })

	// Signaling in-process, after gathering: the descriptions carry every
	// candidate, rewritten as a relay-only gateway sends them.
	offer := offerer.describe(t, func() (webrtc.SessionDescription, error) { return offerer.pc.CreateOffer(nil) })
	offer.SDP = relayOnlySDP(t, offer.SDP)
	if err := answerer.pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer := answerer.describe(t, func() (webrtc.SessionDescription, error) { return answerer.pc.CreateAnswer(nil) })
	answer.SDP = relayOnlySDP(t, answer.SDP)
	if err := offerer.pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		name string
		peer *relayPeer
		sdp  string
	}{{"offerer", offerer, offer.SDP}, {"answerer", answerer, answer.SDP}} {
		cands := side.peer.candidates()
		if len(cands) == 0 {
			t.Fatalf("%s gathered no candidate", side.name)
		}
		// What pion emitted: relayed addresses of coturn only. (Their
		// related address is the local end of the connection to
		// coturn, which relayOnlyCandidate withholds.)
		for _, c := range cands {
			if err := checkRelayed(c.Typ.String(), c.Address, int(c.Port), "", 0, lo, hi); err != nil {
				t.Errorf("%s: %v", side.name, err)
			}
			t.Logf("%s: pion emitted %s", side.name, c)
		}
		// What the peer gets: check its candidates, related address
		// included (pion lists each for components 1 and 2).
		n := 0
		for line := range strings.SplitSeq(side.sdp, "\r\n") {
			attr, ok := strings.CutPrefix(line, "a=")
			if !ok || !strings.HasPrefix(attr, "candidate:") {
				continue
			}
			n++
			c, err := ice.UnmarshalCandidate(attr)
			if err != nil {
				t.Fatalf("%s: %q: %v", side.name, line, err)
			}
			var raddr string
			var rport int
			if r := c.RelatedAddress(); r != nil {
				raddr, rport = r.Address, r.Port
			}
			if err := checkRelayed(c.Type().String(), c.Address(), c.Port(), raddr, rport, lo, hi); err != nil {
				t.Errorf("%s: SDP: %v", side.name, err)
			}
		}
		if n == 0 {
			t.Errorf("%s: no candidate in the SDP:\n%s", side.name, side.sdp)
		}
		for _, typ := range []string{"typ host", "typ srflx", "typ prflx"} {
			if strings.Contains(side.sdp, typ) {
				t.Errorf("%s: SDP has a %q candidate:\n%s", side.name, typ, side.sdp)
			}
		}
	}

	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatalf("data channel did not open through the relay: %v", ctx.Err())
	}
	for i := range messages {
		if err := dc.SendText(fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range messages {
		want := fmt.Sprintf("m%02d", i)
		for _, ch := range []struct {
			c    chan string
			want string
		}{{gotAtAnswerer, want}, {gotAtOfferer, "echo " + want}} {
			select {
			case got := <-ch.c:
				if got != ch.want {
					t.Fatalf("received %q, want %q", got, ch.want)
				}
			case <-ctx.Done():
				t.Fatalf("message %q not received: %v", ch.want, ctx.Err())
			}
		}
	}
	for name, peer := range map[string]*relayPeer{"offerer": offerer, "answerer": answerer} {
		pair, err := peer.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: selected pair %s", name, pair)
		}
	}

	// coturn's side: an allocation per peer, permissions for the other's
	// relayed address, all under the credentials Prosody handed out.
	log, err := turn.Log()
	if err != nil {
		t.Fatal(err)
	}
	if n := turn.Allocations() - allocsBefore; n < 2 {
		t.Errorf("%d new allocations in coturn's log, want at least 2\n%s", n, log)
	}
	user := servers[len(servers)-1].Username
	for _, want := range []string{
		"user <" + user + ">: incoming packet ALLOCATE processed, success",
		"user <" + user + ">: incoming packet CREATE_PERMISSION processed, success",
	} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("coturn's log lacks %q\n%s", want, log)
		}
	}
}

// relayOnlySDP rewrites every candidate of sdp the way a relay-only
// gateway hands candidates to the peer: through jingle's SDP mapping and
// relayOnlyCandidate. It fails the test for a candidate that the gateway
// would drop (any but relay): pion must not have produced it.
func relayOnlySDP(t *testing.T, sdp string) string {
	t.Helper()
	lines := strings.Split(sdp, "\r\n")
	mid := ""
	for i, line := range lines {
		if m, ok := strings.CutPrefix(line, "a=mid:"); ok {
			mid = m
			continue
		}
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		jc, err := jingle.CandidateFromSDP(mid, line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out, ok := relayOnlyCandidate(jc)
		if !ok {
			t.Fatalf("relay-only peer emitted %q", line)
		}
		w := jingle.CandidateToSDP(out)
		if w == "" {
			t.Fatalf("relayOnlyCandidate made %+v of %q, which is not a valid candidate", out, line)
		}
		lines[i] = "a=" + w
	}
	return strings.Join(lines, "\r\n")
}

// relayPeer is a relay-only PeerConnection and the candidates it emitted.
type relayPeer struct {
	pc *webrtc.PeerConnection

	mu    sync.Mutex
	cands []webrtc.ICECandidate
	done  chan struct{} // closed when gathering is complete
}

func newRelayPeer(t *testing.T, servers []webrtc.ICEServer) *relayPeer {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		ICEServers:         servers,
		ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	p := &relayPeer{pc: pc, done: make(chan struct{})}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			close(p.done)
			return
		}
		p.mu.Lock()
		p.cands = append(p.cands, *c)
		p.mu.Unlock()
	})
	return p
}

// describe creates an offer or answer, sets it as the local description,
// waits for gathering to complete and returns the local description.
func (p *relayPeer) describe(t *testing.T, create func() (webrtc.SessionDescription, error)) webrtc.SessionDescription {
	t.Helper()
	d, err := create()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second): // a hang guard
		t.Fatal("gathering did not complete")
	}
	return *p.pc.LocalDescription()
}

func (p *relayPeer) candidates() []webrtc.ICECandidate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]webrtc.ICECandidate(nil), p.cands...)
}

// checkRelayed says what is wrong with a candidate for a relay-only peer:
// it must be a relayed address of the TURN server (127.0.0.1, a port in
// [lo, hi]) and its related address must not be a local one.
func checkRelayed(typ, addr string, port int, raddr string, rport, lo, hi int) error {
	if typ != "relay" {
		return fmt.Errorf("candidate of type %s (%s:%d)", typ, addr, port)
	}
	if addr != "127.0.0.1" || port < lo || port > hi {
		return fmt.Errorf("relay candidate %s:%d is not in coturn's relay range %d-%d", addr, port, lo, hi)
	}
	if raddr != "" {
		if a, err := netip.ParseAddr(raddr); err != nil || !a.IsUnspecified() {
			return fmt.Errorf("relay candidate reveals the local address %s:%d", raddr, rport)
		}
	}
	return nil
}
