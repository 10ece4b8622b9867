// This file adapts the gateway's file API (gateway/file*.go) to the
// daemon's fileGateway.

package daemon

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/gateway"
)

// gatewayFiles is the fileGateway of a *gateway.Gateway.
type gatewayFiles struct{ g *gateway.Gateway }

var _ fileGateway = gatewayFiles{}

// fromGateway converts a gateway transfer.
func fromGateway(t gateway.TransferInfo) transfer {
	out := transfer{
		ID: t.ID, Direction: t.Direction, Peer: t.Peer, PeerFull: t.PeerFull, PeerDevice: t.PeerDevice,
		Trust: t.Trust, Verified: t.Verified, Stranger: t.Stranger, State: transferState(t.State), Transport: t.Transport, Suite: t.Suite,
		BytesDone: t.BytesDone, BytesTotal: t.BytesTotal, Rate: t.Rate, Resumed: t.Resumed, ResumedFrom: t.ResumedFrom,
		Resumable: t.Resumable, Created: t.Created, Started: t.Started, Ended: t.Ended, Detail: t.Detail,
	}
	for _, f := range t.Files {
		out.Files = append(out.Files, transferFile{Name: f.Name, Size: f.Size, MediaType: f.MediaType, Desc: f.Desc,
			Date: f.Date, Hash: f.Hash, Path: f.Path, Done: f.Done, State: transferState(f.State)})
	}
	return out
}

// fileErr wraps the gateway's file errors in the daemon's sentinels.
func fileErr(err error) error {
	var refused *gateway.TransferRefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gateway.ErrUnknownTransfer):
		return fmt.Errorf("%w: %w", errUnknownTransfer, err)
	case errors.Is(err, gateway.ErrTransferState):
		return fmt.Errorf("%w: %w", errTransferState, err)
	case errors.Is(err, gateway.ErrQuota):
		return fmt.Errorf("%w: %w", errQuota, err)
	case errors.Is(err, gateway.ErrNoSpace):
		return fmt.Errorf("%w: %w", errNoSpace, err)
	case errors.Is(err, gateway.ErrFileTooLarge):
		return fmt.Errorf("%w: %w", errFileTooLarge, err)
	case errors.As(err, &refused):
		return fmt.Errorf("%w: %w", errTransferRefused, err)
	}
	return err
}

func (f gatewayFiles) SendFiles(ctx context.Context, to jid.JID, paths []string, o sendOptions) (transfer, error) {
	t, err := f.g.SendFiles(ctx, to, paths, gateway.SendOptions{Transports: o.Transports, Desc: o.Desc})
	if err != nil {
		return transfer{}, fileErr(err)
	}
	return fromGateway(t), nil
}

func (f gatewayFiles) AcceptTransfer(ctx context.Context, id, dir string) error {
	return fileErr(f.g.AcceptTransfer(ctx, id, dir))
}

func (f gatewayFiles) DeclineTransfer(ctx context.Context, id string) error {
	return fileErr(f.g.DeclineTransfer(ctx, id))
}

func (f gatewayFiles) CancelTransfer(ctx context.Context, id string) error {
	return fileErr(f.g.CancelTransfer(ctx, id))
}

func (f gatewayFiles) ResumeTransfer(ctx context.Context, id string) error {
	return fileErr(f.g.ResumeTransfer(ctx, id))
}

func (f gatewayFiles) Transfers() []transfer {
	ts := f.g.Transfers()
	out := make([]transfer, 0, len(ts))
	for _, t := range ts {
		out = append(out, fromGateway(t))
	}
	return out
}

func (f gatewayFiles) Transfer(id string) (transfer, bool) {
	t, ok := f.g.Transfer(id)
	if !ok {
		return transfer{}, false
	}
	return fromGateway(t), true
}

// fileConfig sets the gateway's file configuration from the backend's
// settings and proxies, with the auto-accept rules as its FileAccepter.
func (b *backend) fileConfig(c *gateway.Config, proxies []string) {
	c.DownloadDir = b.fileCfg.download
	c.MaxFileSize = b.fileCfg.maxFileSize
	c.FileMinFree = b.fileCfg.minFree
	// The daemon checks the quota per receiving directory itself
	// (checkIncoming); the gateway's own is not used.
	c.FileQuota = 0
	c.FileTransports = append([]string(nil), b.fileCfg.transports...)
	c.Proxy65 = append([]string(nil), proxies...)
	if accept := b.accepter(); accept != nil {
		c.FileAccepter = func(t gateway.TransferInfo) (string, bool) { return accept(fromGateway(t)) }
	}
}

// attachFiles gives the backend the gateway's file transfer.
func (b *backend) attachFiles(gw *gateway.Gateway) { b.files = gatewayFiles{g: gw} }

// fileFromEvent returns the transfer of a file event.
func fileFromEvent(ev gateway.Event) (transfer, bool) {
	if ev.Kind != gateway.EventFile || ev.File == nil {
		return transfer{}, false
	}
	return fromGateway(*ev.File), true
}
