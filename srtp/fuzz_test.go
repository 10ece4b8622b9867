package srtp

import (
	"bytes"
	"testing"

	"github.com/pion/rtcp"
)

// FuzzRewriteRTCP: the RTCP walk never panics or reads out of bounds on
// any (authenticated, so peer-controlled) plaintext; whether it accepts a
// packet does not depend on the map; an identity map changes nothing; a
// real map changes only whole aligned SSRC words and keeps the length.
func FuzzRewriteRTCP(f *testing.F) {
	seeds := [][]rtcp.Packet{
		{&rtcp.SenderReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}},
		{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}}},
		{&rtcp.FullIntraRequest{SenderSSRC: 1, FIR: []rtcp.FIREntry{{SSRC: 2}}}, &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 5, SSRCs: []uint32{1, 2}}},
		{&rtcp.Goodbye{Sources: []uint32{1, 2}, Reason: "r"}, &rtcp.PictureLossIndication{SenderSSRC: 2, MediaSSRC: 1}},
		{&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 3}}}},
	}
	for _, s := range seeds {
		b, err := rtcp.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		identity := &Relay{nSSRC: 1, ssrc: [MaxSSRCRewrites]ssrcRewrite{{1, 1}}}
		mapping := &Relay{nSSRC: 2, ssrc: [MaxSSRCRewrites]ssrcRewrite{{1, 0xdeadbeef}, {2, 0}}}
		a := append([]byte(nil), in...)
		errA := identity.rewriteRTCP(a)
		b := append([]byte(nil), in...)
		errB := mapping.rewriteRTCP(b)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("acceptance depends on the map: %v vs %v", errA, errB)
		}
		if !bytes.Equal(a, in) {
			t.Fatal("identity map changed the packet")
		}
		if len(b) != len(in) {
			t.Fatal("length changed")
		}
		for i := 0; i < len(in); i += 4 {
			end := min(i+4, len(in))
			if !bytes.Equal(b[i:end], in[i:end]) && (end-i != 4 || !(bytes.Equal(in[i:end], []byte{0, 0, 0, 1}) || bytes.Equal(in[i:end], []byte{0, 0, 0, 2}))) {
				t.Fatalf("word at %d changed from %x to %x", i, in[i:end], b[i:end])
			}
		}
	})
}
