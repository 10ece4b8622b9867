//go:build linux || darwin

package filexfer

import "syscall"

// freeSpace returns the bytes available to this user in dir's file system.
func freeSpace(dir string) (free uint64, known bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}
