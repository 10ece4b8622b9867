package filexfer

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/blake2b"
)

// DefaultHashAlgo is the hash a Receiver computes when none is asked for.
const DefaultHashAlgo = "sha-256"

// NewHash returns a hash of an acceptable XEP-0300 algorithm
// (AcceptableHashAlgos), or false.
func NewHash(algo string) (hash.Hash, bool) {
	switch algo {
	case "sha-256":
		return sha256.New(), true
	case "sha-384":
		return sha512.New384(), true
	case "sha-512":
		return sha512.New(), true
	case "sha3-256":
		return sha3.New256(), true
	case "sha3-512":
		return sha3.New512(), true
	case "blake2b-256":
		h, _ := blake2b.New256(nil)
		return h, true
	case "blake2b-512":
		h, _ := blake2b.New512(nil)
		return h, true
	}
	return nil, false
}

// ReceiverOptions are a Receiver's limits and hash.
type ReceiverOptions struct {
	// HashAlgo is the XEP-0300 algorithm computed over the received bytes
	// (one of AcceptableHashAlgos; DefaultHashAlgo when empty). Pick the
	// strongest the sender offered (StrongestHash).
	HashAlgo string
	// MaxSize refuses larger files with ErrTooLarge; 0: no limit.
	MaxSize uint64
	// MinFree is the free space that must remain in the directory after
	// the file is written; the check refuses with ErrNoSpace.
	MinFree uint64
}

// partFile is what a Receiver writes to: an *os.File, or a test's
// stand-in (a size-limited file, say).
type partFile interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// Receiver receives one file's stream into a temporary file in the
// download directory, over one or more attempts, and gives it its final
// name only after the final chunk and the whole-file hash verified
// (Finish). Until then the file is a hidden ".securejingle-*.part" file
// holding only verified bytes, chunk aligned: a failed attempt leaves a
// prefix to resume from (Offset), never a file that looks complete.
//
// A Receiver is used by one goroutine at a time.
type Receiver struct {
	p       StreamParams
	dir     string
	name    string // sanitized
	algo    string
	h       hash.Hash
	f       partFile
	tmp     string
	off     uint64 // verified plaintext bytes written
	next    uint64 // next chunk index
	done    bool   // the final chunk verified
	closed  bool
	aborted bool
	moved   bool // the temporary file passed to a ContinueReceiver
	res     *reservation
	salts   [][streamSaltLen]byte // of the attempts whose header arrived: a replayed attempt is refused
	// ident is the temporary file as created (nil when the partFile
	// cannot say): Finish checks that the final name holds this file.
	ident os.FileInfo
}

// NewReceiver prepares the reception of p's stream into dir under the
// (sanitized) name: it checks the size limit and the free space and
// creates the temporary file (mode 0600, never an existing one).
func NewReceiver(p StreamParams, dir, name string, o ReceiverOptions) (*Receiver, error) {
	return newReceiver(p, dir, name, o, nil)
}

func newReceiver(p StreamParams, dir, name string, o ReceiverOptions, create func(string) (partFile, error)) (*Receiver, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if o.MaxSize > 0 && p.Size > o.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes offered, the limit is %d (files.max_file_size)", ErrTooLarge, p.Size, o.MaxSize)
	}
	algo := o.HashAlgo
	if algo == "" {
		algo = DefaultHashAlgo
	}
	h, ok := NewHash(algo)
	if !ok {
		return nil, fmt.Errorf("%w: hash %q is not one of %v", ErrStreamParams, algo, acceptableHashes)
	}
	res, err := reserve(dir, p.Size, o.MinFree)
	if err != nil {
		return nil, err
	}
	if create == nil {
		create = func(path string) (partFile, error) {
			return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".securejingle-"+hex.EncodeToString(rnd[:])+".part")
	f, err := create(tmp)
	if err != nil {
		res.release()
		return nil, fmt.Errorf("filexfer: cannot create the temporary file in %s: %w", dir, err)
	}
	return &Receiver{p: p, dir: dir, name: SanitizeName(name), algo: algo, h: h, f: f, tmp: tmp, res: res, ident: fileIdent(f)}, nil
}

// fileIdent returns what f is on disk, nil when it cannot say.
func fileIdent(f partFile) os.FileInfo {
	if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil {
			return fi
		}
	}
	return nil
}

// checkTemp reports whether the temporary name still holds the file the
// Receiver created (a local process that can write to the directory may
// have put another file, or a symlink, in its place); if not, nothing
// may be placed and the error matches ErrTampered.
func (r *Receiver) checkTemp() error {
	if r.ident == nil {
		return nil
	}
	fi, err := os.Lstat(r.tmp)
	if err == nil && os.SameFile(fi, r.ident) {
		return nil
	}
	return r.replaced()
}

