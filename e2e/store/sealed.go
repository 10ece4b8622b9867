package store

import (
	"cmp"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of the key that seals a store.
const KeySize = 32

// SaltSize is the size of the random per-store salt kept in the clear in
// the store header and handed to the [KeyFunc].
const SaltSize = 32

// sealedVersion is the format version of the sealed store: the first byte
// of the header and of every sealed value, and part of every AEAD's
// associated data.
const sealedVersion = 1

// Domain-separation labels of the sealed store.
const (
	// sealedHeaderBucket holds the header and the check record, in the
	// clear. Its name is not 32 bytes long, so it cannot collide with a
	// hidden bucket name: callers may use any bucket name, this one too.
	sealedHeaderBucket = "securejingle/sealed"
	sealedHeaderKey    = "header"
	sealedCheckKey     = "check"
	// sealedCheckPlain is the plaintext of the check record.
	sealedCheckPlain = "securejingle sealed store check v1"
	// HKDF-Expand infos of the two subkeys of the store key.
	sealedAEADLabel = "securejingle sealed store v1 aead"
	sealedNameLabel = "securejingle sealed store v1 names"
	// Prefixes of the HMAC inputs that hide bucket names and keys.
	sealedBucketTag = 0x01
	sealedKeyTag    = 0x02
)

// sealedNameSize is the size of a hidden bucket name or key.
const sealedNameSize = sha256.Size

// sealedOverhead is what sealing adds to a value besides the key it
// carries: version, nonce, key length, tag.
const sealedOverhead = 1 + chacha20poly1305.NonceSizeX + 4 + chacha20poly1305.Overhead

// Errors of [Sealed].
var (
	// ErrWrongKey is returned by [Sealed] when the key does not open the
	// store's check record.
	ErrWrongKey = errors.New("store: the store was sealed under a different account key: start with the account key (and account JID) that created it")
	// ErrKeyUnavailable is returned, wrapping the cause, when the key
	// function fails: the store stays locked.
	ErrKeyUnavailable = errors.New("store: locked: the key that unseals the store is not available")
	// ErrNotSealed is returned by [Sealed] for a store that holds data but
	// no seal header: it was written without encryption at rest.
	ErrNotSealed = errors.New("store: the store holds data that is not sealed (written without encryption at rest): move the file away, erase it securely (it holds secret keys in the clear) and start again with a new store")
	// ErrCorrupt is returned when a sealed value, the header or the check
	// record fails to authenticate or parse: the store file was modified or
	// damaged.
	ErrCorrupt = errors.New("store: a sealed record failed authentication: the store file was modified or damaged")
)

// A KeyFunc returns the key that seals a store, given the store's salt.
// create is true when the store is being sealed for the first time (a
// derivation that can check its own stability should do so then). It may
// block, for example on an ssh-agent; it is called only by [Sealed].
type KeyFunc func(salt []byte, create bool) ([KeySize]byte, error)

// sealedStore is the [Store] returned by [Sealed].
type sealedStore struct {
	inner Store
	aead  cipher.AEAD
	// macs holds HMAC-SHA256 states keyed with the name key.
	macs sync.Pool
}

// Sealed returns a Store that keeps every value of inner encrypted and
// every bucket name and key hidden, under a key that key derives from the
// store's salt (for example identity.StoreKeyFunc, from the account key in
// the agent). The key is never written to inner.
//
// Format. inner holds one bucket in the clear, "securejingle/sealed", with
// the header (version 1 and a random 32-byte salt) and a check record. Every
// other bucket name is HMAC-SHA256(n, 0x01 ‖ bucket) and every key
// HMAC-SHA256(n, 0x02 ‖ len(bucket) ‖ bucket ‖ key), as 32 raw bytes; every
// value is version ‖ nonce ‖ XChaCha20-Poly1305(a, nonce, len(key) ‖ key ‖
// value, AD = version ‖ len(bucket) ‖ bucket ‖ hidden key), with a random
// 24-byte nonce. a and n are HKDF-SHA256 of the store key (extract with the
// salt, expand under two labels). A value therefore opens only under the
// bucket and key it was written to, and a modified value, header or check
// record is reported ([ErrCorrupt]), never returned. See docs/protocol.md
// §17.4.
//
// What stays visible in inner: the number of buckets and of keys in each,
// value sizes (plus 45 bytes and the key length), and which buckets and
// keys change in each transaction. An attacker who can write the file can
// delete records or roll the file, or single records, back to an earlier
// state; sealing does not detect that.
//
// Opening. If inner has a header, key(salt, false) is called; an error
// gives one wrapping [ErrKeyUnavailable] and the cause, a key that does not
// open the check record gives [ErrWrongKey]. If inner has no header, a new
// salt is drawn and key(salt, true) is called; then the header and check
// record are written in one Update. A store without a header that already
// holds data is refused with [ErrNotSealed] (when inner is one of this
// package's stores, which can tell): it is not sealed in place, because
// bbolt keeps freed pages, and the plaintext in them, in the file.
//
// The returned Store keeps the contract of [Store] and the behaviour of
// inner (durability, isolation, crash safety: each Update is one inner
// Update). ForEach decrypts the whole bucket and sorts it by key before the
// first call to fn, so it holds the bucket in memory. Close closes inner.
// On error inner is left open; the caller closes it.
func Sealed(inner Store, key KeyFunc) (Store, error) {
	var header, check []byte
	err := inner.View(func(tx Tx) error {
		var err error
		if header, err = getOptional(tx, sealedHeaderBucket, sealedHeaderKey); err != nil {
			return err
		}
		check, err = getOptional(tx, sealedHeaderBucket, sealedCheckKey)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading the seal header: %w", err)
	}
	if header == nil {
		if check != nil {
			return nil, fmt.Errorf("%w: check record without header", ErrCorrupt)
		}
		return createSealed(inner, key)
	}
	salt, err := parseSealedHeader(header)
	if err != nil {
		return nil, err
	}
	if check == nil {
		return nil, fmt.Errorf("%w: header without check record", ErrCorrupt)
	}
	s, err := newSealedStore(inner, key, salt, false)
	if err != nil {
		return nil, err
	}
	if _, err := s.open(sealedHeaderBucket, sealedCheckKey, check, false); err != nil {
		return nil, ErrWrongKey
	}
	return s, nil
}

// createSealed seals an empty inner store.
func createSealed(inner Store, key KeyFunc) (Store, error) {
	if e, ok := inner.(emptier); ok {
		empty, err := e.isEmpty()
		if err != nil {
			return nil, fmt.Errorf("store: checking for unsealed data: %w", err)
		}
		if !empty {
			return nil, ErrNotSealed
		}
	}
	salt := make([]byte, SaltSize)
	rand.Read(salt) // never fails (crypto/rand)
	s, err := newSealedStore(inner, key, salt, true)
	if err != nil {
		return nil, err
	}
	header := append([]byte{sealedVersion}, salt...)
	check := s.seal(sealedHeaderBucket, sealedCheckKey, nil, []byte(sealedCheckPlain))
	err = inner.Update(func(tx Tx) error {
		if _, err := tx.Get(sealedHeaderBucket, sealedHeaderKey); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("store: the store was sealed by another opener meanwhile (%v)", err)
		}
		if err := tx.Put(sealedHeaderBucket, sealedHeaderKey, header); err != nil {
			return err
		}
		return tx.Put(sealedHeaderBucket, sealedCheckKey, check)
	})
	if err != nil {
		return nil, fmt.Errorf("store: writing the seal header: %w", err)
	}
	return s, nil
}

// getOptional returns the value, or nil if it is absent.
func getOptional(tx Tx, bucket, key string) ([]byte, error) {
	v, err := tx.Get(bucket, key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// parseSealedHeader checks the header and returns the salt.
func parseSealedHeader(h []byte) ([]byte, error) {
	if len(h) != 1+SaltSize {
		return nil, fmt.Errorf("%w: header of %d bytes, want %d", ErrCorrupt, len(h), 1+SaltSize)
	}
	if h[0] != sealedVersion {
		return nil, fmt.Errorf("%w: sealed store version %d, this build reads version %d", ErrCorrupt, h[0], sealedVersion)
	}
	return h[1:], nil
}

// newSealedStore derives the subkeys from the key that key returns.
func newSealedStore(inner Store, key KeyFunc, salt []byte, create bool) (*sealedStore, error) {
	k, err := key(slices.Clone(salt), create)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
	}
	defer clear(k[:])
	// The salt is mixed in here too, so that the subkeys are per store
	// even for a key function that ignores it.
	prk, err := hkdf.Extract(sha256.New, k[:], salt)
	if err != nil {
		return nil, fmt.Errorf("store: deriving the sealing key: %w", err)
	}
	defer clear(prk)
	aeadKey, err := hkdf.Expand(sha256.New, prk, sealedAEADLabel, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("store: deriving the sealing key: %w", err)
	}
	defer clear(aeadKey)
	nameKey, err := hkdf.Expand(sha256.New, prk, sealedNameLabel, sealedNameSize)
	if err != nil {
		return nil, fmt.Errorf("store: deriving the sealing key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(aeadKey)
	if err != nil {
		return nil, fmt.Errorf("store: sealing cipher: %w", err)
	}
	s := &sealedStore{inner: inner, aead: aead}
	s.macs.New = func() any { return hmac.New(sha256.New, nameKey) }
	return s, nil
}

// name returns HMAC-SHA256(nameKey, tag ‖ parts...), with a 32-bit length
// before every part but the last.
func (s *sealedStore) name(tag byte, parts ...string) string {
	m := s.macs.Get().(hash.Hash)
	defer s.macs.Put(m)
	m.Reset()
	var buf [sealedNameSize]byte
	m.Write([]byte{tag})
	for i, p := range parts {
		if i < len(parts)-1 {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(p)))
			m.Write(n[:])
		}
		io.WriteString(m, p)
	}
	return string(m.Sum(buf[:0]))
}

// hiddenBucket returns the name under which bucket is kept in inner.
func (s *sealedStore) hiddenBucket(bucket string) string {
	return s.name(sealedBucketTag, bucket)
}

// hiddenKey returns the name under which key of bucket is kept in inner.
func (s *sealedStore) hiddenKey(bucket, key string) string {
	return s.name(sealedKeyTag, bucket, key)
}

// sealedAD is the associated data of a value: version, bucket and the
// hidden key, each name with a 32-bit length.
func sealedAD(bucket, hidden string) []byte {
	ad := make([]byte, 0, 1+4+len(bucket)+4+len(hidden))
	ad = append(ad, sealedVersion)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(bucket)))
	ad = append(ad, bucket...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(hidden)))
	return append(ad, hidden...)
}

