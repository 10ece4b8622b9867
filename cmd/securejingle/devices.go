package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/securejingle/securejingle/internal/api"
)

func init() {
	register(command{
		name:    "devices",
		summary: "list, add or remove the devices of your account",
		run:     runDevices,
	})
}

const devicesUsage = `usage:
  securejingle devices list [-json]
  securejingle devices add
  securejingle devices remove DEVICE
  (each takes -socket S)

Your account has one identity key (in your agent); each device has its own
device key, certified by the account key, and the account publishes a
signed device list. Contacts use a device only when it is on the newest
list, so a device the server or a password thief logs in is never used.

add puts this device (the one whose daemon you talk to) on the list: the
account key signs a new list through the agent (a confirmation prompt
appears if the key was added with ssh-add -c). remove revokes another
device: contacts stop encrypting to it and stop accepting it once they
receive the new list. A device cannot remove itself.
`

func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, devicesUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return nil
		}
		return errors.New("missing action: list, add or remove")
	}
	action := args[0]
	fs := flag.NewFlagSet("devices "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, devicesUsage); fs.PrintDefaults() }
	socket := addSocketFlag(fs)
	asJSON := fs.Bool("json", false, "list: print the API's JSON")
	pos, help, err := parseInterleaved(fs, args[1:])
	if help || err != nil {
		return err
	}
	var req *api.DevicesRequest
	switch action {
	case "list":
		if len(pos) != 0 {
			return errors.New("list takes no arguments")
		}
	case api.DevicesAdd:
		if len(pos) != 0 {
			return errors.New("add takes no device: it adds this device (run it against the new device's daemon)")
		}
		req = &api.DevicesRequest{Action: api.DevicesAdd}
	case api.DevicesRemove:
		if len(pos) != 1 {
			return errors.New("remove needs the device id (see securejingle devices list)")
		}
		id, err := strconv.ParseUint(pos[0], 10, 32)
		if err != nil || id == 0 {
			return fmt.Errorf("device id %q: want a decimal number from securejingle devices list", pos[0])
		}
		req = &api.DevicesRequest{Action: api.DevicesRemove, Device: uint32(id)}
	default:
		fmt.Fprint(stderr, devicesUsage)
		return fmt.Errorf("unknown action %q", action)
	}
	c, err := dialAPI(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	var info api.DevicesInfo
	if req == nil {
		info, err = c.Devices(ctx)
	} else {
		info, err = c.ChangeDevices(ctx, *req)
	}
	if err != nil {
		if errors.Is(err, api.ErrSignerTimeout) || errors.Is(err, api.ErrSignerUnavailable) {
			return fmt.Errorf("%w\nchanging the device list needs the account key in the agent: see signer in securejingle status", err)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	return printDevices(stdout, info, req)
}

func printDevices(w io.Writer, info api.DevicesInfo, req *api.DevicesRequest) error {
	switch {
	case req != nil && req.Action == api.DevicesAdd:
		fmt.Fprintf(w, "this device (%d) is on the device list of %s (version %d); contacts will use it\n", info.ThisDevice, sanitize(info.Account), info.Version)
	case req != nil:
		fmt.Fprintf(w, "device %d removed from the device list of %s (version %d); contacts stop using it when they get the new list\n", req.Device, sanitize(info.Account), info.Version)
	}
	if info.Version == 0 {
		_, err := fmt.Fprintf(w, "%s has no device list yet: it is made at the first login of the first device\n", sanitize(info.Account))
		return err
	}
	fmt.Fprintf(w, "account %s, key %s, device list version %d\n", sanitize(info.Account), info.Fingerprint, info.Version)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, d := range info.Devices {
		note := ""
		if d.This {
			note = "(this device)"
		}
		fmt.Fprintf(tw, "  device %d\t%s\t%s\n", d.ID, d.DeviceKey, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !info.Certified {
		_, err := fmt.Fprintf(w, "THIS DEVICE (%d) IS NOT ON THE LIST: contacts do not use it. Run `securejingle devices add` on it (the account key must be in its agent)\n", info.ThisDevice)
		return err
	}
	return nil
}
