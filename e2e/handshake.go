package e2e

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/securejingle/securejingle/e2e/identity"
)

// Handshake errors callers branch on.
var (
	// ErrDowngrade is returned when a first message chose a suite other
	// than the best mutual one.
	ErrDowngrade = errors.New("e2e: suite downgrade")
	// ErrHandshake is returned when a handshake message fails
	// authentication (bad signature, wrong transcript, unknown prekey).
	ErrHandshake = errors.New("e2e: handshake authentication failed")
)

// party describes one side of a handshake as both sides see it.
type party struct {
	jid        string
	device     uint32
	identity   ed25519.PublicKey // device key
	account    ed25519.PublicKey // account identity key
	bundleHash [32]byte
	suites     []SuiteID
}

func (p *party) append(b *builder) {
	b.str16(p.jid)
	b.u32(p.device)
	b.raw(p.identity)
	b.raw(p.account)
	b.raw(p.bundleHash[:])
	appendSuites(b, p.suites)
}

// initBlock is the handshake part of a first message (entry kind 2).
type initBlock struct {
	suite        SuiteID
	initBundle   [32]byte
	respBundle   [32]byte
	prekeyID     uint32
	enc          []byte // HPKE encapsulation to the prekey
	ephemeral    []byte // initiator's ephemeral HPKE public key
	inlineBundle []byte // optional: the initiator's bundle, for strangers
}

func (ib *initBlock) marshal(b *builder) {
	b.u16(uint16(ib.suite))
	b.raw(ib.initBundle[:])
	b.raw(ib.respBundle[:])
	b.u32(ib.prekeyID)
	b.vbytes(ib.enc)
	b.vbytes(ib.ephemeral)
	b.vbytes(ib.inlineBundle)
}

func readInitBlock(r *reader) *initBlock {
	ib := &initBlock{}
	ib.suite = SuiteID(r.u16("suite"))
	copy(ib.initBundle[:], r.fixed(32, "initiator bundle hash"))
	copy(ib.respBundle[:], r.fixed(32, "responder bundle hash"))
	ib.prekeyID = r.u32("prekey id")
	sz, exact := suiteSizes(ib.suite) // limits.go
	ib.enc = readKEMField(r, "encapsulation", sz.enc, exact)
	ib.ephemeral = readKEMField(r, "ephemeral key", sz.publicKey, exact)
	ib.inlineBundle = r.vbytes("inline bundle", MaxBundleSize)
	return ib
}

// respBlock is the handshake part of the responder's first chain (entry
// kind 3).
type respBlock struct {
	enc       []byte // HPKE encapsulation to the initiator's ephemeral key
	signature []byte
}

func (rb *respBlock) marshal(b *builder) {
	b.vbytes(rb.enc)
	b.raw(rb.signature)
}

func readRespBlock(r *reader) *respBlock {
	return &respBlock{enc: r.vbytes("encapsulation", maxKnownEnc), signature: r.fixed(identity.SignatureSize, "responder signature")}
}

