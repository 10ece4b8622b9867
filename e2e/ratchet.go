package e2e

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// Ratchet errors callers branch on.
var (
	// ErrReplay is returned for a message whose key was already used or
	// discarded: a duplicate, a replay, or a message older than the window.
	ErrReplay = errors.New("e2e: replayed or duplicate message")
	// ErrTooFarAhead is returned when a message would require deriving more
	// than MaxSkip message keys.
	ErrTooFarAhead = errors.New("e2e: message too far ahead in chain")
	// ErrDecrypt is the single opaque authentication failure.
	ErrDecrypt = errors.New("e2e: message authentication failed")
)

// header is the ratchet header of one message (see docs/protocol.md,
// "Ratchet header"). Short headers name the chain by index; full headers
// also carry the chain's DH public key and the previous chain length.
type header struct {
	idx  uint32 // sender's sending-chain index
	ack  uint32 // number of the receiver's chains the sender has received
	n    uint32 // message number in the chain
	full bool
	pn   uint32   // full only: length of the sender's previous chain
	pub  [32]byte // full only: the chain's X25519 public key
}

const maxCounter = 1<<32 - 1

func (h *header) marshal(b *builder) {
	b.uvarint(uint64(h.idx))
	b.uvarint(uint64(h.ack))
	b.uvarint(uint64(h.n))
	if h.full {
		b.uvarint(uint64(h.pn))
		b.raw(h.pub[:])
	}
}

func readHeader(r *reader, full bool) header {
	h := header{full: full}
	h.idx = uint32(r.uvarint("chain index", maxCounter))
	h.ack = uint32(r.uvarint("ack", maxCounter))
	h.n = uint32(r.uvarint("message number", maxCounter))
	if full {
		h.pn = uint32(r.uvarint("previous chain length", maxCounter))
		copy(h.pub[:], r.fixed(32, "ratchet key"))
	}
	return h
}

type skippedKey struct {
	idx, n uint32
	mk     [32]byte
}

// ratchetState is the double ratchet of one session (Signal specification,
// "The Double Ratchet Algorithm", with the sparse-rotation and
// acknowledgement rules of docs/protocol.md). It is a value: methods that
// may fail work on a copy and the caller commits it only on success.
type ratchetState struct {
	rk [32]byte

	dhsPriv   [32]byte
	dhsPub    [32]byte
	sIdx      uint32 // current sending chain
	cks       [32]byte
	ns, pn    uint32
	sAcked    bool // the peer has received our chain sIdx
	canRotate bool // the peer started a chain after our last rotation
	mustRot   bool // rotate at the next send (our chain has no DH yet)

	haveRecv bool
	dhr      [32]byte
	rIdx     uint32
	ckr      [32]byte
	nr       uint32

	skipped []skippedKey // oldest first

	// last describes the most recent recvKey. It is not persisted.
	last recvInfo
}

// recvInfo is what one recvKey learned about messages that have not
// arrived: the gateway reports the ones that never do (docs/protocol.md,
// "Withheld messages").
type recvInfo struct {
	// skipped is the number of keys of earlier messages this message
	// made us store: messages the sender sent before it that have not
	// arrived (yet).
	skipped int
	// late is set when the key was a stored one: this message arrived
	// after a later one, and fills one earlier gap.
	late bool
}

func (s *ratchetState) clone() *ratchetState {
	c := *s
	c.skipped = append([]skippedKey(nil), s.skipped...)
	return &c
}

func newDH() (priv, pub [32]byte) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	copy(priv[:], k.Bytes())
	copy(pub[:], k.PublicKey().Bytes())
	return
}

