package attest

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestSelfVerifier(t *testing.T) {
	st := testStatement()
	a := mustSelf(t, testKey(), st)
	if len(a.Data) != 64 || a.Type != TypeSelf {
		t.Fatalf("bad self attestation %+v", a)
	}
	if res := (SelfVerifier{}).Verify(st, a.Data); res.Status != Verified {
		t.Errorf("good: %v", res)
	}
	bad := append([]byte(nil), a.Data...)
	bad[10] ^= 0x20
	if res := (SelfVerifier{}).Verify(st, bad); res.Status != Failed {
		t.Errorf("flipped: %v", res)
	}
	if res := (SelfVerifier{}).Verify(st, a.Data[:63]); res.Status != Failed {
		t.Errorf("short: %v", res)
	}
	// Signed by another key.
	seed := testSeed
	seed[0] ^= 1
	otherKey := keySigner{priv: newKeyFromSeed(seed)}
	if _, err := SignSelf(otherKey, st); err == nil {
		t.Error("SignSelf with a key that is not the statement key succeeded")
	}
	otherSt := st
	otherSt.Key = otherKey.PublicKey()
	wrong := mustSelf(t, otherKey.priv, otherSt)
	if res := (SelfVerifier{}).Verify(st, wrong.Data); res.Status != Failed {
		t.Errorf("wrong key: %v", res)
	}
	// A different JID invalidates it.
	st2 := st
	st2.JID = "alice@example.net"
	if res := (SelfVerifier{}).Verify(st2, a.Data); res.Status != Failed {
		t.Errorf("other JID: %v", res)
	}
}

func TestRegistryKeepsUnknown(t *testing.T) {
	st := testStatement()
	armored := "-----BEGIN SSH SIGNATURE-----\r\nU1NIU0lH\r\n-----END SSH SIGNATURE-----\r\n"
	binary := []byte{0x30, 0x82, 0x01, 0x00, 0x1b, '[', '2', 'J', 0xff}
	atts := []Attestation{
		mustSelf(t, testKey(), st),
		{Type: "sshsig", Data: []byte(armored)},
		{Type: "future-thing", Data: binary},
		{Type: "Bad Type\x1b", Data: []byte("x")},
		{Type: TypeOpenPGP, Data: []byte("not armored")},
	}
	res := NewRegistry(SelfVerifier{}).Verify(st, atts)
	if len(res) != len(atts) {
		t.Fatalf("got %d results for %d attestations", len(res), len(atts))
	}
	if res[0].Status != Verified {
		t.Errorf("self: %v", res[0])
	}
	if res[1].Status != Unsupported || res[1].Type != "sshsig" ||
		res[1].Detail != strings.ReplaceAll(armored, "\r\n", "\n") {
		t.Errorf("printable unknown: %+v", res[1])
	}
	if res[2].Status != Unsupported || !strings.Contains(res[2].Detail, "BEGIN "+pemTypeUnknown) ||
		!strings.Contains(res[2].Detail, "Mechanism: future-thing") {
		t.Errorf("binary unknown: %+v", res[2])
	}
	block, _ := pem.Decode([]byte(res[2].Detail))
	if block == nil || !bytes.Equal(block.Bytes, binary) {
		t.Errorf("binary rendering does not decode back to the payload")
	}
	if res[3].Status != Failed || strings.ContainsRune(res[3].Type, 0x1b) {
		t.Errorf("malformed type: %+v", res[3])
	}
	// openpgp is unknown to this registry: shown, not verified.
	if res[4].Status != Unsupported || res[4].Detail != "not armored\n" {
		t.Errorf("unregistered openpgp: %+v", res[4])
	}
	for _, r := range res {
		if s := r.String(); strings.ContainsRune(s, 0x1b) || !strings.HasPrefix(s, r.Type+": ") {
			t.Errorf("String() = %q", s)
		}
	}
	// The zero registry still renders everything.
	var zero Registry
	if r := zero.Verify(st, atts[:1]); r[0].Status != Unsupported {
		t.Errorf("zero registry: %v", r[0])
	}
}

func TestRegistryLimitsAndInvalidStatement(t *testing.T) {
	st := testStatement()
	reg := NewRegistry(SelfVerifier{})
	big := Attestation{Type: "huge", Data: make([]byte, MaxAttestationSize+1)}
	if r := reg.Verify(st, []Attestation{big}); r[0].Status != Failed {
		t.Errorf("oversized: %v", r[0])
	}
	bad := st
	bad.JID = "x@y/z"
	if r := reg.Verify(bad, []Attestation{mustSelf(t, testKey(), st)}); r[0].Status != Failed {
		t.Errorf("invalid statement: %v", r[0])
	}
}

