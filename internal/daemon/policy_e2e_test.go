package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/internal/xmppx"
	"github.com/securejingle/securejingle/policy"
)

// nsAlert is the namespace of the alert element the gateway puts on the
// messages it sends to the user's own JID.
const nsAlert = e2e.NS + ":alert"

// plainClient is an XMPP client without securejingle, as an old client of
// the same account would be. Received messages go to msgs.
type plainClient struct {
	s    *xmpp.Session
	msgs chan localxmpp.Stanza
}

func loginPlain(t *testing.T, env *daemontest.Env, full string) *plainClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.HangGuard)
	defer cancel()
	s, err := xmppx.Login(ctx, env.Server.Addr().String(), jid.MustParse(full), jid.MustParse(full).Localpart()+"-password", env.ClientTLS, true)
	if err != nil {
		t.Fatalf("login %s: %v", full, err)
	}
	c := &plainClient{s: s, msgs: make(chan localxmpp.Stanza, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			st, err := localxmpp.StanzaFromTokens(start, r)
			if err != nil {
				return err
			}
			select {
			case c.msgs <- st:
			default:
			}
			return nil
		}))
	}()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-done:
		case <-time.After(daemontest.HangGuard):
			t.Errorf("%s: session did not stop", full)
		}
	})
	return c
}

// available sends initial presence and waits for the server's echo, so
// that messages to the bare JID reach this client from then on.
func (c *plainClient) available(t *testing.T) {
	t.Helper()
	if err := c.s.Send(context.Background(), stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "own presence echo", func(st localxmpp.Stanza) bool {
		return st.Name == "presence" && st.From.Equal(c.s.LocalAddr())
	})
}

func (c *plainClient) sendChat(t *testing.T, to, body string) {
	t.Helper()
	msg := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	tok := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.s.Send(context.Background(), msg.Wrap(tok)); err != nil {
		t.Fatal(err)
	}
}