// dh is X25519(priv, pub). A low-order public key (all-zero output) is an
// authentication failure.
func dh(priv, pub [32]byte) ([]byte, error) {
	out, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// kdfRK is KDF_RK: HKDF-SHA256 with the root key as salt.
func kdfRK(rk [32]byte, dhOut []byte) (newRK, ck [32]byte) {
	out, err := hkdf.Key(sha256.New, dhOut, rk[:], labelRatchet, 64)
	if err != nil {
		panic(err)
	}
	copy(newRK[:], out[:32])
	copy(ck[:], out[32:])
	clear(out)
	return
}

// kdfCK is KDF_CK: HMAC-SHA256 of the chain key with constants 1 and 2.
func kdfCK(ck [32]byte) (next, mk [32]byte) {
	m := hmac.New(sha256.New, ck[:])
	m.Write(ckMessageInput)
	m.Sum(mk[:0])
	m.Reset()
	m.Write(ckChainInput)
	m.Sum(next[:0])
	return
}

// zeroNonce is the AEAD nonce of every message: each message key is a
// fresh KDF_CK output that encrypts exactly one message, so a constant
// nonce never repeats under one key.
var zeroNonce [12]byte

// sendHeader prepares the next sending message: it rotates the DH ratchet
// when allowed and due, advances the sending chain and returns the header
// and message key. It mutates s; callers work on a clone.
func (s *ratchetState) sendHeader() (header, [32]byte, error) {
	if s.canRotate && (s.mustRot || s.ns >= rotateAfter) {
		if err := s.rotate(); err != nil {
			return header{}, [32]byte{}, err
		}
	}
	if s.ns == maxCounter {
		return header{}, [32]byte{}, errors.New("e2e: sending chain exhausted")
	}
	h := header{idx: s.sIdx, n: s.ns, full: !s.sAcked, pn: s.pn, pub: s.dhsPub}
	if s.haveRecv {
		h.ack = s.rIdx + 1
	}
	var mk [32]byte
	s.cks, mk = kdfCK(s.cks)
	s.ns++
	return h, mk, nil
}

// rotate starts a new sending chain with a fresh DH key paired with the
// peer's current chain key.
func (s *ratchetState) rotate() error {
	if s.sIdx == maxCounter {
		return errors.New("e2e: ratchet exhausted")
	}
	priv, pub := newDH()
	out, err := dh(priv, s.dhr)
	if err != nil {
		return err
	}
	s.rk, s.cks = kdfRK(s.rk, out)
	clear(out)
	s.dhsPriv, s.dhsPub = priv, pub
	s.sIdx++
	s.pn, s.ns = s.ns, 0
	s.sAcked, s.canRotate, s.mustRot = false, false, false
	return nil
}

// recvKey finds or derives the message key for h, updating s. It mutates s;
// callers work on a clone and commit only after the AEAD opened.
func (s *ratchetState) recvKey(h header) ([32]byte, error) {
	var zero [32]byte
	s.last = recvInfo{}
	if !s.haveRecv {
		return zero, errors.New("e2e: no receiving chain")
	}
	switch {
	case h.idx < s.rIdx || (h.idx == s.rIdx && h.n < s.nr):
		for i, k := range s.skipped {
			if k.idx == h.idx && k.n == h.n {
				s.skipped = append(s.skipped[:i], s.skipped[i+1:]...)
				s.last.late = true
				return k.mk, nil
			}
		}
		return zero, ErrReplay
	case h.idx == s.rIdx:
		if h.full && subtle.ConstantTimeCompare(h.pub[:], s.dhr[:]) != 1 {
			return zero, ErrDecrypt
		}
		if err := s.skipTo(h.n); err != nil {
			return zero, err
		}
	case h.idx == s.rIdx+1:
		// The peer started a new chain. It must carry its key, and it must
		// pair with our current chain, which it acknowledges.
		if !h.full || h.ack != s.sIdx+1 {
			return zero, ErrDecrypt
		}
		if err := s.skipTo(h.pn); err != nil {
			return zero, err
		}
		out, err := dh(s.dhsPriv, h.pub)
		if err != nil {
			return zero, err
		}
		s.rk, s.ckr = kdfRK(s.rk, out)
		clear(out)
		s.dhr, s.rIdx, s.nr = h.pub, h.idx, 0
		s.canRotate = true
		if err := s.skipTo(h.n); err != nil {
			return zero, err
		}
	default:
		return zero, ErrDecrypt
	}
	var mk [32]byte
	s.ckr, mk = kdfCK(s.ckr)
	s.nr++
	s.noteAck(h.ack)
	return mk, nil
}

// noteAck records the peer's acknowledgement of our chains.
func (s *ratchetState) noteAck(ack uint32) {
	if ack >= s.sIdx+1 {
		s.sAcked = true
	}
}

// skipTo stores the keys of the current receiving chain up to (excluding)
// message n, so that delayed messages can still be read.
func (s *ratchetState) skipTo(n uint32) error {
	if n < s.nr {
		return nil
	}
	if n-s.nr > MaxSkip {
		return ErrTooFarAhead
	}
	s.last.skipped += int(n - s.nr)
	for s.nr < n {
		var mk [32]byte
		s.ckr, mk = kdfCK(s.ckr)
		s.skipped = append(s.skipped, skippedKey{s.rIdx, s.nr, mk})
		s.nr++
	}
	if over := len(s.skipped) - maxStoredSkipped; over > 0 {
		s.skipped = append(s.skipped[:0], s.skipped[over:]...)
	}
	return nil
}

// seal encrypts with a message key.
func seal(su *Suite, mk [32]byte, ad, pt []byte, dst []byte) []byte {
	return su.newAEAD(mk[:]).Seal(dst, zeroNonce[:], pt, ad)
}

// open decrypts with a message key.
func open(su *Suite, mk [32]byte, ad, ct []byte) ([]byte, error) {
	pt, err := su.newAEAD(mk[:]).Open(nil, zeroNonce[:], ct, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ---- persistence ----

const ratchetEncodingVersion = 1

func (s *ratchetState) marshal(b *builder) {
	b.u8(ratchetEncodingVersion)
	b.raw(s.rk[:])
	b.raw(s.dhsPriv[:])
	b.raw(s.dhsPub[:])
	b.u32(s.sIdx)
	b.raw(s.cks[:])
	b.u32(s.ns)
	b.u32(s.pn)
	var flags uint8
	for i, f := range []bool{s.sAcked, s.canRotate, s.mustRot, s.haveRecv} {
		if f {
			flags |= 1 << i
		}
	}
	b.u8(flags)
	b.raw(s.dhr[:])
	b.u32(s.rIdx)
	b.raw(s.ckr[:])
	b.u32(s.nr)
	b.u32(uint32(len(s.skipped)))
	for _, k := range s.skipped {
		b.u32(k.idx)
		b.u32(k.n)
		b.raw(k.mk[:])
	}
}

func readRatchet(r *reader) *ratchetState {
	s := &ratchetState{}
	if r.u8("ratchet version") != ratchetEncodingVersion {
		r.fail("ratchet version")
		return s
	}
	copy(s.rk[:], r.fixed(32, "rk"))
	copy(s.dhsPriv[:], r.fixed(32, "dhs"))
	copy(s.dhsPub[:], r.fixed(32, "dhs pub"))
	s.sIdx = r.u32("sidx")
	copy(s.cks[:], r.fixed(32, "cks"))
	s.ns = r.u32("ns")
	s.pn = r.u32("pn")
	flags := r.u8("flags")
	if flags > 0x0f {
		r.fail("ratchet flags")
	}
	s.sAcked, s.canRotate, s.mustRot, s.haveRecv = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
	copy(s.dhr[:], r.fixed(32, "dhr"))
	s.rIdx = r.u32("ridx")
	copy(s.ckr[:], r.fixed(32, "ckr"))
	s.nr = r.u32("nr")
	n := r.u32("skipped count")
	if n > maxStoredSkipped {
		r.fail("skipped count")
		return s
	}
	s.skipped = make([]skippedKey, n)
	for i := range s.skipped {
		s.skipped[i].idx = r.u32("skipped idx")
		s.skipped[i].n = r.u32("skipped n")
		copy(s.skipped[i].mk[:], r.fixed(32, "skipped key"))
	}
	return s
}

// String never prints key material.
func (s *ratchetState) String() string {
	return fmt.Sprintf("ratchet{send chain %d n=%d, recv chain %d n=%d, skipped %d}", s.sIdx, s.ns, s.rIdx, s.nr, len(s.skipped))
}
