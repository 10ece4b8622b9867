package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/internal/daemon/daemontest"
)

// TestDevicesCommand drives `securejingle devices` against two devices of
// one account: the second is not on the list until `devices add`, then
// `devices remove` from the first revokes it.
func TestDevicesCommand(t *testing.T) {
	env := daemontest.New(t)
	laptop := daemontest.Start(t, env.Alice)
	lst := daemontest.WaitConnected(t, laptop.Client)
	tabletAcc := env.OtherDevice(t, env.Alice, "tablet")
	tablet := daemontest.Start(t, tabletAcc)
	tst := daemontest.WaitConnected(t, tablet.Client)

	out, _, err := runCommand(t, "devices", "list", "-socket", tabletAcc.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "device list version 1") || !strings.Contains(out, "THIS DEVICE") ||
		!strings.Contains(out, fmt.Sprintf("device %d", lst.Device)) {
		t.Fatalf("list on an uncertified device:\n%s", out)
	}
	out, _, err = runCommand(t, "devices", "add", "-socket", tabletAcc.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("this device (%d) is on the device list", tst.Device)) || strings.Contains(out, "THIS DEVICE") {
		t.Fatalf("add:\n%s", out)
	}
	daemontest.Poll(t, "the laptop learns the tablet", func() bool {
		i, err := laptop.Client.Devices(context.Background())
		return err == nil && len(i.Devices) == 2
	})
	out, _, err = runCommand(t, "devices", "remove", fmt.Sprint(tst.Device), "-socket", env.Alice.Socket)
	if err != nil || !strings.Contains(out, fmt.Sprintf("device %d removed", tst.Device)) {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	_, _, err = runCommand(t, "devices", "remove", fmt.Sprint(tst.Device), "-socket", env.Alice.Socket)
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("removing a device that is not listed: %v, want 404", err)
	}
	if _, _, err := runCommand(t, "devices", "remove", "x"); err == nil {
		t.Fatal("a bad device id was accepted")
	}
}
