package api

import (
	"net"

	"github.com/securejingle/securejingle/internal/peercred"
)

// peerAllowed reports whether the process at the other end of a Unix
// socket runs as our user or as root. Other connections are refused.
func peerAllowed(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	return ok && peercred.SameUserOrRoot(uc)
}
