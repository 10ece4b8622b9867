package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/integration"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// Finding 7: the event stream had no backlog, so the pins made at start-up
// were invisible to a client that connected later. They are replayed.
func TestRegressEventBacklogAtStartup(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	daemontest.Start(t, env.Bob)
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)

	ctx, cancel := context.WithTimeout(context.Background(), daemontest.HangGuard)
	defer cancel()
	stream, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var first api.Event
	for {
		ev, err := stream.Next()
		if err != nil {
			t.Fatalf("no replayed pin of bob's account key: %v", err)
		}
		if !ev.Replayed {
			continue
		}
		if first.ID == "" {
			first = ev
		}
		if ev.Kind == "trust" && ev.From == env.Bob.JID { // trust is per account: no device
			break
		}
	}
	// Resuming after the first event does not replay it again.
	resumed, err := alice.Client.EventsAfter(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	ev, err := resumed.Next()
	if err != nil || ev.ID == first.ID || !ev.Replayed {
		t.Fatalf("resumed after %s: %+v %v", first.ID, ev, err)
	}
}

var protectedData = regexp.MustCompile(`(<p xmlns=['"]` + regexp.QuoteMeta(e2e.NS) + `['"][^>]*>)([A-Za-z0-9+/]{8,})`)

// Finding 7: /v1/iq answered an undocumented 500 for a tampered response.
// It is 502 with the integrity reason.
func TestRegressIQTamperedResponse(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	ping := api.IQRequest{To: env.Bob.JID + "/" + env.Bob.Resource, Type: "get", Payload: `<ping xmlns="urn:xmpp:ping"/>`}
	if _, err := alice.Client.SendIQ(ctx, ping); err != nil {
		t.Fatal(err)
	}
	env.Server.SetHook(func(hc localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name != "iq" || st.Type != "result" || st.From.Bare().String() != env.Bob.JID {
			return []localxmpp.Stanza{st}
		}
		raw := protectedData.ReplaceAllFunc(st.Raw, func(m []byte) []byte {
			m = append([]byte(nil), m...)
			i := len(m) - 4
			if m[i] == 'A' {
				m[i] = 'B'
			} else {
				m[i] = 'A'
			}
			return m
		})
		out, err := localxmpp.ParseStanza(raw)
		if err != nil {
			t.Errorf("tampered stanza: %v", err)
			return []localxmpp.Stanza{st}
		}
		return []localxmpp.Stanza{out}
	})
	defer env.Server.SetHook(nil)
	_, err := alice.Client.SendIQ(ctx, ping)
	var se *api.StatusError
	if !errors.Is(err, api.ErrIntegrity) || !errors.As(err, &se) || se.Code != http.StatusBadGateway {
		t.Fatalf("tampered response: %v, want 502 integrity", err)
	}
}

// waitSigner polls alice's status until the signer is in state.
func waitSigner(t *testing.T, c *api.Client, state string) api.SignerStatus {
	t.Helper()
	var st api.Status
	daemontest.Poll(t, "signer "+state, func() bool {
		var err error
		if st, err = c.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st.Signer.State == state
	})
	return st.Signer
}

// chatWithin sends a chat, failing the test if the API does not answer
// before the hang guard (which is longer than the API's 30 s bound).
func chatWithin(t *testing.T, c *api.Client, to, body string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.SendChat(context.Background(), to, body) }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * daemontest.HangGuard):
		t.Fatal("POST /v1/chat hung")
		return nil
	}
}

// devicesWithin calls POST /v1/devices, failing the test if the API does
// not answer before the hang guard (longer than the API's 30 s bound).
func devicesWithin(t *testing.T, c *api.Client, req api.DevicesRequest) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.ChangeDevices(context.Background(), req)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * daemontest.HangGuard):
		t.Fatal("POST /v1/devices hung")
		return nil
	}
}

// Finding 6 against the real ssh-agent, through the daemon. Messaging,
// handshakes included, never waits on the agent: the device key signs
// them. What needs the account key (changing the device list) fails with
// 504 when the agent is stopped (not a hang) and 503 when it is gone (not
// 500), /v1/status shows the signer's state, and a new agent on the same
// socket is used without restarting the daemon.
func TestIntegrationRegressDaemonAgentFaults(t *testing.T) {
	env := daemontest.New(t)
	dir, err := os.MkdirTemp("", "sja")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ag := integration.StartSSHAgent(t, sock)
	ag.Add(env.Alice.KeyFile)
	env.Alice.UseAgent(t, sock, time.Second)

	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	if s := waitSigner(t, alice.Client, "ok"); s.Backend != "agent" || s.Socket != sock || s.LastSuccess.IsZero() {
		t.Fatalf("signer status %+v", s)
	}

	// Frozen: the first chat to bob needs a handshake, signed by the
	// device key: it goes out. A device-list change needs the agent: 504.
	ag.Stop()
	s := waitSigner(t, alice.Client, "timed-out")
	if s.Error == "" || s.LastError.IsZero() {
		t.Fatalf("timed-out signer status %+v", s)
	}
	if err := chatWithin(t, alice.Client, env.Bob.JID, "while frozen"); err != nil {
		t.Fatalf("chat (with a handshake) while the agent is stopped: %v; messaging must not need the agent", err)
	}
	if err := devicesWithin(t, alice.Client, api.DevicesRequest{Action: api.DevicesAdd}); !errors.Is(err, api.ErrSignerTimeout) {
		t.Fatalf("devices add with the agent stopped: %v, want 504 signer-timeout", err)
	}
	ag.Continue()
	waitSigner(t, alice.Client, "ok")
	if err := devicesWithin(t, alice.Client, api.DevicesRequest{Action: api.DevicesAdd}); err != nil {
		t.Fatalf("devices add after SIGCONT: %v", err)
	}

	// Killed: unreachable; chat still works, a list change is 503.
	ag.Kill()
	waitSigner(t, alice.Client, "unreachable")
	if err := chatWithin(t, alice.Client, env.Bob.JID, "agent gone"); err != nil {
		t.Fatalf("chat with the agent gone: %v", err)
	}
	err = devicesWithin(t, alice.Client, api.DevicesRequest{Action: api.DevicesAdd})
	var se *api.StatusError
	if !errors.Is(err, api.ErrSignerUnavailable) || !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("devices add with the agent gone: %v, want 503 signer-unavailable", err)
	}

	// A new agent on the same socket, without restarting the daemon.
	integration.StartSSHAgent(t, sock).Add(env.Alice.KeyFile)
	waitSigner(t, alice.Client, "ok")
	if err := devicesWithin(t, alice.Client, api.DevicesRequest{Action: api.DevicesAdd}); err != nil {
		t.Fatalf("devices add with a new agent on the same socket: %v", err)
	}
	_ = bob
}
