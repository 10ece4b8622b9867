package srtp

import (
	"bytes"
	"errors"
	"testing"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// legs is a relay between two call legs: A's sender, the relay, B's
// receiver. Leg A and leg B have their own keys and may use different
// profiles.
type legs struct {
	aSend *Protector
	relay *Relay
	bRecv *Unprotector
}

func newLegs(t testing.TB, pa, pb piondtls.SRTPProtectionProfile, opts ...RelayOption) legs {
	t.Helper()
	aSend, relayIn := pair(t, pa)
	relayOut, bRecv := pair(t, pb)
	r, err := NewRelay(relayIn, relayOut, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return legs{protector(t, aSend), r, unprotector(t, bRecv)}
}

func TestRelayRTP(t *testing.T) {
	for _, pa := range Profiles() {
		for _, pb := range Profiles() {
			t.Run(ProfileName(pa)+"-to-"+ProfileName(pb), func(t *testing.T) {
				l := newLegs(t, pa, pb, WithSSRC(0xaaaa, 0xbbbb), WithPassThrough(0xcccc), WithPayloadType(111, 109))
				var ct, relayed, got []byte
				for i, seq := range []uint16{1, 2, 4, 3, 5} {
					for _, ssrc := range []uint32{0xaaaa, 0xcccc} {
						payload := payloadOf(160+i, byte(seq))
						in := rtpPacket(t, ssrc, seq, 111, i%2 == 1, payload)
						var err error
						if ct, err = l.aSend.RTP(ct, in); err != nil {
							t.Fatal(err)
						}
						src := append([]byte(nil), ct...)
						if relayed, err = l.relay.RTP(relayed, ct); err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(ct, src) {
							t.Fatal("the relay modified its source packet")
						}
						if got, err = l.bRecv.RTP(got, relayed); err != nil {
							t.Fatal(err)
						}
						var pkt rtp.Packet
						if err := pkt.Unmarshal(got); err != nil {
							t.Fatal(err)
						}
						wantSSRC, wantPT := ssrc, uint8(109)
						if ssrc == 0xaaaa {
							wantSSRC = 0xbbbb
						}
						if pkt.SSRC != wantSSRC || pkt.PayloadType != wantPT || pkt.Marker != (i%2 == 1) ||
							pkt.SequenceNumber != seq || pkt.Timestamp != uint32(seq)*960 {
							t.Fatalf("relayed header %+v", pkt.Header)
						}
						if !bytes.Equal(pkt.Payload, payload) {
							t.Fatal("relayed payload differs")
						}
					}
				}
				// Leg A's key does not open leg B's packets: they were re-encrypted.
				if _, err := l.relay.in.ctx.DecryptRTP(nil, relayed, nil); err == nil {
					t.Fatal("leg A's context opened a packet for leg B")
				}
				s := l.relay.Stats()
				if s.In.RTP != 10 || s.Out.RTP != 10 {
					t.Fatalf("stats %+v", s)
				}
			})
		}
	}
}

func TestRelayRefuses(t *testing.T) {
	l := newLegs(t, Profiles()[0], Profiles()[0], WithPassThrough(1))
	ct, err := l.aSend.RTP(nil, rtpPacket(t, 1, 1, 96, false, payloadOf(100, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.relay.RTP(nil, ct); err != nil {
		t.Fatal(err)
	}
	if out, err := l.relay.RTP(nil, ct); !errors.Is(err, ErrReplay) || out != nil {
		t.Fatalf("replayed packet: %v, want ErrReplay and nothing sent", err)
	}
	ct2, _ := l.aSend.RTP(nil, rtpPacket(t, 1, 2, 96, false, payloadOf(100, 1)))
	ct2[len(ct2)-1] ^= 1
	if out, err := l.relay.RTP(nil, ct2); !errors.Is(err, ErrAuth) || out != nil {
		t.Fatalf("forged packet: %v, want ErrAuth and nothing sent", err)
	}
	if s := l.relay.Stats(); s.In.Replays != 1 || s.In.AuthFailures != 1 || s.Out.RTP != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNewRelayOptions(t *testing.T) {
	many := func(n int, f func(i int) RelayOption) []RelayOption {
		var o []RelayOption
		for i := range n {
			o = append(o, f(i))
		}
		return o
	}
	for name, opts := range map[string][]RelayOption{
		"no SSRC":                {WithPayloadType(96, 97)},
		"ssrc twice":             {WithSSRC(1, 2), WithSSRC(1, 3)},
		"many to one":            {WithSSRC(1, 9), WithSSRC(2, 9)},
		"to is a pass-through":   {WithPassThrough(9), WithSSRC(1, 9)},
		"pass-through is a to":   {WithSSRC(1, 9), WithPassThrough(9)},
		"pass-through twice":     {WithPassThrough(9), WithPassThrough(9)},
		"pass-through is a from": {WithSSRC(1, 9), WithPassThrough(1)},
		"identity and a to":      {WithSSRC(9, 9), WithSSRC(1, 9)},
		"pt twice":               {WithPassThrough(1), WithPayloadType(96, 97), WithPayloadType(96, 98)},
		"pt identity then twice": {WithPassThrough(1), WithPayloadType(5, 5), WithPayloadType(5, 6)},
		"pt out of range":        {WithPassThrough(1), WithPayloadType(128, 1)},
		"pt to >127":             {WithPassThrough(1), WithPayloadType(1, 200)},
		"too many ssrc":          many(MaxRelaySSRCs+1, func(i int) RelayOption { return WithSSRC(uint32(i), uint32(1000+i)) }),
		"too many pt": append(many(MaxPayloadTypeRewrites+1, func(i int) RelayOption { return WithPayloadType(uint8(i), 100) }),
			WithPassThrough(1)),
	} {
		a, b := pair(t, Profiles()[0])
		if _, err := NewRelay(a, b, opts...); !errors.Is(err, ErrBadRelayOption) {
			t.Errorf("%s: %v, want ErrBadRelayOption", name, err)
		}
		// A refused relay owns nothing.
		if _, err := NewRelay(a, b, WithPassThrough(1)); err != nil {
			t.Errorf("%s: the contexts of a refused relay stay claimed: %v", name, err)
		}
	}
	// What is allowed: a swap, a full table.
	a, b := pair(t, Profiles()[0])
	if _, err := NewRelay(a, b, WithSSRC(1, 2), WithSSRC(2, 1), WithPassThrough(3), WithSSRC(4, 4)); err != nil {
		t.Error(err)
	}
	a, b = pair(t, Profiles()[0])
	if _, err := NewRelay(a, b, many(MaxRelaySSRCs, func(i int) RelayOption { return WithSSRC(uint32(i), uint32(1000+i)) })...); err != nil {
		t.Error(err)
	}
	a, b = pair(t, Profiles()[0])
	if _, err := NewRelay(a, a, WithPassThrough(1)); !errors.Is(err, ErrContextInUse) {
		t.Errorf("one context: %v, want ErrContextInUse", err)
	}
	if _, err := NewRelay(a, &Context{s: a.s}, WithPassThrough(1)); !errors.Is(err, ErrContextInUse) {
		t.Errorf("a copy of one context: %v, want ErrContextInUse", err)
	}
	if _, err := NewRelay(nil, b, WithPassThrough(1)); !errors.Is(err, ErrBadRelayOption) {
		t.Errorf("nil context: %v, want ErrBadRelayOption", err)
	}
	if _, err := NewRelay(&Context{}, b, WithPassThrough(1)); !errors.Is(err, ErrBadRelayOption) {
		t.Errorf("zero context: %v, want ErrBadRelayOption", err)
	}
}

func TestRelayRTCP(t *testing.T) {
	const from, to, other = 0x1111, 0x2222, 0x3333
	compound := []rtcp.Packet{
		&rtcp.SenderReport{SSRC: from, NTPTime: 99, RTPTime: 7, PacketCount: 1, OctetCount: 2,
			Reports: []rtcp.ReceptionReport{{SSRC: other, LastSequenceNumber: 5}, {SSRC: from}}},
		&rtcp.ReceiverReport{SSRC: other, Reports: []rtcp.ReceptionReport{{SSRC: from, Jitter: 3}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{
			{Source: from, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "abc"}}},
			{Source: other, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "four"}, {Type: rtcp.SDESTool, Text: "x"}}},
			{Source: from, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "12"}}},
		}},
		&rtcp.PictureLossIndication{SenderSSRC: other, MediaSSRC: from},
		&rtcp.TransportLayerNack{SenderSSRC: from, MediaSSRC: other, Nacks: []rtcp.NackPair{{PacketID: 4}}},
		&rtcp.FullIntraRequest{SenderSSRC: from, MediaSSRC: 0, FIR: []rtcp.FIREntry{{SSRC: from, SequenceNumber: 1}, {SSRC: other}}},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: from, Bitrate: 1e6, SSRCs: []uint32{other, from}},
		&rtcp.Goodbye{Sources: []uint32{from, other}, Reason: "bye"},
	}
	plain, err := rtcp.Marshal(compound)
	if err != nil {
		t.Fatal(err)
	}
	for _, pb := range Profiles() {
		l := newLegs(t, Profiles()[0], pb, WithSSRC(from, to))
		ct, err := l.aSend.RTCP(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		relayed, err := l.relay.RTCP(nil, ct)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.bRecv.RTCP(nil, relayed)
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := rtcp.Unmarshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkts) != len(compound) {
			t.Fatalf("%d packets, want %d", len(pkts), len(compound))
		}
		sr := pkts[0].(*rtcp.SenderReport)
		rr := pkts[1].(*rtcp.ReceiverReport)
		sdes := pkts[2].(*rtcp.SourceDescription)
		pli := pkts[3].(*rtcp.PictureLossIndication)
		nack := pkts[4].(*rtcp.TransportLayerNack)
		fir := pkts[5].(*rtcp.FullIntraRequest)
		remb := pkts[6].(*rtcp.ReceiverEstimatedMaximumBitrate)
		bye := pkts[7].(*rtcp.Goodbye)
		checks := []struct {
			name      string
			got, want uint32
		}{
			{"SR sender", sr.SSRC, to}, {"SR block 0", sr.Reports[0].SSRC, other}, {"SR block 1", sr.Reports[1].SSRC, to},
			{"RR sender", rr.SSRC, other}, {"RR block", rr.Reports[0].SSRC, to},
			{"SDES 0", sdes.Chunks[0].Source, to}, {"SDES 1", sdes.Chunks[1].Source, other}, {"SDES 2", sdes.Chunks[2].Source, to},
			{"PLI sender", pli.SenderSSRC, other}, {"PLI media", pli.MediaSSRC, to},
			{"NACK sender", nack.SenderSSRC, to}, {"NACK media", nack.MediaSSRC, other},
			{"FIR sender", fir.SenderSSRC, to}, {"FIR 0", fir.FIR[0].SSRC, to}, {"FIR 1", fir.FIR[1].SSRC, other},
			{"REMB sender", remb.SenderSSRC, to}, {"REMB 0", remb.SSRCs[0], other}, {"REMB 1", remb.SSRCs[1], to},
			{"BYE 0", bye.Sources[0], to}, {"BYE 1", bye.Sources[1], other},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: %s SSRC %#x, want %#x", ProfileName(pb), c.name, c.got, c.want)
			}
		}
		// Everything else is unchanged.
		sr0 := compound[0].(*rtcp.SenderReport)
		if sr.NTPTime != sr0.NTPTime || sr.OctetCount != sr0.OctetCount || sdes.Chunks[1].Items[1].Text != "x" || bye.Reason != "bye" || len(nack.Nacks) != 1 || remb.Bitrate != 1e6 {
			t.Errorf("%s: other fields changed", ProfileName(pb))
		}
	}
}

