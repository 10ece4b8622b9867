package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// nextCall reads s until a call event for id (any call: "") satisfies
// cond; call id ending first fails the test.
func nextCall(t *testing.T, s *api.EventStream, id, what string, cond func(api.CallInfo) bool) api.CallInfo {
	t.Helper()
	for {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("waiting for call %s %s: %v", id, what, err)
		}
		if ev.Kind != "call" || ev.Call == nil || (id != "" && ev.Call.ID != id) {
			continue
		}
		c := *ev.Call
		if id != "" && c.State == api.CallEnded && !cond(c) {
			t.Fatalf("call %s ended (%s: %s) before %s", c.ID, c.EndReason, c.Detail, what)
		}
		if cond(c) {
			return c
		}
	}
}

// TestCallEndToEnd: alice calls bob through her daemon's API; bob's daemon
// answers by its auto-answer rule and records; both see the call
// connected with the binding check passed; alice hangs up through the
// API and bob's recording holds audio.
func TestCallEndToEnd(t *testing.T) {
	env := daemontest.New(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ogg")
	daemontest.Media(t, in, "", mediagen.Options{Duration: 2 * time.Second, Seed: 1})
	rec, aliceRec := filepath.Join(dir, "bob-rec"), filepath.Join(dir, "alice-rec")
	for _, d := range []string{rec, aliceRec} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env.Bob.AppendConfig(t, fmt.Sprintf(`[calls]
record_dir = %q
use_server_services = false

[[calls.auto_answer]]
peer = %q
min_trust = "tofu"
audio_file = %q
record = true
`, rec, env.Alice.JID, in))
	nets := daemontest.CallNets(t, 2)
	alice := daemontest.StartWith(t, env.Alice, daemon.WithCallNet(nets[0]))
	bob := daemontest.StartWith(t, env.Bob, daemon.WithCallNet(nets[1]))
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	bobDev := daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()

	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()

	call, err := alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID, CallMedia: api.CallMedia{AudioFile: in, RecordDir: aliceRec}})
	if err != nil {
		t.Fatal(err)
	}
	if call.State != api.CallProposed || call.Direction != api.CallOutgoing || call.Peer != env.Bob.JID {
		t.Fatalf("placed %+v", call)
	}
	connected := nextCall(t, aliceEvents, call.ID, "connected", func(c api.CallInfo) bool { return c.State == api.CallConnected })
	if connected.PeerDevice != bobDev || connected.Trust != "tofu" || connected.Verified || connected.AccountFingerprint == "" {
		t.Fatalf("alice's connected call %+v", connected)
	}
	passed := nextCall(t, aliceEvents, call.ID, "binding passed", func(c api.CallInfo) bool { return c.Binding == api.BindingPassed })
	if passed.SRTPProfile == "" {
		t.Fatalf("no SRTP profile: %+v", passed)
	}
	bobCall := nextCall(t, bobEvents, "", "binding passed", func(c api.CallInfo) bool {
		return c.Direction == api.CallIncoming && c.Binding == api.BindingPassed
	})
	if bobCall.Peer != env.Alice.JID || bobCall.Trust != "tofu" || bobCall.SRTPProfile == "" {
		t.Fatalf("bob's call %+v", bobCall)
	}
	// Media flows both ways before the hang-up.
	daemontest.Poll(t, "media both ways", func() bool {
		a, err := alice.Client.Call(ctx, call.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bob.Client.Call(ctx, bobCall.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a.PacketsReceived > 10 && b.PacketsReceived > 10
	})

	ended, err := alice.Client.HangUp(ctx, call.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != api.CallEnded {
		ended = nextCall(t, aliceEvents, call.ID, "ended", func(c api.CallInfo) bool { return c.State == api.CallEnded })
	}
	if ended.EndReason != "success" {
		t.Fatalf("alice's call ended %+v", ended)
	}
	bobEnd := nextCall(t, bobEvents, bobCall.ID, "ended", func(c api.CallInfo) bool { return c.State == api.CallEnded })
	if bobEnd.EndReason != "success" || bobEnd.Binding != api.BindingPassed || len(bobEnd.Recordings) == 0 {
		t.Fatalf("bob's call ended %+v", bobEnd)
	}
	// Each side recorded the other's audio: the packets sent, byte for
	// byte.
	for _, c := range []struct {
		who  string
		call api.CallInfo
		dir  string
	}{{"bob", bobEnd, rec}, {"alice", ended, aliceRec}} {
		if len(c.call.Recordings) != 1 {
			t.Fatalf("%s's recordings: %q", c.who, c.call.Recordings)
		}
		r := c.call.Recordings[0]
		if filepath.Dir(r) != c.dir {
			t.Fatalf("%s's recording %s is not in %s", c.who, r, c.dir)
		}
		if err := api.CheckAudioFile(r); err != nil {
			t.Fatalf("%s's recording: %v", c.who, err)
		}
		daemontest.CheckRecording(t, c.who+"'s recording", in, r, 10)
	}
	// An ended call is listed, and acting on it is a conflict.
	if _, err := alice.Client.HangUp(ctx, call.ID); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("hanging up an ended call: %v, want 409", err)
	}
	if _, err := alice.Client.HangUp(ctx, "no-such-call"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("hanging up an unknown call: %v, want 404", err)
	}
	// The calls stay listed after the end.
	calls, err := alice.Client.Calls(ctx)
	if err != nil || len(calls) != 1 || calls[0].ID != call.ID || calls[0].State != api.CallEnded {
		t.Fatalf("alice's calls %+v %v", calls, err)
	}
}

// TestCallRingsAnswerDecline: without an auto-answer rule an incoming call
// rings; bob answers one through the API (it connects, and he hangs up)
// and declines the next, which alice sees declined.
func TestCallRingsAnswerDecline(t *testing.T) {
	env := daemontest.New(t)
	env.Bob.AppendConfig(t, "[calls]\nuse_server_services = false\n")
	nets := daemontest.CallNets(t, 2)
	alice := daemontest.StartWith(t, env.Alice, daemon.WithCallNet(nets[0]))
	bob := daemontest.StartWith(t, env.Bob, daemon.WithCallNet(nets[1]))
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()
	incoming := func() api.CallInfo {
		return nextCall(t, bobEvents, "", "ringing", func(c api.CallInfo) bool {
			return c.Direction == api.CallIncoming && c.State == api.CallRinging
		})
	}

	call, err := alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID})
	if err != nil {
		t.Fatal(err)
	}
	ring := incoming()
	if ring.Peer != env.Alice.JID || !ring.HasMedia(api.MediaAudio) {
		t.Fatalf("bob's ringing call %+v", ring)
	}
	nextCall(t, aliceEvents, call.ID, "ringing", func(c api.CallInfo) bool { return c.State == api.CallRinging })
	// Answering with video the call does not offer is refused; the call
	// still rings.
	if _, err := bob.Client.AnswerCall(ctx, ring.ID, api.CallMedia{Video: ptrTrue()}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("answer with video: %v, want 409", err)
	}
	if _, err := bob.Client.AnswerCall(ctx, ring.ID, api.CallMedia{}); err != nil {
		t.Fatal(err)
	}
	nextCall(t, aliceEvents, call.ID, "binding passed", func(c api.CallInfo) bool {
		return c.State == api.CallConnected && c.Binding == api.BindingPassed
	})
	nextCall(t, bobEvents, ring.ID, "connected", func(c api.CallInfo) bool { return c.State == api.CallConnected })
	if _, err := bob.Client.HangUp(ctx, ring.ID); err != nil {
		t.Fatal(err)
	}
	if end := nextCall(t, aliceEvents, call.ID, "ended", func(c api.CallInfo) bool { return c.State == api.CallEnded }); end.EndReason != "success" {
		t.Fatalf("alice's call ended %+v", end)
	}

	// The next one bob declines.
	call, err = alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID})
	if err != nil {
		t.Fatal(err)
	}
	ring = incoming()
	declined, err := bob.Client.DeclineCall(ctx, ring.ID)
	if err != nil || declined.State != api.CallEnded || declined.EndReason != "decline" {
		t.Fatalf("decline: %+v %v", declined, err)
	}
	if end := nextCall(t, aliceEvents, call.ID, "ended", func(c api.CallInfo) bool { return c.State == api.CallEnded }); end.EndReason != "decline" {
		t.Fatalf("alice's declined call ended %+v", end)
	}
	// Alice cannot answer her own call.
	if _, err := alice.Client.AnswerCall(ctx, call.ID, api.CallMedia{}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("answering one's own call: %v", err)
	}
}

