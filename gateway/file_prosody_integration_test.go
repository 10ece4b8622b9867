package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/internal/prosodytest"
)

// dialLog records the SOCKS5 connections a gateway makes.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) hook(g *Gateway) {
	g.fileHooks.s5bDial = func(ctx context.Context, addr, dst string) (net.Conn, error) {
		d.mu.Lock()
		d.addrs = append(d.addrs, addr)
		d.mu.Unlock()
		return filexfer.DialS5B(ctx, addr, dst)
	}
}

func (d *dialLog) count(addr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, a := range d.addrs {
		if a == addr {
			n++
		}
	}
	return n
}

// prosodyFilePair runs alice and bob on a real Prosody with mod_proxy65,
// both using only the given transports, recording their SOCKS5
// connections.
func prosodyFilePair(t *testing.T, transports ...string) (p *prosodytest.Server, a, b *testGateway, da, db *dialLog) {
	t.Helper()
	p = prosodytest.Start(t, prosodytest.WithProxy65())
	p.AddUser(t, "alice", "alice-pw")
	p.AddUser(t, "bob", "bob-pw")
	p.Subscribe(t, "alice", "bob")
	aDir, bDir := t.TempDir(), t.TempDir()
	da, db = &dialLog{}, &dialLog{}
	setup := func(dir string, d *dialLog) func(*Gateway) {
		return func(g *Gateway) {
			g.cfg.FileTransports, g.cfg.DownloadDir = transports, dir
			d.hook(g)
		}
	}
	a = startGatewayAt(t, server{p.Addr(), p.TLSConfig()}, "alice@"+p.Domain()+"/laptop", "alice-pw", gwOptions{setup: setup(aDir, da)})
	b = startGatewayAt(t, server{p.Addr(), p.TLSConfig()}, "bob@"+p.Domain()+"/desk", "bob-pw", gwOptions{setup: setup(bDir, db)})
	a.waitDevices(t, "bob@"+p.Domain(), 1)
	b.waitDevices(t, "alice@"+p.Domain(), 1)
	waitOnline(t, a, "bob@"+p.Domain())
	return p, a, b, da, db
}

// prosodySendFile sends a random file of n bytes from alice to bob and
// checks that it arrived over transport with the source's sha-256.
func prosodySendFile(t *testing.T, a, b *testGateway, transport string, n int) {
	t.Helper()
	data := randBytes(t, n)
	src := writeFile(t, t.TempDir(), "report.bin", data)
	ctx := testCtx(t)
	bob := jid.MustParse(b.bare())
	o, err := a.SendFiles(ctx, bob, []string{src}, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, o.ID, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	in := b.waitTransfer(t, o.ID, "received", func(in TransferInfo) bool { return in.State.Ended() })
	out := a.waitTransfer(t, o.ID, "sent", func(in TransferInfo) bool { return in.State.Ended() })
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("receiver %s (%s), sender %s (%s)", in.State, in.Detail, out.State, out.Detail)
	}
	if in.Transport != transport || out.Transport != transport {
		t.Fatalf("transport %s / %s, want %s", in.Transport, out.Transport, transport)
	}
	f, err := os.Open(in.Files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	want := sha(data)
	if got := fmt.Sprintf("sha-256:%x", h.Sum(nil)); got != want || in.Files[0].Hash != want {
		t.Fatalf("received %s (reported %s), sent %s", got, in.Files[0].Hash, want)
	}
}

// TestIntegrationProsodyFileIBB: a whole transfer between two gateways
// over in-band bytestreams through a real Prosody.
func TestIntegrationProsodyFileIBB(t *testing.T) {
	_, a, b, _, _ := prosodyFilePair(t, TransportIBB)
	prosodySendFile(t, a, b, TransportIBB, 300<<10+1)
}

// TestIntegrationProsodyFileProxy65: a whole transfer over SOCKS5
// through Prosody's mod_proxy65, found by disco#items on the server;
// the proxy's candidates are nominated and activated over protected
// transport-info.
func TestIntegrationProsodyFileProxy65(t *testing.T) {
	p, a, b, da, db := prosodyFilePair(t, TransportS5BProxy)
	prosodySendFile(t, a, b, TransportS5BProxy, 8<<20+3)
	// Both connected to the proxy: one to the other's candidate, the
	// one whose candidate was nominated once more to activate it (and a
	// third connection when neither report came before the other tried).
	_, addr := p.Proxy65()
	if na, nb := da.count(addr), db.count(addr); na < 1 || nb < 1 || na+nb > 3 {
		t.Fatalf("connections to the proxy %s: alice %d, bob %d; want each at least 1, at most 3 together", addr, na, nb)
	}
}
