package gateway

import (
	"bytes"
	"encoding/xml"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/coturntest"
	"github.com/securejingle/securejingle/internal/prosodytest"
	"github.com/securejingle/securejingle/jingle"
)

// receivedJingle records the Jingle requests a gateway's call channel
// received (decrypted), in order.
type receivedJingle struct {
	mu  sync.Mutex
	got []*jingle.Jingle
}

// tap wraps g's Jingle handler so that r sees every request first.
func (r *receivedJingle) tap(g *Gateway) {
	name := xml.Name{Space: jingle.NS, Local: "jingle"}
	g.mu.Lock()
	next := g.iqs[name]
	g.mu.Unlock()
	if next == nil {
		panic("gateway: no Jingle handler to tap")
	}
	g.HandleIQ(name, func(req InnerIQ) ([]byte, error) {
		if j, err := jingle.Parse(req.Payload); err == nil {
			r.mu.Lock()
			r.got = append(r.got, j)
			r.mu.Unlock()
		}
		return next(req)
	})
}

// candidates returns every candidate of the requests of call sid.
func (r *receivedJingle) candidates(sid string) []jingle.Candidate {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []jingle.Candidate
	for _, j := range r.got {
		if j.SID != sid {
			continue
		}
		for _, c := range j.Contents {
			if c.Transport != nil {
				out = append(out, c.Transport.Candidates...)
			}
		}
	}
	return out
}

