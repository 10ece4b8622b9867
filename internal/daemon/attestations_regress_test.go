package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/securejingle/securejingle/e2e/attest"
	"github.com/securejingle/securejingle/e2e/identity"
)

// testCMS makes a CA (written to dir/ca.pem) and a CMS signature over msg
// by a leaf for email valid from notBefore to notAfter, written to
// dir/st.p7s. It returns the path of the signature.
func testCMS(t *testing.T, dir, email string, notBefore, notAfter time.Time, msg []byte) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().AddDate(-5, 0, 0), NotAfter: time.Now().AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Alice"},
		NotBefore: notBefore, NotAfter: notAfter, EmailAddresses: []string{email},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	sd, err := pkcs7.NewSignedData(msg)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(leaf, key, []*x509.Certificate{ca}, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "st.p7s")
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRegressOwnAttestationExpiredWarns is finding 7 of the first review:
// an own attestation whose certificate had expired stopped the daemon with
// "not a signature of this device's identity statement ... bad
// signature". It is published, with a warning that says it expired.
func TestRegressOwnAttestationExpiredWarns(t *testing.T) {
	dir := t.TempDir()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	st := attest.Statement{JID: "alice@example.test", Key: signer.PublicKey()}
	end := time.Now().AddDate(0, -1, 0).UTC().Truncate(time.Second)
	file := testCMS(t, dir, st.JID, end.AddDate(-1, 0, 0), end, st.Bytes())
	keys := KeysConfig{Attestation: []AttestationConfig{{attest.TypeX509CMS, file}}}
	for _, roots := range []string{"", filepath.Join(dir, "ca.pem")} {
		reg, err := TrustConfig{X509Roots: roots}.Registry()
		if err != nil {
			t.Fatal(err)
		}
		atts, warnings, err := ownAttestations(keys, reg, signer, st)
		if err != nil {
			t.Fatalf("roots %q: the daemon would stop: %v", roots, err)
		}
		if len(atts) != 2 || len(warnings) != 1 || !strings.Contains(warnings[0], "expired on "+end.Format(time.DateOnly)) ||
			!strings.Contains(warnings[0], file) {
			t.Fatalf("roots %q: attestations %d, warnings %q", roots, len(atts), warnings)
		}
	}
}

// TestOwnAttestationMismatchWarns checks that an own attestation by a
// trusted certificate for another identity is published with a warning.
func TestOwnAttestationMismatchWarns(t *testing.T) {
	dir := t.TempDir()
	signer, err := identity.GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	st := attest.Statement{JID: "alice@example.test", Key: signer.PublicKey()}
	file := testCMS(t, dir, "carol@example.test", time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), st.Bytes())
	reg, err := TrustConfig{X509Roots: filepath.Join(dir, "ca.pem")}.Registry()
	if err != nil {
		t.Fatal(err)
	}
	keys := KeysConfig{Attestation: []AttestationConfig{{attest.TypeX509CMS, file}}}
	atts, warnings, err := ownAttestations(keys, reg, signer, st)
	if err != nil || len(atts) != 2 || len(warnings) != 1 ||
		!strings.Contains(warnings[0], "for carol@example.test, not alice@example.test") {
		t.Fatalf("attestations %d, warnings %q, err %v", len(atts), warnings, err)
	}
}
