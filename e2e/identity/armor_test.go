package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// readTestdata returns the ssh-keygen known answer from testdata (see
// testdata/README.md).
func readTestdata(t testing.TB) (pub ed25519.PublicKey, msg, sig512, sig256 []byte) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(read("sshsig-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err = ed25519PublicKey(pk, "testdata key")
	if err != nil {
		t.Fatal(err)
	}
	return pub, read("sshsig-message.txt"), read("sshsig-sha512.sig"), read("sshsig-sha256.sig")
}

// TestParseArmoredSSHKeygen checks a signature made by `ssh-keygen -Y sign`.
func TestParseArmoredSSHKeygen(t *testing.T) {
	wantPub, msg, armored, armored256 := readTestdata(t)
	pub, ns, sig, err := ParseArmored(armored)
	if err != nil {
		t.Fatal(err)
	}
	if ns != "statement.v0@securejingle.org" { // the fixture was signed under the v0 namespace
		t.Errorf("namespace %q", ns)
	}
	if !pub.Equal(wantPub) {
		t.Error("public key differs from sshsig-key.pub")
	}
	if err := Verify(pub, ns, msg, sig); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(pub, NamespaceBundle, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify under other namespace: %v", err)
	}
	// Armor writes exactly what ssh-keygen wrote.
	if got := Armor(pub, ns, sig); !bytes.Equal(got, armored) {
		t.Fatalf("Armor differs from ssh-keygen:\n%s\nwant\n%s", got, armored)
	}

	if _, _, _, err := ParseArmored(armored256); !errors.Is(err, ErrUnsupportedSignature) {
		t.Fatalf("sha256 signature: %v, want ErrUnsupportedSignature", err)
	}
}

func TestArmorRoundTrip(t *testing.T) {
	s, err := GenerateMemorySigner()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("identity statement")
	sig, err := s.Sign(NamespaceStatement, msg)
	if err != nil {
		t.Fatal(err)
	}
	a := Armor(s.PublicKey(), NamespaceStatement, sig)
	pub, ns, sig2, err := ParseArmored(a)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(s.PublicKey()) || ns != NamespaceStatement || !bytes.Equal(sig, sig2) {
		t.Fatal("round trip changed the values")
	}
	if err := Verify(pub, ns, msg, sig2); err != nil {
		t.Fatal(err)
	}

	// Other line widths and CRLF endings are accepted.
	blob := armorBlob(t, a)
	for _, v := range []string{
		armorWith(blob, 64, "\n", true),
		armorWith(blob, 76, "\r\n", true),
		armorWith(blob, 1000, "\n", false),
	} {
		if _, _, _, err := ParseArmored([]byte(v)); err != nil {
			t.Errorf("rejected variant: %v\n%s", err, v)
		}
	}
}

// armorBlob returns the binary SSHSIG blob inside an armored signature.
func armorBlob(t *testing.T, a []byte) []byte {
	t.Helper()
	s := strings.TrimSpace(string(a))
	s = strings.TrimPrefix(s, armorBegin)
	s = strings.TrimSuffix(s, armorEnd)
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func armorWith(blob []byte, width int, eol string, final bool) string {
	b64 := base64.StdEncoding.EncodeToString(blob)
	var sb strings.Builder
	sb.WriteString(armorBegin + eol)
	for len(b64) > width {
		sb.WriteString(b64[:width] + eol)
		b64 = b64[width:]
	}
	sb.WriteString(b64 + eol + armorEnd)
	if final {
		sb.WriteString(eol)
	}
	return sb.String()
}

// sshsigBlob builds an SSHSIG blob field by field, for malformed variants.
type sshsigFields struct {
	magic                           string
	version                         uint32
	keyType                         string
	key                             []byte
	namespace, reserved, hashAlg    string
	sigType                         string
	sig                             []byte
	pubTrailer, sigTrailer, trailer []byte
}

func (f sshsigFields) blob() []byte {
	var pub []byte
	pub = appendString(pub, []byte(f.keyType))
	pub = appendString(pub, f.key)
	pub = append(pub, f.pubTrailer...)
	var sig []byte
	sig = appendString(sig, []byte(f.sigType))
	sig = appendString(sig, f.sig)
	sig = append(sig, f.sigTrailer...)
	var b []byte
	b = append(b, f.magic...)
	b = binary.BigEndian.AppendUint32(b, f.version)
	b = appendString(b, pub)
	b = appendString(b, []byte(f.namespace))
	b = appendString(b, []byte(f.reserved))
	b = appendString(b, []byte(f.hashAlg))
	b = appendString(b, sig)
	return append(b, f.trailer...)
}

func TestParseArmoredRejects(t *testing.T) {
	good := sshsigFields{
		magic: "SSHSIG", version: 1, keyType: "ssh-ed25519", key: make([]byte, 32),
		namespace: "file", hashAlg: "sha512", sigType: "ssh-ed25519", sig: make([]byte, 64),
	}
	if _, _, _, err := ParseArmored([]byte(armorWith(good.blob(), 70, "\n", true))); err != nil {
		t.Fatalf("baseline rejected: %v", err)
	}
	malformed := map[string]func(*sshsigFields){
		"bad magic":         func(f *sshsigFields) { f.magic = "SSHSIH" },
		"short key":         func(f *sshsigFields) { f.key = f.key[:31] },
		"long key":          func(f *sshsigFields) { f.key = make([]byte, 33) },
		"short sig":         func(f *sshsigFields) { f.sig = f.sig[:63] },
		"long sig":          func(f *sshsigFields) { f.sig = make([]byte, 65) },
		"empty namespace":   func(f *sshsigFields) { f.namespace = "" },
		"pub trailing data": func(f *sshsigFields) { f.pubTrailer = []byte{0} },
		"sig trailing data": func(f *sshsigFields) { f.sigTrailer = []byte{0} },
		"trailing data":     func(f *sshsigFields) { f.trailer = []byte{0, 0, 0, 0} },
	}
	unsupported := map[string]func(*sshsigFields){
		"version 2":   func(f *sshsigFields) { f.version = 2 },
		"version 0":   func(f *sshsigFields) { f.version = 0 },
		"rsa key":     func(f *sshsigFields) { f.keyType = "ssh-rsa" },
		"rsa sig":     func(f *sshsigFields) { f.sigType = "rsa-sha2-512" },
		"sha256":      func(f *sshsigFields) { f.hashAlg = "sha256" },
		"SHA512":      func(f *sshsigFields) { f.hashAlg = "SHA512" },
		"reserved":    func(f *sshsigFields) { f.reserved = "x" },
		"sk-ed25519":  func(f *sshsigFields) { f.keyType = "sk-ssh-ed25519@openssh.com" },
		"cert key":    func(f *sshsigFields) { f.keyType = "ssh-ed25519-cert-v01@openssh.com" },
		"no hash alg": func(f *sshsigFields) { f.hashAlg = "" },
	}
	for want, cases := range map[error]map[string]func(*sshsigFields){
		ErrMalformedSignature: malformed, ErrUnsupportedSignature: unsupported,
	} {
		for name, mutate := range cases {
			f := good
			mutate(&f)
			_, _, _, err := ParseArmored([]byte(armorWith(f.blob(), 70, "\n", true)))
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", name, err, want)
			}
		}
	}

	// Truncations of the blob at every length are malformed.
	b := good.blob()
	for n := 0; n < len(b); n++ {
		_, _, _, err := ParseArmored([]byte(armorWith(b[:n], 70, "\n", true)))
		if !errors.Is(err, ErrMalformedSignature) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}

	// Armor-level damage.
	a := armorWith(b, 70, "\n", true)
	b64 := base64.StdEncoding.EncodeToString(b)
	armorCases := map[string]string{
		"empty":              "",
		"no begin":           strings.TrimPrefix(a, armorBegin+"\n"),
		"no end":             strings.TrimSuffix(a, armorEnd+"\n"),
		"lower-case begin":   strings.Replace(a, "BEGIN", "begin", 1),
		"other type":         strings.Replace(a, "SSH SIGNATURE-----\n", "PGP SIGNATURE-----\n", 1),
		"leading text":       "hello\n" + a,
		"leading newline":    "\n" + a,
		"trailing text":      a + "hello\n",
		"two final newlines": a + "\n",
		"blank line":         strings.Replace(a, "\n", "\n\n", 1),
		"space in base64":    strings.Replace(a, b64[:10], b64[:5]+" "+b64[5:10], 1),
		"tab in base64":      strings.Replace(a, b64[:10], b64[:5]+"\t"+b64[5:10], 1),
		"invalid base64":     strings.Replace(a, b64[:4], "!!!!", 1),
		"header line":        strings.Replace(a, armorBegin+"\n", armorBegin+"\nVersion: 1\n", 1),
		"two signatures":     a + a,
		"non-canonical pad":  nonCanonical(t, good),
		"missing padding":    strings.Replace(armorWith(padded(good), 1000, "\n", true), "=\n", "\n", 1),
	}
	for name, v := range armorCases {
		if _, _, _, err := ParseArmored([]byte(v)); !errors.Is(err, ErrMalformedSignature) {
			t.Errorf("%s: %v, want ErrMalformedSignature", name, err)
		}
	}
}

// padded returns the blob of f with its namespace lengthened until base64
// needs two padding characters.
func padded(f sshsigFields) []byte {
	for len(f.blob())%3 != 1 {
		f.namespace += "x"
	}
	return f.blob()
}

// nonCanonical armors a valid blob with the unused bits before its base64
// padding set: a lax decoder accepts it, the strict one must not.
func nonCanonical(t *testing.T, f sshsigFields) string {
	b := padded(f)
	r := []byte(base64.StdEncoding.EncodeToString(b)) // ends "xY==", Y's low 4 bits zero
	i := len(r) - 3
	r[i] = base64StdAlphabet[strings.IndexByte(base64StdAlphabet, r[i])|1]
	lax, err := base64.StdEncoding.DecodeString(string(r))
	if err != nil || !bytes.Equal(lax, b) {
		t.Fatalf("test construction: lax decoding failed: %v", err)
	}
	return armorBegin + "\n" + string(r) + "\n" + armorEnd + "\n"
}

const base64StdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func TestArmorPanicsOnBadArguments(t *testing.T) {
	pub := make(ed25519.PublicKey, 32)
	sig := make([]byte, 64)
	for name, f := range map[string]func(){
		"short key":       func() { Armor(pub[:31], "n", sig) },
		"short sig":       func() { Armor(pub, "n", sig[:63]) },
		"empty namespace": func() { Armor(pub, "", sig) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// FuzzParseArmored checks that ParseArmored never panics, and that whatever
// it accepts survives Armor and ParseArmored again unchanged, byte for byte
// when the input was in the canonical 70-column form.
func FuzzParseArmored(f *testing.F) {
	_, _, armored, armored256 := readTestdata(f)
	f.Add(armored)
	f.Add(armored256)
	f.Add(bytes.ReplaceAll(armored, []byte("\n"), []byte("\r\n")))
	f.Add([]byte(armorBegin + "\n" + armorEnd + "\n"))
	for _, name := range []string{"sshsig-rsa.sig", "sshsig-ecdsa.sig"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, ns, sig, err := ParseArmored(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedSignature) && !errors.Is(err, ErrUnsupportedSignature) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || ns == "" {
			t.Fatalf("accepted bad lengths: %d %d %q", len(pub), len(sig), ns)
		}
		a := Armor(pub, ns, sig)
		pub2, ns2, sig2, err := ParseArmored(a)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !pub.Equal(pub2) || ns != ns2 || !bytes.Equal(sig, sig2) {
			t.Fatal("round trip changed values")
		}
		if isCanonicalForm(b) && !bytes.Equal(a, b) {
			t.Fatalf("canonical input not reproduced:\n%q\n%q", b, a)
		}
	})
}

// isCanonicalForm reports whether b uses "\n" line ends, 70-column base64
// lines and one final newline, as Armor writes.
func isCanonicalForm(b []byte) bool {
	if bytes.Contains(b, []byte("\r")) || !bytes.HasSuffix(b, []byte("\n")) {
		return false
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	body := lines[1 : len(lines)-1]
	for i, l := range body {
		if len(l) > armorLineWidth || i < len(body)-1 && len(l) != armorLineWidth {
			return false
		}
	}
	return true
}
