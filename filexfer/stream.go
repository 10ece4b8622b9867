package filexfer

// The stream encryption of a file's bytes (this file, stream_receive.go
// and stream_name.go): a chunked streaming AEAD in the STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
// Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
// CRYPTO 2015), keyed by labelled HKDF from the transfer key that
// travelled inside the protected Jingle offer (docs/protocol.md, file
// transfer, stream format).
//
// One attempt (the first one, or a resume) is
//
//	header   "SJF1" | cipher id (1) | chunk size (u32) | first chunk index (u64) | salt (16)
//	chunk i  AEAD_k(nonce = prefix(3) | i (u64) | last (1), ad = header, plaintext i) = ciphertext | tag (16)
//
// with k | prefix = HKDF-SHA-256(transfer key, salt, info), info naming the
// label, the session, the content, the sender's role, the cipher, the
// chunk size and the file size. Chunk indexes are absolute (chunk i holds
// bytes [i*cs, (i+1)*cs) of the file), so a resumed attempt continues the
// same numbering under a fresh key; the last flag in the nonce makes
// truncation, reordering and extension fail authentication or framing.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Stream format constants (docs/protocol.md, file transfer).
const (
	// StreamHeaderLen is the length of the header that opens each attempt.
	StreamHeaderLen = 4 + 1 + 4 + 8 + streamSaltLen
	// StreamTagLen is the AEAD tag length added to each chunk.
	StreamTagLen = 16

	streamMagic   = "SJF1"
	streamSaltLen = 16
	streamPrefix  = 3
	// streamLabel is the HKDF info label of the stream keys.
	streamLabel = "securejingle v1 file stream"
)

// Cipher ids in the stream header.
const (
	streamAES256GCM        byte = 1
	streamChaCha20Poly1305 byte = 2
)

// Roles of the party that sends a stream's bytes (StreamParams.Sender).
const (
	SenderInitiator = "initiator"
	SenderResponder = "responder"
)

// Errors of the stream. A failed attempt wraps one of them in a
// *StreamError that names the chunk.
var (
	// ErrStreamParams: the stream parameters are not valid (a key of the
	// wrong length, an unknown cipher, a chunk size out of bounds, ...).
	ErrStreamParams = errors.New("filexfer: invalid stream parameters")
	// ErrBadHeader: the header that opens an attempt is not the one this
	// transfer expects (wrong magic, cipher, chunk size or first chunk).
	ErrBadHeader = errors.New("filexfer: bad stream header")
	// ErrTampered: a chunk failed authentication: it was altered, moved,
	// or belongs to another stream or key.
	ErrTampered = errors.New("filexfer: a chunk failed authentication (altered, reordered or from another stream)")
	// ErrTruncated: the stream ended before its final chunk.
	ErrTruncated = errors.New("filexfer: the stream ended before its final chunk")
	// ErrTrailingData: bytes followed the final chunk.
	ErrTrailingData = errors.New("filexfer: data after the final chunk")
	// ErrHashMismatch: every chunk verified but the whole-file hash
	// differs from the one the sender announced.
	ErrHashMismatch = errors.New("filexfer: the file's hash does not match the sender's")
	// ErrTooLarge: the file is larger than the configured limit.
	ErrTooLarge = errors.New("filexfer: file too large")
	// ErrNoSpace: the download directory has not enough free space.
	ErrNoSpace = errors.New("filexfer: not enough free space")
	// ErrSourceChanged: the file being sent is shorter than its offered
	// size (it changed after the offer).
	ErrSourceChanged = errors.New("filexfer: the file changed since it was offered")
)

// StreamError is a failed attempt: what went wrong (one of the errors
// above, or the transport's or file system's error) and where.
type StreamError struct {
	Chunk  uint64 // index of the chunk being read or written
	Offset uint64 // file offset of that chunk
	Err    error
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("%v (chunk %d at byte %d)", e.Err, e.Chunk, e.Offset)
}

// Unwrap returns the cause.
func (e *StreamError) Unwrap() error { return e.Err }

// StreamParams names one file's stream: its key and suite from the
// protected <security/> element, the session and content it belongs to,
// who sends the bytes, and the file's size. Both ends must build the same
// parameters; any difference fails the first chunk's authentication.
type StreamParams struct {
	Key       []byte // the content's transfer key, SecurityKeyLen bytes
	Cipher    string // CipherAES256GCM or CipherChaCha20Poly1305
	ChunkSize uint32 // plaintext bytes per chunk: Security.Chunk()
	SID       string // the Jingle session id
	Content   string // the content name
	Sender    string // SenderInitiator or SenderResponder: the Jingle role of the party that sends the bytes
	Size      uint64 // the file's size, from the protected <file/>
}