func (c *plainClient) wait(t *testing.T, what string, pred func(localxmpp.Stanza) bool) localxmpp.Stanza {
	t.Helper()
	timer := time.NewTimer(daemontest.HangGuard)
	defer timer.Stop()
	for {
		select {
		case st := <-c.msgs:
			if pred(st) {
				return st
			}
		case <-timer.C:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// alertMessage is the shape of the gateway's message to the own JID.
type alertMessage struct {
	XMLName xml.Name  `xml:"message"`
	Body    string    `xml:"body"`
	Alert   *struct{} `xml:"urn:x-securejingle:1:alert alert"`
}

func isAlertMessage(st localxmpp.Stanza) bool {
	if st.Name != "message" {
		return false
	}
	var m alertMessage
	return xml.Unmarshal(st.Raw, &m) == nil && m.Alert != nil
}

// nextAlert reads s until an alert event arrives.
func nextAlert(t *testing.T, s *api.EventStream) api.Event {
	t.Helper()
	for {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("waiting for an alert event: %v", err)
		}
		if ev.Kind == "alert" {
			return ev
		}
	}
}

// nextCleartextChat reads s until the chat event for body arrives.
func nextCleartextChat(t *testing.T, s *api.EventStream, body string) api.Event {
	t.Helper()
	ev := nextChat(t, s, body)
	if ev.Encrypted {
		t.Fatalf("cleartext chat reported encrypted: %+v", ev)
	}
	return ev
}

func readAudit(t *testing.T, path string) []policy.Alert {
	t.Helper()
	as, err := policy.ReadAudit(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("audit log: %v", err)
	}
	return as
}

// TestCleartextDowngradeAlert: while Bob's daemon holds a secured session
// with Alice, a plain client of Alice's account sends Bob cleartext. It is
// refused by default and marked unencrypted, and Bob gets exactly one
// alert in each place: the audit log, the metric, the
// API event stream (with facts and decision) and a message to his own
// JID, which his other clients see.
func TestCleartextDowngradeAlert(t *testing.T) {
	env := daemontest.New(t)
	if nsAlert != "urn:x-securejingle:1:alert" {
		t.Fatalf("alert namespace is %q", nsAlert)
	}
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)

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
	// A secured session, used both ways.
	if err := alice.Client.SendChat(ctx, env.Bob.JID, "encrypted hello"); err != nil {
		t.Fatal(err)
	}
	if ev := nextChat(t, bobEvents, "encrypted hello"); !ev.Encrypted {
		t.Fatalf("bob got %+v", ev)
	}
	if err := bob.Client.SendChat(ctx, env.Alice.JID, "encrypted reply"); err != nil {
		t.Fatal(err)
	}
	if ev := nextChat(t, aliceEvents, "encrypted reply"); !ev.Encrypted {
		t.Fatalf("alice got %+v", ev)
	}

	// Bob's other client, and Alice's old client.
	watcher := loginPlain(t, env, env.Bob.JID+"/tablet")
	watcher.available(t)
	old := loginPlain(t, env, env.Alice.JID+"/old")
	old.sendChat(t, env.Bob.JID, "in the clear")

	ev := nextAlert(t, bobEvents)
	a := ev.Alert
	if a == nil {
		t.Fatalf("alert event without its alert: %+v", ev)
	}
	if ev.From != env.Alice.JID || a.Facts.Kind != policy.KindChat || a.Facts.Protection != policy.ProtectionCleartext ||
		a.Facts.Direction != policy.DirectionIncoming || !a.Facts.SecuredSession || a.Facts.PeerJID != env.Alice.JID ||
		a.Decision.Action != policy.ActionRefuse || a.Decision.Rule != "default-refuse-cleartext-downgrade" ||
		a.Count != 1 || a.Summary || a.ID == "" || ev.Detail == "" {
		t.Fatalf("alert event %+v, alert %+v", ev, a)
	}
	if chat := nextCleartextChat(t, bobEvents, "in the clear"); !chat.Refused || !chat.Unencrypted {
		t.Fatalf("cleartext with a secured session: refused %v, unencrypted %v", chat.Refused, chat.Unencrypted)
	}

	// The message to Bob's own JID reaches his other client.
	st := watcher.wait(t, "the alert message", isAlertMessage)
	if !st.From.Bare().Equal(jid.MustParse(env.Bob.JID)) {
		t.Fatalf("alert message from %s", st.From)
	}

	// The audit log next to Bob's store.
	daemontest.Poll(t, "an audit line", func() bool { return len(readAudit(t, env.Bob.AuditLog)) > 0 })
	lines := readAudit(t, env.Bob.AuditLog)
	if len(lines) != 1 || lines[0].ID != a.ID || lines[0].Decision.Action != policy.ActionRefuse ||
		lines[0].Facts.Protection != policy.ProtectionCleartext {
		t.Fatalf("audit log %+v, want the one alert %s", lines, a.ID)
	}

	// The policy counter on the API's /metrics.
	want := policy.MetricName + `{action="refuse",kind="chat"}`
	daemontest.Poll(t, "the policy alert counter", func() bool {
		text, err := bob.Client.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return metricLine(t, text, want) == want+" 1"
	})

	// The audit file is closed and intact after shutdown.
	bob.Stop(t)
	if lines := readAudit(t, env.Bob.AuditLog); len(lines) != 1 {
		t.Fatalf("after stop: %d audit lines", len(lines))
	}
}

// TestPolicyFileRefusesCleartext: with a policy file that refuses
// cleartext chat, no de-duplication and a command hook, each cleartext
// message is refused, reported with decision "refuse", audited and handed
// to the hook.
func TestPolicyFileRefusesCleartext(t *testing.T) {
	env := daemontest.New(t)
	dir := filepath.Dir(env.Bob.ConfigPath)
	pol := "[[rule]]\nname = \"no-cleartext\"\nkind = \"chat\"\nprotection = \"cleartext\"\naction = \"refuse\"\nmessage = \"refused {kind} from {peer}\"\n"
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	hookOut := filepath.Join(t.TempDir(), "hook.jsonl")
	hook := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ncat >>\"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(t.TempDir(), "custom-audit.jsonl")
	env.Bob.AppendConfig(t, `[policy]
file = "policy.toml"

[alerts]
audit_log = "`+audit+`"
window = "0s"
notify_user = false
command = "`+hook+`"
command_args = ["`+hookOut+`"]
command_timeout = "20s"
`)
	bob := daemontest.Start(t, env.Bob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	daemontest.WaitConnected(t, bob.Client)
	bobEvents, err := bob.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bobEvents.Close()

	old := loginPlain(t, env, env.Alice.JID+"/old")
	for _, body := range []string{"first", "second"} {
		old.sendChat(t, env.Bob.JID, body)
		ev := nextAlert(t, bobEvents)
		if ev.Alert == nil || ev.Alert.Decision.Action != policy.ActionRefuse || ev.Alert.Decision.Rule != "no-cleartext" ||
			ev.Alert.Decision.Index != 0 || ev.Alert.Decision.Message != "refused chat from "+env.Alice.JID ||
			ev.Alert.Decision.Severity != policy.SeverityCritical {
			t.Fatalf("alert event %+v, alert %+v", ev, ev.Alert)
		}
		if chat := nextCleartextChat(t, bobEvents, body); !chat.Refused {
			t.Fatalf("refused chat not marked refused: %+v", chat)
		}
	}
	// window = "0s": both alerts are delivered, none summarised.
	daemontest.Poll(t, "two audit lines", func() bool { return len(readAudit(t, audit)) >= 2 })
	if lines := readAudit(t, audit); len(lines) != 2 || lines[0].Summary || lines[1].Summary {
		t.Fatalf("audit %+v", lines)
	}
	if _, err := os.Stat(env.Bob.AuditLog); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("default audit log written although audit_log is set: %v", err)
	}
	var hooked []policy.Alert
	daemontest.Poll(t, "the command hook ran twice", func() bool {
		b, err := os.ReadFile(hookOut)
		if err != nil {
			return false
		}
		hooked = hooked[:0]
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var a policy.Alert
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				return false // a line still being written
			}
			hooked = append(hooked, a)
		}
		return len(hooked) >= 2
	})
	for _, a := range hooked {
		if a.Decision.Action != policy.ActionRefuse || a.Facts.PeerJID != env.Alice.JID {
			t.Fatalf("hook got %+v", a)
		}
	}
	want := policy.MetricName + `{action="refuse",kind="chat"}`
	daemontest.Poll(t, "the refuse counter at 2", func() bool {
		text, err := bob.Client.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return metricLine(t, text, want) == want+" 2"
	})
}

// TestRunAlertStartupErrors: an audit log that cannot be opened or a
// policy file that went bad stops Run before the socket exists.
func TestRunAlertStartupErrors(t *testing.T) {
	env := daemontest.New(t)
	ctx := context.Background()
	cfg, err := daemon.Load(env.Bob.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Alerts.AuditLog = filepath.Join(env.Bob.KeyFile, "audit.jsonl") // under a regular file
	if err := daemon.Run(ctx, cfg, daemontest.Logger()); err == nil {
		t.Fatal("Run with an audit log it cannot create succeeded")
	}
	if _, err := os.Stat(env.Bob.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after a failed start: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(bad, []byte("[[rule]]\naction = \"allow\"\nkind = \"carrier-pigeon\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ = daemon.Load(env.Bob.ConfigPath)
	cfg.Policy.File = bad
	err = daemon.Run(ctx, cfg, daemontest.Logger())
	var pe *daemon.PolicyFileError
	var ce *policy.ConfigError
	if !errors.As(err, &pe) || !errors.As(err, &ce) || ce.Line != 3 || pe.Path != bad {
		t.Fatalf("Run with a bad policy file: %v", err)
	}
}
