// Package peercred tells who is at the other end of a Unix socket.
package peercred

import (
	"net"
	"os"
	"syscall"
)

// SameUserOrRoot reports whether the process at the other end of c runs as
// our effective user or as root (SO_PEERCRED), as OpenSSH's ssh-agent
// requires of its clients. It is false when the credentials cannot be read.
func SameUserOrRoot(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return false
	}
	return cred.Uid == 0 || int(cred.Uid) == os.Geteuid()
}
