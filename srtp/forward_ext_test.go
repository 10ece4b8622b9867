package srtp

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

// TestStripExtension: a forwarded packet loses leg A's header extension
// (one-byte and two-byte forms, with CSRCs), keeps everything else, and a
// header cut short is refused rather than read past its end.
func TestStripExtension(t *testing.T) {
	payload := payloadOf(40, 3)
	withExt := func(h rtp.Header, profile uint16, exts map[uint8][]byte) rtp.Header {
		h.Extension, h.ExtensionProfile = true, profile
		for id, v := range exts {
			if err := h.SetExtension(id, v); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	base := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 9, SSRC: 5}
	csrc := base
	csrc.CSRC = []uint32{11, 12}
	for _, tc := range []struct {
		name string
		hdr  rtp.Header
	}{
		{"none", base},
		{"one-byte", withExt(base, rtp.ExtensionProfileOneByte, map[uint8][]byte{3: {1, 2}, 4: []byte("0")})},
		{"two-byte+csrc", withExt(csrc, rtp.ExtensionProfileTwoByte, map[uint8][]byte{20: bytes.Repeat([]byte{9}, 30)})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := (&rtp.Packet{Header: tc.hdr, Payload: payload}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			n, ok := stripExtension(in)
			if !ok {
				t.Fatal("refused a well-formed packet")
			}
			var got rtp.Packet
			if err := got.Unmarshal(in[:n]); err != nil {
				t.Fatal(err)
			}
			if got.Extension || len(got.Extensions) != 0 {
				t.Fatalf("extension kept: %+v", got.Header)
			}
			if !bytes.Equal(got.Payload, payload) || got.SSRC != 5 || got.SequenceNumber != 7 || len(got.CSRC) != len(tc.hdr.CSRC) {
				t.Fatalf("packet changed: %+v", got)
			}
			if tc.hdr.Extension {
				for cut := 12 + 4*len(tc.hdr.CSRC); cut < tc.hdr.MarshalSize(); cut++ {
					b := append([]byte(nil), in[:tc.hdr.MarshalSize()]...)
					b[0] |= 0x10
					if _, ok := stripExtension(b[:cut]); ok {
						t.Fatalf("header cut at %d of %d accepted", cut, tc.hdr.MarshalSize())
					}
				}
			}
		})
	}
}