func hashOf(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		var b builder
		b.vbytes(p)
		h.Write(b)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// th0 is the transcript before any key material: prologue, both parties
// (identity, device, bundle hash, suite list), the chosen suite and prekey.
func th0(suite SuiteID, ini, res *party, prekeyID uint32) [32]byte {
	var b builder
	b.raw([]byte(labelPrologue))
	b.u16(uint16(suite))
	ini.append(&b)
	res.append(&b)
	b.u32(prekeyID)
	return hashOf(b)
}

func th1(t0 [32]byte, enc, ephemeral []byte, ratchetPub [32]byte) [32]byte {
	return hashOf(t0[:], enc, ephemeral, ratchetPub[:])
}

func th2(t1 [32]byte, enc []byte, ratchetPub [32]byte) [32]byte {
	return hashOf(t1[:], enc, ratchetPub[:])
}

func hpkeInfo(t [32]byte) []byte { return append([]byte(labelHPKEInfo), t[:]...) }

func export(ctx interface {
	Export(string, int) ([]byte, error)
}, label string) ([]byte, error) {
	return ctx.Export(label, 32)
}

func deriveKey(secret []byte, salt [32]byte, label string) [32]byte {
	out, err := hkdf.Key(sha256.New, secret, salt[:], label, 32)
	if err != nil {
		panic(err)
	}
	var k [32]byte
	copy(k[:], out)
	return k
}

// initiatorState is what the initiator keeps until the response arrives.
// It holds k1 only through rootSeed, a one-way derivation, so reading the
// pending state does not reveal chain 0 and the messages already sent.
type initiatorState struct {
	th1       [32]byte
	rootSeed  [32]byte // HKDF(k1, TH1, labelRootSeed)
	ephemeral []byte   // HPKE private key bytes
}

// initiate builds the first message's handshake block and the initiator's
// ratchet (chain 0, keyed only from the prekey). Nothing is signed here:
// each first message is signed whole by [signFirst], so that holding the
// responder's prekey is not enough to forge one (key-compromise
// impersonation, docs/protocol.md §10.7).
func initiate(su *Suite, self, peer *party, pk *Prekey, inline []byte) (*initBlock, *initiatorState, *ratchetState, hpke.PrivateKey, error) {
	kem, kdf, aead := su.hpke()
	pub, err := kem.NewPublicKey(pk.Public)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("%w: bad prekey: %v", ErrBadBundle, err)
	}
	t0 := th0(su.ID, self, peer, pk.ID)
	enc, sender, err := hpke.NewSender(pub, kdf, aead, hpkeInfo(t0))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("e2e: hpke: %w", err)
	}
	k1, err := export(sender, labelK1)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	eph, err := kem.GenerateKey()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ephPriv, err := eph.Bytes()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ephPub := eph.PublicKey().Bytes()
	rs := &ratchetState{}
	rs.dhsPriv, rs.dhsPub = newDH()
	t1 := th1(t0, enc, ephPub, rs.dhsPub)
	st := &initiatorState{th1: t1, ephemeral: ephPriv, rootSeed: deriveKey(k1, t1, labelRootSeed)}
	rs.cks = deriveKey(k1, t1, labelChain0)
	clear(k1)
	ib := &initBlock{
		suite: su.ID, initBundle: self.bundleHash, respBundle: peer.bundleHash,
		prekeyID: pk.ID, enc: enc, ephemeral: ephPub, inlineBundle: inline,
	}
	return ib, st, rs, eph, nil
}

// firstSigned is what the initiator's device key signs for one first
// message: the transcript TH1 and a hash of the entry's associated data
// (which holds the stanza context, both devices, the init block and the
// header) and ciphertext.
func firstSigned(t1 [32]byte, ad, ct []byte) []byte {
	h := hashOf(ad, ct)
	return append(append([]byte(labelSigInit), t1[:]...), h[:]...)
}

// signFirst signs one first message with the initiator's device key.
func signFirst(dev identity.Signer, t1 [32]byte, ad, ct []byte) ([]byte, error) {
	sig, err := dev.Sign(identity.NamespaceHandshake, firstSigned(t1, ad, ct))
	if err != nil {
		return nil, fmt.Errorf("e2e: signing first message: %w", err)
	}
	return sig, nil
}

// verifyFirst checks a first message's signature under the initiator's
// device key.
func verifyFirst(dk ed25519.PublicKey, t1 [32]byte, ad, ct, sig []byte) error {
	if identity.Verify(dk, identity.NamespaceHandshake, firstSigned(t1, ad, ct), sig) != nil {
		return fmt.Errorf("%w: bad initiator signature", ErrHandshake)
	}
	return nil
}

// respond processes a first message's handshake block for the responder:
// downgrade check, decapsulation to our prekey, and the receiving chain 0
// of the initiator (keyed from the prekey only). ini must describe the
// initiator as the responder knows it: keys and suite list from its
// verified bundle, whose hash the block names (so the initiator's offer is
// covered by the signature checked with [verifyFirst]); ratchetPub is the
// initiator's ratchet key from the message header; prekey is the
// responder's private prekey named by the block. It returns the ratchet
// (receiving only), TH1 (for verifyFirst) and what [responder.finish]
// needs: the caller finishes, encapsulating to the initiator and deriving
// our chains, and signs TH2 with [signResp] only after the first message
// authenticated, so a forgery costs neither an encapsulation nor a
// signature.
func respond(ib *initBlock, self, ini *party, ratchetPub [32]byte, prekey hpke.PrivateKey) (*ratchetState, [32]byte, *responder, error) {
	var zero [32]byte
	su := LookupSuite(ib.suite)
	if su == nil {
		return nil, zero, nil, fmt.Errorf("%w: unknown suite %v", ErrHandshake, ib.suite)
	}
	if best, ok := bestMutual(self.suites, ini.suites); !ok || best != ib.suite {
		return nil, zero, nil, fmt.Errorf("%w: chose %v, best mutual is %v", ErrDowngrade, ib.suite, best)
	}
	if prekey.KEM().ID() != su.KEM {
		return nil, zero, nil, fmt.Errorf("%w: prekey does not match suite", ErrHandshake)
	}
	t0 := th0(su.ID, ini, self, ib.prekeyID)
	t1 := th1(t0, ib.enc, ib.ephemeral, ratchetPub)
	_, kdf, aead := su.hpke()
	recip, err := hpke.NewRecipient(ib.enc, prekey, kdf, aead, hpkeInfo(t0))
	if err != nil {
		return nil, zero, nil, fmt.Errorf("%w: decapsulation failed", ErrHandshake)
	}
	k1, err := export(recip, labelK1)
	if err != nil {
		return nil, zero, nil, err
	}
	rs := &ratchetState{}
	rs.haveRecv, rs.dhr, rs.rIdx = true, ratchetPub, 0
	rs.ckr = deriveKey(k1, t1, labelChain0)
	fin := &responder{su: su, t1: t1, seed: deriveKey(k1, t1, labelRootSeed), ephemeral: ib.ephemeral, ratchetPub: ratchetPub}
	clear(k1)
	return rs, t1, fin, nil
}