// checkPlaced reports whether the file at path is the temporary file
// the Receiver wrote (where the file could only be placed by name, a
// local process may have swapped the temporary name in between); if it
// is not, it removes path and returns an error matching ErrTampered.
func (r *Receiver) checkPlaced(path string) error {
	if r.ident == nil {
		return nil
	}
	fi, err := os.Lstat(path)
	if err == nil && os.SameFile(fi, r.ident) {
		return nil
	}
	os.Remove(path)
	return r.replaced()
}

// replaced is the error of a temporary file replaced on disk.
func (r *Receiver) replaced() error {
	return fmt.Errorf("%w: the verified temporary file %s was replaced on disk before it was saved (another process writes to %s): nothing was saved; make the directory writable by you alone",
		ErrTampered, r.tmp, r.dir)
}

// errTempGone: the file written has no name left to place it by.
var errTempGone = errors.New("filexfer: the temporary file lost its name")

// reservations are the bytes live Receivers may still write, per
// directory: the free-space check of a new Receiver counts them as used,
// so that several offers that each fit cannot together fill the disk.
var reservations = struct {
	sync.Mutex
	dirs map[string]uint64
}{dirs: map[string]uint64{}}

// reservation is one Receiver's share of its directory's reservations.
type reservation struct {
	dir  string
	size uint64
	once sync.Once
}

// reserve checks that dir has size+minFree bytes free beyond what other
// Receivers have reserved, and reserves size.
func reserve(dir string, size, minFree uint64) (*reservation, error) {
	key := filepath.Clean(dir)
	reservations.Lock()
	defer reservations.Unlock()
	free, known, err := freeSpace(dir)
	if err != nil {
		return nil, fmt.Errorf("filexfer: cannot check the free space of %s: %w", dir, err)
	}
	held := reservations.dirs[key]
	if known {
		avail := uint64(0)
		if free > held {
			avail = free - held
		}
		if avail < size || avail-size < minFree {
			return nil, fmt.Errorf("%w in %s: %d bytes needed (and %d kept free), %d free of which %d are promised to transfers under way; free some space or choose another directory",
				ErrNoSpace, dir, size, minFree, free, held)
		}
	}
	reservations.dirs[key] = held + size
	return &reservation{dir: key, size: size}, nil
}

// release gives the reservation back; it is safe to call more than once.
func (r *reservation) release() {
	r.once.Do(func() {
		reservations.Lock()
		defer reservations.Unlock()
		if left := reservations.dirs[r.dir] - r.size; left > 0 {
			reservations.dirs[r.dir] = left
		} else {
			delete(reservations.dirs, r.dir)
		}
	})
}

// Offset returns the verified bytes on disk: the chunk-aligned offset an
// attempt resumes from (the <range offset/> of a resume).
func (r *Receiver) Offset() uint64 { return r.off }

// Done reports whether the final chunk verified.
func (r *Receiver) Done() bool { return r.done }

// TempPath returns the temporary file's path.
func (r *Receiver) TempPath() string { return r.tmp }

// Name returns the sanitized name the file gets (before de-duplication).
func (r *Receiver) Name() string { return r.name }

// Receive reads one attempt from src: the header, which must name the
// chunk at Offset, then the chunks up to the final one, then the end of
// the stream. Each chunk is written only after it authenticated. On error
// the verified prefix stays for a resume, and the error is a *StreamError
// wrapping ErrBadHeader, ErrTampered, ErrTruncated, ErrTrailingData,
// ErrNoSpace or the transport's or file system's error. Cancelling ctx
// stops it between chunks; a read blocked in the transport returns when
// the caller closes src.
func (r *Receiver) Receive(ctx context.Context, src io.Reader, progress func(done uint64)) error {
	switch {
	case r.closed:
		return fmt.Errorf("%w: the receiver is closed", ErrStreamParams)
	case r.done:
		return nil
	}
	p, cs := r.p, uint64(r.p.ChunkSize)
	fail := func(err error) error { return &StreamError{Chunk: r.next, Offset: r.off, Err: err} }
	hdr := make([]byte, StreamHeaderLen)
	if _, err := io.ReadFull(src, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w (in the header)", ErrTruncated)
		}
		return fail(err)
	}
	aead, prefix, err := r.checkHeader(hdr)
	if err != nil {
		return fail(err)
	}
	n := p.Chunks()
	// The verified plaintext is hashed on another goroutine while this
	// one reads, opens and writes the next chunks; wait (deferred) puts
	// every written chunk into the hash before Receive returns.
	hp := newHashPipe(r.h, int(cs)+StreamTagLen)
	defer hp.wait()
	var nc [12]byte
	for r.next < n {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		l := p.chunkLen(r.next)
		buf := hp.buf()
		ct := buf[:l+StreamTagLen]
		if _, err := io.ReadFull(src, ct); err != nil {
			hp.release(buf)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = ErrTruncated
			}
			return fail(err)
		}
		nonce(nc[:], prefix, r.next, r.next == n-1)
		plain, err := aead.Open(ct[:0], nc[:], ct, hdr)
		if err != nil {
			hp.release(buf)
			return fail(ErrTampered)
		}
		if _, err := r.f.WriteAt(plain, int64(r.off)); err != nil {
			hp.release(buf)
			// Nothing of this chunk counts: cut what part of it was written.
			r.f.Truncate(int64(r.off))
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
				err = fmt.Errorf("%w in %s: %w", ErrNoSpace, r.dir, err)
			}
			return fail(err)
		}
		hp.feed(plain)
		r.off += uint64(l)
		r.next++
		if progress != nil {
			progress(r.off)
		}
	}
	// The final chunk verified: the file is complete, whatever follows.
	r.done = true
	return r.awaitEnd(ctx, src)
}

