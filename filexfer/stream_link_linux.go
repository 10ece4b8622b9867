package filexfer

import (
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// linkat(2) constants (syscall does not export linkat).
const (
	atFDCWD         = -0x64
	atSymlinkFollow = 0x400
)

// linkOpen gives the open file f, created as tmp, the new name path; it
// fails on an existing name (os.ErrExist) and never replaces a file. It
// links the open file itself (linkat of /proc/self/fd/N, following the
// magic link), not whatever the name tmp holds by now: a file a local
// process put at tmp is never the one linked. Without /proc it links
// by name. errTempGone: the file written has no name left (a local
// process renamed another file over tmp).
func linkOpen(f partFile, tmp, path string) error {
	fd, ok := f.(interface{ Fd() uintptr })
	if !ok {
		return os.Link(tmp, path)
	}
	old := "/proc/self/fd/" + strconv.FormatUint(uint64(fd.Fd()), 10)
	p0, err := syscall.BytePtrFromString(old)
	if err != nil {
		return err
	}
	p1, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	cwd := atFDCWD
	_, _, e := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(cwd), uintptr(unsafe.Pointer(p0)),
		uintptr(cwd), uintptr(unsafe.Pointer(p1)), atSymlinkFollow, 0)
	if e == 0 {
		return nil
	}
	if e == syscall.ENOENT {
		var st syscall.Stat_t
		if syscall.Fstat(int(fd.Fd()), &st) == nil && st.Nlink == 0 {
			return errTempGone
		}
		if _, err := os.Stat("/proc/self/fd"); err != nil {
			return os.Link(tmp, path) // no /proc here
		}
	}
	return &os.LinkError{Op: "link", Old: tmp, New: path, Err: e}
}