// seal encrypts key ‖ value for the hidden key of bucket. key is carried
// inside so that ForEach can return it.
func (s *sealedStore) seal(bucket, hidden string, key, value []byte) []byte {
	plain := make([]byte, 0, 4+len(key)+len(value))
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(key)))
	plain = append(plain, key...)
	plain = append(plain, value...)
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, sealedOverhead+len(key)+len(value))
	out[0] = sealedVersion
	rand.Read(out[1:]) // never fails (crypto/rand)
	out = s.aead.Seal(out, out[1:], plain, sealedAD(bucket, hidden))
	clear(plain)
	return out
}

// sealedEntry is one opened value.
type sealedEntry struct {
	key   string
	value []byte
}

// open authenticates and decrypts a value stored under the hidden key of
// bucket. It never returns a value that was not sealed for exactly that
// place. checkName is false only for the check record, whose key is not
// hidden.
func (s *sealedStore) open(bucket, hidden string, sealed []byte, checkName bool) (sealedEntry, error) {
	if len(sealed) < sealedOverhead || sealed[0] != sealedVersion {
		return sealedEntry{}, fmt.Errorf("%w: bucket %q: malformed record", ErrCorrupt, bucket)
	}
	nonce := sealed[1 : 1+chacha20poly1305.NonceSizeX]
	plain, err := s.aead.Open(nil, nonce, sealed[1+chacha20poly1305.NonceSizeX:], sealedAD(bucket, hidden))
	if err != nil {
		return sealedEntry{}, fmt.Errorf("%w: bucket %q", ErrCorrupt, bucket)
	}
	n := binary.BigEndian.Uint32(plain)
	if uint64(n) > uint64(len(plain)-4) {
		return sealedEntry{}, fmt.Errorf("%w: bucket %q: bad key length", ErrCorrupt, bucket)
	}
	e := sealedEntry{key: string(plain[4 : 4+n]), value: plain[4+n:]}
	if checkName && !hmac.Equal([]byte(s.hiddenKey(bucket, e.key)), []byte(hidden)) {
		// Unreachable without the name key: the AD binds hidden.
		return sealedEntry{}, fmt.Errorf("%w: bucket %q: key does not match its name", ErrCorrupt, bucket)
	}
	return e, nil
}

