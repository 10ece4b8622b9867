package gateway

import (
	"bytes"
	"os"
	"testing"

	"github.com/securejingle/securejingle/filexfer"
)

// transportOnly configures the transports of both sides.
func transportOnly(names ...string) func(*Gateway) {
	return func(g *Gateway) { g.cfg.FileTransports = names }
}

// realTransfer sends files of the given sizes from alice to bob over the
// gateway's real transports and checks what arrived.
func realTransfer(t *testing.T, transport string, sizes ...int) TransferInfo {
	t.Helper()
	_, a, b, _ := filePairWith(t, true, transportOnly(transport), transportOnly(transport))
	dir := t.TempDir()
	var datas [][]byte
	var paths []string
	for i, n := range sizes {
		d := randBytes(t, n)
		datas = append(datas, d)
		paths = append(paths, writeFile(t, dir, "f"+itoa(i), d))
	}
	out, in := sendAndAccept(t, a, b, paths)
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("%s: receiver %s (%s), sender %s (%s)", transport, in.State, in.Detail, out.State, out.Detail)
	}
	if in.Transport != transport || out.Transport != transport {
		t.Fatalf("transport %s / %s, want %s", in.Transport, out.Transport, transport)
	}
	for i, f := range in.Files {
		got, err := os.ReadFile(f.Path)
		if err != nil || !bytes.Equal(got, datas[i]) || f.Hash != sha(datas[i]) {
			t.Fatalf("%s: file %d (%d bytes) differs (%v)", transport, i, sizes[i], err)
		}
	}
	leftovers(t, b.cfg.DownloadDir, len(sizes))
	return in
}

func TestFileDataChannel(t *testing.T) {
	cs := filexfer.SecurityDefaultChunkSize
	realTransfer(t, TransportDataChannel, 0, 1, cs, cs+1, 1<<20)
}

func TestFileIBB(t *testing.T) {
	cs := filexfer.SecurityDefaultChunkSize
	realTransfer(t, TransportIBB, 0, 1, cs, cs+1, 256<<10)
}
