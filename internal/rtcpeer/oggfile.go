package rtcpeer

// Reading Ogg Opus files packet by packet (RFC 7845, RFC 3533).
//
// pion's oggreader returns whole pages, but an Ogg page may hold many Opus
// packets (opusenc puts up to a second of audio in one) and a packet may
// span pages. The lacing values that delimit packets are in the page
// header, which oggreader parses but does not expose, so oggPackets taps
// the bytes oggreader consumes and reads them from there. oggreader still
// does the framing and the CRC check.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

const (
	oggPageHeaderLen  = 27
	oggFlagContinued  = 0x01
	opusHeadSignature = "OpusHead"
	opusTagsSignature = "OpusTags"
)

// pageTap records the bytes read through it: oggreader reads each page with
// io.ReadFull, so after ParseNextPage the tap holds exactly that page.
type pageTap struct {
	r   io.Reader
	buf []byte
}

func (t *pageTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

// oggPackets reads the audio packets of the first logical Opus stream of an
// Ogg file. It is not safe for concurrent use.
type oggPackets struct {
	path    string
	f       *os.File
	tap     *pageTap
	r       *oggreader.OggReader
	head    *oggreader.OggHeader
	serial  uint32
	offset  int64 // of the next page
	queue   [][]byte
	partial []byte
	inPkt   bool // a packet continues on the next page
	packets int  // packets completed so far, the two header packets included
}

// openOgg opens path and reads its OpusHead page.
func openOgg(path string) (*oggPackets, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	o := &oggPackets{path: path, f: f, tap: &pageTap{r: bufio.NewReaderSize(f, 64<<10)}}
	r, head, err := oggreader.NewWith(o.tap)
	if err != nil {
		f.Close()
		return nil, o.bad(0, "no Ogg Opus identification header", err)
	}
	if head.Channels < 1 || head.Channels > 2 {
		f.Close()
		return nil, o.bad(0, "only mono and stereo Opus can be sent in RTP", nil)
	}
	if len(o.tap.buf) < oggPageHeaderLen {
		f.Close()
		return nil, o.bad(0, "short first page", nil)
	}
	o.r, o.head = r, head
	o.serial = binary.LittleEndian.Uint32(o.tap.buf[14:18])
	o.offset = int64(len(o.tap.buf))
	o.tap.buf = o.tap.buf[:0]
	o.packets = 1
	return o, nil
}

func (o *oggPackets) Close() error { return o.f.Close() }

func (o *oggPackets) bad(off int64, reason string, err error) error {
	return &MediaError{Path: o.path, Offset: off, Reason: reason, Err: err}
}

// next returns the next audio packet, or io.EOF after the last one. The
// OpusTags packet and zero-length packets are skipped.
func (o *oggPackets) next() ([]byte, error) {
	for {
		for len(o.queue) > 0 {
			p := o.queue[0]
			o.queue[0] = nil
			o.queue = o.queue[1:]
			o.packets++
			if o.packets == 2 {
				if len(p) < 8 || string(p[:8]) != opusTagsSignature {
					return nil, o.bad(-1, "second packet is not OpusTags", nil)
				}
				continue
			}
			if len(p) == 0 {
				continue
			}
			return p, nil
		}
		if err := o.readPage(); err != nil {
			return nil, err
		}
	}
}

// readPage reads one page and queues the packets it completes.
func (o *oggPackets) readPage() error {
	off := o.offset
	payload, _, err := o.r.ParseNextPage()
	page := o.tap.buf
	o.tap.buf = o.tap.buf[:0]
	o.offset += int64(len(page))
	switch {
	case errors.Is(err, io.EOF) && len(page) == 0:
		if o.inPkt {
			return o.bad(off, "last packet is cut off", nil)
		}
		return io.EOF
	case err != nil:
		return o.bad(off, "bad Ogg page", err)
	case len(page) < oggPageHeaderLen || len(page) < oggPageHeaderLen+int(page[26]):
		return o.bad(off, "short Ogg page", nil)
	}
	if binary.LittleEndian.Uint32(page[14:18]) != o.serial {
		return nil // another logical stream
	}
	continued := page[5]&oggFlagContinued != 0
	if continued != o.inPkt {
		return o.bad(off, "packet continuation does not match the previous page", nil)
	}
	pos := 0
	for _, l := range page[oggPageHeaderLen : oggPageHeaderLen+int(page[26])] {
		n := int(l)
		if len(o.partial)+n > MaxOpusPacketBytes {
			return o.bad(off, "Opus packet larger than the limit", nil)
		}
		o.partial = append(o.partial, payload[pos:pos+n]...)
		pos += n
		if n < 255 {
			o.queue = append(o.queue, o.partial)
			o.partial = nil
		}
	}
	o.inPkt = page[26] > 0 && page[oggPageHeaderLen+int(page[26])-1] == 255
	if o.inPkt && o.partial == nil {
		o.partial = []byte{}
	}
	return nil
}

// checkOgg opens an Ogg Opus file and reads it through, so that a bad file
// is refused before a call starts rather than cut off during it.
func checkOgg(path string) error {
	o, err := openOgg(path)
	if err != nil {
		return err
	}
	defer o.Close()
	n := 0
	for {
		p, err := o.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if opusSamples(p) == 0 {
			return o.bad(-1, "audio packet with an invalid Opus TOC byte", nil)
		}
		n++
	}
	if n == 0 {
		return o.bad(-1, "no audio packets", nil)
	}
	return nil
}

// opusSamples returns the number of 48 kHz samples an Opus packet holds,
// from its TOC byte and frame count (RFC 6716 §3.1, §3.2), or 0 for a
// packet that is not valid Opus or holds more than 120 ms.
func opusSamples(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	var perFrame int
	switch {
	case toc&0x80 != 0: // CELT-only: 2.5, 5, 10, 20 ms
		perFrame = (opusClockRate << ((toc >> 3) & 3)) / 400
	case toc&0x60 == 0x60: // hybrid: 10, 20 ms
		perFrame = opusClockRate / 100 << ((toc >> 3) & 1)
	default: // SILK-only: 10, 20, 40, 60 ms
		switch fs := (toc >> 3) & 3; fs {
		case 3:
			perFrame = opusClockRate * 60 / 1000
		default:
			perFrame = (opusClockRate << fs) / 100
		}
	}
	var frames int
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0
		}
		frames = int(p[1] & 0x3f)
	}
	n := perFrame * frames
	if n == 0 || n > opusClockRate*120/1000 {
		return 0
	}
	return n
}

// opusDuration is the play time of an Opus packet.
func opusDuration(p []byte) time.Duration {
	return time.Duration(opusSamples(p)) * time.Second / opusClockRate
}