// responder is the responder's half-done handshake between the first
// message's authentication and the response.
type responder struct {
	su         *Suite
	t1         [32]byte
	seed       [32]byte // root seed, K1's share of the root secret
	ephemeral  []byte   // initiator's ephemeral HPKE public key
	ratchetPub [32]byte // initiator's ratchet key
}

// finish encapsulates to the initiator's ephemeral key and derives the
// root and our first sending chain into rs. It returns the (unsigned)
// response block and TH2.
func (f *responder) finish(rs *ratchetState) (*respBlock, [32]byte, error) {
	var zero [32]byte
	defer clear(f.seed[:])
	kem, kdf, aead := f.su.hpke()
	ephPub, err := kem.NewPublicKey(f.ephemeral)
	if err != nil {
		return nil, zero, fmt.Errorf("%w: bad ephemeral key", ErrHandshake)
	}
	enc2, sender, err := hpke.NewSender(ephPub, kdf, aead, hpkeInfo(f.t1))
	if err != nil {
		return nil, zero, fmt.Errorf("%w: encapsulation failed", ErrHandshake)
	}
	k2, err := export(sender, labelK2)
	if err != nil {
		return nil, zero, err
	}
	rs.dhsPriv, rs.dhsPub = newDH()
	t2 := th2(f.t1, enc2, rs.dhsPub)
	// Root key from both encapsulations, then our first chain pairs our
	// ratchet key with the initiator's.
	root := deriveKey(append(f.seed[:], k2...), t2, labelRoot)
	clear(k2)
	out, err := dh(rs.dhsPriv, f.ratchetPub)
	if err != nil {
		return nil, zero, fmt.Errorf("%w: bad ratchet key", ErrHandshake)
	}
	rs.rk, rs.cks = kdfRK(root, out)
	rs.sIdx = 0
	return &respBlock{enc: enc2}, t2, nil
}

// signResp signs the full transcript TH2 with the responder's device key.
func signResp(dev identity.Signer, rb *respBlock, t2 [32]byte) error {
	sig, err := dev.Sign(identity.NamespaceHandshake, append([]byte(labelSigResp), t2[:]...))
	if err != nil {
		return fmt.Errorf("e2e: signing handshake: %w", err)
	}
	rb.signature = sig
	return nil
}

// complete processes the response block on the initiator side: it checks
// the responder's signature over the full transcript and moves the ratchet
// to the responder's first chain. ratchetPub is the responder's ratchet key
// from the message header. It mutates rs.
func complete(su *Suite, st *initiatorState, eph hpke.PrivateKey, rb *respBlock, peer ed25519.PublicKey, ratchetPub [32]byte, rs *ratchetState) ([32]byte, error) {
	var zero [32]byte
	t2 := th2(st.th1, rb.enc, ratchetPub)
	if identity.Verify(peer, identity.NamespaceHandshake, append([]byte(labelSigResp), t2[:]...), rb.signature) != nil {
		return zero, fmt.Errorf("%w: bad responder signature", ErrHandshake)
	}
	_, kdf, aead := su.hpke()
	recip, err := hpke.NewRecipient(rb.enc, eph, kdf, aead, hpkeInfo(st.th1))
	if err != nil {
		return zero, fmt.Errorf("%w: decapsulation failed", ErrHandshake)
	}
	k2, err := export(recip, labelK2)
	if err != nil {
		return zero, err
	}
	root := deriveKey(append(st.rootSeed[:], k2...), t2, labelRoot)
	clear(k2)
	out, err := dh(rs.dhsPriv, ratchetPub)
	if err != nil {
		return zero, fmt.Errorf("%w: bad ratchet key", ErrHandshake)
	}
	rs.rk, rs.ckr = kdfRK(root, out)
	rs.haveRecv, rs.dhr, rs.rIdx, rs.nr = true, ratchetPub, 0, 0
	rs.canRotate, rs.mustRot = true, true
	return t2, nil
}
