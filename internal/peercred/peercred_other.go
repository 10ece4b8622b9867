//go:build !linux

// Package peercred tells who is at the other end of a Unix socket.
package peercred

import "net"

// SameUserOrRoot cannot read peer credentials on this system and returns
// true: the socket file's mode and its private directory are the access
// control there.
func SameUserOrRoot(*net.UnixConn) bool { return true }
