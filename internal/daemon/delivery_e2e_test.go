package daemon_test

import (
	"context"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// TestDaemonDeliveryState: POST /v1/chat answers the message id with state
// "sent"; Bob's device's end-to-end receipt turns it into "delivered" to
// that device, on Alice's event stream and in GET /v1/messages.
func TestDaemonDeliveryState(t *testing.T) {
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*daemontest.HangGuard)
	defer cancel()
	daemontest.WaitConnected(t, alice.Client)
	bobSt := daemontest.WaitConnected(t, bob.Client)
	daemontest.WaitPeerDevice(t, alice.Client, env.Bob.JID)
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)
	aliceEvents, err := alice.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceEvents.Close()

	m, err := alice.Client.SendChatMessage(ctx, env.Bob.JID, "did you get this?")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.To != env.Bob.JID || m.State != api.DeliverySent || len(m.Devices) != 1 || m.Devices[0].Device != bobSt.Device {
		t.Fatalf("chat response %+v", m)
	}
	for {
		ev, err := aliceEvents.Next()
		if err != nil {
			t.Fatalf("waiting for the delivery event: %v", err)
		}
		if ev.Kind != "delivery" {
			continue
		}
		if ev.MessageID != m.ID || ev.Device != bobSt.Device || ev.Delivery == nil || ev.Delivery.State != api.DeliveryDelivered ||
			!ev.Delivery.Devices[0].Delivered {
			t.Fatalf("delivery event %+v", ev)
		}
		break
	}
	page, err := alice.Client.Messages(ctx, api.MessagesQuery{})
	if ms := page.Messages; err != nil || len(ms) != 1 || ms[0].ID != m.ID || ms[0].State != api.DeliveryDelivered || ms[0].Devices[0].Time.IsZero() ||
		ms[0].Body != "did you get this?" || ms[0].Direction != api.MessageOutgoing || !ms[0].Encrypted {
		t.Fatalf("messages %+v, %v", page, err)
	}
}
