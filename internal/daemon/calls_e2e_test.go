package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// nextCall reads s until a call event for id satisfies cond.
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
		if c.State == api.CallEnded && !cond(c) {
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
	sent := daemontest.WriteOpus(t, in, 100)
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
		daemontest.CheckReceived(t, c.who+"'s recording", sent, daemontest.ReadOpus(t, r), 10)
	}
	// The calls stay listed after the end.
	calls, err := alice.Client.Calls(ctx)
	if err != nil || len(calls) != 1 || calls[0].ID != call.ID || calls[0].State != api.CallEnded {
		t.Fatalf("alice's calls %+v %v", calls, err)
	}
}
