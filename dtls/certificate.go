package dtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/pion/webrtc/v4"
)

// Implementation constants of the per-call certificate.
const (
	// CertificateLifetime is how long a call certificate is valid. Peers
	// check the fingerprint, not the validity, of a self-signed DTLS-SRTP
	// certificate (RFC 5763 §5), so this only has to outlast call set-up; pion
	// refuses to build a PeerConnection with an expired certificate.
	CertificateLifetime = 24 * time.Hour
	// certificateBackdate absorbs clock skew on peers that do look at
	// NotBefore.
	certificateBackdate = time.Hour
	// certificateName is the subject and issuer common name. Browsers and
	// pion use "WebRTC"; so do we, so that the certificate, sent in clear
	// in the DTLS 1.2 handshake, does not single out securejingle.
	certificateName = "WebRTC"
)

// Certificate is a DTLS certificate for one call: an ECDSA P-256 key and a
// self-signed X.509 certificate over it. Make one with [NewCertificate] per
// call; never reuse one across calls, so that a certificate links no two
// calls.
//
// The zero value is not usable. A Certificate is immutable and safe for
// concurrent use.
type Certificate struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
	fp   Fingerprint
	rtc  webrtc.Certificate
}

// NewCertificate generates a fresh ECDSA P-256 key and a self-signed
// certificate for it with a random 128-bit serial number, valid from an
// hour ago for [CertificateLifetime].
func NewCertificate() (*Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dtls: generating the certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("dtls: generating the certificate serial: %w", err)
	}
	now := time.Now()
	tpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: certificateName},
		Issuer:             pkix.Name{CommonName: certificateName},
		NotBefore:          now.Add(-certificateBackdate),
		NotAfter:           now.Add(CertificateLifetime),
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("dtls: creating the certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("dtls: parsing the new certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	return &Certificate{
		key:  key,
		cert: cert,
		der:  der,
		fp:   Fingerprint{Hash: HashSHA256, Value: sum[:]},
		rtc:  webrtc.CertificateFromX509(key, cert),
	}, nil
}

// WebRTC returns the certificate in the form webrtc.Configuration.Certificates
// takes.
func (c *Certificate) WebRTC() webrtc.Certificate { return c.rtc }

// TLS returns the certificate in the form crypto/tls and pion/dtls
// (Config.Certificates) take, for a DTLS stack built on pion/dtls directly.
func (c *Certificate) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.DER()}, PrivateKey: c.key, Leaf: c.cert}
}

// Fingerprint returns the SHA-256 fingerprint of the certificate's DER
// encoding, the one securejingle advertises.
func (c *Certificate) Fingerprint() Fingerprint {
	return Fingerprint{Hash: c.fp.Hash, Value: append([]byte(nil), c.fp.Value...)}
}

// DER returns a copy of the certificate's DER encoding.
func (c *Certificate) DER() []byte { return append([]byte(nil), c.der...) }

// Expires returns the end of the certificate's validity.
func (c *Certificate) Expires() time.Time { return c.cert.NotAfter }
