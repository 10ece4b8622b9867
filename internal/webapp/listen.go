package webapp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// The served origin. While the daemon does not hold its port, another
// local user can bind it, get the browser to load a page of theirs there
// once, and leave behind what the browser keeps per origin (an HTTP cache
// entry, a service worker) to answer the real daemon's login link later
// and read its token. So the origin is new at every start: a random name
// under .localhost, which browsers resolve to loopback without DNS (RFC
// 6761 §6.3) and treat as a secure context, and which a squatter cannot
// know in advance.
const (
	// hostLabelBytes is the randomness of the host name: 20 bytes, 32
	// base32 characters.
	hostLabelBytes = 20
	// localhostSuffix ends the served host name.
	localhostSuffix = ".localhost"
	// listenTries bounds the ports tried for port 0 until both loopback
	// addresses have it free.
	listenTries = 8
)

var hostLabelEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomHostName returns a fresh host name under .localhost.
func randomHostName() string {
	b := make([]byte, hostLabelBytes)
	rand.Read(b)
	return hostLabelEncoding.EncodeToString(b) + localhostSuffix
}

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.IPv6Loopback()
)

// listen listens on ap and returns the listeners and the host:port that
// requests must name. On 127.0.0.1 or ::1 the host is a fresh random
// name under .localhost, and the server also holds the same port on the
// other loopback address: browsers connect a .localhost name to ::1 first
// and 127.0.0.1 after, and either, left free, is a port another local
// user could serve the new origin from. Where the system has no such
// address (IPv6 off) no one can listen there and browsers do not connect
// there. Any other address (another loopback address, or one beyond
// loopback with allow_remote) is served under its IP address.
func listen(ap netip.AddrPort) ([]net.Listener, string, error) {
	if ap.Addr() != loopback4 && ap.Addr() != loopback6 {
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			return nil, "", listenError(ap, err)
		}
		return []net.Listener{l}, l.Addr().String(), nil
	}
	other := loopback6
	if ap.Addr() == loopback6 {
		other = loopback4
	}
	for try := 1; ; try++ {
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			return nil, "", listenError(ap, err)
		}
		port := uint16(l.Addr().(*net.TCPAddr).Port)
		host := net.JoinHostPort(randomHostName(), strconv.Itoa(int(port)))
		oap := netip.AddrPortFrom(other, port)
		l2, err := net.Listen("tcp", oap.String())
		switch {
		case err == nil:
			return []net.Listener{l, l2}, host, nil
		case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
			return []net.Listener{l}, host, nil
		}
		l.Close()
		if ap.Port() == 0 && errors.Is(err, syscall.EADDRINUSE) && try < listenTries {
			continue
		}
		return nil, "", listenError(oap, err)
	}
}

// listenError explains a failed listen; for a port in use, who holds it
// (when /proc says) and what that means.
func listenError(ap netip.AddrPort, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("webapp: listen %s: %w", ap, err)
	}
	who := "another process"
	if uid, ok := portOwner(ap); ok {
		who += " (uid " + uid
		if u, err := user.LookupId(uid); err == nil {
			who += " " + u.Username
		}
		if uid == strconv.Itoa(os.Getuid()) {
			who += ": yours"
		}
		who += ")"
	}
	return fmt.Errorf("webapp: listen %s: %w: %s holds the port. Unless it is another securejingle daemon of yours, "+
		"it may impersonate the web app to your browser: use another port ([web] listen), and clear your browser's "+
		"site data for the app's old addresses (http://127.0.0.1:%d and every *.localhost:%d)", ap, err, who, ap.Port(), ap.Port())
}

// portOwner returns the uid that listens on ap (or on the unspecified
// address at its port), from /proc/net/tcp or tcp6.
func portOwner(ap netip.AddrPort) (string, bool) {
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if uid, ok := scanPortOwner(name, ap); ok {
			return uid, true
		}
	}
	return "", false
}

// maxProcNetLines bounds the lines of /proc/net/tcp read.
const maxProcNetLines = 1 << 16

func scanPortOwner(name string, ap netip.AddrPort) (string, bool) {
	f, err := os.Open(name)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; n < maxProcNetLines && sc.Scan(); n++ {
		// sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[3] != "0A" { // TCP_LISTEN
			continue
		}
		addr, port, ok := parseProcAddr(fs[1])
		if ok && port == ap.Port() && (addr == ap.Addr() || addr.IsUnspecified()) {
			return fs[7], true
		}
	}
	return "", false
}

// parseProcAddr parses a /proc/net/tcp address: the IP address in hex,
// as 32-bit words in host byte order (little endian here), ":" and the
// port in hex.
func parseProcAddr(s string) (netip.Addr, uint16, bool) {
	a, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || (len(a) != 8 && len(a) != 32) {
		return netip.Addr{}, 0, false
	}
	var b [16]byte
	for w := 0; w < len(a)/8; w++ {
		v, err := strconv.ParseUint(a[8*w:8*w+8], 16, 32)
		if err != nil {
			return netip.Addr{}, 0, false
		}
		b[4*w], b[4*w+1], b[4*w+2], b[4*w+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	if len(a) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), uint16(port), true
	}
	return netip.AddrFrom16(b).Unmap(), uint16(port), true
}

// DialLocalhost dials addr as browsers do: a name under .localhost is
// the loopback address (RFC 6761 §6.3), which Go's resolver does not
// know; anything else as net.Dialer does. Use it as the DialContext of an
// [net/http.Transport] to reach the served origin from Go.
func DialLocalhost(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "localhost" || strings.HasSuffix(strings.ToLower(host), localhostSuffix)) {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(loopback6.String(), port))
		if err == nil {
			return c, nil
		}
		return d.DialContext(ctx, network, net.JoinHostPort(loopback4.String(), port))
	}
	return d.DialContext(ctx, network, addr)
}
