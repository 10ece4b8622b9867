package rtcpeer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// Match is the result of comparing a recording with its source; a plain
// value.
type Match struct {
	Source  int // payloads (Opus packets or VP8 frames) in the source
	Matched int // recorded payloads, each equal to a source payload, in order
	Missing int // source payloads the recording lacks (Source - Matched)
}

// ComparePayloads compares the Opus packets recorded in recOgg with those
// of srcOgg. Every recorded packet must equal the source's next packet or
// a later one (losses are allowed, reordering and alteration are not);
// otherwise it returns an error matching [ErrPayloadMismatch] that names
// the first recorded packet that does not fit. Files are read as streams:
// memory does not grow with their length.
func ComparePayloads(srcOgg, recOgg string) (Match, error) {
	src, err := openOgg(srcOgg)
	if err != nil {
		return Match{}, err
	}
	defer src.Close()
	rec, err := openOgg(recOgg)
	if err != nil {
		return Match{}, err
	}
	defer rec.Close()
	return compare(src.next, rec.next)
}

// CompareFrames does for the VP8 frames of two IVF files what
// [ComparePayloads] does for Opus packets.
func CompareFrames(srcIVF, recIVF string) (Match, error) {
	src, closeSrc, err := ivfFrames(srcIVF)
	if err != nil {
		return Match{}, err
	}
	defer closeSrc()
	rec, closeRec, err := ivfFrames(recIVF)
	if err != nil {
		return Match{}, err
	}
	defer closeRec()
	return compare(src, rec)
}

// ivfFrames returns a function that reads the next frame of an IVF file,
// each frame's size checked by an ivfIndex before ivfreader reads it.
func ivfFrames(path string) (next func() ([]byte, error), closeAll func(), err error) {
	x, err := openIVF(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		x.Close()
		return nil, nil, err
	}
	closeAll = func() { x.Close(); f.Close() }
	r, _, err := ivfreader.NewWith(bufio.NewReader(f))
	if err != nil {
		closeAll()
		return nil, nil, x.bad(0, "bad IVF header", err)
	}
	next = func() ([]byte, error) {
		fr, err := x.next()
		if err != nil {
			return nil, err
		}
		b, _, err := r.ParseNextFrame()
		if err != nil {
			return nil, x.bad(-1, "bad IVF frame", err)
		}
		if len(b) != fr.size {
			return nil, x.bad(-1, "file changed while reading", nil)
		}
		return b, nil
	}
	return next, closeAll, nil
}

// compare matches rec against src as a subsequence, greedily (which finds
// a match whenever there is one).
func compare(src, rec func() ([]byte, error)) (Match, error) {
	var m Match
	srcDone := false
	for i := 0; ; i++ {
		r, err := rec()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, err
		}
		for {
			if srcDone {
				return m, fmt.Errorf("%w: recorded payload %d (%d bytes) is not in the source after its payload %d",
					ErrPayloadMismatch, i, len(r), m.Source)
			}
			s, err := src()
			if errors.Is(err, io.EOF) {
				srcDone = true
				continue
			}
			if err != nil {
				return m, err
			}
			m.Source++
			if bytes.Equal(s, r) {
				m.Matched++
				break
			}
		}
	}
	for !srcDone {
		_, err := src()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, err
		}
		m.Source++
	}
	m.Missing = m.Source - m.Matched
	return m, nil
}
