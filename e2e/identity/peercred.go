package identity

import (
	"net"

	"github.com/securejingle/securejingle/internal/peercred"
)

// peerAllowed reports whether the process at the other end of c may use the
// agent: a Unix-socket peer must run as our user or as root, as OpenSSH's
// ssh-agent requires. Other connections are allowed; their listener is the
// caller's choice.
func peerAllowed(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	return !ok || peercred.SameUserOrRoot(uc)
}
