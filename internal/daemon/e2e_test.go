package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// nextChat reads s until a chat event with body arrives.
func nextChat(t *testing.T, s *api.EventStream, body string) api.Event {
	t.Helper()
	for {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("waiting for chat %q: %v", body, err)
		}
		if ev.Kind == "chat" && ev.Body == body {
			return ev
		}
	}
}

func metricLine(t *testing.T, text, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	return ""
}

func TestDaemonEndToEnd(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()

	aliceSt := daemontest.WaitConnected(t, alice.Client)
	bobSt := daemontest.WaitConnected(t, bob.Client)
	if aliceSt.JID != env.Alice.JID+"/laptop" || aliceSt.Account != env.Alice.JID || aliceSt.Device == 0 ||
		!strings.HasPrefix(aliceSt.Fingerprint, "SHA256:") {
		t.Fatalf("alice status %+v", aliceSt)
	}
	bobDev := daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	aliceDev := daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	if bobDev != bobSt.Device || aliceDev != aliceSt.Device {
		t.Fatalf("devices: alice sees bob %d (is %d), bob sees alice %d (is %d)", bobDev, bobSt.Device, aliceDev, aliceSt.Device)
	}

	// Chat: alice -> bob through the API, read from bob's event stream.
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()
	if err := alice.Client.SendChat(ctx, env.Bob.JID, "hello bob"); err != nil {
		t.Fatal(err)
	}
	ev := nextChat(t, bobEvents, "hello bob")
	if ev.From != env.Alice.JID || !ev.Encrypted || ev.Device != aliceSt.Device {
		t.Fatalf("bob got %+v", ev)
	}
	if err := bob.Client.SendChat(ctx, env.Alice.JID, "hi alice"); err != nil {
		t.Fatal(err)
	}
	ev = nextChat(t, aliceEvents, "hi alice")
	if ev.From != env.Bob.JID || !ev.Encrypted || ev.Device != bobSt.Device || !ev.Established {
		t.Fatalf("alice got %+v", ev)
	}
	if err := alice.Client.SendChat(ctx, env.Bob.JID, "confirmed"); err != nil {
		t.Fatal(err)
	}
	nextChat(t, bobEvents, "confirmed")

	// Errors keep their class across the API.
	if err := alice.Client.SendChat(ctx, "nobody@"+daemontest.Domain, "x"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("chat to an account without devices: %v", err)
	}
	if err := alice.Client.SendChat(ctx, env.Bob.JID+"/phone", "x"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("full JID: %v", err)
	}

	// Peers.
	peers, err := alice.Client.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var bobPeer *api.Peer
	for i := range peers {
		if peers[i].JID == env.Bob.JID {
			bobPeer = &peers[i]
		}
	}
	if bobPeer == nil || len(bobPeer.Devices) != 1 || len(bobPeer.Resources) != 1 {
		t.Fatalf("alice's peers: %+v", peers)
	}
	if r := bobPeer.Resources[0]; r.Resource != "phone" || r.Device != bobSt.Device {
		t.Fatalf("bob's resource %+v", r)
	}
	if bobPeer.Trust != "tofu" || bobPeer.Fingerprint != bobSt.Fingerprint {
		t.Fatalf("bob's account as alice sees it: %+v (bob's own fingerprint %s)", bobPeer, bobSt.Fingerprint)
	}
	if d := bobPeer.Devices[0]; !d.Accepted || !d.Session || !d.Established || !strings.HasPrefix(d.Suite, "SJ_MLKEM768X25519") {
		t.Fatalf("bob's device as alice sees it: %+v", d)
	}

	// Verify: both sides show the same SAS, and each the other's real key.
	va, err := alice.Client.Verify(ctx, env.Bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := bob.Client.Verify(ctx, env.Alice.JID)
	if err != nil {
		t.Fatal(err)
	}
	if len(va.Devices) != 1 || len(vb.Devices) != 1 || va.Devices[0].ID != bobSt.Device || vb.Devices[0].ID != aliceSt.Device ||
		!va.Devices[0].Established || !vb.Devices[0].Established || va.SAS == "" || va.SAS != vb.SAS {
		t.Fatalf("SAS differ: alice %q %+v, bob %q %+v", va.SAS, va.Devices, vb.SAS, vb.Devices)
	}
	if va.Fingerprint != bobSt.Fingerprint || vb.Fingerprint != aliceSt.Fingerprint ||
		va.FingerprintBlocks != bobSt.FingerprintBlocks || !strings.HasPrefix(va.QR, "xmpp:bob@example.test?") {
		t.Fatalf("verify info: %+v / %+v", va, vb)
	}
	self, err := alice.Client.Verify(ctx, env.Alice.JID)
	if err != nil || self.Fingerprint != aliceSt.Fingerprint || len(self.Devices) != 0 || self.SAS != "" {
		t.Fatalf("own account: %+v %v", self, err)
	}
	if _, err := alice.Client.Verify(ctx, "carol@example.test"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}

	// Trust: a key other than the stored one is refused; the stored one is
	// recorded as verified.
	wrong := api.EncodeKey(make([]byte, 32))
	_, err = alice.Client.Trust(ctx, api.TrustRequest{JID: env.Bob.JID, Action: "verify", Method: "sas", Key: wrong})
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("wrong key: %v", err)
	}
	res, err := alice.Client.Trust(ctx, api.TrustRequest{JID: env.Bob.JID, Action: "verify", Method: "sas", Key: va.Key})
	if err != nil || res.Trust != "verified" || res.Method != "sas" || res.Fingerprint != bobSt.Fingerprint {
		t.Fatalf("verify: %+v %v", res, err)
	}
	if _, err := alice.Client.Trust(ctx, api.TrustRequest{JID: "carol@example.test", Action: "distrust"}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("distrust unknown: %v", err)
	}

	// Protected IQ: ping is answered by the peer's gateway; an unknown
	// payload gives a protected error.
	for _, authOnly := range []bool{false, true} {
		resp, err := alice.Client.SendIQ(ctx, api.IQRequest{To: env.Bob.JID + "/phone", Type: "get", Payload: `<ping xmlns="urn:xmpp:ping"/>`, AuthOnly: authOnly})
		if err != nil || resp.Type != "result" || resp.From != env.Bob.JID || resp.Device != bobSt.Device {
			t.Fatalf("ping (auth only %v): %+v %v", authOnly, resp, err)
		}
	}
	resp, err := alice.Client.SendIQ(ctx, api.IQRequest{To: env.Bob.JID + "/phone", Type: "get", Payload: `<nope xmlns="urn:example:none"/>`})
	if err != nil || resp.Type != "error" || !strings.Contains(resp.Payload, "service-unavailable") {
		t.Fatalf("unknown payload: %+v %v", resp, err)
	}
	if _, err := alice.Client.SendIQ(ctx, api.IQRequest{To: env.Bob.JID + "/tablet", Type: "get", Payload: `<ping xmlns="urn:xmpp:ping"/>`}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("IQ to an absent resource: %v", err)
	}

	// Metrics.
	text, err := alice.Client.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l := metricLine(t, text, api.MetricChatSent); l != api.MetricChatSent+" 2" {
		t.Fatalf("alice chat sent: %q", l)
	}
	if l := metricLine(t, text, api.MetricConnected); l != api.MetricConnected+" 1" {
		t.Fatalf("alice connected: %q", l)
	}
	daemontest.Poll(t, "bob's metrics count received chats", func() bool {
		text, err := bob.Client.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return metricLine(t, text, api.MetricChatReceived+`{encrypted="true"}`) == api.MetricChatReceived+`{encrypted="true"} 2`
	})

	// Stopping bob's daemon closes its event stream and socket.
	bob.Stop(t)
	for {
		if _, err := bobEvents.Next(); err != nil {
			break
		}
	}
	if _, err := api.Dial(env.Bob.Socket); err == nil {
		t.Fatal("bob's socket left behind after stop")
	}
}

