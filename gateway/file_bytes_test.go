package gateway

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/filexfer"
	"github.com/securejingle/securejingle/jingle"
)

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sendAndAccept offers files from alice to bob, bob accepts into his
// download directory, and both sides complete.
func sendAndAccept(t *testing.T, a, b *testGateway, paths []string) (out, in TransferInfo) {
	t.Helper()
	ctx := testCtx(t)
	o, err := a.SendFiles(ctx, jid.MustParse("bob@"+testDomain), paths, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.waitTransfer(t, o.ID, "pending", inState(TransferPending))
	if err := b.AcceptTransfer(ctx, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			x, _ := a.Transfer(o.ID)
			y, _ := b.Transfer(o.ID)
			t.Logf("sender: %+v\nreceiver: %+v", x, y)
		}
	})
	in = b.waitTransferEnd(t, o.ID, "received")
	out = a.waitTransferEnd(t, o.ID, "sent")
	return out, in
}

// waitTransferEnd waits for the end of a transfer, for as long as it
// makes progress: the 15 s deadline starts again with every event that
// moves it on, so that large files on a loaded machine do not time out.
func (tg *testGateway) waitTransferEnd(t testing.TB, id, what string) TransferInfo {
	t.Helper()
	var last TransferInfo
	for {
		ev := tg.waitEvent(t, what, func(ev Event) bool {
			return ev.Kind == EventFile && ev.File != nil && ev.File.ID == id &&
				(ev.File.State.Ended() || ev.File.BytesDone != last.BytesDone || ev.File.State != last.State)
		})
		last = *ev.File
		if last.State.Ended() {
			return last
		}
	}
}

func TestFileTransferSizes(t *testing.T) {
	_, a, b, _ := filePair(t, nil, nil)
	cs := filexfer.SecurityDefaultChunkSize
	dir := t.TempDir()
	var paths [][]byte
	var names []string
	for _, n := range []int{0, 1, cs, cs + 1, 3*cs - 7} {
		data := randBytes(t, n)
		paths = append(paths, data)
		names = append(names, writeFile(t, dir, "f"+itoa(n)+".bin", data))
	}
	out, in := sendAndAccept(t, a, b, names)
	if out.State != TransferCompleted || in.State != TransferCompleted {
		t.Fatalf("sender %s (%s), receiver %s (%s)", out.State, out.Detail, in.State, in.Detail)
	}
	if len(in.Files) != len(names) {
		t.Fatalf("%d files", len(in.Files))
	}
	var total uint64
	for i, f := range in.Files {
		got, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, paths[i]) {
			t.Fatalf("file %d (%d bytes): content differs", i, len(paths[i]))
		}
		if f.Hash != sha(paths[i]) || out.Files[i].Hash != f.Hash {
			t.Fatalf("file %d: hash %s / %s, want %s", i, f.Hash, out.Files[i].Hash, sha(paths[i]))
		}
		if f.State != TransferCompleted || f.Done != f.Size || filepath.Dir(f.Path) != b.cfg.DownloadDir {
			t.Fatalf("file %d: %+v", i, f)
		}
		total += f.Size
	}
	if in.BytesTotal != total || out.BytesTotal != total || in.Started.IsZero() || in.Transport != TransportIBB {
		t.Fatalf("totals: %+v", in)
	}
	leftovers(t, b.cfg.DownloadDir, len(names))
}

func itoa(n int) string { return strconv.Itoa(n) }

// leftovers checks that dir holds exactly n files and no temporary one.
func leftovers(t *testing.T, dir string, n int) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != n {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Fatalf("%s holds %v, want %d files", dir, names, n)
	}
}

// renameOffer makes alice's offer carry the given names (a hostile
// sender's).
func renameOffer(names ...string) func(*Gateway) {
	return func(g *Gateway) {
		g.fileHooks.mutateOffer = func(j *jingle.Jingle) {
			for k := range j.Contents {
				for m, r := range j.Contents[k].Other {
					d, ok, err := filexfer.ParseDescription(r)
					if !ok || err != nil || k >= len(names) {
						continue
					}
					d.File.Name = names[k]
					if j.Contents[k].Other[m], err = d.Raw(); err != nil {
						panic(err)
					}
				}
			}
		}
	}
}

func TestFileHostileNames(t *testing.T) {
	hostile := []string{"../../etc/passwd", "a\tb\u202egpj.exe", "..", "-rf", "/abs/path/x.txt"}
	_, a, b, _ := filePair(t, renameOffer(hostile...), nil)
	existing := filepath.Join(b.cfg.DownloadDir, "passwd")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for i := range hostile {
		paths = append(paths, writeFile(t, dir, "f"+string(rune('0'+i)), []byte{byte(i)}))
	}
	out, in := sendAndAccept(t, a, b, paths)
	if in.State != TransferCompleted || out.State != TransferCompleted {
		t.Fatalf("%s %s", in.State, in.Detail)
	}
	if got, _ := os.ReadFile(existing); string(got) != "keep me" {
		t.Fatal("an existing file was overwritten")
	}
	want := []string{"passwd (1)", "abgpj.exe", "file", "_-rf", "x.txt"}
	for i, f := range in.Files {
		if f.Name != want[i] || f.Path != filepath.Join(b.cfg.DownloadDir, want[i]) {
			t.Errorf("%q saved as %q at %s, want %q", hostile[i], f.Name, f.Path, want[i])
		}
		if got, _ := os.ReadFile(f.Path); !bytes.Equal(got, []byte{byte(i)}) {
			t.Errorf("%q: content %v", hostile[i], got)
		}
	}
	leftovers(t, b.cfg.DownloadDir, len(hostile)+1)
}