// cipherID returns the header id of p's cipher.
func (p StreamParams) cipherID() (byte, bool) {
	switch NormalizeCipher(p.Cipher) {
	case CipherAES256GCM:
		return streamAES256GCM, true
	case CipherChaCha20Poly1305:
		return streamChaCha20Poly1305, true
	}
	return 0, false
}

// check validates p.
func (p StreamParams) check() error {
	if len(p.Key) != SecurityKeyLen {
		return fmt.Errorf("%w: the key is %d bytes, not %d", ErrStreamParams, len(p.Key), SecurityKeyLen)
	}
	if _, ok := p.cipherID(); !ok {
		return fmt.Errorf("%w: unknown cipher %q", ErrStreamParams, p.Cipher)
	}
	if p.ChunkSize < SecurityMinChunkSize || p.ChunkSize > SecurityMaxChunkSize {
		return fmt.Errorf("%w: chunk size %d outside %d..%d", ErrStreamParams, p.ChunkSize, SecurityMinChunkSize, SecurityMaxChunkSize)
	}
	if p.Sender != SenderInitiator && p.Sender != SenderResponder {
		return fmt.Errorf("%w: sender role %q", ErrStreamParams, p.Sender)
	}
	if p.SID == "" || len(p.SID) > MaxSIDLen || p.Content == "" || len(p.Content) > MaxSIDLen {
		return fmt.Errorf("%w: session id and content name must be 1..%d bytes", ErrStreamParams, MaxSIDLen)
	}
	if p.Size > MaxOfferedSize {
		return fmt.Errorf("%w: size %d", ErrStreamParams, p.Size)
	}
	return nil
}

// Chunks returns the number of chunks of the stream: at least one (a
// 0-byte file is a single empty final chunk).
func (p StreamParams) Chunks() uint64 {
	if p.Size == 0 || p.ChunkSize == 0 {
		return 1
	}
	return (p.Size-1)/uint64(p.ChunkSize) + 1
}

// chunkLen returns the plaintext length of chunk i.
func (p StreamParams) chunkLen(i uint64) int {
	start := i * uint64(p.ChunkSize)
	return int(min(uint64(p.ChunkSize), p.Size-start))
}

// AlignDown returns the chunk-aligned resume offset for off: the start of
// the chunk that holds byte off, and at most the start of the final chunk.
func (p StreamParams) AlignDown(off uint64) uint64 {
	if p.ChunkSize == 0 {
		return 0
	}
	i := min(off/uint64(p.ChunkSize), p.Chunks()-1)
	return i * uint64(p.ChunkSize)
}

// WireSize returns the bytes an attempt starting at the chunk-aligned
// offset puts on the transport: header, ciphertext and tags.
func (p StreamParams) WireSize(offset uint64) uint64 {
	offset = p.AlignDown(offset)
	first := offset / max(uint64(p.ChunkSize), 1)
	return StreamHeaderLen + (p.Size - offset) + (p.Chunks()-first)*StreamTagLen
}

// streamKeys returns the AEAD and nonce prefix of one attempt.
func (p StreamParams) streamKeys(salt []byte) (cipher.AEAD, [streamPrefix]byte, error) {
	var prefix [streamPrefix]byte
	id, _ := p.cipherID()
	info := make([]byte, 0, len(streamLabel)+1+2+len(p.SID)+2+len(p.Content)+1+1+4+8)
	info = append(info, streamLabel...)
	info = append(info, 0)
	info = binary.BigEndian.AppendUint16(info, uint16(len(p.SID)))
	info = append(info, p.SID...)
	info = binary.BigEndian.AppendUint16(info, uint16(len(p.Content)))
	info = append(info, p.Content...)
	role := byte(1)
	if p.Sender == SenderResponder {
		role = 2
	}
	info = append(info, role, id)
	info = binary.BigEndian.AppendUint32(info, p.ChunkSize)
	info = binary.BigEndian.AppendUint64(info, p.Size)
	okm, err := hkdf.Key(sha256.New, p.Key, salt, string(info), 32+streamPrefix)
	if err != nil {
		return nil, prefix, err
	}
	defer clear(okm)
	copy(prefix[:], okm[32:])
	var aead cipher.AEAD
	switch id {
	case streamAES256GCM:
		var b cipher.Block
		if b, err = aes.NewCipher(okm[:32]); err == nil {
			aead, err = cipher.NewGCM(b)
		}
	default:
		aead, err = chacha20poly1305.New(okm[:32])
	}
	return aead, prefix, err
}