func TestNewRegistryPanics(t *testing.T) {
	for name, vs := range map[string][]Verifier{
		"duplicate": {SelfVerifier{}, SelfVerifier{}},
		"bad type":  {badTypeVerifier{}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			NewRegistry(vs...)
		})
	}
}

type badTypeVerifier struct{}

func (badTypeVerifier) Type() string                    { return "Self" }
func (badTypeVerifier) Verify(Statement, []byte) Result { return Result{} }

func TestZeroStatusIsFailed(t *testing.T) {
	var r Result
	if r.Status != Failed || r.Status.String() != "failed" {
		t.Errorf("zero status %v", r.Status)
	}
	if got := (Result{Type: "self", Status: Verified, Signer: "me"}).String(); got != "self: verified by me" {
		t.Errorf("String() = %q", got)
	}
}

func TestRenderSanitizes(t *testing.T) {
	for _, data := range [][]byte{[]byte("hi\x1b[31m"), []byte("a\u202eb"), []byte("a\rb")} {
		out := Render(Attestation{Type: "x", Data: data})
		if !strings.HasPrefix(out, "-----BEGIN "+pemTypeUnknown) {
			t.Errorf("%q rendered as text: %q", data, out)
		}
	}
	if got := sanitize("CN=\x1b[2Jevil\u202e"); strings.ContainsAny(got, "\x1b\u202e") {
		t.Errorf("sanitize left controls: %q", got)
	}
}

// newPGPEntity makes an in-process OpenPGP key for tests that need no gpg.
func newPGPEntity(t testing.TB) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("Bob", "", "bob@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armoredPublic(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

func TestOpenPGPInProcess(t *testing.T) {
	st := testStatement()
	st.JID = "bob@example.org" // the JID of the key's user id
	e := newPGPEntity(t)
	v, err := NewOpenPGPVerifier(armoredPublic(t, e))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(h crypto.Hash) []byte {
		var b bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&b, e, bytes.NewReader(st.Bytes()), &packet.Config{DefaultHash: h}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	good := sign(crypto.SHA256)
	res := v.Verify(st, good)
	if res.Status != Verified || !strings.Contains(res.Signer, "bob@example.org") || res.Detail != "" ||
		!res.NamesJID || len(res.Names) != 1 || res.Names[0] != "bob@example.org" {
		t.Errorf("good: %+v", res)
	}
	// The same signature for alice's statement fails (it is over bob's).
	if res := v.Verify(testStatement(), good); res.Status != Failed {
		t.Errorf("good signature over another statement: %v", res)
	}
	// go-crypto refuses to make SHA-1 signatures; the gpg integration
	// test checks that they are refused.
	if res := v.Verify(st, sign(crypto.SHA512)); res.Status != Verified {
		t.Errorf("SHA-512: %v", res)
	}
	var nilV *OpenPGPVerifier
	if res := nilV.Verify(st, good); res.Status != Untrusted {
		t.Errorf("nil verifier: %v", res)
	}
	twice := append(append([]byte(nil), good...), good...)
	for name, data := range map[string][]byte{
		"empty":     nil,
		"two":       twice,
		"binary":    []byte{0x88, 0x00},
		"bad armor": []byte(pgpArmorBegin + "\n\n!!!!\n" + pgpArmorEnd + "\n"),
		"pubkey":    armoredPublic(t, e),
	} {
		if res := v.Verify(st, data); res.Status != Failed {
			t.Errorf("%s: %v", name, res)
		}
	}

	var priv bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := NewOpenPGPVerifier(priv.Bytes()); err == nil {
		t.Error("secret key accepted as trust anchor")
	}
	if _, err := NewOpenPGPVerifier([]byte("junk")); err == nil {
		t.Error("junk accepted as key")
	}
}

func TestX509Garbage(t *testing.T) {
	st := testStatement()
	v := NewX509Verifier(nil)
	sig := vector(t, "cms-ec.der")
	for name, data := range map[string][]byte{
		"empty":        nil,
		"junk":         []byte("junk"),
		"PEM junk":     []byte("-----BEGIN CMS-----\nAAAA\n-----END CMS-----\n"),
		"PEM cert":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sig}),
		"trailing":     append(append([]byte(nil), sig...), 0),
		"two PEM":      append(pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: sig}), pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: sig})...),
		"base64 plain": []byte(base64.StdEncoding.EncodeToString(sig)),
	} {
		if res := v.Verify(st, data); res.Status != Failed {
			t.Errorf("%s: %v", name, res)
		}
	}
	if res := v.Verify(st, pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: sig})); res.Status != Untrusted {
		t.Errorf("PKCS7 PEM with nil roots: %v", res)
	}
}

// TestNoBytesEqual enforces the house rule that this package compares keys,
// signatures and fingerprints only in constant time.
func TestNoBytesEqual(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("bytes.Equal(")) {
			t.Errorf("%s uses bytes.Equal; use crypto/subtle", f)
		}
	}
}
