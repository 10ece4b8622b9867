package e2e

// Size limits on what peers send. Every variable-length field a peer (or a
// hostile server) controls is bounded here, per suite where the suite
// fixes the size, and every parser enforces the bound before anything is
// hashed, signed or re-encoded (docs/protocol.md, §7.3 and §10.2). The
// binary writers (builder.bytes16) still panic on over-long input, as a
// guard against programming errors only: no network input reaches them
// unchecked.
//
// Adding a field to the bundle: bound it in Bundle.check; the total size
// (MaxBundleSize) is measured on the canonical body, so it covers the new
// field by itself. TestRegressBundleOversizePrekeyCrash grows every
// variable-length field of a parsed bundle in turn and fails if check
// accepts it.

// kemSizes are the wire sizes fixed by an HPKE KEM.
type kemSizes struct {
	publicKey int // SerializePublicKey output: a prekey or an ephemeral key
	enc       int // encapsulation
}

// kemSize is the size table of every KEM of a registered suite
// (docs/protocol.md §6.1). TestKEMSizesMatchHPKE checks it against
// crypto/hpke and that every registered suite's KEM is listed.
var kemSize = map[uint16]kemSizes{
	kemXWing:  {publicKey: 1216, enc: 1120},
	kemX25519: {publicKey: 32, enc: 32},
}

// MaxBundleSize bounds the binary encoding of a bundle, signature
// included (Bundle.check refuses a longer one, own or peer's). It is also
// the bound of an inline bundle in a first message, so every valid bundle
// can be sent inline, and its XML form (4/3 of it in base64, plus markup)
// stays well under maxElementSize. Attestations take most of it: callers
// that publish attestations budget them against it.
const MaxBundleSize = 64 << 10

// Implementation limits (not wire constants: a bigger or smaller value
// changes what is accepted, not how anything is encoded).
const (
	// maxUnknownKEMSize bounds a public key or encapsulation of a KEM or
	// suite this implementation does not know. A peer's bundle may carry a
	// prekey of such a KEM (a newer suite); it is kept, signed as sent and
	// never used, like an unknown suite id in its suite list.
	maxUnknownKEMSize = 4096

	// maxInitBlockSize and maxRespBlockSize bound the stored handshake
	// blocks of a session (their largest valid encodings, rounded up).
	maxInitBlockSize = 2 + 32 + 32 + 4 + 2*(3+maxUnknownKEMSize) + 64 + 3 + MaxBundleSize
	maxRespBlockSize = 3 + maxUnknownKEMSize + 64
)

// maxKnownEnc is the largest encapsulation of any registered KEM: the
// bound of a response block's encapsulation, whose suite the parser does
// not know (HPKE then checks the exact size).
var maxKnownEnc = func() int {
	n := 0
	for _, s := range kemSize {
		n = max(n, s.enc)
	}
	return n
}()

// checkPrekeyPublic checks a prekey's public key length: exactly the
// KEM's public key size for a registered KEM, at most maxUnknownKEMSize
// for any other.
func checkPrekeyPublic(kem uint16, pub []byte) error {
	if s, ok := kemSize[kem]; ok {
		if len(pub) != s.publicKey {
			return malformed("prekey of KEM 0x%04x is %d bytes, want %d", kem, len(pub), s.publicKey)
		}
		return nil
	}
	if len(pub) == 0 || len(pub) > maxUnknownKEMSize {
		return malformed("prekey of unknown KEM 0x%04x is %d bytes, want 1..%d", kem, len(pub), maxUnknownKEMSize)
	}
	return nil
}

// suiteSizes returns the exact public key and encapsulation sizes of a
// registered suite's KEM, or (for an unknown suite) maxUnknownKEMSize as
// a bound, with exact false.
func suiteSizes(id SuiteID) (s kemSizes, exact bool) {
	if su := LookupSuite(id); su != nil {
		if s, ok := kemSize[su.KEM]; ok {
			return s, true
		}
	}
	return kemSizes{maxUnknownKEMSize, maxUnknownKEMSize}, false
}

// readKEMField reads a uvarint-prefixed KEM value (encapsulation or
// public key) of exactly n bytes, or of at most n bytes when !exact.
func readKEMField(r *reader, what string, n int, exact bool) []byte {
	p := r.vbytes(what, n)
	if exact && r.err == nil && len(p) != n {
		r.fail(what)
		return nil
	}
	return p
}

// checkSize bounds the whole encoding. It runs after every field
// has been checked, so body cannot hit the 16-bit guard.
func (bu *Bundle) checkSize() error {
	if n := len(bu.body()) + len(bu.Signature); n > MaxBundleSize {
		return malformed("bundle of %d bytes, at most %d", n, MaxBundleSize)
	}
	return nil
}
