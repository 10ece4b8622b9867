package filexfer

// Attacks on receiving found in the second review (issue 9), now
// regression tests.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// swapOnSync is the temporary file of a Receiver whose download
// directory a local process can write to: when the Receiver syncs it (in
// Finish, after the hash matched, before it is given its name), the
// process renames a file of its own onto the temporary name.
type swapOnSync struct {
	*os.File
	path string
	evil []byte
}

func (s *swapOnSync) Sync() error {
	err := s.File.Sync()
	swapIn(s.path, s.evil)
	return err
}

// swapIn renames a new file holding evil onto path, as a local process
// that can write to path's directory can.
func swapIn(path string, evil []byte) {
	tmp := path + ".evil"
	os.WriteFile(tmp, evil, 0o600)
	os.Rename(tmp, path)
}

// swappedReceiver receives data into dir through a temporary file that
// wrap makes, and returns the Receiver, Done.
func swappedReceiver(t *testing.T, dir string, wrap func(f *os.File, path string) partFile) (*Receiver, []byte) {
	t.Helper()
	p := testParams(t, 3*testChunk+1, CipherAES256GCM)
	data := randomData(int(p.Size))
	r, err := newReceiver(p, dir, "report.pdf", ReceiverOptions{}, func(path string) (partFile, error) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		return wrap(f, path), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Abort() })
	if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil); err != nil {
		t.Fatal(err)
	}
	return r, data
}

// TestFileReview2PartSwapped: Finish verified the hash over the bytes
// it wrote, closed the temporary file and then linked whatever the
// temporary name held under the final name. A local process that can
// write to the download directory (a shared or group-writable one) and
// replaces the temporary file between the two got its own file saved and
// reported as the verified one. Expected: Finish checks that the
// temporary name still holds the file it wrote, and otherwise saves
// nothing and fails with ErrTampered.
func TestFileReview2PartSwapped(t *testing.T) {
	dir := t.TempDir()
	evil := bytes.Repeat([]byte("x"), 3*testChunk+1)
	r, _ := swappedReceiver(t, dir, func(f *os.File, path string) partFile { return &swapOnSync{File: f, path: path, evil: evil} })
	path, err := r.Finish(r.Digest())
	if err == nil {
		got, _ := os.ReadFile(path)
		t.Fatalf("Finish saved %s as verified; it holds the local process's bytes: %v", path, bytes.Equal(got, evil))
	}
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("Finish: %v, want ErrTampered", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.pdf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file is left under the final name (%v)", err)
	}
}

// swapOnClose swaps the temporary name when the Receiver closes the file.
type swapOnClose struct {
	*os.File
	path string
	evil []byte
}

func (s *swapOnClose) Close() error {
	err := s.File.Close()
	swapIn(s.path, s.evil)
	return err
}

// TestFileReview2SwapAfterPlacing: a swap of the temporary name once the
// file has its name changes nothing: the file saved is the one written
// and verified.
func TestFileReview2SwapAfterPlacing(t *testing.T) {
	dir := t.TempDir()
	evil := bytes.Repeat([]byte("x"), 3*testChunk+1)
	r, data := swappedReceiver(t, dir, func(f *os.File, path string) partFile { return &swapOnClose{File: f, path: path, evil: evil} })
	path, err := r.Finish(r.Digest())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the saved file is not the one received (%v)", err)
	}
}