// Update implements [Store.Update].
func (s *sealedStore) Update(fn func(Tx) error) error {
	return s.inner.Update(func(itx Tx) error {
		tx := &sealedTx{s: s, inner: itx, writable: true}
		return runTx(fn, tx, &tx.done)
	})
}

// View implements [Store.View].
func (s *sealedStore) View(fn func(Tx) error) error {
	return s.inner.View(func(itx Tx) error {
		tx := &sealedTx{s: s, inner: itx}
		return runTx(fn, tx, &tx.done)
	})
}

// Close implements [Store.Close]: it closes inner.
func (s *sealedStore) Close() error {
	return s.inner.Close()
}

// sealedTx is a [Tx] of a sealed store over a transaction of inner.
type sealedTx struct {
	s        *sealedStore
	inner    Tx
	writable bool
	done     bool
}

func (t *sealedTx) Get(bucket, key string) ([]byte, error) {
	if t.done {
		return nil, errTxDone
	}
	if bucket == "" || key == "" {
		return nil, ErrNotFound
	}
	hidden := t.s.hiddenKey(bucket, key)
	v, err := t.inner.Get(t.s.hiddenBucket(bucket), hidden)
	if err != nil {
		return nil, err
	}
	e, err := t.s.open(bucket, hidden, v, true)
	if err != nil {
		return nil, err
	}
	return e.value, nil
}

