package filexfer

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// TestFileReview2SwappedNeverNamed: when a local process swapped the
// temporary file, Finish linked the process's file under the final name
// and removed it again only after looking: for that moment a file
// manager, an indexer or a thumbnailer watching the download directory
// saw "report.pdf" holding the other process's bytes. Expected: no other
// file ever appears under the final name, not even for a moment (the
// directory is watched with inotify: every name created is an event).
func TestFileReview2SwappedNeverNamed(t *testing.T) {
	dir := t.TempDir()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		t.Skipf("no inotify watch: %v", err)
	}
	evil := bytes.Repeat([]byte("x"), 3*testChunk+1)
	r, _ := swappedReceiver(t, dir, func(f *os.File, path string) partFile { return &swapOnSync{File: f, path: path, evil: evil} })
	if _, err := r.Finish(r.Digest()); !errors.Is(err, ErrTampered) {
		t.Fatalf("Finish: %v, want ErrTampered", err)
	}
	for _, name := range inotifyNames(t, fd) {
		if name == "report.pdf" {
			t.Fatal("the local process's file was linked under the final name report.pdf (and removed only afterwards)")
		}
	}
}

// inotifyNames returns the names of the events queued on fd.
func inotifyNames(t *testing.T, fd int) []string {
	var names []string
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EAGAIN) || n <= 0 {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			names = append(names, string(bytes.TrimRight(name, "\x00")))
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
