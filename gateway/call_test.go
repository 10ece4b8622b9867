package gateway

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e/identity"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

var (
	aliceJID = jid.MustParse("alice@" + testDomain)
	bobJID   = jid.MustParse("bob@" + testDomain)
)

// loopbackCalls makes a gateway's calls use loopback UDP candidates only.
func loopbackCalls(g *Gateway) { g.callHooks.loopback = true }

func withSetup(fs ...func(*Gateway)) func(*Gateway) {
	return func(g *Gateway) {
		loopbackCalls(g)
		for _, f := range fs {
			if f != nil {
				f(g)
			}
		}
	}
}

// callPair starts alice (laptop) and bob (phone), contacts of each other,
// with their calls on loopback and the extra setups given.
func callPair(t testing.TB, aliceSetup, bobSetup func(*Gateway)) (*localxmpp.Server, *testGateway, *testGateway) {
	t.Helper()
	return callPairOpts(t, gwOptions{setup: aliceSetup}, gwOptions{setup: bobSetup})
}

// callPairOpts is callPair with the gateways' options; their setups run
// after loopbackCalls.
func callPairOpts(t testing.TB, aliceOpt, bobOpt gwOptions) (*localxmpp.Server, *testGateway, *testGateway) {
	t.Helper()
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(aliceJID, bobJID); err != nil {
		t.Fatal(err)
	}
	aliceOpt.setup, bobOpt.setup = withSetup(aliceOpt.setup), withSetup(bobOpt.setup)
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", aliceOpt)
	b := startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", bobOpt)
	a.waitDevices(t, bobJID.String(), 1)
	b.waitDevices(t, aliceJID.String(), 1)
	return srv, a, b
}

// answerWith is a CallAnswerer that answers every call with m.
func answerWith(m CallMedia) func(*Gateway) {
	return func(g *Gateway) {
		g.cfg.CallAnswerer = func(CallInfo) (CallMedia, bool) { return m, true }
	}
}

// waitCall waits for a call event (of call id, or any call when id is
// "") that satisfies ok; an end before that fails the test.
func (tg *testGateway) waitCall(t testing.TB, id, what string, ok func(CallInfo) bool) CallInfo {
	t.Helper()
	var got CallInfo
	tg.waitEvent(t, what, func(ev Event) bool {
		if ev.Kind != EventCall || ev.Call == nil || (id != "" && ev.Call.ID != id) {
			return false
		}
		if ok(*ev.Call) {
			got = *ev.Call
			return true
		}
		if ev.Call.State == CallEnded {
			t.Fatalf("%s: call %s ended (%s: %s) before %s", tg.bare(), ev.Call.ID, ev.Call.EndReason, ev.Call.Detail, what)
		}
		return false
	})
	return got
}

// waitEnded waits for the end of call id and returns it.
func (tg *testGateway) waitEnded(t testing.TB, id string) CallInfo {
	t.Helper()
	var got CallInfo
	tg.waitEvent(t, "call "+id+" ended", func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call != nil && (id == "" || ev.Call.ID == id) && ev.Call.State == CallEnded {
			got = *ev.Call
			return true
		}
		return false
	})
	return got
}

func isCallAlert(rule string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == EventAlert && ev.Alert != nil && ev.Alert.Decision.Rule == rule }
}

