package srtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pion/rtcp"
)

// fuzzRelay is a Relay with only a table, for the RTCP walk.
func fuzzRelay(m ...ssrcRewrite) *Relay {
	r := &Relay{}
	for _, e := range m {
		if err := r.addSSRC(e.from, e.to); err != nil {
			panic(err)
		}
	}
	return r
}

// FuzzRewriteRTCP: the RTCP walk never panics or reads out of bounds on
// any (authenticated, so peer-controlled) plaintext; whether it accepts a
// packet, and which packets it removes, does not depend on the map; what
// it keeps is a subsequence of the input's packets, unchanged under an
// identity map; a real map changes only whole aligned words that held a
// mapped SSRC; and its output walks again unchanged.
func FuzzRewriteRTCP(f *testing.F) {
	tmmbr := []byte{0x83, 205, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0x04, 0, 0, 0x28}
	app := []byte{0x80, 204, 0, 3, 0, 0, 0, 1, 'n', 'a', 'm', 'e', 0, 0, 0, 2}
	seeds := [][]rtcp.Packet{
		{&rtcp.SenderReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}},
		{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}}},
		{&rtcp.FullIntraRequest{SenderSSRC: 1, FIR: []rtcp.FIREntry{{SSRC: 2}}}, &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 5, SSRCs: []uint32{1, 2}}},
		{&rtcp.Goodbye{Sources: []uint32{1, 2}, Reason: "r"}, &rtcp.PictureLossIndication{SenderSSRC: 2, MediaSSRC: 1}},
		{&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 3}}}},
		{&rtcp.ReceiverReport{SSRC: 2}, &rtcp.ExtendedReport{SenderSSRC: 1, Reports: []rtcp.ReportBlock{
			&rtcp.ReceiverReferenceTimeReportBlock{NTPTimestamp: 7},
			&rtcp.DLRRReportBlock{Reports: []rtcp.DLRRReport{{SSRC: 1}, {SSRC: 2}}},
			&rtcp.StatisticsSummaryReportBlock{SSRC: 2},
			&rtcp.LossRLEReportBlock{SSRC: 1, Chunks: []rtcp.Chunk{0x4006, 0}},
		}}},
		{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.TransportLayerCC{SenderSSRC: 1, MediaSSRC: 2}},
		{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.ApplicationDefined{SSRC: 2, Name: "abcd", Data: []byte{0, 0, 0, 1}}},
	}
	for _, s := range seeds {
		b, err := rtcp.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	rr, _ := (&rtcp.ReceiverReport{SSRC: 1}).Marshal()
	f.Add(append(append([]byte(nil), rr...), tmmbr...))
	f.Add(append(append([]byte(nil), rr...), app...))
	f.Add(app)
	f.Fuzz(func(t *testing.T, in []byte) {
		identity := fuzzRelay(ssrcRewrite{1, 1})
		mapping := fuzzRelay(ssrcRewrite{1, 0xdeadbeef}, ssrcRewrite{2, 0})
		a := append([]byte(nil), in...)
		nA, remA, errA := identity.rewriteRTCP(a)
		b := append([]byte(nil), in...)
		nB, remB, errB := mapping.rewriteRTCP(b)
		if (errA == nil) != (errB == nil) || errors.Is(errA, ErrUnsupportedRTCP) != errors.Is(errB, ErrUnsupportedRTCP) {
			t.Fatalf("acceptance depends on the map: %v vs %v", errA, errB)
		}
		if remA != remB {
			t.Fatalf("removal depends on the map: %d vs %d", remA, remB)
		}
		if errA != nil {
			if !errors.Is(errA, ErrMalformed) && !errors.Is(errA, ErrUnsupportedRTCP) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnsupportedRTCP", errA)
			}
			return
		}
		if nA != nB || nA > len(in) || (remA == 0 && nA != len(in)) {
			t.Fatalf("lengths %d, %d from %d with %d removed", nA, nB, len(in), remA)
		}
		kept := a[:nA]
		// The kept packets are a subsequence of the input's, unchanged.
		off := 0
		for k := 0; k < len(kept); {
			size := (int(binary.BigEndian.Uint16(kept[k+2:k+4])) + 1) * 4
			for {
				if off >= len(in) {
					t.Fatalf("kept packet at %d is not an input packet", k)
				}
				isize := (int(binary.BigEndian.Uint16(in[off+2:off+4])) + 1) * 4
				off += isize
				if isize == size && bytes.Equal(in[off-isize:off], kept[k:k+size]) {
					break
				}
			}
			k += size
		}
		for i := 0; i < nA; i += 4 {
			end := min(i+4, nA)
			if !bytes.Equal(b[i:end], kept[i:end]) && (end-i != 4 || !(bytes.Equal(kept[i:end], []byte{0, 0, 0, 1}) || bytes.Equal(kept[i:end], []byte{0, 0, 0, 2}))) {
				t.Fatalf("word at %d changed from %x to %x", i, kept[i:end], b[i:end])
			}
		}
		again := append([]byte(nil), kept...)
		if n, rem, err := identity.rewriteRTCP(again); err != nil || rem != 0 || n != nA || !bytes.Equal(again, kept) {
			t.Fatalf("the output does not walk again unchanged: %d %d %v", n, rem, err)
		}
	})
}
