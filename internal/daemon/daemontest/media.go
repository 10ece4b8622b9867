package daemontest

import (
	"crypto/rand"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// WriteOpus writes an Ogg Opus file of n 20 ms packets of random payload
// (each with a valid TOC byte: CELT fullband, 20 ms, stereo, one frame)
// at path, and returns the packets, to compare with a recording.
func WriteOpus(t testing.TB, path string, n int) [][]byte {
	t.Helper()
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	var packets [][]byte
	for i := range n {
		p := make([]byte, 80)
		rand.Read(p)
		p[0] = 0xfc // config 31 (CELT FB 20 ms), stereo, code 0
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i),
			Timestamp: uint32(i * 960), SSRC: 1}, Payload: p}
		if err := w.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
		packets = append(packets, p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return packets
}