// noLeaks fails the test if goroutines it started outlive it (checked
// after every other cleanup, with a hang guard).
func noLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				var b strings.Builder
				pprof.Lookup("goroutine").WriteTo(&b, 1)
				t.Fatalf("%d goroutines left, %d before the test:\n%s", runtime.NumGoroutine(), base, b.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mkdir(t *testing.T, dir, name string) string {
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func recordingOf(t *testing.T, c CallInfo, ext string) string {
	t.Helper()
	for _, r := range c.Recordings {
		if strings.Contains(filepath.Base(r), c.ID) {
			t.Fatalf("recording %s is named after the peer's session id", r)
		}
		if fi, err := os.Stat(r); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("recording %s: %v, mode %v; want 0600", r, err, fi.Mode())
		}
		if filepath.Ext(r) == ext {
			return r
		}
	}
	t.Fatalf("call %s recorded no %s file: %v", c.ID, ext, c.Recordings)
	return ""
}

const (
	testAudioPackets = 40 // 0.8 s
	testVideoFrames  = 20 // 0.67 s
)

// TestCallAudioVideo: alice calls bob with audio and video files both
// ways; bob's answerer takes the call. Both sides check the DTLS binding,
// media flows both ways, and each recording holds exactly the payloads
// the other side played.
func TestCallAudioVideo(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	aOgg, aIVF, bOgg, bIVF := filepath.Join(dir, "a.ogg"), filepath.Join(dir, "a.ivf"), filepath.Join(dir, "b.ogg"), filepath.Join(dir, "b.ivf")
	writeTestOpus(t, aOgg, testAudioPackets)
	writeTestIVF(t, aIVF, testVideoFrames)
	writeTestOpus(t, bOgg, testAudioPackets)
	writeTestIVF(t, bIVF, testVideoFrames)
	aRec, bRec := mkdir(t, dir, "a-rec"), mkdir(t, dir, "b-rec")
	_, a, b := callPair(t, nil, answerWith(CallMedia{AudioFile: bOgg, VideoFile: bIVF, RecordDir: bRec}))
	ctx := testCtx(t)

	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: aOgg, VideoFile: aIVF, RecordDir: aRec})
	if err != nil {
		t.Fatal(err)
	}
	if placed.State != CallProposed || placed.Direction != CallOutgoing || placed.Peer != bobJID.String() || len(placed.Media) != 2 {
		t.Fatalf("placed %+v", placed)
	}
	ac := a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	bc := b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	if ac.State != CallConnected || bc.State != CallConnected || bc.Direction != CallIncoming || bc.Peer != aliceJID.String() {
		t.Fatalf("alice %+v\nbob %+v", ac, bc)
	}
	if ac.PeerDevice != b.eng.Device() || bc.PeerDevice != a.eng.Device() || ac.PeerFull != b.JID().String() {
		t.Fatalf("bound devices: alice's call %d %s, bob's %d; want %d %s, %d", ac.PeerDevice, ac.PeerFull, bc.PeerDevice, b.eng.Device(), b.JID(), a.eng.Device())
	}
	if ac.PeerFingerprint == "" || ac.PeerFingerprint != bc.LocalFingerprint || bc.PeerFingerprint != ac.LocalFingerprint {
		t.Fatalf("fingerprints: alice local %s peer %s, bob local %s peer %s", ac.LocalFingerprint, ac.PeerFingerprint, bc.LocalFingerprint, bc.PeerFingerprint)
	}
	if ac.SRTPProfile != "SRTP_AEAD_AES_256_GCM" || bc.SRTPProfile != ac.SRTPProfile {
		t.Fatalf("SRTP profiles %q %q", ac.SRTPProfile, bc.SRTPProfile)
	}
	if ac.Trust != "tofu" || ac.Verified {
		t.Fatalf("trust %q verified %v", ac.Trust, ac.Verified)
	}
	// Each side plays its files once; wait until the other recorded all.
	legA, legB := a.calls.get(placed.ID).peerConn(), b.calls.get(placed.ID).peerConn()
	poll(t, "both recordings complete", func() bool {
		return legA.stats().audio >= testAudioPackets && legA.stats().video >= testVideoFrames &&
			legB.stats().audio >= testAudioPackets && legB.stats().video >= testVideoFrames
	})
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	aEnd, ok := a.Call(placed.ID)
	if !ok || aEnd.State != CallEnded || aEnd.EndReason != "success" {
		t.Fatalf("alice's call after hang-up: %+v", aEnd)
	}
	bEnd := b.waitEnded(t, placed.ID)
	if bEnd.EndReason != "success" || bEnd.Binding != BindingPassed {
		t.Fatalf("bob's call ended %+v", bEnd)
	}
	for _, c := range []CallInfo{aEnd, bEnd} {
		if c.BytesSent == 0 || c.BytesReceived == 0 || c.PacketsSent < testAudioPackets || c.PacketsReceived < testAudioPackets {
			t.Fatalf("%s call stats %+v", c.Direction, c)
		}
	}
	sameMedia(t, "bob's audio recording", aOgg, recordingOf(t, bEnd, ".ogg"))
	sameMedia(t, "bob's video recording", aIVF, recordingOf(t, bEnd, ".ivf"))
	sameMedia(t, "alice's audio recording", bOgg, recordingOf(t, aEnd, ".ogg"))
	sameMedia(t, "alice's video recording", bIVF, recordingOf(t, aEnd, ".ivf"))
	if cs := a.Calls(); len(cs) != 1 || cs[0].ID != placed.ID || cs[0].State != CallEnded {
		t.Fatalf("alice's calls %+v", cs)
	}
	if err := a.HangUp(ctx, placed.ID); err != ErrUnknownCall {
		t.Fatalf("hang-up of an ended call: %v", err)
	}
}