// header builds the header of an attempt that starts at chunk first.
func (p StreamParams) header(first uint64, salt []byte) []byte {
	id, _ := p.cipherID()
	h := make([]byte, 0, StreamHeaderLen)
	h = append(h, streamMagic...)
	h = append(h, id)
	h = binary.BigEndian.AppendUint32(h, p.ChunkSize)
	h = binary.BigEndian.AppendUint64(h, first)
	return append(h, salt...)
}

// nonce writes the nonce of chunk i into n.
func nonce(n []byte, prefix [streamPrefix]byte, i uint64, last bool) {
	copy(n, prefix[:])
	binary.BigEndian.PutUint64(n[streamPrefix:], i)
	n[streamPrefix+8] = 0
	if last {
		n[streamPrefix+8] = 1
	}
}

// StreamOptions are the optional parts of SendStream.
type StreamOptions struct {
	// Progress, when set, is called after each chunk with the file
	// offset reached (plaintext bytes, counting from 0, not from the
	// resume offset).
	Progress func(done uint64)
	// Hash, when set, is fed the plaintext sent (from the attempt's
	// offset: give it only to an attempt from 0 to hash the whole file).
	Hash hash.Hash
}

// SendStream sends one attempt of p's stream to w: the header, then the
// chunks of src from offset, which must be chunk aligned (AlignDown) and
// at most the start of the final chunk. It returns after the final chunk
// is written; the caller then closes the transport's write side, which is
// how the receiver learns that nothing follows. Cancelling ctx stops it
// between chunks; a write blocked in the transport returns when the
// caller closes w.
func SendStream(ctx context.Context, w io.Writer, src io.ReaderAt, p StreamParams, offset uint64, o StreamOptions) error {
	if err := p.check(); err != nil {
		return err
	}
	if offset != p.AlignDown(offset) {
		return fmt.Errorf("%w: resume offset %d is not a chunk boundary of %d-byte chunks within the file", ErrStreamParams, offset, p.ChunkSize)
	}
	salt := make([]byte, streamSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	return sendAttempt(ctx, w, src, p, offset, o, salt)
}

// sendAttempt is SendStream with a given salt (for known-answer tests).
func sendAttempt(ctx context.Context, w io.Writer, src io.ReaderAt, p StreamParams, offset uint64, o StreamOptions, salt []byte) error {
	aead, prefix, err := p.streamKeys(salt)
	if err != nil {
		return err
	}
	cs := uint64(p.ChunkSize)
	first, n := offset/cs, p.Chunks()
	hdr := p.header(first, salt)
	if _, err := w.Write(hdr); err != nil {
		return &StreamError{Chunk: first, Offset: offset, Err: err}
	}
	buf := make([]byte, int(cs)+StreamTagLen) // sealed in place without a hash
	var hp *hashPipe
	if o.Hash != nil {
		// The plaintext is hashed on another goroutine while this one
		// seals it into buf and writes it.
		hp = newHashPipe(o.Hash, int(cs))
		defer hp.wait()
	}
	var nc [12]byte
	for i := first; i < n; i++ {
		off := i * cs
		if err := ctx.Err(); err != nil {
			return &StreamError{Chunk: i, Offset: off, Err: err}
		}
		l := p.chunkLen(i)
		plain := buf[:l]
		if hp != nil {
			plain = hp.buf()[:l]
		}
		if r, err := src.ReadAt(plain, int64(off)); r < l {
			if hp != nil {
				hp.release(plain)
			}
			if err == nil || errors.Is(err, io.EOF) {
				err = ErrSourceChanged
			}
			return &StreamError{Chunk: i, Offset: off, Err: err}
		}
		nonce(nc[:], prefix, i, i == n-1)
		ct := aead.Seal(buf[:0], nc[:], plain, hdr)
		if hp != nil {
			hp.feed(plain)
		}
		if _, err := w.Write(ct); err != nil {
			return &StreamError{Chunk: i, Offset: off, Err: err}
		}
		if o.Progress != nil {
			o.Progress(off + uint64(l))
		}
	}
	return nil
}