// EndWait bounds the wait for the end of the stream after the final
// chunk, on transports with read deadlines.
const EndWait = 5 * time.Second

// awaitEnd reads what follows the final chunk: the end of the stream,
// or data, which is reported (ErrTrailingData: an alert, the stream was
// tampered with) without discarding the verified file. It does not wait
// once ctx is done, and waits at most EndWait on a transport with read
// deadlines; on others a sender that keeps the stream open holds it until
// the caller closes the transport.
func (r *Receiver) awaitEnd(ctx context.Context, src io.Reader) error {
	if ctx.Err() != nil {
		return nil
	}
	if d, ok := src.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Now().Add(EndWait))
		defer d.SetReadDeadline(time.Time{})
	}
	var one [1]byte
	for {
		k, err := src.Read(one[:])
		if k > 0 {
			return &StreamError{Chunk: r.next, Offset: r.off, Err: ErrTrailingData}
		}
		if err != nil {
			// The end (io.EOF), or the transport broke or timed out
			// after the final chunk: every byte verified, and the final
			// flag said it was the end.
			return nil
		}
	}
}

// checkHeader verifies an attempt's header and returns its keys.
func (r *Receiver) checkHeader(hdr []byte) (cipher.AEAD, [streamPrefix]byte, error) {
	var zero [streamPrefix]byte
	id, _ := r.p.cipherID()
	switch {
	case string(hdr[:4]) != streamMagic:
		return nil, zero, fmt.Errorf("%w: not a securejingle file stream (magic %q)", ErrBadHeader, hdr[:4])
	case hdr[4] != id:
		return nil, zero, fmt.Errorf("%w: cipher id %d, the offer named %d", ErrBadHeader, hdr[4], id)
	case binary.BigEndian.Uint32(hdr[5:9]) != r.p.ChunkSize:
		return nil, zero, fmt.Errorf("%w: chunk size %d, the offer named %d", ErrBadHeader, binary.BigEndian.Uint32(hdr[5:9]), r.p.ChunkSize)
	case binary.BigEndian.Uint64(hdr[9:17]) != r.next:
		return nil, zero, fmt.Errorf("%w: the stream starts at chunk %d, chunk %d was asked for", ErrBadHeader, binary.BigEndian.Uint64(hdr[9:17]), r.next)
	}
	var salt [streamSaltLen]byte
	copy(salt[:], hdr[17:])
	for _, seen := range r.salts {
		if seen == salt {
			return nil, zero, fmt.Errorf("%w: an earlier attempt replayed (its salt was seen before)", ErrBadHeader)
		}
	}
	if len(r.salts) == maxAttempts {
		return nil, zero, fmt.Errorf("%w: more than %d attempts", ErrBadHeader, maxAttempts)
	}
	r.salts = append(r.salts, salt)
	aead, prefix, err := r.p.streamKeys(salt[:])
	return aead, prefix, err
}

// maxAttempts bounds the attempts of one Receiver (and the salts it
// remembers to refuse replays).
const maxAttempts = 256

// Digest returns the hash of the verified bytes so far (of the whole file
// once Done).
func (r *Receiver) Digest() Hash {
	return Hash{Algo: r.algo, Value: r.h.Sum(nil)}
}

