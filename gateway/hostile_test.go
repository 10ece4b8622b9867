package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
	"github.com/securejingle/securejingle/internal/localxmpp"
)

// hostile is a server hook that tests program per stanza.
type hostile struct {
	mu      sync.Mutex
	rewrite func(st localxmpp.Stanza) []localxmpp.Stanza // nil: pass through
}

func (h *hostile) hook(ctx localxmpp.HookContext, st localxmpp.Stanza) []localxmpp.Stanza {
	h.mu.Lock()
	f := h.rewrite
	h.mu.Unlock()
	if f == nil || ctx.Generated {
		return []localxmpp.Stanza{st}
	}
	return f(st)
}

func (h *hostile) set(f func(st localxmpp.Stanza) []localxmpp.Stanza) {
	h.mu.Lock()
	h.rewrite = f
	h.mu.Unlock()
}

func isChatFromAlice(st localxmpp.Stanza) bool {
	return st.Name == "message" && strings.HasPrefix(st.From.String(), "alice@") && bytes.Contains(st.Raw, []byte(e2e.NS))
}

func restanza(t testing.TB, raw []byte) localxmpp.Stanza {
	t.Helper()
	st, err := localxmpp.ParseStanza(raw)
	if err != nil {
		t.Fatalf("hook produced bad stanza: %v\n%s", err, raw)
	}
	return st
}

var chatB64 = regexp.MustCompile(`(<c xmlns=['"]` + regexp.QuoteMeta(e2e.NS) + `['"]>)([^<]+)(</c>)`)

// flipChat flips one bit in the ciphertext of a chat element.
func flipChat(t testing.TB, raw []byte) []byte {
	return chatB64.ReplaceAllFunc(raw, func(m []byte) []byte {
		parts := chatB64.FindSubmatch(m)
		blob, err := base64.RawStdEncoding.DecodeString(string(parts[2]))
		if err != nil {
			t.Fatalf("chat element: %v", err)
		}
		blob[len(blob)-3] ^= 0x10
		return append(append(append([]byte{}, parts[1]...), base64.RawStdEncoding.EncodeToString(blob)...), parts[3]...)
	})
}

// noChat asserts that no chat event with body arrives while the gateway
// processes what is queued, using a probe message as a barrier.
func expectAlertNoChat(t *testing.T, a, b *testGateway, bad string) {
	t.Helper()
	b.waitEvent(t, "alert for tampered stanza", func(ev Event) bool {
		if ev.Kind == EventChat && ev.Body == bad {
			t.Fatalf("altered message accepted: %+v", ev)
		}
		return ev.Kind == EventAlert
	})
}

func TestHostileServer(t *testing.T) {
	srv, a, b := pair(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	ctx := context.Background()
	bob := jid.MustParse("bob@" + testDomain)
	warm := func(body string) {
		if err := a.SendChat(ctx, bob, body); err != nil {
			t.Fatal(err)
		}
		b.waitEvent(t, body, isChat(body))
	}
	warm("session up")
	if err := b.SendChat(ctx, jid.MustParse("alice@"+testDomain), "ack"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "ack", isChat("ack"))

	t.Run("rewrite", func(t *testing.T) {
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if isChatFromAlice(st) {
				st = restanza(t, flipChat(t, st.Raw))
			}
			return []localxmpp.Stanza{st}
		})
		a.SendChat(ctx, bob, "tampered in transit")
		expectAlertNoChat(t, a, b, "tampered in transit")
		h.set(nil)
		warm("after rewrite")
	})

	t.Run("replay", func(t *testing.T) {
		var captured localxmpp.Stanza
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if isChatFromAlice(st) {
				captured = st
			}
			return []localxmpp.Stanza{st}
		})
		warm("said once")
		h.set(nil)
		if err := srv.Inject(captured); err != nil {
			t.Fatal(err)
		}
		expectAlertNoChat(t, a, b, "said once")
		warm("after replay")
	})

	t.Run("retype", func(t *testing.T) {
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if isChatFromAlice(st) {
				st = restanza(t, regexp.MustCompile(`type=['"]chat['"]`).ReplaceAll(st.Raw, []byte(`type="normal"`)))
			}
			return []localxmpp.Stanza{st}
		})
		a.SendChat(ctx, bob, "retyped")
		expectAlertNoChat(t, a, b, "retyped")
		h.set(nil)
		warm("after retype")
	})

	t.Run("re-route to a spoofed sender", func(t *testing.T) {
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if isChatFromAlice(st) {
				st = restanza(t, regexp.MustCompile(`from=['"]alice@[^'"]+['"]`).ReplaceAll(st.Raw, []byte(`from="mallory@`+testDomain+`/x"`)))
			}
			return []localxmpp.Stanza{st}
		})
		a.SendChat(ctx, bob, "whose is this")
		expectAlertNoChat(t, a, b, "whose is this")
		h.set(nil)
		warm("after re-route")
	})

	t.Run("drop", func(t *testing.T) {
		dropped := false
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if isChatFromAlice(st) && !dropped {
				dropped = true
				return nil
			}
			return []localxmpp.Stanza{st}
		})
		a.SendChat(ctx, bob, "lost on the way")
		warm("the next one still opens")
		h.set(nil)
	})

	t.Run("auth-only readable but tamper-evident", func(t *testing.T) {
		var seen []byte
		h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
			if st.Name == "iq" && regexp.MustCompile(`m=['"]auth['"]`).Match(st.Raw) && st.Type == "set" {
				seen = st.Raw
				st = restanza(t, rewriteAuthEnvelope(t, st.Raw, "transfer 10", "transfer 99"))
			}
			return []localxmpp.Stanza{st}
		})
		b.HandleIQ(xmlName("urn:example:bank", "order"), func(req InnerIQ) ([]byte, error) { return nil, nil })
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, _, err := a.SendProtectedIQ(cctx, jid.MustParse("bob@"+testDomain+"/phone"), "set", []byte(`<order xmlns="urn:example:bank">transfer 10</order>`), e2e.AuthOnly)
		if err == nil {
			t.Fatal("tampered auth-only IQ accepted")
		}
		if !bytes.Contains(decodeAuthEnvelope(t, seen), []byte("transfer 10")) {
			t.Fatalf("the server could not read the auth-only payload: %s", seen)
		}
		b.waitEvent(t, "alert", func(ev Event) bool { return ev.Kind == EventAlert })
		h.set(nil)
	})
}

var envRE = regexp.MustCompile(`<env>([^<]+)</env>`)

func decodeAuthEnvelope(t testing.TB, raw []byte) []byte {
	m := envRE.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no auth-only envelope in %s", raw)
	}
	b, err := base64.RawStdEncoding.DecodeString(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rewriteAuthEnvelope(t testing.TB, raw []byte, from, to string) []byte {
	env := bytes.Replace(decodeAuthEnvelope(t, raw), []byte(from), []byte(to), 1)
	return envRE.ReplaceAll(raw, []byte("<env>"+base64.RawStdEncoding.EncodeToString(env)+"</env>"))
}
