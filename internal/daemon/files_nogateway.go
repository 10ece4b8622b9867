//go:build !gatewayfiles

package daemon

import "github.com/securejingle/securejingle/gateway"

// Until the gateway has its file API (gateway/file*.go), the daemon runs
// without file transfer: the file endpoints answer 503. files_gateway.go
// (build tag gatewayfiles) holds the adapter that replaces these.

// fileConfig sets nothing: the gateway has no file configuration yet.
func (b *backend) fileConfig(*gateway.Config, []string) {}

// attachFiles leaves b.files nil.
func (b *backend) attachFiles(*gateway.Gateway) {}

// fileFromEvent finds no transfer: the gateway has no file events yet.
func fileFromEvent(gateway.Event) (transfer, bool) { return transfer{}, false }
