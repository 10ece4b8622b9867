package daemon_test

import (
	"context"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// acceptedDevices returns the devices of peer that c's daemon uses.
func acceptedDevices(t *testing.T, c *api.Client, peer string) map[uint32]bool {
	t.Helper()
	ps, err := c.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]bool{}
	for _, p := range ps {
		if p.JID != peer {
			continue
		}
		for _, d := range p.Devices {
			if d.Accepted {
				out[d.ID] = true
			}
		}
	}
	return out
}

// TestDevicesAddRemove: the first device of an account founds its device
// list; a second device with the same account key is not used by contacts
// until `devices add`; removing it revokes it at the contact.
func TestDevicesAddRemove(t *testing.T) {
	ctx := context.Background()
	env := daemontest.New(t)
	alice := daemontest.Start(t, env.Alice)
	bob := daemontest.Start(t, env.Bob)
	ast := daemontest.WaitConnected(t, alice.Client)
	daemontest.WaitConnected(t, bob.Client)
	if !ast.Certified {
		t.Fatal("the first device of an account must found its device list")
	}
	daemontest.WaitPeerDevice(t, bob.Client, env.Alice.JID)

	tablet := daemontest.Start(t, env.OtherDevice(t, env.Alice, "tablet"))
	tst := daemontest.WaitConnected(t, tablet.Client)
	if tst.Certified {
		t.Fatal("a further device must not put itself on the list without `devices add`")
	}
	if info, err := tablet.Client.Devices(ctx); err != nil || info.Certified || info.Version != 1 || len(info.Devices) != 1 {
		t.Fatalf("tablet's view before add: %+v %v", info, err)
	}
	info, err := tablet.Client.ChangeDevices(ctx, api.DevicesRequest{Action: api.DevicesAdd})
	if err != nil || !info.Certified || info.Version != 2 || len(info.Devices) != 2 {
		t.Fatalf("devices add: %+v %v", info, err)
	}
	daemontest.Poll(t, "bob uses the tablet", func() bool { return acceptedDevices(t, bob.Client, env.Alice.JID)[tst.Device] })
	daemontest.Poll(t, "the laptop learns the new list", func() bool {
		i, err := alice.Client.Devices(ctx)
		return err == nil && i.Version == 2
	})
	// Bob's message reaches the tablet.
	events, err := tablet.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.SendChatMessage(ctx, env.Alice.JID, "to every device of alice"); err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	nextChat(t, events, "to every device of alice")

	// The laptop revokes the tablet.
	if _, err := alice.Client.ChangeDevices(ctx, api.DevicesRequest{Action: api.DevicesRemove, Device: tst.Device}); err != nil {
		t.Fatal(err)
	}
	daemontest.Poll(t, "bob stops using the tablet", func() bool { return !acceptedDevices(t, bob.Client, env.Alice.JID)[tst.Device] })
	daemontest.Poll(t, "the tablet knows it was removed", func() bool {
		st, err := tablet.Client.Status(ctx)
		return err == nil && !st.Certified
	})
	m, err := bob.Client.SendChatMessage(ctx, env.Alice.JID, "laptop only")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Devices {
		if d.Device == tst.Device {
			t.Fatal("bob encrypted to a revoked device")
		}
	}
	if _, err := alice.Client.ChangeDevices(ctx, api.DevicesRequest{Action: api.DevicesRemove, Device: ast.Device}); err == nil {
		t.Fatal("a device removed itself")
	}
}
