package filexfer

// Continuing a reception in another stream: a Receiver whose transfer
// failed keeps its verified prefix; when the file is asked for again in
// a new Jingle session (a request with <range offset/>, docs/protocol.md,
// file transfer, requests), that session has its own key, sid and sender
// role, so its stream needs a new Receiver that appends to the same
// temporary file.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// rehashBuf is the read size when a verified prefix is hashed again.
const rehashBuf = 1 << 20

// ContinueReceiver returns a Receiver for the stream p (another session:
// its key, session id, content and sender role may differ from prev's)
// that appends to the verified prefix prev holds: the same temporary
// file, download directory, sanitized name, hash algorithm and free-space
// reservation. p must name the same file size, and prev's Offset must be
// a chunk boundary of p (same chunk size, or one that divides it); the new
// stream's first attempt starts at that chunk.
//
// The prefix is hashed again from the temporary file (anything past it is
// cut off), so the whole-file hash Finish compares covers the bytes on
// disk: a partial file altered while it waited fails Finish with
// ErrHashMismatch instead of yielding a file that looks verified.
// Cancelling ctx stops the hashing.
//
// On success prev passes the file on: it may no longer be used (Receive
// and Finish fail, Abort does nothing). On error prev is unchanged and
// still owns the file (Abort it to remove it).
func ContinueReceiver(ctx context.Context, prev *Receiver, p StreamParams) (*Receiver, error) {
	switch {
	case prev == nil || prev.closed || prev.aborted || prev.moved:
		return nil, fmt.Errorf("%w: the earlier receiver is closed", ErrStreamParams)
	case prev.done:
		return nil, fmt.Errorf("%w: the earlier receiver has the whole file: finish it instead", ErrStreamParams)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.Size != prev.p.Size {
		return nil, fmt.Errorf("%w: the new stream's file is %d bytes, the kept one %d", ErrStreamParams, p.Size, prev.p.Size)
	}
	if p.AlignDown(prev.off) != prev.off {
		return nil, fmt.Errorf("%w: the kept prefix of %d bytes is not a chunk boundary of %d-byte chunks", ErrStreamParams, prev.off, p.ChunkSize)
	}
	h, ok := NewHash(prev.algo)
	if !ok {
		return nil, fmt.Errorf("%w: hash %q", ErrStreamParams, prev.algo)
	}
	if err := checkKeptSize(prev); err != nil {
		return nil, err
	}
	if err := prev.f.Truncate(int64(prev.off)); err != nil {
		return nil, fmt.Errorf("filexfer: cannot cut %s to its verified prefix: %w", prev.tmp, err)
	}
	if err := rehashPrefix(ctx, h, prev); err != nil {
		return nil, err
	}
	r := &Receiver{p: p, dir: prev.dir, name: prev.name, algo: prev.algo, h: h, f: prev.f, tmp: prev.tmp,
		off: prev.off, next: prev.off / uint64(p.ChunkSize), res: prev.res, ident: prev.ident}
	prev.moved, prev.closed = true, true
	return r, nil
}

// checkKeptSize refuses a kept file shorter than its verified prefix
// (Truncate would extend it with zeros).
func checkKeptSize(prev *Receiver) error {
	var size int64
	if st, ok := prev.f.(interface{ Stat() (os.FileInfo, error) }); ok {
		fi, err := st.Stat()
		if err != nil {
			return fmt.Errorf("filexfer: cannot read the kept file %s: %w", prev.tmp, err)
		}
		size = fi.Size()
	} else if fi, err := os.Stat(prev.tmp); err == nil {
		size = fi.Size()
	} else {
		return fmt.Errorf("filexfer: cannot read the kept file %s: %w", prev.tmp, err)
	}
	if size < int64(prev.off) {
		return fmt.Errorf("%w: the kept file %s is %d bytes, shorter than its %d verified bytes", ErrTruncated, prev.tmp, size, prev.off)
	}
	return nil
}

// rehashPrefix feeds h the first prev.off bytes of prev's temporary file.
func rehashPrefix(ctx context.Context, h hash.Hash, prev *Receiver) error {
	src, ok := prev.f.(io.ReaderAt)
	if !ok {
		f, err := os.Open(prev.tmp)
		if err != nil {
			return fmt.Errorf("filexfer: cannot read the kept prefix %s: %w", prev.tmp, err)
		}
		defer f.Close()
		src = f
	}
	err := hashPrefix(ctx, h, src, prev.off)
	if errors.Is(err, ErrTruncated) {
		err = fmt.Errorf("%w: the kept file %s is shorter than its %d verified bytes", ErrTruncated, prev.tmp, prev.off)
	}
	return err
}

// hashPrefix feeds h the first n bytes of src; a shorter src is
// ErrTruncated. Cancelling ctx stops it.
func hashPrefix(ctx context.Context, h hash.Hash, src io.ReaderAt, n uint64) error {
	buf := make([]byte, min(rehashBuf, n))
	for off := uint64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(uint64(len(buf)), n-off)
		got, err := src.ReadAt(buf[:k], int64(off))
		if uint64(got) < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = ErrTruncated
			}
			return err
		}
		h.Write(buf[:k])
		off += k
	}
	return nil
}

// VerifySaved checks that the first size bytes of a saved file (a file a
// Receiver finished, read again later) still hash to want, the hash it
// verified at Finish: want.Algo must be acceptable ([NewHash]). It reads
// size bytes at most; a file that changed fails with ErrHashMismatch, a
// shorter one with ErrTruncated. Cancelling ctx stops it.
func VerifySaved(ctx context.Context, src io.ReaderAt, size uint64, want Hash) error {
	h, ok := NewHash(want.Algo)
	if !ok {
		return fmt.Errorf("%w: hash %q is not one of %v", ErrStreamParams, want.Algo, acceptableHashes)
	}
	if err := hashPrefix(ctx, h, src, size); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), want.Value) != 1 {
		return fmt.Errorf("%w (%s): the file changed on disk since it was verified", ErrHashMismatch, want.Algo)
	}
	return nil
}
