package daemon_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/localpeer"
)

// TestLocalCallEndToEnd: alice's and bob's browsers (stand-ins) call each
// other through their daemons' APIs: each daemon answers its browser's
// offer, relays to the other daemon over the protected, bound session,
// and each browser receives the other's audio and video complete; the
// call view's facts (both legs' SRTP profiles, binding, peer identity)
// are in the API; bob's hang-up ends both.
func TestLocalCallEndToEnd(t *testing.T) {
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

	// A browser offer that is not on loopback is refused with the fix.
	pa := localpeer.New(t, "alice", nil)
	offer := pa.Offer(t)
	_, err = alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID, CallMedia: api.CallMedia{LocalOffer: strings.ReplaceAll(offer, "127.0.0.1", "192.0.2.9")}})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("off-loopback offer: %v, want 400 naming loopback", err)
	}

	call, err := alice.Client.PlaceCall(ctx, api.CallRequest{To: env.Bob.JID, CallMedia: api.CallMedia{LocalOffer: offer}})
	if err != nil {
		t.Fatal(err)
	}
	if call.LocalLeg != "connecting" || call.LocalAnswer == "" || call.LocalLegFingerprint == "" {
		t.Fatalf("placed %+v", call)
	}
	// On the control socket the call has a certificate of its own, and
	// the answer carries its fingerprint.
	pa.Answered(t, call.LocalAnswer, "sha-256 "+call.LocalLegFingerprint)
	ring := nextCall(t, bobEvents, "", "ringing", func(c api.CallInfo) bool {
		return c.Direction == api.CallIncoming && c.State == api.CallRinging
	})
	pb := localpeer.New(t, "bob", nil)
	ans, err := bob.Client.AnswerCall(ctx, ring.ID, api.CallMedia{LocalOffer: pb.Offer(t)})
	if err != nil {
		t.Fatal(err)
	}
	pb.Answered(t, ans.LocalAnswer, "sha-256 "+ans.LocalLegFingerprint)
	relayed := func(c api.CallInfo) bool {
		return c.State == api.CallConnected && c.Binding == api.BindingPassed && c.LocalLeg == "connected"
	}
	nextCall(t, aliceEvents, call.ID, "connected and relayed", relayed)
	nextCall(t, bobEvents, ring.ID, "connected and relayed", relayed)
	pa.StartPlayback()
	pb.StartPlayback()
	pa.Received(t)
	pb.Received(t)
	for _, d := range []*daemontest.Daemon{alice, bob} {
		c, err := d.Client.Call(ctx, call.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.SRTPProfile == "" || c.LocalSRTPProfile == "" || c.AccountFingerprint == "" || c.Trust != "tofu" ||
			c.RelayedToPeer < localpeer.Packets || c.RelayedToLocal < localpeer.Packets {
			t.Fatalf("call view facts missing: %+v", c)
		}
	}
	// Alice mutes her microphone: bob's call shows it.
	if _, err := alice.Client.MuteCall(ctx, call.ID, api.MuteRequest{}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("mute nothing: %v, want 400", err)
	}
	if m, err := alice.Client.MuteCall(ctx, call.ID, api.MuteRequest{Audio: ptrTrue()}); err != nil || len(m.Muted) != 1 || m.Muted[0] != api.MediaAudio {
		t.Fatalf("mute: %+v, %v", m.Muted, err)
	}
	nextCall(t, bobEvents, ring.ID, "alice muted", func(c api.CallInfo) bool { return len(c.PeerMuted) == 1 && c.PeerMuted[0] == api.MediaAudio })
	if _, err := bob.Client.HangUp(ctx, ring.ID); err != nil {
		t.Fatal(err)
	}
	end := nextCall(t, aliceEvents, call.ID, "ended", func(c api.CallInfo) bool { return c.State == api.CallEnded })
	if end.EndReason != "success" || end.LocalLeg != "ended" {
		t.Fatalf("alice's call ended %+v", end)
	}
	pa.SameMedia(t, pb)
	pb.SameMedia(t, pa)
}
