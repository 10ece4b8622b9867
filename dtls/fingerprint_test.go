package dtls

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"testing"
)

func TestParseFingerprintAccepts(t *testing.T) {
	sha256Hex := strings.Repeat("AB:", 31) + "CD"
	for _, tc := range []struct {
		name, hash, value string
		wantHash          string
		wantLen           int
	}{
		{"sha-256 upper", "sha-256", sha256Hex, HashSHA256, 32},
		{"sha-256 lower", "sha-256", strings.ToLower(sha256Hex), HashSHA256, 32},
		{"hash name case and space", "  SHA-256\t", "\n " + sha256Hex + " \r\n", HashSHA256, 32},
		{"sha-384", "sha-384", strings.Repeat("01:", 47) + "FF", HashSHA384, 48},
		{"sha-512", "sha-512", strings.Repeat("9f:", 63) + "00", HashSHA512, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp, err := ParseFingerprint(tc.hash, tc.value)
			if err != nil {
				t.Fatalf("ParseFingerprint: %v", err)
			}
			if fp.Hash != tc.wantHash || len(fp.Value) != tc.wantLen {
				t.Fatalf("got %s/%d bytes, want %s/%d", fp.Hash, len(fp.Value), tc.wantHash, tc.wantLen)
			}
			if got, want := fp.String(), strings.ToUpper(strings.TrimSpace(tc.value)); got != want {
				t.Fatalf("String() = %q, want %q", got, want)
			}
		})
	}
}

func TestParseFingerprintRefuses(t *testing.T) {
	good := strings.Repeat("AB:", 31) + "CD"
	for _, tc := range []struct {
		name, hash, value string
		want              error
	}{
		{"sha-1", "sha-1", strings.Repeat("AB:", 19) + "CD", ErrUnsupportedHash},
		{"SHA-1 upper", "SHA-1", strings.Repeat("AB:", 19) + "CD", ErrUnsupportedHash},
		{"md5", "md5", strings.Repeat("AB:", 15) + "CD", ErrUnsupportedHash},
		{"unknown", "sha3-256", good, ErrUnsupportedHash},
		{"empty hash", "", good, ErrUnsupportedHash},
		{"sha256 without dash", "sha256", good, ErrUnsupportedHash},
		{"empty value", "sha-256", "", ErrMalformedFingerprint},
		{"one byte short", "sha-256", good[3:], ErrMalformedFingerprint},
		{"one byte long", "sha-256", "00:" + good, ErrMalformedFingerprint},
		{"trailing colon", "sha-256", good[:len(good)-2] + "C:", ErrMalformedFingerprint},
		{"no colons", "sha-256", strings.Repeat("AB", 32) + strings.Repeat("0", 31), ErrMalformedFingerprint},
		{"dash separator", "sha-256", strings.Replace(good, ":", "-", 1), ErrMalformedFingerprint},
		{"non-hex", "sha-256", "G" + good[1:], ErrMalformedFingerprint},
		{"inner space", "sha-256", good[:2] + " " + good[3:], ErrMalformedFingerprint},
		{"sha-384 length for sha-256", "sha-256", strings.Repeat("01:", 47) + "FF", ErrMalformedFingerprint},
		{"sha-256 length for sha-512", "sha-512", good, ErrMalformedFingerprint},
		{"huge", "sha-256", strings.Repeat("AB:", 1<<16), ErrMalformedFingerprint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp, err := ParseFingerprint(tc.hash, tc.value)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseFingerprint(%q, %.40q) = %v, %v; want %v", tc.hash, tc.value, fp, err, tc.want)
			}
			var fe *FingerprintError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FingerprintError", err)
			}
			if !fp.IsZero() {
				t.Fatalf("refused fingerprint is not zero: %+v", fp)
			}
		})
	}
}

func TestFingerprintEqual(t *testing.T) {
	a, _ := Sum(HashSHA256, []byte("a"))
	a2, _ := Sum(HashSHA256, []byte("a"))
	b, _ := Sum(HashSHA256, []byte("b"))
	a512, _ := Sum(HashSHA512, []byte("a"))
	if !a.Equal(a2) {
		t.Fatal("equal fingerprints compare unequal")
	}
	if a.Equal(b) || a.Equal(a512) || a.Equal(Fingerprint{}) || (Fingerprint{}).Equal(Fingerprint{}) {
		t.Fatal("unequal fingerprints compare equal")
	}
	if trunc := (Fingerprint{Hash: HashSHA256, Value: a.Value[:16]}); trunc.Equal(trunc) {
		t.Fatal("a truncated fingerprint compares equal to itself")
	}
}

func TestSum(t *testing.T) {
	der := []byte("certificate bytes")
	s256 := sha256.Sum256(der)
	s384 := sha512.Sum384(der)
	s512 := sha512.Sum512(der)
	for _, tc := range []struct {
		hash string
		want []byte
	}{{HashSHA256, s256[:]}, {HashSHA384, s384[:]}, {HashSHA512, s512[:]}} {
		fp, err := Sum(tc.hash, der)
		if err != nil {
			t.Fatal(err)
		}
		want := Fingerprint{Hash: tc.hash, Value: tc.want}
		if !fp.Equal(want) {
			t.Fatalf("Sum(%s) = %s, want %s", tc.hash, fp, want)
		}
	}
	if _, err := Sum(hashSHA1, der); !errors.Is(err, ErrUnsupportedHash) {
		t.Fatalf("Sum(sha-1) error = %v, want ErrUnsupportedHash", err)
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha-256", strings.Repeat("AB:", 31)+"CD")
	f.Add("sha-384", strings.Repeat("ab:", 47)+"cd")
	f.Add("sha-512", strings.Repeat("00:", 63)+"FF")
	f.Add("sha-1", strings.Repeat("AB:", 19)+"CD")
	f.Add("sha-256", "AB:CD")
	f.Fuzz(func(t *testing.T, hash, value string) {
		fp, err := ParseFingerprint(hash, value)
		if err != nil {
			var fe *FingerprintError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FingerprintError", err)
			}
			return
		}
		again, err := ParseFingerprint(fp.Hash, fp.String())
		if err != nil {
			t.Fatalf("re-parse of %s %s: %v", fp.Hash, fp, err)
		}
		if !again.Equal(fp) {
			t.Fatalf("round trip changed %s to %s", fp, again)
		}
		if got, want := fp.String(), strings.ToUpper(strings.TrimSpace(value)); got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
	})
}