// TestCallDecline: bob declines; alice's call ends with decline.
func TestCallDecline(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCall(t, placed.ID, "bob rings", func(c CallInfo) bool { return c.State == CallRinging })
	a.waitCall(t, placed.ID, "alice hears ringing", func(c CallInfo) bool { return c.State == CallRinging })
	if err := b.AnswerCall(ctx, "no-such-call", CallMedia{Audio: true}); err != ErrUnknownCall {
		t.Fatalf("answer unknown call: %v", err)
	}
	if err := b.DeclineCall(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := a.waitEnded(t, placed.ID); end.EndReason != "decline" {
		t.Fatalf("alice's call %+v", end)
	}
	if c, _ := b.Call(placed.ID); c.State != CallEnded || c.EndReason != "decline" {
		t.Fatalf("bob's call %+v", c)
	}
}

// TestCallRetract: alice hangs up before bob answers; bob stops ringing.
func TestCallRetract(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true, Video: true})
	if err != nil {
		t.Fatal(err)
	}
	ring := b.waitCall(t, placed.ID, "bob rings", func(c CallInfo) bool { return c.State == CallRinging })
	if len(ring.Media) != 2 || ring.Direction != CallIncoming {
		t.Fatalf("ringing %+v", ring)
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Call(placed.ID); c.EndReason != "cancel" {
		t.Fatalf("alice's call %+v", c)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "cancel" {
		t.Fatalf("bob's call %+v", end)
	}
	if err := b.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != ErrUnknownCall {
		t.Fatalf("answer after retract: %v", err)
	}
}

// bobTwoDevices starts alice, and bob on two devices (phone, desk) of one
// account key.
func bobTwoDevices(t *testing.T) (*localxmpp.Server, *testGateway, *testGateway, *testGateway) {
	t.Helper()
	srv := startServer(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.AddUser(u, u+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Subscribe(aliceJID, bobJID); err != nil {
		t.Fatal(err)
	}
	bobKey, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	a := startGateway(t, srv, "alice@"+testDomain+"/laptop", "alice-password", gwOptions{setup: withSetup()})
	phone := startGateway(t, srv, "bob@"+testDomain+"/phone", "bob-password", gwOptions{signer: bobKey, setup: withSetup()})
	desk := startGateway(t, srv, "bob@"+testDomain+"/desk", "bob-password", gwOptions{signer: bobKey, addDevice: true, setup: withSetup()})
	a.waitDevices(t, bobJID.String(), 2)
	phone.waitDevices(t, bobJID.String(), 1)
	desk.waitDevices(t, bobJID.String(), 1)
	phone.waitDevices(t, aliceJID.String(), 1)
	desk.waitDevices(t, aliceJID.String(), 1)
	return srv, a, phone, desk
}

// TestCallFirstAnswerWins: both of bob's devices ring; the phone answers,
// the desk stops ringing with answered-elsewhere, and the call connects
// to the phone's device.
func TestCallFirstAnswerWins(t *testing.T) {
	noLeaks(t)
	_, a, phone, desk := bobTwoDevices(t)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	phone.waitCall(t, placed.ID, "phone rings", func(c CallInfo) bool { return c.State == CallRinging })
	desk.waitCall(t, placed.ID, "desk rings", func(c CallInfo) bool { return c.State == CallRinging })
	if err := phone.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	if end := desk.waitEnded(t, placed.ID); end.EndReason != "answered-elsewhere" {
		t.Fatalf("desk's call %+v", end)
	}
	ac := a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	if ac.PeerDevice != phone.eng.Device() || ac.PeerFull != phone.JID().String() {
		t.Fatalf("call bound to %d %s, want the phone %d", ac.PeerDevice, ac.PeerFull, phone.eng.Device())
	}
	phone.waitCall(t, placed.ID, "phone: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	if err := phone.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := a.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("alice's call %+v", end)
	}
}

// TestCallLateProceed: the phone's answer is delayed by the server until
// the desk's answer got the call; the caller tells the phone the call was
// answered elsewhere.
// ringBothHoldPhone has alice call bob's two devices until both ring,
// with a hostile hook that from now on holds the messages bob's phone
// sends (they arrive on held).
func ringBothHoldPhone(t *testing.T) (srv *localxmpp.Server, h *hostile, a, phone, desk *testGateway, placed CallInfo, held chan localxmpp.Stanza) {
	t.Helper()
	srv, a, phone, desk = bobTwoDevices(t)
	h = &hostile{}
	srv.SetHook(h.hook)
	placed, err := a.PlaceCall(testCtx(t), bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	phone.waitCall(t, placed.ID, "phone rings", func(c CallInfo) bool { return c.State == CallRinging })
	desk.waitCall(t, placed.ID, "desk rings", func(c CallInfo) bool { return c.State == CallRinging })
	held = make(chan localxmpp.Stanza, 16)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && st.From.Equal(phone.JID()) {
			held <- st
			return nil
		}
		return []localxmpp.Stanza{st}
	})
	return srv, h, a, phone, desk, placed, held
}

func TestCallLateProceed(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	srv, h, a, phone, desk, placed, held := ringBothHoldPhone(t)
	if err := phone.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	if err := desk.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: bound to the desk", func(c CallInfo) bool { return c.PeerDevice == desk.eng.Device() })
	h.set(nil)
	for len(held) > 0 {
		if err := srv.Inject(<-held); err != nil {
			t.Fatal(err)
		}
	}
	if end := phone.waitEnded(t, placed.ID); end.EndReason != "answered-elsewhere" {
		t.Fatalf("phone's call %+v", end)
	}
	ac := a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	if ac.PeerDevice != desk.eng.Device() {
		t.Fatalf("call bound to %d, want the desk %d", ac.PeerDevice, desk.eng.Device())
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := desk.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("desk's call %+v", end)
	}
}

// TestPlaceCallRefusals: the typed errors of PlaceCall.
func TestPlaceCallRefusals(t *testing.T) {
	_, a, _ := callPair(t, nil, nil)
	ctx := testCtx(t)
	if _, err := a.PlaceCall(ctx, bobJID, CallMedia{}); err != ErrNoMedia {
		t.Fatalf("no media: %v", err)
	}
	if _, err := a.PlaceCall(ctx, jid.MustParse("carol@"+testDomain), CallMedia{Audio: true}); !errorsIs(err, ErrPeerNotCertified) {
		t.Fatalf("peer without devices: %v", err)
	}
	if _, err := a.PlaceCall(ctx, aliceJID, CallMedia{Audio: true}); !errorsIs(err, ErrCallState) {
		t.Fatalf("own account: %v", err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// remoteUfrag returns the ICE ufrag of a leg's remote description.
func remoteUfrag(p *mediaPeer) string {
	if d := p.pc.RemoteDescription(); d != nil {
		return sdpValue(d.SDP, "a=ice-ufrag:")
	}
	return ""
}

// TestCallICERestart: an ICE restart in a running call (new credentials
// in protected transport-info, XEP-0176 §7.1) keeps the call and its
// media going.
func TestCallICERestart(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "a.ogg")
	writeTestOpus(t, in, 150) // 3 s
	_, a, b := callPair(t, nil, answerWith(CallMedia{Audio: true, RecordDir: mkdir(t, dir, "rec")}))
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{AudioFile: in})
	if err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	b.waitCall(t, placed.ID, "bob: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	ca, cb := a.calls.get(placed.ID), b.calls.get(placed.ID)
	legA, legB := ca.peerConn(), cb.peerConn()
	ufragA, ufragB := remoteUfrag(legA), remoteUfrag(legB)
	if err := ca.postWait(ctx, callMsg{kind: msgRestartICE}); err != nil {
		t.Fatal(err)
	}
	poll(t, "new credentials both ways", func() bool {
		return remoteUfrag(legA) != ufragA && remoteUfrag(legB) != ufragB && remoteUfrag(legA) != "" && remoteUfrag(legB) != ""
	})
	poll(t, "ICE connected again", func() bool {
		return legA.pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected && legB.pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected
	})
	n := legB.stats().audio
	poll(t, "media after the restart", func() bool { return legB.stats().audio > n+5 })
	poll(t, "both calls connected again", func() bool {
		x, _ := a.Call(placed.ID)
		y, _ := b.Call(placed.ID)
		return x.State == CallConnected && y.State == CallConnected
	})
	if c, _ := a.Call(placed.ID); c.Binding != BindingPassed {
		t.Fatalf("alice's call after the restart %+v", c)
	}
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := b.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("bob's call %+v", end)
	}
}