func ptrTrue() *bool { t := true; return &t }

// TestCallRefusedByPolicy: a call the channel policy refuses is 403
// policy-refused, naming the rule, and nothing rings.
func TestCallRefusedByPolicy(t *testing.T) {
	env := daemontest.New(t)
	pol := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(pol, []byte(`[[rule]]
name = "no-calls-to-bob"
kind = "media-call"
direction = "outgoing"
peer = "bob@example.test"
action = "refuse"
message = "Calls to {peer} are not allowed here."
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env.Alice.AppendConfig(t, fmt.Sprintf("[policy]\nfile = %q\n", pol))
	nets := daemontest.CallNets(t, 2)
	alice := daemontest.StartWith(t, env.Alice, daemon.WithCallNet(nets[0]))
	bob := daemontest.StartWith(t, env.Bob, daemon.WithCallNet(nets[1]))
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	ctx := context.Background()
	_, err := alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID})
	var se *api.StatusError
	if !errors.Is(err, api.ErrPolicyRefused) || !errors.As(err, &se) || se.Code != 403 || se.Reason != "policy-refused" ||
		!strings.Contains(se.Message, "no-calls-to-bob") {
		t.Fatalf("refused call: %v", err)
	}
	if calls, err := alice.Client.Calls(ctx); err != nil || len(calls) != 0 {
		t.Fatalf("alice's calls after a refusal: %+v %v", calls, err)
	}
	if calls, err := bob.Client.Calls(ctx); err != nil || len(calls) != 0 {
		t.Fatalf("bob's calls after alice's refusal: %+v %v", calls, err)
	}
	// A contact without securejingle is 409.
	if _, err := alice.Client.PlaceCall(ctx, api.CallRequest{To: "nobody@" + daemontest.Domain}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("call to an account without devices: %v", err)
	}
}
