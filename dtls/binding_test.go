package dtls

import (
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestNewCertificate(t *testing.T) {
	a, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(a.DER())
	if err != nil {
		t.Fatal(err)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA || cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("certificate uses %v/%v, want ECDSA with SHA-256", cert.PublicKeyAlgorithm, cert.SignatureAlgorithm)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
	if life := cert.NotAfter.Sub(cert.NotBefore); life > CertificateLifetime+certificateBackdate+time.Second {
		t.Fatalf("validity %v is longer than %v", life, CertificateLifetime+certificateBackdate)
	}
	if !a.Expires().Equal(cert.NotAfter) {
		t.Fatalf("Expires() = %v, want %v", a.Expires(), cert.NotAfter)
	}
	other, _ := x509.ParseCertificate(b.DER())
	if cert.SerialNumber.Cmp(other.SerialNumber) == 0 {
		t.Fatal("two certificates share a serial number")
	}
	if a.Fingerprint().Equal(b.Fingerprint()) {
		t.Fatal("two certificates share a fingerprint")
	}
	want, _ := Sum(HashSHA256, a.DER())
	if fp := a.Fingerprint(); fp.Hash != HashSHA256 || !fp.Equal(want) {
		t.Fatalf("Fingerprint() = %s %s, want sha-256 %s", fp.Hash, fp, want)
	}
	// The accessor hands out copies: callers cannot alter the certificate.
	a.Fingerprint().Value[0] ^= 1
	a.DER()[0] ^= 1
	if !a.Fingerprint().Equal(want) {
		t.Fatal("Fingerprint() shares its bytes with the caller")
	}
	if err := (Binding{Expected: want}).Check(a.DER()); err != nil {
		t.Fatalf("DER() shares its bytes with the caller: %v", err)
	}
	fps, err := a.WebRTC().GetFingerprints()
	if err != nil || len(fps) != 1 {
		t.Fatalf("GetFingerprints = %v, %v", fps, err)
	}
	if parsed, err := ParseFingerprint(fps[0].Algorithm, fps[0].Value); err != nil || !parsed.Equal(want) {
		t.Fatalf("pion's fingerprint %s %s differs from ours %s (%v)", fps[0].Algorithm, fps[0].Value, want, err)
	}
}

func TestBindingCheck(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	b := Binding{SID: "sid1", Peer: "juliet@example.org", Device: 7, Expected: cert.Fingerprint()}
	if err := b.Check(cert.DER()); err != nil {
		t.Fatalf("own certificate refused: %v", err)
	}

	err = b.Check(other.DER())
	if !errors.Is(err, ErrBindingMismatch) {
		t.Fatalf("other certificate: %v, want ErrBindingMismatch", err)
	}
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("error %T is not a *MismatchError", err)
	}
	if me.SID != b.SID || me.Peer != b.Peer || me.Device != b.Device || !me.Expected.Equal(b.Expected) || !me.Got.Equal(other.Fingerprint()) {
		t.Fatalf("MismatchError = %+v", me)
	}

	// One flipped bit anywhere in the certificate is a mismatch.
	der := cert.DER()
	for _, i := range []int{0, len(der) / 2, len(der) - 1} {
		flipped := append([]byte(nil), der...)
		flipped[i] ^= 0x01
		if err := b.Check(flipped); !errors.Is(err, ErrBindingMismatch) {
			t.Fatalf("bit flip at %d: %v, want ErrBindingMismatch", i, err)
		}
	}
	// One flipped bit in the expected value is a mismatch.
	exp := cert.Fingerprint()
	exp.Value[31] ^= 0x80
	if err := (Binding{Expected: exp}).Check(cert.DER()); !errors.Is(err, ErrBindingMismatch) {
		t.Fatalf("flipped expected value: %v, want ErrBindingMismatch", err)
	}

	for _, der := range [][]byte{nil, {}} {
		err := b.Check(der)
		if !errors.Is(err, ErrNoPeerCertificate) || errors.Is(err, ErrBindingMismatch) {
			t.Fatalf("empty certificate: %v, want ErrNoPeerCertificate only", err)
		}
	}
	if err := b.CheckTransport(nil); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("nil transport: %v, want ErrNoPeerCertificate", err)
	}
	if err := b.CheckPeerConnection(nil); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("nil peer connection: %v, want ErrNoPeerCertificate", err)
	}
}

func TestBindingOtherHashes(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	s384 := sha512.Sum384(cert.DER())
	s512 := sha512.Sum512(cert.DER())
	for _, exp := range []Fingerprint{{HashSHA384, s384[:]}, {HashSHA512, s512[:]}} {
		// As it would arrive: text in a protected stanza.
		parsed, err := ParseFingerprint(exp.Hash, exp.String())
		if err != nil {
			t.Fatal(err)
		}
		b := Binding{SID: "s", Expected: parsed}
		if err := b.Check(cert.DER()); err != nil {
			t.Fatalf("%s: own certificate refused: %v", exp.Hash, err)
		}
		var me *MismatchError
		if err := b.Check(other.DER()); !errors.As(err, &me) || me.Got.Hash != exp.Hash {
			t.Fatalf("%s: other certificate: %v, want a mismatch in %s", exp.Hash, err, exp.Hash)
		}
	}
}

func TestBindingRefusesBadExpected(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp := cert.Fingerprint()
	for _, tc := range []struct {
		name string
		exp  Fingerprint
		want error
	}{
		{"zero", Fingerprint{}, ErrUnsupportedHash},
		{"sha-1", Fingerprint{Hash: hashSHA1, Value: fp.Value[:20]}, ErrUnsupportedHash},
		{"upper-case name not normalised", Fingerprint{Hash: "SHA-256", Value: fp.Value}, ErrUnsupportedHash},
		{"truncated", Fingerprint{Hash: HashSHA256, Value: fp.Value[:16]}, ErrMalformedFingerprint},
		{"empty value", Fingerprint{Hash: HashSHA256}, ErrMalformedFingerprint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Binding{SID: "s", Expected: tc.exp}.Check(cert.DER())
			if !errors.Is(err, tc.want) || errors.Is(err, ErrBindingMismatch) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}