// TestDaemonRestart checks that state survives a restart: the same device
// id, the stored peer and its trust level come back from the bolt store.
func TestDaemonRestart(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	st := daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	bobDev := daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	if _, err := alice.Client.Trust(ctx, api.TrustRequest{JID: env.Bob.JID, Action: "distrust"}); err != nil {
		t.Fatal(err)
	}
	alice.Stop(t)
	bob.Stop(t)

	alice = daemontest.Start(t, env.Alice)
	st2, err := alice.Client.Status(ctx)
	if err != nil || st2.Device != st.Device || st2.Fingerprint != st.Fingerprint {
		t.Fatalf("after restart %+v (before %+v) %v", st2, st, err)
	}
	peers, err := alice.Client.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range peers {
		for _, d := range p.Devices {
			if p.JID == env.Bob.JID && p.Trust == "distrusted" && d.ID == bobDev && d.Bundle && !d.Accepted {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("bob's distrusted device not listed after restart: %+v", peers)
	}
	// Distrusted devices get nothing.
	daemontest.WaitConnected(t, alice.Client)
	if err := alice.Client.SendChat(ctx, env.Bob.JID, "x"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("chat to a distrusted device: %v", err)
	}
}

// TestRunStartupErrors checks that Run fails at once, leaving no socket,
// when something it needs is missing or taken.
func TestRunStartupErrors(t *testing.T) {
	env := daemontest.New(t)
	ctx := context.Background()
	log := daemontest.Logger()

	cfg, err := daemon.Load(env.Alice.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Keys.File += ".missing"
	if err := daemon.Run(ctx, cfg, log); err == nil {
		t.Fatal("Run without a key file succeeded")
	}
	if _, err := os.Stat(env.Alice.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after a failed start: %v", err)
	}

	cfg, _ = daemon.Load(env.Alice.ConfigPath)
	cfg.Account.PasswordCommand, cfg.Account.Password = []string{"/nonexistent/pass"}, ""
	if err := daemon.Run(ctx, cfg, log); err == nil {
		t.Fatal("Run with a failing password_command succeeded")
	}

	// A second daemon for the same account finds its store locked.
	daemontest.Start(t, env.Alice)
	cfg, _ = daemon.Load(env.Alice.ConfigPath)
	if err := daemon.Run(ctx, cfg, log); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second daemon on the same store: %v", err)
	}
	// One with its own store but the same socket finds the socket live.
	cfg.Store.Path = filepath.Join(t.TempDir(), "other.db")
	if err := daemon.Run(ctx, cfg, log); !errors.Is(err, api.ErrSocketInUse) {
		t.Fatalf("second daemon on the same socket: %v", err)
	}
}
