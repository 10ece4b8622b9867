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

// swapOnClose is the temporary file of a Receiver whose download
// directory a local process can write to: when the Receiver closes it
// (in Finish, after the hash matched), the process renames a file of its
// own onto the temporary name.
type swapOnClose struct {
	*os.File
	path string
	evil []byte
}

func (s *swapOnClose) Close() error {
	err := s.File.Close()
	tmp := s.path + ".evil"
	os.WriteFile(tmp, s.evil, 0o600)
	os.Rename(tmp, s.path)
	return err
}

// TestFileReview2PartSwapped: Finish verified the hash over the bytes
// it wrote, closed the temporary file and then linked whatever the
// temporary name held under the final name. A local process that can
// write to the download directory (a shared or group-writable one) and
// replaces the temporary file between the two got its own file saved and
// reported as the verified one. Expected: Finish checks that the name it
// gave holds the file it wrote, and otherwise removes it and fails with
// ErrTampered.
func TestFileReview2PartSwapped(t *testing.T) {
	p := testParams(t, 3*testChunk+1, CipherAES256GCM)
	data := randomData(int(p.Size))
	dir := t.TempDir()
	evil := bytes.Repeat([]byte("x"), len(data))
	r, err := newReceiver(p, dir, "report.pdf", ReceiverOptions{}, func(path string) (partFile, error) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		return &swapOnClose{File: f, path: path, evil: evil}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	if err := r.Receive(context.Background(), bytes.NewReader(sendAll(t, p, data, 0)), nil); err != nil {
		t.Fatal(err)
	}
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
