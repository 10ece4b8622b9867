package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
)

// randomizedSigner makes valid Ed25519 signatures with a random nonce, as a
// hedged or faulty implementation would: each is valid, none repeats.
type randomizedSigner struct {
	a   *big.Int // the secret scalar
	pub ed25519.PublicKey
}

var ed25519Order, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func clampScalar(h []byte) *big.Int {
	s := slices.Clone(h[:32])
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	slices.Reverse(s)
	return new(big.Int).SetBytes(s)
}

func littleEndian(n *big.Int, size int) []byte {
	b := n.FillBytes(make([]byte, size))
	slices.Reverse(b)
	return b
}

func newRandomizedSigner() *randomizedSigner {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	h := sha512.Sum512(seed)
	return &randomizedSigner{a: clampScalar(h[:]), pub: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)}
}

func (s *randomizedSigner) PublicKey() ed25519.PublicKey { return s.pub }

func (s *randomizedSigner) Sign(namespace string, message []byte) ([]byte, error) {
	// R = r·B is the public key of a random seed whose scalar is r.
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	h := sha512.Sum512(seed)
	r := clampScalar(h[:])
	R := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	d := sha512.New()
	d.Write(R)
	d.Write(s.pub)
	d.Write(SignedData(namespace, message))
	kb := d.Sum(nil)
	slices.Reverse(kb)
	k := new(big.Int).SetBytes(kb)
	S := new(big.Int).Mul(k, s.a)
	S.Add(S, r).Mod(S, ed25519Order)
	return append(slices.Clone(R), littleEndian(S, 32)...), nil
}

// funcSigner is a Signer whose Sign is a function.
type funcSigner struct {
	Signer
	sign func(namespace string, message []byte) ([]byte, error)
}

func (s funcSigner) Sign(namespace string, message []byte) ([]byte, error) {
	return s.sign(namespace, message)
}

func seededSigner(b byte) Signer {
	return NewMemorySigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)))
}

// TestStoreKeyKnownAnswer pins the derivation: a change would lock every
// existing store.
func TestStoreKeyKnownAnswer(t *testing.T) {
	salt := bytes.Repeat([]byte{0x5a}, 32)
	k, err := StoreKey(seededSigner(1), "alice@example.org", salt)
	if err != nil {
		t.Fatal(err)
	}
	const want = "a94cfe62ffe23d6f9b533e63f15054703b6f43ecc74222716886b156701d769d"
	if got := hex.EncodeToString(k[:]); got != want {
		t.Fatalf("store key %s, want %s", got, want)
	}
}

func TestStoreKeyDeterministicAndSeparated(t *testing.T) {
	s := seededSigner(1)
	salt := bytes.Repeat([]byte{1}, 32)
	k1, err := NewStoreKey(s, "alice@example.org", salt)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := StoreKey(s, "alice@example.org", salt)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Fatal("NewStoreKey and StoreKey differ")
	}
	f := StoreKeyFunc(s, "alice@example.org")
	for _, create := range []bool{true, false} {
		if k, err := f(salt, create); err != nil || k != k1 {
			t.Fatalf("StoreKeyFunc(create=%v): %v", create, err)
		}
	}
	others := map[string]func() ([StoreKeySize]byte, error){
		"other salt": func() ([StoreKeySize]byte, error) {
			return StoreKey(s, "alice@example.org", bytes.Repeat([]byte{2}, 32))
		},
		"other JID": func() ([StoreKeySize]byte, error) { return StoreKey(s, "bob@example.org", salt) },
		"other key": func() ([StoreKeySize]byte, error) { return StoreKey(seededSigner(2), "alice@example.org", salt) },
	}
	for name, f := range others {
		k, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if k == k1 {
			t.Errorf("%s gives the same store key", name)
		}
	}
	// The signature is made under its own namespace and nothing else
	// accepts it: it does not verify as a signature of any other purpose.
	m, _ := storeKeyChallenge("alice@example.org", salt)
	sig, _ := s.Sign(NamespaceStoreKey, m)
	for _, ns := range []string{NamespaceBundle, NamespacePrekey, NamespacePresence, NamespaceHandshake, NamespaceStatement} {
		if Verify(s.PublicKey(), ns, m, sig) == nil {
			t.Errorf("store-key signature verifies under %s", ns)
		}
	}
}

func TestStoreKeyBadInput(t *testing.T) {
	s := seededSigner(1)
	salt := make([]byte, 32)
	cases := map[string]struct {
		jid  string
		salt []byte
	}{
		"empty JID":  {"", salt},
		"full JID":   {"alice@example.org/laptop", salt},
		"long JID":   {strings.Repeat("a", maxStoreKeyJID+1), salt},
		"short salt": {"alice@example.org", salt[:MinStoreSaltSize-1]},
		"long salt":  {"alice@example.org", make([]byte, MaxStoreSaltSize+1)},
	}
	for name, c := range cases {
		if _, err := StoreKey(s, c.jid, c.salt); !errors.Is(err, errStoreKeyInput) {
			t.Errorf("%s: %v, want errStoreKeyInput", name, err)
		}
	}
}

// TestStoreKeyRefusesNondeterministicSigner checks that a signer whose
// signatures are valid but random is refused when a store is created,
// instead of sealing the store under a key it can never derive again.
func TestStoreKeyRefusesNondeterministicSigner(t *testing.T) {
	s := newRandomizedSigner()
	salt := make([]byte, 32)
	// Its signatures are valid, so only signing twice catches it.
	m, _ := storeKeyChallenge("alice@example.org", salt)
	sig, _ := s.Sign(NamespaceStoreKey, m)
	if err := Verify(s.PublicKey(), NamespaceStoreKey, m, sig); err != nil {
		t.Fatalf("randomized signer makes invalid signatures: %v", err)
	}
	if _, err := NewStoreKey(s, "alice@example.org", salt); !errors.Is(err, ErrNondeterministicSigner) {
		t.Fatalf("NewStoreKey with a randomized signer: %v, want ErrNondeterministicSigner", err)
	}
}

func TestStoreKeySignerFaults(t *testing.T) {
	base := seededSigner(1)
	salt := make([]byte, 32)
	errGone := errors.New("agent gone")
	gone := funcSigner{base, func(string, []byte) ([]byte, error) { return nil, errGone }}
	if _, err := StoreKey(gone, "alice@example.org", salt); !errors.Is(err, errGone) {
		t.Fatalf("failing signer: %v, want the signer's error wrapped", err)
	}
	other := seededSigner(2)
	lying := funcSigner{base, other.Sign} // signs with another key
	if _, err := NewStoreKey(lying, "alice@example.org", salt); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signer with a signature of another key: %v, want ErrBadSignature", err)
	}
	short := funcSigner{base, func(string, []byte) ([]byte, error) { return make([]byte, 10), nil }}
	if _, err := StoreKey(short, "alice@example.org", salt); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signer with a short signature: %v, want ErrBadSignature", err)
	}
}