func TestRelayRTCPMalformed(t *testing.T) {
	good, _ := (&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}).Marshal()
	sdes, _ := (&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "abcdef"}}}}}).Marshal()
	mutate := func(b []byte, f func([]byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	relayed := 0
	for name, plain := range map[string][]byte{
		"length past end":       mutate(good, func(b []byte) { b[3]++ }),
		"count past length":     mutate(good, func(b []byte) { b[0] = b[0]&^0x1f | 2 }),
		"bad version":           mutate(good, func(b []byte) { b[0] &^= 0xc0 }),
		"trailing garbage":      append(append([]byte(nil), good...), 0x80, 201),
		"SDES item past end":    mutate(sdes, func(b []byte) { b[9] = 200 }),
		"SDES chunks past end":  mutate(sdes, func(b []byte) { b[0] = b[0]&^0x1f | 3 }),
		"zero padding":          mutate(good, func(b []byte) { b[0] |= 0x20; b[len(b)-1] = 0 }),
		"padding past the body": mutate(good, func(b []byte) { b[0] |= 0x20; b[len(b)-1] = 200 }),
	} {
		l := newLegs(t, Profiles()[0], Profiles()[0], WithSSRC(1, 9))
		ct, err := l.aSend.RTCP(nil, plain)
		if err != nil {
			// pion refuses to encrypt a packet whose first header is bad.
			t.Logf("%s: pion refuses to encrypt it: %v", name, err)
			continue
		}
		relayed++
		if out, err := l.relay.RTCP(nil, ct); !errors.Is(err, ErrMalformed) || out != nil {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
		if s := l.relay.Stats(); s.In.MalformedPacket != 1 {
			t.Errorf("%s: stats %+v", name, s)
		}
	}
	if relayed < 6 {
		t.Fatalf("only %d malformed packets reached the relay", relayed)
	}
}

// TestRelayZeroAlloc: the steady state of the relay allocates nothing, for
// RTP and RTCP, with rewrites on.
func TestRelayZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (sync.Pool drops items)")
	}
	const runs = 200
	for _, p := range Profiles() {
		t.Run(ProfileName(p), func(t *testing.T) {
			l := newLegs(t, p, p, WithSSRC(5, 6), WithPayloadType(111, 96))
			var in [][]byte
			for i := range runs + 2 {
				ct, err := l.aSend.RTP(nil, rtpPacket(t, 5, uint16(i), 111, false, payloadOf(1200, byte(i))))
				if err != nil {
					t.Fatal(err)
				}
				in = append(in, ct)
			}
			rr, _ := (&rtcp.ReceiverReport{SSRC: 5, Reports: []rtcp.ReceptionReport{{SSRC: 7}}}).Marshal()
			var inRTCP [][]byte
			for range runs + 2 {
				ct, err := l.aSend.RTCP(nil, rr)
				if err != nil {
					t.Fatal(err)
				}
				inRTCP = append(inRTCP, ct)
			}
			dst := make([]byte, 0, 1500)
			var err error
			i := 0
			if a := testing.AllocsPerRun(runs, func() {
				if dst, err = l.relay.RTP(dst, in[i]); err != nil {
					t.Fatal(err)
				}
				i++
			}); a != 0 {
				t.Fatalf("RTP relay: %v allocations per packet", a)
			}
			i = 0
			if a := testing.AllocsPerRun(runs, func() {
				if dst, err = l.relay.RTCP(dst, inRTCP[i]); err != nil {
					t.Fatal(err)
				}
				i++
			}); a != 0 {
				t.Fatalf("RTCP relay: %v allocations per packet", a)
			}
			// A replayed packet costs one allocation, pion/srtp's own error
			// value (&duplicatedError{}); ours is a sentinel.
			if a := testing.AllocsPerRun(runs, func() {
				if _, err := l.relay.RTP(dst, in[0]); !errors.Is(err, ErrReplay) {
					t.Fatal(err)
				}
			}); a > 1 {
				t.Fatalf("replay refusal: %v allocations per packet", a)
			}
			// So does nothing a packet from an SSRC not in the table.
			unknown, err := l.aSend.RTP(nil, rtpPacket(t, 0x777, 1, 111, false, payloadOf(1200, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if a := testing.AllocsPerRun(runs, func() {
				if _, err := l.relay.RTP(dst, unknown); !errors.Is(err, ErrUnknownSSRC) {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Fatalf("unknown SSRC refusal: %v allocations per packet", a)
			}
			if s := l.relay.Stats(); s.In.RTP != runs+1 || s.In.Replays != runs+1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}
