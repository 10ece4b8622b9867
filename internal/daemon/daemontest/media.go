package daemontest

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"

	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// Media writes test media with mediagen ([mediagen.WriteFilesWith]:
// ogg or ivf may be "" to skip it) and returns what it wrote.
func Media(t testing.TB, ogg, ivf string, o mediagen.Options) mediagen.Files {
	t.Helper()
	f, err := mediagen.WriteFilesWith(ogg, ivf, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// CheckRecording fails the test unless the recording rec holds at least
// min payloads of its source src (Ogg Opus, or IVF VP8 by src's
// extension), each unaltered and in order ([rtcpeer.ComparePayloads]).
func CheckRecording(t testing.TB, what, src, rec string, min int) {
	t.Helper()
	compare := rtcpeer.ComparePayloads
	if filepath.Ext(src) == ".ivf" {
		compare = rtcpeer.CompareFrames
	}
	m, err := compare(src, rec)
	if err != nil || m.Matched < min {
		t.Fatalf("%s: %d of %d payloads recorded, want at least %d (%v)", what, m.Matched, m.Source, min, err)
	}
}

// vnetBuild serialises building vnet routers and nets: vnet numbers their
// MAC addresses from a global counter without a lock (pion/transport
// v5.1.4 vnet.newMACAddress), a data race when tests build them in
// parallel (internal/rtcpeer's tests serialise theirs the same way).
var vnetBuild sync.Mutex

// CallNets returns n virtual networks (pion vnet) on one router, each
// with its own address in 10.0.0.0/24, for the call media of n daemons
// ([daemon.WithCallNet]): the media never touches a real interface. The
// router stops at the end of the test.
func CallNets(t testing.TB, n int) []*vnet.Net {
	t.Helper()
	vnetBuild.Lock()
	defer vnetBuild.Unlock()
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	var nets []*vnet.Net
	for i := range n {
		nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{fmt.Sprintf("10.0.0.%d", i+2)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddNet(nw); err != nil {
			t.Fatal(err)
		}
		nets = append(nets, nw)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return nets
}
