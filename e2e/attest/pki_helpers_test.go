package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// testPKI is an in-process CA for tests of the X.509 verifier that need
// certificates openssl cannot easily make (expired ones, odd names).
type testPKI struct {
	t      testing.TB
	caCert *x509.Certificate
	caKey  crypto.Signer
	serial int64
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test ca"},
		NotBefore:             now.AddDate(-10, 0, 0),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, caCert: ca, caKey: key, serial: 1}
}

func (p *testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return pool
}

// sanOtherName is a GeneralName otherName (RFC 5280 section 4.2.1.6) of
// type oid holding value, already DER.
func sanOtherName(t testing.TB, oid asn1.ObjectIdentifier, value []byte) asn1.RawValue {
	t.Helper()
	o, err := asn1.Marshal(oid)
	if err != nil {
		t.Fatal(err)
	}
	v, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	if err != nil {
		t.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(o, v...)}
}

// sanXMPP is an id-on-xmppAddr otherName (RFC 6120 section 13.7.1.4).
func sanXMPP(t testing.TB, jid string) asn1.RawValue {
	t.Helper()
	u, err := asn1.MarshalWithParams(jid, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	return sanOtherName(t, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}, u)
}

// sanEmail is an rfc822Name.
func sanEmail(addr string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(addr)}
}

// leafOpts shape a leaf certificate.
type leafOpts struct {
	san                 []asn1.RawValue // subjectAltName entries; none: no extension
	notBefore, notAfter time.Time       // zero: an hour ago, a year from now
}

// leaf issues an S/MIME leaf certificate and returns it with its key.
func (p *testPKI) leaf(o leafOpts) (*x509.Certificate, crypto.Signer) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().AddDate(1, 0, 0)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: "Test Leaf", Organization: []string{"Example"}},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	if len(o.san) > 0 {
		v, err := asn1.Marshal(o.san)
		if err != nil {
			p.t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: v}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, key
}

// signCMS makes a detached DER CMS signature over msg with a signing time
// attribute of now, embedding the leaf and the CA certificate.
func (p *testPKI) signCMS(leaf *x509.Certificate, key crypto.Signer, msg []byte) []byte {
	p.t.Helper()
	sd, err := pkcs7.NewSignedData(msg)
	if err != nil {
		p.t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(leaf, key, []*x509.Certificate{p.caCert}, pkcs7.SignerInfoConfig{}); err != nil {
		p.t.Fatal(err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		p.t.Fatal(err)
	}
	return der
}
