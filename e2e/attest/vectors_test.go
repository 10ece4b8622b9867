package attest

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/smallstep/pkcs7"
)

// The files in testdata/ are real gpg and openssl output over
// testdata/statement.txt, written by TestIntegration* with -update.

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorX509Verifier trusts testdata/cms-ca.pem at a time when the leaf in
// sig is valid, so the vectors do not expire.
func vectorX509Verifier(t testing.TB, sig []byte) *X509Verifier {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(vector(t, "cms-ca.pem")) {
		t.Fatal("bad cms-ca.pem")
	}
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	leaf := p7.GetOnlySigner()
	if leaf == nil {
		t.Fatal("no signer certificate in vector")
	}
	at := leaf.NotBefore.Add(time.Hour)
	return NewX509Verifier(roots, WithClock(func() time.Time { return at }))
}

func TestVectorStatement(t *testing.T) {
	st, err := ParseStatement(vector(t, "statement.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := testStatement()
	if st.JID != want.JID || !st.Key.Equal(want.Key) {
		t.Fatalf("got %+v, want %+v", st, want)
	}
}

func TestVectorOpenPGP(t *testing.T) {
	st := testStatement()
	for _, algo := range []string{"ed25519", "rsa3072"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			sig := vector(t, "openpgp-"+algo+".sig.asc")
			v, err := NewOpenPGPVerifier(vector(t, "openpgp-"+algo+".pub.asc"))
			if err != nil {
				t.Fatal(err)
			}
			if res := v.Verify(st, sig); res.Status != Verified || res.Signer == "" {
				t.Errorf("got %v, want verified", res)
			}
			if res := (&OpenPGPVerifier{}).Verify(st, sig); res.Status != Untrusted {
				t.Errorf("empty keyring: got %v, want untrusted", res)
			}
			other := st
			other.JID = "bob@example.org"
			if res := v.Verify(other, sig); res.Status != Failed {
				t.Errorf("other JID: got %v, want failed", res)
			}
			// Armor-level flips: none may verify.
			for i := range sig {
				flipped := append([]byte(nil), sig...)
				flipped[i] ^= 0x01
				if res := v.Verify(st, flipped); res.Status == Verified {
					// Tolerated only where the packet-level check below
					// tolerates it.
					if !onlyUncovered(t, sig, flipped) {
						t.Errorf("armor bit flip at %d still verifies", i)
					}
				}
			}
			// Packet-level flips outside the unhashed subpacket area
			// (advisory by RFC 9580 section 5.2.3) must fail.
			body, _, err := parseArmoredSignature(sig)
			if err != nil {
				t.Fatal(err)
			}
			// The signature covers the packet up to the end of the hashed
			// subpackets; the unhashed area, the 16-bit hash tag and MPI
			// bit counts are not covered (RFC 9580 section 5.2.3), so
			// only the covered part and the signature values are checked.
			lo, hi := unhashedArea(t, body)
			covered := func(i int) bool {
				return i < lo || (i >= hi+2+2 && i < hi+2+2+16) || i >= len(body)-16
			}
			for i := range body {
				if !covered(i) {
					continue
				}
				for bit := 0; bit < 8; bit++ {
					flipped := append([]byte(nil), body...)
					flipped[i] ^= 1 << bit
					if res := v.Verify(st, armorSig(t, flipped)); res.Status == Verified {
						t.Errorf("packet bit flip at %d.%d still verifies", i, bit)
					}
				}
			}
		})
	}
}

func TestVectorX509CMS(t *testing.T) {
	st := testStatement()
	for _, name := range []string{"cms-ec.der", "cms-rsa.der", "cms-attached.der"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sig := vector(t, name)
			v := vectorX509Verifier(t, sig)
			if res := v.Verify(st, sig); res.Status != Verified || res.Signer == "" {
				t.Errorf("got %v, want verified", res)
			}
			if res := NewX509Verifier(nil).Verify(st, sig); res.Status != Untrusted {
				t.Errorf("nil roots: got %v, want untrusted", res)
			}
			if res := NewX509Verifier(x509.NewCertPool(), WithClock(v.now)).Verify(st, sig); res.Status != Untrusted {
				t.Errorf("empty roots: got %v, want untrusted", res)
			}
			other := st
			other.Key = append([]byte(nil), st.Key...)
			other.Key[0] ^= 1
			if res := v.Verify(other, sig); res.Status != Failed {
				t.Errorf("other key: got %v, want failed", res)
			}
			// Every flip must fail except in the embedded copy of the CA
			// certificate: chain building then uses the configured root,
			// and the certificate bag is unsigned by design.
			p7, err := pkcs7.Parse(sig)
			if err != nil {
				t.Fatal(err)
			}
			leaf := p7.GetOnlySigner()
			// Byte ranges of the CA copies in the bag.
			var caRanges [][2]int
			for _, c := range p7.Certificates {
				if c == leaf {
					continue
				}
				at := bytes.Index(sig, c.Raw)
				if at < 0 {
					t.Fatal("cannot locate a certificate in the vector")
				}
				caRanges = append(caRanges, [2]int{at, at + len(c.Raw)})
			}
			inCA := func(i int) bool {
				for _, r := range caRanges {
					if i >= r[0] && i < r[1] {
						return true
					}
				}
				return false
			}
			tolerated := 0
			for i := range sig {
				for bit := 0; bit < 8; bit++ {
					flipped := append([]byte(nil), sig...)
					flipped[i] ^= 1 << bit
					if res := v.Verify(st, flipped); res.Status == Verified {
						if inCA(i) {
							tolerated++
							continue
						}
						t.Errorf("bit flip at %d.%d still verifies", i, bit)
					}
				}
			}
			t.Logf("%d flips in the CA copy still verify", tolerated)
		})
	}
}

// armorSig armors a raw signature packet.
func armorSig(t testing.TB, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	w.Close()
	return b.Bytes()
}

// unhashedArea returns the byte range of the unhashed subpacket area of a
// v4 signature packet with a two-byte legacy header, as gpg writes it.
func unhashedArea(t testing.TB, body []byte) (lo, hi int) {
	t.Helper()
	hdr := 2
	if body[0] == 0x89 {
		hdr = 3
	}
	if body[0] != 0x88 && body[0] != 0x89 || body[hdr] != 4 {
		t.Fatalf("unexpected packet header % x", body[:4])
	}
	hashedLen := int(body[hdr+4])<<8 | int(body[hdr+5])
	lo = hdr + 6 + hashedLen
	n := int(body[lo])<<8 | int(body[lo+1])
	return lo, lo + 2 + n
}

// onlyUncovered reports whether the armored signatures orig and flipped
// decode to packets that differ only outside the signed part: the unhashed
// subpacket area, the hash tag and the first MPI's bit count.
func onlyUncovered(t testing.TB, orig, flipped []byte) bool {
	t.Helper()
	a, _, err1 := parseArmoredSignature(orig)
	b, _, err2 := parseArmoredSignature(flipped)
	if err1 != nil || err2 != nil || len(a) != len(b) {
		return false
	}
	lo, hi := unhashedArea(t, a)
	for i := range a {
		if a[i] != b[i] && (i < lo || i >= hi+4) {
			return false
		}
	}
	return true
}
