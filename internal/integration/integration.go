// Package integration holds what integration tests share: finding the real
// programs they drive (OpenSSH, GnuPG, OpenSSL, Prosody, coturn), and
// running a server program for one test ([StartServer]: start, wait until
// ready, retry on a taken port, capture and print its logs, stop).
//
// `make check` sets SECUREJINGLE_INTEGRATION=1 and installs the programs;
// there a missing program fails the test. Elsewhere it skips the test.
package integration

import (
	"os"
	"os/exec"
	"testing"
)

// Env is the environment variable that makes missing programs fatal.
const Env = "SECUREJINGLE_INTEGRATION"

// Required reports whether integration tests must run (make check).
func Required() bool { return os.Getenv(Env) == "1" }

// Tool returns the path of the program name, or skips the test (fails it
// when [Required]) with a message naming the Debian package pkg.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if Required() {
			t.Fatalf("%s not found (Debian package %q): %v", name, pkg, err)
		}
		t.Skipf("%s not found (Debian package %q)", name, pkg)
	}
	return p
}