// TestIntegrationCallTURN: a call between two gateways forced through a
// real coturn. A real Prosody hands both the TURN server with TURN REST
// API credentials (mod_turn_external, XEP-0215, over UDP and TCP); both
// are relay-only and use the server's services. The call connects with
// the binding check passed, audio and video arrive byte for byte both
// ways, the selected ICE pair is relay–relay on both sides, every
// candidate either side received in the protected Jingle is a relayed
// address of coturn whose related address is 0.0.0.0 port 0, and coturn
// logged the allocations under the usernames Prosody handed out.
func TestIntegrationCallTURN(t *testing.T) {
	noLeaks(t)
	turn := coturntest.Start(t)
	p := prosodytest.Start(t, prosodytest.WithTURN(prosodytest.TURN{
		Host: turn.Host(), Port: turn.Port(), Secret: turn.Secret(), User: "securejingle", TTL: 10 * time.Minute, TCP: true,
	}))
	p.AddUser(t, "alice", "alice-pw")
	p.AddUser(t, "bob", "bob-pw")
	p.Subscribe(t, "alice", "bob")
	dir := t.TempDir()
	aOgg, aIVF, bOgg, bIVF := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "a.ivf"), filepath.Join(dir, "b.ogg"), filepath.Join(dir, "b.ivf")
	writeTestOpus(t, aOgg, testAudioPackets)
	writeTestIVF(t, aIVF, testVideoFrames)
	writeTestOpus(t, bOgg, testAudioPackets)
	writeTestIVF(t, bIVF, testVideoFrames)
	aRec, bRec := mkdir(t, dir, "a-rec"), mkdir(t, dir, "b-rec")
	var atAlice, atBob receivedJingle
	relayOnly := func(r *receivedJingle) func(*Gateway) {
		return func(g *Gateway) {
			g.cfg.RelayOnly, g.cfg.UseServerICE = true, true
			r.tap(g)
		}
	}
	srv := server{p.Addr(), p.TLSConfig()}
	a := startGatewayAt(t, srv, "alice@"+p.Domain()+"/laptop", "alice-pw", gwOptions{setup: withSetup(relayOnly(&atAlice))})
	b := startGatewayAt(t, srv, "bob@"+p.Domain()+"/phone", "bob-pw", gwOptions{setup: withSetup(relayOnly(&atBob),
		answerWith(CallMedia{AudioFile: bOgg, VideoFile: bIVF, RecordDir: bRec}))})
	a.waitDevices(t, "bob@"+p.Domain(), 1)
	b.waitDevices(t, "alice@"+p.Domain(), 1)
	ctx := testCtx(t)

	placed, err := a.PlaceCall(ctx, b.JID().Bare(), CallMedia{AudioFile: aOgg, VideoFile: aIVF, RecordDir: aRec})
	if err != nil {
		t.Fatal(err)
	}
	ac := a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	bc := b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	for _, c := range []CallInfo{ac, bc} {
		if c.State != CallConnected || !c.RelayOnly || c.SRTPProfile != "SRTP_AEAD_AES_256_GCM" {
			t.Fatalf("%s call %+v", c.Direction, c)
		}
	}
	legA, legB := a.calls.get(placed.ID).peerConn(), b.calls.get(placed.ID).peerConn()
	poll(t, "both recordings complete", func() bool {
		return legA.stats().audio >= testAudioPackets && legA.stats().video >= testVideoFrames &&
			legB.stats().audio >= testAudioPackets && legB.stats().video >= testVideoFrames
	})
	for name, leg := range map[string]*mediaPeer{"alice": legA, "bob": legB} {
		pair, err := leg.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: selected pair %s, want relay–relay", name, pair)
		}
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	aEnd, _ := a.Call(placed.ID)
	bEnd := b.waitEnded(t, placed.ID)
	if aEnd.EndReason != "success" || bEnd.EndReason != "success" {
		t.Fatalf("ended: alice %+v\nbob %+v", aEnd, bEnd)
	}
	sameMedia(t, "bob's audio recording", aOgg, recordingOf(t, bEnd, ".ogg"))
	sameMedia(t, "bob's video recording", aIVF, recordingOf(t, bEnd, ".ivf"))
	sameMedia(t, "alice's audio recording", bOgg, recordingOf(t, aEnd, ".ogg"))
	sameMedia(t, "alice's video recording", bIVF, recordingOf(t, aEnd, ".ivf"))

	// What each side signaled, as the other received it.
	lo, hi := turn.RelayPorts()
	for _, side := range []struct {
		from string
		got  *receivedJingle
	}{{"alice", &atBob}, {"bob", &atAlice}} {
		cands := side.got.candidates(placed.ID)
		if len(cands) == 0 {
			t.Fatalf("%s signaled no candidate", side.from)
		}
		for _, c := range cands {
			if c.Type != "relay" || c.IP != turn.Host() || int(c.Port) < lo || int(c.Port) > hi {
				t.Errorf("%s signaled %s candidate %s:%d, want a relayed address of coturn (%s, ports %d-%d)", side.from, c.Type, c.IP, c.Port, turn.Host(), lo, hi)
			}
			if c.RelAddr != "0.0.0.0" || c.RelPort != 0 {
				t.Errorf("%s signaled relay candidate %s:%d with related address %s:%d, want 0.0.0.0:0", side.from, c.IP, c.Port, c.RelAddr, c.RelPort)
			}
		}
	}

	// coturn served the credentials Prosody handed out.
	log, err := turn.Log()
	if err != nil {
		t.Fatal(err)
	}
	if n := turn.Allocations(); n < 2 {
		t.Errorf("%d allocations in coturn's log, want one per side at least\n%s", n, log)
	}
	for name, g := range map[string]*testGateway{"alice": a, "bob": b} {
		servers, err := g.ExternalServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var users []string
		for _, s := range servers {
			if s.Username != "" {
				users = append(users, s.Username)
			}
		}
		if len(users) == 0 {
			t.Fatalf("%s: Prosody handed out no TURN credentials: %+v", name, servers)
		}
		for _, want := range []string{"user <" + users[0] + ">: incoming packet ALLOCATE processed, success",
			"user <" + users[0] + ">: incoming packet CREATE_PERMISSION processed, success"} {
			if !bytes.Contains(log, []byte(want)) {
				t.Errorf("%s: coturn's log lacks %q\n%s", name, want, log)
			}
		}
	}
}
