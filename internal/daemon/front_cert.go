package daemon

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/securejingle/securejingle/internal/c2sfront"
)

// DefaultFrontCertName is the file, next to the store, that keeps the
// local front's TLS certificate and key across restarts, so that the
// fingerprint the user pinned in their clients stays valid.
const DefaultFrontCertName = "front-cert.pem"

// Bounds of the certificate file (implementation constants).
const (
	maxFrontCertFile = 64 << 10
	// frontCertRenewBefore: a kept certificate this close to its end is
	// replaced (the clients must pin the new one; the log says so).
	frontCertRenewBefore = 30 * 24 * time.Hour
)

// FrontCertPath is where the front's certificate is kept.
func (c *Config) FrontCertPath() string {
	return filepath.Join(filepath.Dir(c.Store.Path), DefaultFrontCertName)
}

// frontCertificate returns the front's certificate kept at path, or
// makes and keeps a new one (mode 0600) when there is none, or the kept
// one is unusable: not for domain, unreadable, open to other users,
// or ending within frontCertRenewBefore of now. A new certificate is
// logged as a warning when it replaces one: the clients that pinned the
// old fingerprint refuse the new one until the user pins it.
func frontCertificate(path, domain string, now time.Time, log *slog.Logger) (tls.Certificate, error) {
	cert, why := readFrontCert(path, domain, now)
	if why == "" {
		return cert, nil
	}
	cert, err := c2sfront.NewCertificate(domain)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: front certificate: %w", err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: front certificate: %w", err)
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw})
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: front certificate: %w", err)
	}
	if err := writeFileAtomic(path, b.Bytes()); err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: front certificate: %w", err)
	}
	if why != "none kept" {
		log.Warn("gateway mode: the local front has a new TLS certificate: pin its fingerprint in your clients again (they refuse it until you do)",
			"path", path, "why", why)
	}
	return cert, nil
}

// readFrontCert reads the kept certificate; why says what is wrong with
// it ("" when it is usable).
func readFrontCert(path, domain string, now time.Time) (tls.Certificate, string) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, "none kept"
	}
	if err != nil {
		return tls.Certificate{}, err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return tls.Certificate{}, err.Error()
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		// Another user may have read the key: it may be theirs too.
		return tls.Certificate{}, fmt.Sprintf("the file is not a regular file of mode 0600 (%v)", fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFrontCertFile+1))
	if err != nil {
		return tls.Certificate{}, err.Error()
	}
	if len(b) > maxFrontCertFile {
		return tls.Certificate{}, "the file is too large"
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return tls.Certificate{}, "the file holds no certificate and key: " + err.Error()
	}
	if len(cert.Certificate) != 1 || cert.Leaf == nil {
		return tls.Certificate{}, "the file holds more than one certificate"
	}
	switch {
	case !slices.Contains(cert.Leaf.DNSNames, domain):
		return tls.Certificate{}, "the certificate is for another domain"
	case now.Before(cert.Leaf.NotBefore):
		return tls.Certificate{}, "the certificate is not valid yet"
	case now.Add(frontCertRenewBefore).After(cert.Leaf.NotAfter):
		return tls.Certificate{}, "the certificate expires within 30 days"
	}
	return cert, ""
}
