package identity

import (
	"net"
	"os"
	"syscall"
)

// peerAllowed reports whether the process at the other end of c may use the
// agent: a Unix-socket peer must run as our user or as root, as OpenSSH's
// ssh-agent requires. Other connections are allowed; their listener is the
// caller's choice.
func peerAllowed(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return true
	}
	raw, err := uc.SyscallConn()
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