// Finish completes a Done reception: it compares the whole-file hash with
// the sender's want (want.Algo must be the Receiver's HashAlgo; a zero
// want skips the comparison: every chunk is authenticated under the key of
// the protected offer regardless), syncs the file and gives it its final
// name in the directory: the sanitized name, or "name (1).ext" and so on
// when that exists (an existing file is never replaced). On a hash
// mismatch the temporary file is removed. It returns the final path.
func (r *Receiver) Finish(want Hash) (string, error) {
	switch {
	case r.aborted || r.closed && !r.done:
		return "", fmt.Errorf("%w: the receiver is closed", ErrStreamParams)
	case !r.done:
		return "", fmt.Errorf("%w: %d of %d bytes verified", ErrTruncated, r.off, r.p.Size)
	}
	if want.Algo != "" || len(want.Value) > 0 {
		got := r.Digest()
		if want.Algo != got.Algo {
			r.Abort()
			return "", fmt.Errorf("%w: the sender's hash is %s, %s was computed", ErrHashMismatch, want.Algo, got.Algo)
		}
		if subtle.ConstantTimeCompare(want.Value, got.Value) != 1 {
			r.Abort()
			return "", fmt.Errorf("%w (%s); the file was discarded", ErrHashMismatch, got.Algo)
		}
	}
	if r.closed {
		return "", fmt.Errorf("%w: the receiver is closed", ErrStreamParams)
	}
	if err := r.f.Sync(); err != nil {
		return "", fmt.Errorf("filexfer: cannot write %s to disk: %w", r.tmp, err)
	}
	// The file stays open until it has its name: it is placed by its
	// descriptor where the system allows, and only while the temporary
	// name still holds it, so that no other file ever appears under the
	// final name, not even for a moment.
	if err := r.checkTemp(); err != nil {
		r.Abort()
		return "", err
	}
	path, err := placeUnique(r.f, r.tmp, r.dir, r.name)
	if errors.Is(err, errTempGone) {
		r.Abort()
		return "", r.replaced()
	}
	if err != nil {
		// The verified file stays in its temporary name: Finish can be
		// called again once the cause is fixed.
		return "", fmt.Errorf("%w; the verified file is kept as %s", err, r.tmp)
	}
	if err := r.checkPlaced(path); err != nil {
		r.Abort()
		return "", err
	}
	r.closed = true
	if err := r.f.Close(); err != nil {
		return "", fmt.Errorf("filexfer: cannot write %s to disk: %w", path, err)
	}
	r.res.release()
	syncDir(r.dir)
	return path, nil
}

// Abort removes the temporary file. It is safe to call more than once and
// after Finish; after ContinueReceiver took the file it does nothing.
func (r *Receiver) Abort() error {
	if r.moved {
		return nil // the file is the continuing Receiver's
	}
	r.aborted = true
	if !r.closed {
		r.closed = true
		r.f.Close()
	}
	r.res.release()
	err := os.Remove(r.tmp)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// placeUnique gives the file f, created as tmp, the first free name of
// dir among name, "name (1).ext", ... without ever replacing a file: it
// hard-links the open file (linkOpen: which fails on an existing name)
// and removes tmp; on a file system without hard links it renames tmp
// over a placeholder it created with O_EXCL. A file system with shorter
// names than SanitizeName allows (eCryptfs: 143 bytes) gets the name cut
// further. errTempGone: f has no name left.
func placeUnique(f partFile, tmp, dir, name string) (string, error) {
	for k := 0; k < maxNameTries; k++ {
		path := filepath.Join(dir, numberedName(name, k))
		err := linkOpen(f, tmp, path)
		if errors.Is(err, syscall.ENAMETOOLONG) && len(name) > minCutName {
			name, k = cutName(name, len(name)/2), -1
			continue
		}
		if err == nil {
			removeIfSame(tmp, f)
			return path, nil
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if errors.Is(err, errTempGone) {
			return "", err
		}
		// No hard links here: reserve the name, then move onto it.
		ph, perr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(perr, os.ErrExist) {
			continue
		}
		if perr != nil {
			return "", fmt.Errorf("filexfer: cannot create %s: %w", path, perr)
		}
		ph.Close()
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(path)
			return "", fmt.Errorf("filexfer: cannot move the received file to %s: %w", path, err)
		}
		return path, nil
	}
	return "", fmt.Errorf("filexfer: %d files named like %q already exist in %s; move some away and accept again", maxNameTries, name, dir)
}

// removeIfSame removes the name tmp only if it still names the open file
// f (or f cannot say what it is): a file a local process put at tmp
// since is left alone.
func removeIfSame(tmp string, f partFile) {
	if id := fileIdent(f); id != nil {
		if fi, err := os.Lstat(tmp); err != nil || !os.SameFile(fi, id) {
			return
		}
	}
	os.Remove(tmp)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
