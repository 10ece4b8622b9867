package daemon

import (
	"os"
	"syscall"
)

// fileIdentOf returns the identity of a file from its fstat: device,
// inode, size, modification and change times. ok is false when the
// system does not say.
func fileIdentOf(fi os.FileInfo, hash string) (fileIdent, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdent{}, false
	}
	return fileIdent{dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), hash: hash}, true
}