func (t *sealedTx) Put(bucket, key string, value []byte) error {
	if t.done {
		return errTxDone
	}
	if !t.writable {
		return ErrReadOnly
	}
	if err := checkPut(bucket, key, value); err != nil {
		return err
	}
	hidden := t.s.hiddenKey(bucket, key)
	return t.inner.Put(t.s.hiddenBucket(bucket), hidden, t.s.seal(bucket, hidden, []byte(key), value))
}

func (t *sealedTx) Delete(bucket, key string) error {
	if t.done {
		return errTxDone
	}
	if !t.writable {
		return ErrReadOnly
	}
	if bucket == "" || key == "" {
		return nil // nothing can be stored there
	}
	return t.inner.Delete(t.s.hiddenBucket(bucket), t.s.hiddenKey(bucket, key))
}

// ForEach opens the whole bucket, then calls fn in key order. Because the
// bucket is read before fn runs, fn may write to it.
func (t *sealedTx) ForEach(bucket string, fn func(key string, v []byte) error) error {
	if t.done {
		return errTxDone
	}
	if bucket == "" {
		return nil
	}
	var entries []sealedEntry
	err := t.inner.ForEach(t.s.hiddenBucket(bucket), func(hidden string, v []byte) error {
		e, err := t.s.open(bucket, hidden, v, true)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b sealedEntry) int { return cmp.Compare(a.key, b.key) })
	for _, e := range entries {
		if err := fn(e.key, e.value); err != nil {
			return err
		}
	}
	return nil
}

// An emptier can tell whether a store holds any value; [Sealed] uses it to
// refuse unsealed data.
type emptier interface {
	isEmpty() (bool, error)
}

// isEmpty reports whether no bucket of m holds a value.
func (m *memory) isEmpty() (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false, ErrClosed
	}
	for _, b := range m.data {
		if len(b) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// isEmpty reports whether no bucket of the database holds a value.
func (s *boltStore) isEmpty() (bool, error) {
	empty := true
	err := s.db.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			if k, _ := b.Cursor().First(); k != nil {
				empty = false
			}
			return nil
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return false, ErrClosed
	}
	return empty, err
}

// isEmpty forwards to the wrapped store; a store that cannot tell counts
// as empty.
func (f *Faulty) isEmpty() (bool, error) {
	if e, ok := f.inner.(emptier); ok {
		return e.isEmpty()
	}
	return true, nil
}
