package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestFrontCertificateKept: the front's certificate survives a restart
// (the fingerprint the clients pinned stays valid), in a file of mode
// 0600; a kept certificate that is unusable is replaced.
func TestFrontCertificateKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DefaultFrontCertName)
	now := time.Now()
	first, err := frontCertificate(path, "example.org", now, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept file %v %v, want mode 0600", fi, err)
	}
	again, err := frontCertificate(path, "example.org", now, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Leaf.Raw) != string(first.Leaf.Raw) {
		t.Fatal("a restart made a new certificate: the pinned fingerprint would break")
	}
	for _, c := range []struct {
		name   string
		domain string
		now    time.Time
		spoil  func()
	}{
		{"another domain", "example.net", now, nil},
		{"about to expire", "example.org", now.Add(340 * 24 * time.Hour), nil},
		{"open to others", "example.org", now, func() { os.Chmod(path, 0o644) }},
		{"garbage", "example.org", now, func() { os.WriteFile(path, []byte("not a certificate"), 0o600) }},
	} {
		prev, err := frontCertificate(path, "example.org", now, Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if c.spoil != nil {
			c.spoil()
		}
		got, err := frontCertificate(path, c.domain, c.now, Logger(t))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got.Leaf.Raw) == string(prev.Leaf.Raw) {
			t.Errorf("%s: the unusable certificate was kept", c.name)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: file %v %v, want mode 0600", c.name, fi, err)
		}
		if !slices.Contains(got.Leaf.DNSNames, c.domain) {
			t.Errorf("%s: new certificate for %v, want %s", c.name, got.Leaf.DNSNames, c.domain)
		}
	}
}
