package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is returned (wrapped) for any input that does not parse
// strictly: wrong lengths, non-canonical integers, trailing bytes.
var ErrMalformed = errors.New("e2e: malformed input")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// builder appends the canonical binary encodings used on the wire and in
// signed transcripts. All integers are big-endian or minimal uvarints;
// variable-length fields carry their length.
type builder []byte

func (b *builder) u8(v uint8)   { *b = append(*b, v) }
func (b *builder) u16(v uint16) { *b = binary.BigEndian.AppendUint16(*b, v) }
func (b *builder) u32(v uint32) { *b = binary.BigEndian.AppendUint32(*b, v) }
func (b *builder) u64(v uint64) { *b = binary.BigEndian.AppendUint64(*b, v) }
func (b *builder) uvarint(v uint64) {
	*b = binary.AppendUvarint(*b, v)
}
func (b *builder) raw(p []byte) { *b = append(*b, p...) }

// bytes16 appends p with a 16-bit length prefix.
func (b *builder) bytes16(p []byte) {
	if len(p) > 0xffff {
		panic("e2e: field too long for 16-bit length")
	}
	b.u16(uint16(len(p)))
	b.raw(p)
}

// vbytes appends p with a uvarint length prefix.
func (b *builder) vbytes(p []byte) {
	b.uvarint(uint64(len(p)))
	b.raw(p)
}

func (b *builder) str16(s string) { b.bytes16([]byte(s)) }

// reader parses what builder writes. The first error sticks; every method
// returns zero values after it.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = malformed("truncated or invalid %s", what)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(what)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8(what string) uint8 {
	p := r.take(1, what)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *reader) u16(what string) uint16 {
	p := r.take(2, what)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (r *reader) u32(what string) uint32 {
	p := r.take(4, what)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (r *reader) u64(what string) uint64 {
	p := r.take(8, what)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

// uvarint reads a minimally encoded uvarint no larger than max.
func (r *reader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max || n != len(binary.AppendUvarint(nil, v)) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes16(what string) []byte {
	n := r.u16(what)
	return r.take(int(n), what)
}

func (r *reader) vbytes(what string, max int) []byte {
	n := r.uvarint(what, uint64(max))
	return r.take(int(n), what)
}

func (r *reader) fixed(n int, what string) []byte { return r.take(n, what) }

// done reports the sticky error, or an error if bytes remain.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = malformed("%d trailing bytes", len(r.b))
	}
	return r.err
}
