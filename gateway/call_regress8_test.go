package gateway

// Regression tests of the issue 8 review of the call channel: each one
// fails on the code before its fix.

import (
	"regexp"
	"testing"

	"github.com/securejingle/securejingle/internal/localxmpp"
	"github.com/securejingle/securejingle/jingle"
)

// forgePresence makes g believe that resource res of bare runs device
// dev, as a server that forges presence can.
func forgePresence(t *testing.T, g *testGateway, bare, res string, dev uint32) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.contacts[bare]
	if c == nil || c.resources[res] == nil {
		t.Fatalf("%s has no presence of %s/%s", g.bare(), bare, res)
	}
	c.resources[res].device = dev
}

// TestCallRegressBoundDevice (findings 5 and 6): the phone took alice's
// call; the server then claims in presence that the phone's resource runs
// the desk's device. Alice's call signaling stays sealed to the phone's
// device (an ICE restart goes through), and the desk's finish, moved by
// the server to the phone's resource, does not end the call.
func TestCallRegressBoundDevice(t *testing.T) {
	noLeaks(t)
	srv, a, phone, desk := bobTwoDevices(t)
	h := &hostile{}
	srv.SetHook(h.hook)
	ctx := testCtx(t)
	placed, err := a.PlaceCall(ctx, bobJID, CallMedia{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	phone.waitCall(t, placed.ID, "phone rings", func(c CallInfo) bool { return c.State == CallRinging })
	if err := phone.AnswerCall(ctx, placed.ID, CallMedia{Audio: true}); err != nil {
		t.Fatal(err)
	}
	a.waitCall(t, placed.ID, "alice: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	phone.waitCall(t, placed.ID, "phone: binding passed", func(c CallInfo) bool { return c.Binding == BindingPassed })
	forgePresence(t, a, bobJID.String(), "phone", desk.eng.Device())
	ca := a.calls.get(placed.ID)

	// Finding 6: the transport-info of the restart is sealed to the
	// phone's device, not to the one presence names.
	if err := ca.postWait(ctx, callMsg{kind: msgRestartICE}); err != nil {
		t.Fatalf("ICE restart with forged presence: %v", err)
	}

	// Finding 5: the desk's finish arrives from the phone's resource.
	deskFrom := regexp.MustCompile(`from=['"]` + regexp.QuoteMeta(desk.JID().String()) + `['"]`)
	h.set(func(st localxmpp.Stanza) []localxmpp.Stanza {
		if st.Name == "message" && st.From.Equal(desk.JID()) {
			return []localxmpp.Stanza{restanza(t, deskFrom.ReplaceAll(st.Raw, []byte(`from="`+phone.JID().String()+`"`)))}
		}
		return []localxmpp.Stanza{st}
	})
	fin := &jingle.JMI{Kind: jingle.JMIFinish, ID: placed.ID, Reason: &jingle.Reason{Condition: jingle.ReasonSuccess}}
	if err := desk.sendCallJMI(ctx, a.JID(), fin); err != nil {
		t.Fatal(err)
	}
	if err := desk.SendChat(ctx, aliceJID, "barrier"); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, "barrier", func(ev Event) bool {
		if ev.Kind == EventCall && ev.Call.ID == placed.ID && ev.Call.State == CallEnded {
			t.Fatalf("the desk's finish ended the phone's call: %+v", ev.Call)
		}
		return isChat("barrier")(ev)
	})
	// The finish was queued before the barrier; this is handled after it.
	if err := ca.postWait(ctx, callMsg{kind: msgMediaDone}); err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Call(placed.ID); c.State != CallConnected {
		t.Fatalf("alice's call after the desk's finish: %+v", c)
	}
	h.set(nil)
	if err := a.HangUp(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if end := phone.waitEnded(t, placed.ID); end.EndReason != "success" {
		t.Fatalf("phone's call %+v", end)
	}
}
