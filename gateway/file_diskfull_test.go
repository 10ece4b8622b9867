package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
)

// smallDisk mounts a tmpfs of size bytes (needs root; skipped otherwise)
// and returns its path.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestFileDiskFull: a download directory without room for the file
// refuses it at accept time, naming the cause; one that fills up while
// the bytes arrive fails the transfer cleanly, leaving no file, not even
// a partial one.
func TestFileDiskFull(t *testing.T) {
	t.Run("too big for the free space", func(t *testing.T) {
		disk := smallDisk(t, "1m")
		_, a, b, _ := filePair(t, nil, func(g *Gateway) { g.cfg.DownloadDir = disk })
		src := writeFile(t, t.TempDir(), "big.bin", randBytes(t, 2<<20))
		ctx := testCtx(t)
		o, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), []string{src}, SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.waitTransfer(t, o.ID, "pending", inState(TransferPending))
		err = b.AcceptTransfer(ctx, o.ID, "")
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "bytes needed") {
			t.Fatalf("accept into a full disk: %v", err)
		}
		// Still pending: it may go into another directory, or be declined.
		if in, _ := b.Transfer(o.ID); in.State != TransferPending {
			t.Fatalf("after the refused accept: %s", in.State)
		}
		if err := b.DeclineTransfer(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		leftovers(t, disk, 0)
	})
	t.Run("fills up during the transfer", func(t *testing.T) {
		disk := smallDisk(t, "1m")
		_, a, b, reg := filePair(t, nil, func(g *Gateway) { g.cfg.DownloadDir = disk })
		src := writeFile(t, t.TempDir(), "mid.bin", randBytes(t, 600<<10))
		var once sync.Once
		reg.cut = func(c net.Conn, n int) io.ReadWriteCloser {
			// Something else fills the disk once the transfer is accepted.
			once.Do(func() {
				f, err := os.Create(filepath.Join(disk, "filler"))
				if err == nil {
					io.CopyN(f, zeros{}, 700<<10)
					f.Close()
				}
			})
			return c
		}
		_, in := sendAndAccept(t, a, b, []string{src})
		if in.State != TransferFailed || !strings.Contains(in.Detail, "disk is full") {
			t.Fatalf("receiver %s (%s)", in.State, in.Detail)
		}
		leftovers(t, disk, 1) // the filler only
	})
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
