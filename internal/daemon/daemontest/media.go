package daemontest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// WriteOpus writes an Ogg Opus file of n 20 ms packets of random payload
// (each with a valid TOC byte: CELT fullband, 20 ms, stereo, one frame)
// at path, and returns the packets, to compare with a recording.
func WriteOpus(t testing.TB, path string, n int) [][]byte {
	t.Helper()
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	var packets [][]byte
	for i := range n {
		p := make([]byte, 80)
		rand.Read(p)
		p[0] = 0xfc // config 31 (CELT FB 20 ms), stereo, code 0
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i),
			Timestamp: uint32(i * 960), SSRC: 1}, Payload: p}
		if err := w.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
		packets = append(packets, p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return packets
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

// ReadOpus returns the packets of an Ogg Opus file, one per page after
// the two header pages (as oggwriter writes them).
func ReadOpus(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		p, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if bytes.HasPrefix(p, []byte("OpusTags")) || len(p) == 0 {
			continue
		}
		out = append(out, p)
	}
}

// CheckReceived fails the test unless got is a run of at least min
// consecutive packets of sent, in order and byte for byte.
func CheckReceived(t testing.TB, what string, sent, got [][]byte, min int) {
	t.Helper()
	if len(got) < min {
		t.Fatalf("%s: %d packets, want at least %d", what, len(got), min)
	}
	start := -1
	for i, p := range sent {
		if bytes.Equal(p, got[0]) {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s: the first packet received is none of those sent", what)
	}
	for i, p := range got {
		if start+i >= len(sent) || !bytes.Equal(p, sent[start+i]) {
			t.Fatalf("%s: packet %d differs from sent packet %d", what, i, start+i)
		}
	}
}
