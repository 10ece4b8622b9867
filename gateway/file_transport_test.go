package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

func TestFileS5BDirect(t *testing.T) {
	cs := filexfer.SecurityDefaultChunkSize
	realTransfer(t, TransportS5BDirect, 0, 1, cs, cs+1)
}

// TestFileS5BDirectLarge, TestFileDataChannelLarge and TestFileIBBLarge
// send 100 MiB over one transport each: the received file's sha-256
// equals the source's. IBB moves about 2-4 MB/s here (XML per block), so
// its run sends 16 MiB unless SECUREJINGLE_LONG is set.
func TestFileS5BDirectLarge(t *testing.T)   { largeTransfer(t, TransportS5BDirect, 100) }
func TestFileDataChannelLarge(t *testing.T) { largeTransfer(t, TransportDataChannel, 100) }
func TestFileIBBLarge(t *testing.T) {
	mib := 16
	if os.Getenv("SECUREJINGLE_LONG") != "" {
		mib = 100
	}
	largeTransfer(t, TransportIBB, mib)
}

func largeTransfer(t *testing.T, transport string, mib int) {
	if testing.Short() {
		t.Skip("100 MiB")
	}
	_, a, b, _ := filePairWith(t, true, transportOnly(transport), transportOnly(transport))
	src := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for range mib {
		rand.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("sha-256:%x", h.Sum(nil))
	out, in := sendAndAccept(t, a, b, []string{src})
	if in.State != TransferCompleted || out.State != TransferCompleted || in.Transport != transport {
		t.Fatalf("receiver %s over %s (%s), sender %s (%s)", in.State, in.Transport, in.Detail, out.State, out.Detail)
	}
	got, err := os.Open(in.Files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	h.Reset()
	if _, err := io.Copy(h, got); err != nil {
		t.Fatal(err)
	}
	if g := fmt.Sprintf("sha-256:%x", h.Sum(nil)); g != want || in.Files[0].Hash != want {
		t.Fatalf("received %s (reported %s), sent %s", g, in.Files[0].Hash, want)
	}
}

// failS5BDial makes every SOCKS5 connection attempt of g fail, counting
// them.
func failS5BDial(n *atomic.Int32) func(*Gateway) {
	return func(g *Gateway) {
		g.fileHooks.s5bDial = func(context.Context, string, string) (net.Conn, error) {
			n.Add(1)
			return nil, errors.New("test: no route")
		}
	}
}

// TestFileS5BFallbackIBB: no SOCKS5 candidate works for either side
// (candidate-error both ways): the receiver replaces the transport with
// IBB and the files arrive intact.
func TestFileS5BFallbackIBB(t *testing.T) {
	var na, nb atomic.Int32
	order := transportOnly(TransportS5BDirect, TransportIBB)
	_, a, b, _ := filePairWith(t, true, withSetup(order, failS5BDial(&na)), withSetup(order, failS5BDial(&nb)))
	cs := filexfer.SecurityDefaultChunkSize
	dir := t.TempDir()
	data := [][]byte{randBytes(t, cs+1), randBytes(t, 1)}
	paths := []string{writeFile(t, dir, "f0", data[0]), writeFile(t, dir, "f1", data[1])}
	out, in := sendAndAccept(t, a, b, paths)
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	if in.Transport != TransportIBB || out.Transport != TransportIBB {
		t.Fatalf("transport %s / %s, want the fallback to %s", in.Transport, out.Transport, TransportIBB)
	}
	if na.Load() == 0 || nb.Load() == 0 {
		t.Fatalf("SOCKS5 attempts: alice %d, bob %d; want both to have tried", na.Load(), nb.Load())
	}
	for i, f := range in.Files {
		got, err := os.ReadFile(f.Path)
		if err != nil || !bytes.Equal(got, data[i]) || f.Hash != sha(data[i]) {
			t.Fatalf("file %d differs (%v)", i, err)
		}
	}
}

// TestFileS5BHostileCandidate: outside loopback mode a peer's candidate
// at a loopback address is never connected to (it would reach this
// host's own services): bob refuses alice's 127.0.0.1 candidate, alice
// cannot reach bob's, and the transfer falls back to IBB.
func TestFileS5BHostileCandidate(t *testing.T) {
	var na atomic.Int32
	var bobDials []string
	var mu sync.Mutex
	order := transportOnly(TransportS5BDirect, TransportIBB)
	_, a, b, _ := filePairWith(t, true, withSetup(order, failS5BDial(&na)), withSetup(order, func(g *Gateway) {
		g.cfg.CallLoopbackOnly, g.callHooks.loopback = false, false
		g.fileHooks.s5bListen = []string{"127.0.0.1:0"} // tests stay on loopback
		g.fileHooks.s5bDial = func(ctx context.Context, addr, dst string) (net.Conn, error) {
			mu.Lock()
			bobDials = append(bobDials, addr)
			mu.Unlock()
			return filexfer.DialS5B(ctx, addr, dst)
		}
	}))
	data := randBytes(t, 1000)
	out, in := sendAndAccept(t, a, b, []string{writeFile(t, t.TempDir(), "f", data)})
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bobDials) != 0 || in.Transport != TransportIBB {
		t.Fatalf("bob connected to %v and the transfer went over %s; want no connection to alice's loopback candidate", bobDials, in.Transport)
	}
	got, err := os.ReadFile(in.Files[0].Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file differs (%v)", err)
	}
}

func TestS5BCandidateErr(t *testing.T) {
	g := &Gateway{}
	cand := func(typ, host string, port uint16) filexfer.S5BCandidate {
		return filexfer.S5BCandidate{CID: "c", Host: host, JID: "x@y/z", Port: port, Priority: 1, Type: typ}
	}
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "fe80::1", "169.254.10.1", "0.0.0.0", "::",
		"224.0.0.1", "ff02::1", "255.255.255.255", "localhost", "evil.example"} {
		if err := g.s5bCandidateErr(cand(filexfer.S5BDirect, h, 1)); err == nil {
			t.Errorf("direct candidate at %s taken outside loopback mode", h)
		}
	}
	for _, h := range []string{"192.0.2.1", "2001:db8::1", "10.1.2.3"} {
		if err := g.s5bCandidateErr(cand(filexfer.S5BDirect, h, 1)); err != nil {
			t.Errorf("direct candidate at %s refused: %v", h, err)
		}
	}
	// A proxy candidate naming our own proxy's streamhost is taken, even
	// at a host name or on loopback; another port is not.
	g.s5b.hosts = []filexfer.Streamhost{{JID: "proxy.example.org", Host: "proxy.example.org", Port: 7777}, {JID: "p2", Host: "127.0.0.1"}}
	if err := g.s5bCandidateErr(cand(filexfer.S5BProxy, "proxy.example.org", 7777)); err != nil {
		t.Errorf("our own proxy refused: %v", err)
	}
	if err := g.s5bCandidateErr(cand(filexfer.S5BProxy, "127.0.0.1", 0)); err != nil {
		t.Errorf("our own proxy on the default port refused: %v", err)
	}
	if err := g.s5bCandidateErr(cand(filexfer.S5BProxy, "proxy.example.org", 22)); err == nil {
		t.Error("a proxy candidate at our proxy's name, another port, taken")
	}
	if err := g.s5bCandidateErr(cand(filexfer.S5BDirect, "proxy.example.org", 7777)); err == nil {
		t.Error("a direct candidate at our proxy's name taken")
	}
	g.cfg.CallLoopbackOnly = true
	if err := g.s5bCandidateErr(cand(filexfer.S5BDirect, "127.0.0.1", 1)); err != nil {
		t.Errorf("loopback candidate refused in loopback mode: %v", err)
	}
	if err := g.s5bCandidateErr(cand(filexfer.S5BDirect, "fe80::1", 1)); err == nil {
		t.Error("link-local candidate taken in loopback mode")
	}
}

