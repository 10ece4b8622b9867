package clienttest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Bounds of [PinnedCert]'s STARTTLS exchange.
const (
	pinLimit    = 15 * time.Second
	pinMaxBytes = 64 << 10 // what the server may send before <proceed/>
)

// ErrFingerprint: the server's certificate is not the pinned one.
var ErrFingerprint = errors.New("clienttest: the server's certificate does not have the pinned fingerprint")

// ParseFingerprint parses a SHA-256 fingerprint in hex, with or without
// colons, in either case (the form c2sfront logs, "AB:CD:...", or
// openssl's).
func ParseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("clienttest: %q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return b, nil
}

// PinnedCert fetches the certificate of the c2s service at addr (a
// loopback "IP:PORT" offering STARTTLS for domain) and returns it if its
// SHA-256 fingerprint is fingerprint, as a user does who pins the
// fingerprint a gateway logged: the result goes into [Endpoint.Cert]. It
// fails the test otherwise (wrapping [ErrFingerprint] when the certificate
// differs).
func PinnedCert(t testing.TB, addr, domain, fingerprint string) *x509.Certificate {
	t.Helper()
	cert, err := FetchPinned(addr, domain, fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// FetchPinned is [PinnedCert] returning an error.
func FetchPinned(addr, domain, fingerprint string) (*x509.Certificate, error) {
	want, err := ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	if _, _, err := (Endpoint{Addr: addr}).checkAddr(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pinLimit)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	if err := c.SetDeadline(dl); err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	var header bytes.Buffer
	header.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='")
	if err := escapeAttr(&header, domain); err != nil {
		return nil, err
	}
	header.WriteString("'>")
	if _, err := c.Write(header.Bytes()); err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	r := io.LimitReader(c, pinMaxBytes)
	if err := readUntil(r, "</stream:features>"); err != nil {
		return nil, fmt.Errorf("clienttest: %s: stream features: %w", addr, err)
	}
	if _, err := io.WriteString(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	if err := readUntil(r, "<proceed"); err != nil {
		return nil, fmt.Errorf("clienttest: %s: STARTTLS: %w", addr, err)
	}
	if err := readUntil(r, ">"); err != nil {
		return nil, fmt.Errorf("clienttest: %s: STARTTLS: %w", addr, err)
	}
	var got *x509.Certificate
	tc := tls.Client(c, &tls.Config{
		ServerName: domain,
		MinVersion: tls.VersionTLS12,
		// The pin replaces chain verification: a self-signed certificate
		// is accepted only if its fingerprint is the pinned one.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			cert, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			fp, _ := ParseFingerprint(FingerprintSHA256(cert))
			if subtle.ConstantTimeCompare(fp, want) != 1 {
				return fmt.Errorf("%w: got %s", ErrFingerprint, FingerprintSHA256(cert))
			}
			got = cert
			return nil
		},
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("clienttest: %s: TLS: %w", addr, err)
	}
	_ = tc.Close()
	// The name check that InsecureSkipVerify skipped: the client checks it.
	if err := got.VerifyHostname(domain); err != nil {
		return nil, fmt.Errorf("clienttest: %s: pinned certificate: %w", addr, err)
	}
	return got, nil
}

// readUntil reads r one byte at a time (nothing after the marker is
// consumed, so TLS can start right after <proceed/>) until it has read
// marker.
func readUntil(r io.Reader, marker string) error {
	var seen []byte
	b := make([]byte, 1)
	for {
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		seen = append(seen, b[0])
		if bytes.HasSuffix(seen, []byte(marker)) {
			return nil
		}
		if len(seen) > pinMaxBytes {
			return errors.New("too much data")
		}
	}
}

// escapeAttr writes s for a single-quoted XML attribute; a domain with
// quotes or markup is refused rather than escaped.
func escapeAttr(w *bytes.Buffer, s string) error {
	if s == "" || strings.ContainsAny(s, "'\"<>& \t\r\n") {
		return fmt.Errorf("clienttest: bad domain %q", s)
	}
	w.WriteString(s)
	return nil
}
