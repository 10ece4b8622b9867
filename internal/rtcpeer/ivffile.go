package rtcpeer

// Reading IVF files (the libvpx container: a 32-byte file header, then
// frames of a 12-byte header and the VP8 frame).
//
// pion's ivfreader allocates whatever frame size a header claims before
// reading it, and converts timestamps in a way that only suits one kind of
// timebase. ivfIndex walks the frame headers on its own file handle one
// frame ahead of ivfreader, so that every size is checked before ivfreader
// allocates it and every timestamp is turned into a play time exactly.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/bits"
	"os"
	"time"
)

const (
	ivfFileHeaderLen  = 32
	ivfFrameHeaderLen = 12
)

// ivfFrame is what ivfIndex knows of one frame.
type ivfFrame struct {
	size int
	at   time.Duration // play time relative to the first frame
}

// ivfIndex reads the frame headers of an IVF file. It is not safe for
// concurrent use.
type ivfIndex struct {
	path        string
	f           *os.File
	r           *bufio.Reader
	size        int64 // of the file
	offset      int64 // of the next frame header
	rate, scale uint32
	first, last uint64 // timestamps of the first and the previous frame
	frames      int
	period      time.Duration // scale/rate, when that is a frame period
}

func openIVF(path string) (*ivfIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	x := &ivfIndex{path: path, f: f, r: bufio.NewReaderSize(f, 64<<10)}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	x.size = fi.Size()
	var h [ivfFileHeaderLen]byte
	if _, err := io.ReadFull(x.r, h[:]); err != nil {
		f.Close()
		return nil, x.bad(0, "short IVF file header", err)
	}
	switch {
	case string(h[0:4]) != "DKIF":
		err = x.bad(0, "not an IVF file", nil)
	case binary.LittleEndian.Uint16(h[4:6]) != 0:
		err = x.bad(4, "unknown IVF version", nil)
	case binary.LittleEndian.Uint16(h[6:8]) != ivfFileHeaderLen:
		err = x.bad(6, "IVF header length is not 32", nil)
	case string(h[8:12]) != "VP80":
		err = x.bad(8, "codec is "+printable(h[8:12])+", not VP8 (VP80)", nil)
	}
	x.rate = binary.LittleEndian.Uint32(h[16:20])
	x.scale = binary.LittleEndian.Uint32(h[20:24])
	if err == nil && (x.rate == 0 || x.scale == 0) {
		err = x.bad(16, "IVF timebase has a zero term", nil)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if p := time.Duration(x.scale) * time.Second / time.Duration(x.rate); p >= time.Second/maxFrameRate && p <= maxSampleGap {
		x.period = p
	}
	x.offset = ivfFileHeaderLen
	return x, nil
}

func (x *ivfIndex) Close() error { return x.f.Close() }

func (x *ivfIndex) bad(off int64, reason string, err error) error {
	return &MediaError{Path: x.path, Offset: off, Reason: reason, Err: err}
}

// next reads the next frame header and skips the frame; io.EOF after the
// last frame.
func (x *ivfIndex) next() (ivfFrame, error) {
	var h [ivfFrameHeaderLen]byte
	n, err := io.ReadFull(x.r, h[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return ivfFrame{}, io.EOF
	case err != nil:
		return ivfFrame{}, x.bad(x.offset, "short frame header", err)
	}
	off := x.offset
	size := int64(binary.LittleEndian.Uint32(h[0:4]))
	ts := binary.LittleEndian.Uint64(h[4:12])
	switch {
	case size == 0:
		return ivfFrame{}, x.bad(off, "empty frame", nil)
	case size > MaxVideoFrameBytes:
		return ivfFrame{}, x.bad(off, "frame larger than the limit", nil)
	case off+ivfFrameHeaderLen+size > x.size:
		return ivfFrame{}, x.bad(off, "frame runs past the end of the file", nil)
	}
	if err := x.skip(size); err != nil {
		return ivfFrame{}, x.bad(off, "short frame", err)
	}
	x.offset = off + ivfFrameHeaderLen + size
	if x.frames == 0 {
		x.first = ts
	} else {
		if ts <= x.last {
			return ivfFrame{}, x.bad(off, "frame timestamps do not increase", nil)
		}
		gap, ok := x.duration(ts - x.last)
		if !ok || gap > maxSampleGap {
			return ivfFrame{}, x.bad(off, "frames further apart than "+maxSampleGap.String(), nil)
		}
		if gap < time.Second/maxFrameRate {
			return ivfFrame{}, x.bad(off, "frames closer together than the frame rate limit", nil)
		}
	}
	at, ok := x.duration(ts - x.first)
	if !ok {
		return ivfFrame{}, x.bad(off, "timestamp out of range", nil)
	}
	x.last = ts
	x.frames++
	return ivfFrame{size: int(size), at: at}, nil
}

// skip moves past n bytes of frame data, seeking over what is not
// buffered (the size was checked against the file's).
func (x *ivfIndex) skip(n int64) error {
	if b := int64(x.r.Buffered()); n > b {
		if _, err := x.r.Discard(int(b)); err != nil {
			return err
		}
		if _, err := x.f.Seek(n-b, io.SeekCurrent); err != nil {
			return err
		}
		x.r.Reset(x.f)
		return nil
	}
	_, err := x.r.Discard(int(n))
	return err
}

// duration converts a timestamp difference d in timebase units
// (scale/rate seconds each) into a Duration, exactly and without overflow.
func (x *ivfIndex) duration(d uint64) (time.Duration, bool) {
	hi, lo := bits.Mul64(d, uint64(x.scale)*uint64(time.Second))
	if hi >= uint64(x.rate) {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, uint64(x.rate))
	if q > math.MaxInt64 {
		return 0, false
	}
	return time.Duration(q), true
}

// checkIVF reads every frame header of an IVF VP8 file.
func checkIVF(path string) error {
	x, err := openIVF(path)
	if err != nil {
		return err
	}
	defer x.Close()
	for {
		if _, err := x.next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
	}
	if x.frames == 0 {
		return x.bad(x.offset, "no frames", nil)
	}
	return nil
}

func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return "\"" + string(out) + "\""
}
