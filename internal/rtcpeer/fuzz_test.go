package rtcpeer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// FuzzOggPackets: any Ogg input is read without panic, within the packet
// limit; packets cut from the input and written with mediagen read back
// equal, whatever the paging.
func FuzzOggPackets(f *testing.F) {
	var seed bytes.Buffer
	if err := mediagen.WriteOgg(&seed, mediagen.OpusPackets(5, 1), 2); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes(), uint8(1))
	f.Add(seed.Bytes()[:60], uint8(3))
	f.Add([]byte{}, uint8(0))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, perPage uint8) {
		path := filepath.Join(dir, "in.ogg")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if o, err := openOgg(path); err == nil {
			for {
				p, err := o.next()
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, ErrBadMedia) {
						t.Fatalf("error %v is not ErrBadMedia", err)
					}
					break
				}
				if len(p) == 0 || len(p) > MaxOpusPacketBytes {
					t.Fatalf("packet of %d bytes", len(p))
				}
			}
			o.Close()
		}
		// Round trip: the input as packets of varying sizes.
		var pkts [][]byte
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+int(rest[0])*3)
			pkts = append(pkts, rest[:n])
			rest = rest[n:]
		}
		var b bytes.Buffer
		if err := mediagen.WriteOgg(&b, pkts, int(perPage%20)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		got := readPackets(t, path)
		if len(got) != len(pkts) {
			t.Fatalf("%d packets read, %d written", len(got), len(pkts))
		}
		for i := range got {
			if !bytes.Equal(got[i], pkts[i]) {
				t.Fatalf("packet %d differs", i)
			}
		}
	})
}

// FuzzIVF: any IVF input is indexed without panic, every frame size within
// the file and the limit, every play time after the one before.
func FuzzIVF(f *testing.F) {
	var seed bytes.Buffer
	if err := mediagen.WriteIVF(&seed, mediagen.VP8Frames(3, 2, 32, 32, 1), 32, 32, 30); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:40])
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in.ivf")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		x, err := openIVF(path)
		if err != nil {
			return
		}
		defer x.Close()
		var last time.Duration = -1
		for {
			fr, err := x.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrBadMedia) {
					t.Fatalf("error %v is not ErrBadMedia", err)
				}
				return
			}
			if fr.size <= 0 || fr.size > MaxVideoFrameBytes || int64(fr.size) > int64(len(data)) || fr.at <= last {
				t.Fatalf("frame %+v after %v", fr, last)
			}
			last = fr.at
		}
	})
}

// FuzzVP8Assembler: any packet sequence is reassembled without panic into
// frames within the limit, and a clean stream packetized from the input
// comes back whole.
func FuzzVP8Assembler(f *testing.F) {
	f.Add([]byte{0x10, 1, 2, 3, 0x00, 4, 5}, uint16(65530))
	f.Add(bytes.Repeat([]byte{0x90, 0x80, 0x01}, 400), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, seq0 uint16) {
		n := 0
		a := newVP8Assembler(func(_ uint32, fr []byte) {
			if len(fr) == 0 || len(fr) > MaxVideoFrameBytes {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			n++
		})
		// Arbitrary packets: each takes a sequence offset, flags and a
		// payload from the input.
		for rest := data; len(rest) >= 4; {
			l := min(len(rest)-4, int(rest[3]))
			p := &rtp.Packet{Header: rtp.Header{SequenceNumber: seq0 + binary.BigEndian.Uint16(rest[0:2]),
				Marker: rest[2]&1 != 0, Timestamp: uint32(rest[2] >> 1)}, Payload: rest[4 : 4+l]}
			a.push(p)
			rest = rest[4+l:]
		}
		a.flush()

		// A clean stream of one frame made of the input.
		if len(data) == 0 {
			return
		}
		var got []byte
		b := newVP8Assembler(func(_ uint32, fr []byte) { got = fr })
		pz := rtp.NewPacketizer(200, 96, 1, &codecs.VP8Payloader{}, rtp.NewFixedSequencer(seq0), 90000)
		for _, p := range pz.Packetize(data, 3000) {
			b.push(p)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("clean stream: got %d bytes, want %d", len(got), len(data))
		}
	})
}