// TestFileS5BCutAndResume: the sender's SOCKS5 connection is cut in the
// middle of the fourth chunk; the receiver replaces the transport with a
// fresh s5b-direct one from its verified offset, and nothing before it is
// sent again.
func TestFileS5BCutAndResume(t *testing.T) {
	cs := filexfer.SecurityDefaultChunkSize
	cut := int64(filexfer.StreamHeaderLen) + 3*int64(cs+filexfer.StreamTagLen) + 100
	var mu sync.Mutex
	var conns []*faultyConn
	_, a, b, _ := filePairWith(t, true, withSetup(transportOnly(TransportS5BDirect), func(g *Gateway) {
		g.fileHooks.pipe = func(p io.ReadWriteCloser) io.ReadWriteCloser {
			fc := &faultyConn{Conn: p.(net.Conn), flip: -1}
			mu.Lock()
			defer mu.Unlock()
			if len(conns) == 0 {
				fc.limit = cut
			}
			conns = append(conns, fc)
			return fc
		}
	}), transportOnly(TransportS5BDirect))
	data := randBytes(t, 5*cs+123)
	out, in := sendAndAccept(t, a, b, []string{writeFile(t, t.TempDir(), "big.bin", data)})
	if in.State != TransferCompleted || out.State != TransferCompleted || in.Transport != TransportS5BDirect {
		t.Fatalf("receiver %s over %s (%s), sender %s (%s)", in.State, in.Transport, in.Detail, out.State, out.Detail)
	}
	if got, err := os.ReadFile(in.Files[0].Path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed file differs (%v)", err)
	}
	if !in.Resumed || in.ResumedFrom != 3*uint64(cs) || !out.Resumed || out.ResumedFrom != 3*uint64(cs) {
		t.Fatalf("resume: receiver %v from %d, sender %v from %d; want from %d", in.Resumed, in.ResumedFrom, out.Resumed, out.ResumedFrom, 3*cs)
	}
	mu.Lock()
	defer mu.Unlock()
	p := filexfer.StreamParams{ChunkSize: uint32(cs), Size: uint64(len(data))}
	if len(conns) != 2 || uint64(conns[1].count()) != p.WireSize(3*uint64(cs)) {
		t.Fatalf("%d attempts; the resumed one sent %d bytes, want %d", len(conns), conns[len(conns)-1].count(), p.WireSize(3*uint64(cs)))
	}
}
