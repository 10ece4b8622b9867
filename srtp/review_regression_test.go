package srtp

// Regression tests for the findings of the first security review of
// srtp/ (proof-of-concept tests in review1-poc, turned around to assert
// the fixed behaviour).

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestRelaySSRCCollisionRegression (finding 1): with WithSSRC(a, b), leg A
// (authenticated, so peer-controlled) also sending SSRC b with the same
// sequence number used to make the relay encrypt two packets as SSRC b
// with one index under leg B's key. Now b is not in the table: it is
// refused before decryption and nothing reaches leg B.
func TestRelaySSRCCollisionRegression(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(ProfileName(p), func(t *testing.T) {
			l := newLegs(t, p, p, WithSSRC(0xaaaa, 0xbbbb))
			p1 := bytes.Repeat([]byte("secret audio A.."), 8)
			p2 := make([]byte, len(p1)) // attacker-known plaintext
			c1, err := l.aSend.RTP(nil, rtpPacket(t, 0xaaaa, 7, 111, false, p1))
			if err != nil {
				t.Fatal(err)
			}
			c2, err := l.aSend.RTP(nil, rtpPacket(t, 0xbbbb, 7, 111, false, p2))
			if err != nil {
				t.Fatal(err)
			}
			o1, err := l.relay.RTP(nil, c1)
			if err != nil {
				t.Fatal(err)
			}
			if o2, err := l.relay.RTP(nil, c2); !errors.Is(err, ErrUnknownSSRC) || o2 != nil {
				t.Fatalf("SSRC b from leg A: %v, want ErrUnknownSSRC and nothing sent", err)
			}
			if _, err := l.bRecv.RTP(nil, o1); err != nil {
				t.Fatal(err)
			}
			s := l.relay.Stats()
			if s.In.UnknownSSRC != 1 || s.In.RTP != 1 || s.Out.RTP != 1 {
				t.Fatalf("stats %+v", s)
			}
			// The refused SSRC left no state in leg A's context.
			if _, ok := l.relay.in.ctx.ROC(0xbbbb); ok {
				t.Fatal("leg A's context keeps state for the refused SSRC")
			}
		})
	}
	a, b := pair(t, Profiles()[0])
	if _, err := NewRelay(a, b, WithSSRC(1, 9), WithSSRC(2, 9)); !errors.Is(err, ErrBadRelayOption) {
		t.Fatalf("WithSSRC(1,9), WithSSRC(2,9): %v, want ErrBadRelayOption", err)
	}
	if _, err := NewRelay(a, b, WithSSRC(1, 9), WithPassThrough(9)); !errors.Is(err, ErrBadRelayOption) {
		t.Fatalf("WithSSRC(1,9), WithPassThrough(9): %v, want ErrBadRelayOption", err)
	}
	if _, err := NewRelay(a, b, WithPassThrough(1), WithPayloadType(5, 5), WithPayloadType(5, 6)); !errors.Is(err, ErrBadRelayOption) {
		t.Fatalf("WithPayloadType(5,5), WithPayloadType(5,6): %v, want ErrBadRelayOption", err)
	}
}

// TestRelayOutgoingIndicesUniqueRegression (finding 1): whatever leg A
// sends (duplicates, reordering, jumps of about 2^15, rollovers, sources
// that are not in the table), every packet the relay sends is accepted by
// leg B's receiver, whose replay protection refuses any index it has
// seen: no outgoing (SSRC, index) is used twice. A swap of two SSRCs is
// allowed and is safe.
func TestRelayOutgoingIndicesUniqueRegression(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(ProfileName(p), func(t *testing.T) {
			l := newLegs(t, p, p, WithSSRC(0xa, 0xb), WithSSRC(0xb, 0xa), WithSSRC(0xc, 0xd), WithPassThrough(0xe))
			rng := rand.New(rand.NewPCG(1, uint64(p)))
			seqs := map[uint32]uint16{0xa: 65000, 0xb: 65000, 0xc: 3, 0xd: 3, 0xe: 100}
			var sent [][]byte // every SRTP packet leg A made, replayed at random
			replay := false
			var relayed int
			buf := make([]byte, 0, 1500)
			for range 6000 {
				var ct []byte
				replay = len(sent) > 0 && rng.IntN(8) == 0
				if replay {
					ct = sent[rng.IntN(len(sent))]
				} else {
					ssrc := []uint32{0xa, 0xb, 0xc, 0xd, 0xe}[rng.IntN(5)]
					seq := seqs[ssrc]
					switch rng.IntN(10) {
					case 0:
						seq -= uint16(rng.IntN(40)) // late
					case 1:
						seq += uint16(1<<15 - 20 + rng.IntN(40)) // about half the sequence space ahead
					default:
						seq++
					}
					seqs[ssrc] = seq
					var err error
					if ct, err = l.aSend.RTP(nil, rtpPacket(t, ssrc, seq, 96, false, payloadOf(40, byte(seq)))); err != nil {
						t.Fatal(err)
					}
					sent = append(sent, ct)
				}
				out, err := l.relay.RTP(buf, ct)
				switch {
				case errors.Is(err, ErrReplay), errors.Is(err, ErrUnknownSSRC):
					continue
				case replay && errors.Is(err, ErrAuth):
					// An old packet replayed after its SSRC moved on by
					// about 2^15 is extended to another index, so fails.
					continue
				case err != nil:
					t.Fatal(err)
				}
				relayed++
				if _, err := l.bRecv.RTP(nil, out); err != nil {
					t.Fatalf("packet %d: leg B refuses what the relay sent: %v (an index used twice)", relayed, err)
				}
			}
			s := l.relay.Stats()
			if relayed < 3000 || s.In.UnknownSSRC == 0 || s.In.Replays == 0 {
				t.Fatalf("%d relayed, stats %+v: the test did not exercise the relay", relayed, s)
			}
		})
	}
}

// TestRelayAcceptsOnlyOurContextsRegression (finding 2): a Relay,
// Protector or Unprotector takes only a Context, which only NewContext and
// ContextsFromDTLS make (an allowed profile, encryption on, replay
// protection on), and one Context has one owner.
func TestRelayAcceptsOnlyOurContextsRegression(t *testing.T) {
	for _, p := range []piondtls.SRTPProtectionProfile{piondtls.SRTP_NULL_HMAC_SHA1_80, piondtls.SRTP_NULL_HMAC_SHA1_32, piondtls.SRTP_AES128_CM_HMAC_SHA1_32} {
		if _, err := NewContext(make([]byte, 16), make([]byte, 14), p); !errors.Is(err, ErrProfileNotAllowed) {
			t.Errorf("%s: %v, want ErrProfileNotAllowed", ProfileName(p), err)
		}
	}
	for _, p := range Profiles() {
		aSend, in := pair(t, p)
		out, bRecvCtx := pair(t, p)
		r, err := NewRelay(in, out, WithPassThrough(1))
		if err != nil {
			t.Fatal(err)
		}
		sender, receiver := protector(t, aSend), unprotector(t, bRecvCtx)
		payload := []byte("this should never be on the wire in clear")
		ct, err := sender.RTP(nil, rtpPacket(t, 1, 1, 96, false, payload))
		if err != nil {
			t.Fatal(err)
		}
		o, err := r.RTP(nil, ct)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(o, payload) || bytes.Contains(ct, payload) {
			t.Fatalf("%s: payload in clear", ProfileName(p))
		}
		if _, err := r.RTP(nil, ct); !errors.Is(err, ErrReplay) {
			t.Fatalf("%s: replayed packet: %v, want ErrReplay", ProfileName(p), err)
		}
		if _, err := receiver.RTP(nil, o); err != nil {
			t.Fatal(err)
		}
		// Every context has one owner, whatever wants it next.
		for name, c := range map[string]*Context{"in": in, "out": out, "sender's": aSend, "receiver's": bRecvCtx, "a copy of in": {s: in.s}} {
			other, _ := pair(t, p)
			if _, err := NewRelay(c, other, WithPassThrough(1)); !errors.Is(err, ErrContextInUse) {
				t.Errorf("%s context in a second relay (as in): %v, want ErrContextInUse", name, err)
			}
			if _, err := NewRelay(other, c, WithPassThrough(1)); !errors.Is(err, ErrContextInUse) {
				t.Errorf("%s context in a second relay (as out): %v, want ErrContextInUse", name, err)
			}
			if _, err := NewProtector(c); !errors.Is(err, ErrContextInUse) {
				t.Errorf("%s context in a Protector: %v, want ErrContextInUse", name, err)
			}
			if _, err := NewUnprotector(c); !errors.Is(err, ErrContextInUse) {
				t.Errorf("%s context in an Unprotector: %v, want ErrContextInUse", name, err)
			}
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("NewProtector accepted the zero Context")
			}
		}()
		_, _ = NewProtector(&Context{})
	}()
}

// TestRelaySSRCStateGrowthRegression (finding 3): SSRCs that leg A
// invents are refused before decryption and leave no state in either
// context; RTCP senders outside the table are capped.
func TestRelaySSRCStateGrowthRegression(t *testing.T) {
	l := newLegs(t, Profiles()[0], Profiles()[0], WithSSRC(1, 2))
	const n = 2000
	buf := make([]byte, 0, 1500)
	for i := range n {
		ssrc := uint32(0x10000 + i)
		ct, err := l.aSend.RTP(nil, rtpPacket(t, ssrc, 1, 96, false, payloadOf(20, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.relay.RTP(buf, ct); !errors.Is(err, ErrUnknownSSRC) {
			t.Fatalf("invented SSRC %#x: %v, want ErrUnknownSSRC", ssrc, err)
		}
		if _, ok := l.relay.in.ctx.ROC(ssrc); ok {
			t.Fatalf("leg A's context keeps state for %#x", ssrc)
		}
		if _, ok := l.relay.out.ctx.ROC(ssrc); ok {
			t.Fatalf("leg B's context keeps state for %#x", ssrc)
		}
	}
	if s := l.relay.Stats(); s.In.UnknownSSRC != n || s.In.RTP != 0 || s.In.AuthFailures != 0 {
		t.Fatalf("stats %+v", s)
	}

	// RTCP: the table's sources, then MaxRelayRTCPSenders others, then no
	// more; an SSRC that is the to of an entry never.
	send := func(ssrc uint32) error {
		rr, _ := (&rtcp.ReceiverReport{SSRC: ssrc, Reports: []rtcp.ReceptionReport{{SSRC: 5}}}).Marshal()
		ct, err := l.aSend.RTCP(nil, rr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.relay.RTCP(buf, ct)
		return err
	}
	if err := send(1); err != nil {
		t.Fatal(err)
	}
	if err := send(2); !errors.Is(err, ErrUnknownSSRC) {
		t.Fatalf("RTCP from the outgoing SSRC of an entry: %v, want ErrUnknownSSRC", err)
	}
	for i := range MaxRelayRTCPSenders {
		if err := send(uint32(0x20000 + i)); err != nil {
			t.Fatalf("RTCP sender %d: %v", i, err)
		}
	}
	for i := range 100 {
		ssrc := uint32(0x30000 + i)
		if err := send(ssrc); !errors.Is(err, ErrUnknownSSRC) {
			t.Fatalf("RTCP sender beyond the cap: %v, want ErrUnknownSSRC", err)
		}
		if _, ok := l.relay.in.ctx.Index(ssrc); ok {
			t.Fatal("leg A's context keeps SRTCP state for a refused sender")
		}
	}
	// The ones accepted stay accepted.
	if err := send(0x20000); err != nil {
		t.Fatal(err)
	}
	if err := send(1); err != nil {
		t.Fatal(err)
	}

	// A stand-alone Unprotector keeps state for at most MaxSSRCs.
	aSend, recv := pair(t, Profiles()[0])
	pr, un := protector(t, aSend), unprotector(t, recv)
	for i := range 3 * MaxSSRCs {
		ct, _ := pr.RTP(nil, rtpPacket(t, uint32(i), 1, 96, false, payloadOf(20, 1)))
		_, err := un.RTP(nil, ct)
		if i < MaxSSRCs && err != nil || i >= MaxSSRCs && !errors.Is(err, ErrUnknownSSRC) {
			t.Fatalf("SSRC %d: %v", i, err)
		}
	}
	if s := un.Stats(); s.RTP != MaxSSRCs || s.UnknownSSRC != 2*MaxSSRCs {
		t.Fatalf("stats %+v", s)
	}
}

// TestRTCPRewriteGapsRegression (finding 9): XR report blocks, TMMBR and
// TMMBN entries and the RTP CSRC list are rewritten; RTCP packets whose
// layout the relay does not know are not relayed.
func TestRTCPRewriteGapsRegression(t *testing.T) {
	const from, to = 0xaaaa, 0xbbbb
	leaks := func(b []byte) bool { return bytes.Contains(b, []byte{0, 0, 0xaa, 0xaa}) }
	xr, err := (&rtcp.ExtendedReport{SenderSSRC: from, Reports: []rtcp.ReportBlock{
		&rtcp.DLRRReportBlock{Reports: []rtcp.DLRRReport{{SSRC: from, LastRR: 1}, {SSRC: 7}, {SSRC: from}}},
		&rtcp.ReceiverReferenceTimeReportBlock{NTPTimestamp: 1},
		&rtcp.StatisticsSummaryReportBlock{SSRC: from},
		&rtcp.VoIPMetricsReportBlock{SSRC: from},
		&rtcp.PacketReceiptTimesReportBlock{SSRC: from, ReceiptTime: []uint32{1}},
		// An even number of chunks: pion does not pad an odd one (RFC 3611 §4.1).
		&rtcp.LossRLEReportBlock{SSRC: from, Chunks: []rtcp.Chunk{0x4006, 0}},
		&rtcp.DuplicateRLEReportBlock{SSRC: from, Chunks: []rtcp.Chunk{0x4006, 0}},
	}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// RTPFB FMT 3 (TMMBR, RFC 5104 §4.2.1): sender, media 0, FCI {SSRC, bitrate} x2.
	tmmbr := []byte{0x83, 205, 0, 6, 0, 0, 0xaa, 0xaa, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa, 0x04, 0, 0, 0x28, 0, 0, 0xaa, 0xaa, 0x04, 0, 0, 0x28}
	tmmbn := append([]byte(nil), tmmbr...)
	tmmbn[0] = 0x84
	tstr := append([]byte(nil), tmmbr...)
	tstr[0], tstr[1] = 0x85, 206
	for name, b := range map[string][]byte{"XR": xr, "TMMBR": tmmbr, "TMMBN": tmmbn, "TSTR": tstr} {
		r := fuzzRelay(ssrcRewrite{from, to})
		n, removed, err := r.rewriteRTCP(b)
		if err != nil || removed != 0 || n != len(b) {
			t.Fatalf("%s: %d %d %v", name, n, removed, err)
		}
		if leaks(b) {
			t.Errorf("%s still carries %#x after the rewrite: %x", name, from, b)
		}
	}
	pkts, err := rtcp.Unmarshal(xr)
	if err != nil {
		t.Fatal(err)
	}
	dlrr := pkts[0].(*rtcp.ExtendedReport).Reports[0].(*rtcp.DLRRReportBlock)
	if dlrr.Reports[0].SSRC != to || dlrr.Reports[1].SSRC != 7 || dlrr.Reports[2].SSRC != to || dlrr.Reports[0].LastRR != 1 {
		t.Fatalf("DLRR %+v", dlrr)
	}

	// Through a relay: APP, an unknown XR block, an unknown feedback
	// format and an unknown packet type are removed from a compound; a
	// compound that starts with one is dropped.
	sr, _ := (&rtcp.SenderReport{SSRC: from, Reports: []rtcp.ReceptionReport{{SSRC: from}}}).Marshal()
	app, _ := (&rtcp.ApplicationDefined{SSRC: from, Name: "leak", Data: []byte{0, 0, 0xaa, 0xaa}}).Marshal()
	unknownXR := []byte{0x80, 207, 0, 3, 0, 0, 0xaa, 0xaa, 42, 0, 0, 1, 0, 0, 0xaa, 0xaa}
	ccfb := []byte{0x8b, 205, 0, 4, 0, 0, 0xaa, 0xaa, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa, 0, 0, 0, 0} // RFC 8888
	afb := []byte{0x8f, 206, 0, 4, 0, 0, 0xaa, 0xaa, 0, 0, 0, 0, 'X', 'Y', 'Z', 'W', 0, 0, 0xaa, 0xaa}
	other := []byte{0x80, 195, 0, 1, 0, 0, 0xaa, 0xaa} // IJ, RFC 5450
	var compound []byte
	for _, p := range [][]byte{sr, app, xr, unknownXR, ccfb, tmmbr, afb, other} {
		compound = append(compound, p...)
	}
	l := newLegs(t, Profiles()[0], Profiles()[0], WithSSRC(from, to))
	ct, err := l.aSend.RTCP(nil, compound)
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.relay.RTCP(nil, ct)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.bRecv.RTCP(nil, out)
	if err != nil {
		t.Fatal(err)
	}
	if leaks(got) {
		t.Errorf("the relayed compound carries %#x: %x", from, got)
	}
	if want := len(sr) + len(xr) + len(tmmbr); len(got) != want {
		t.Errorf("relayed %d bytes, want %d (SR, XR, TMMBR)", len(got), want)
	}
	if s := l.relay.Stats(); s.RTCPUnsupported != 5 {
		t.Errorf("stats %+v, want 5 unsupported", s)
	}
	for _, first := range [][]byte{app, unknownXR, other} {
		ct, err := l.aSend.RTCP(nil, append(append([]byte(nil), first...), sr...))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := l.relay.RTCP(nil, ct); !errors.Is(err, ErrUnsupportedRTCP) || out != nil {
			t.Errorf("compound starting with %d: %v, want ErrUnsupportedRTCP", first[1], err)
		}
	}
	// With a table that rewrites nothing, RTCP passes as it is.
	l = newLegs(t, Profiles()[0], Profiles()[0], WithPassThrough(from))
	ct, _ = l.aSend.RTCP(nil, compound)
	out, err = l.relay.RTCP(nil, ct)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.bRecv.RTCP(nil, out); err != nil || !bytes.Equal(got, compound) {
		t.Fatalf("pass-through relay changed RTCP: %v", err)
	}

	// RTP CSRCs: rewritten by the table; one outside the table refuses the packet.
	l = newLegs(t, Profiles()[0], Profiles()[0], WithSSRC(from, to), WithSSRC(0x1234, 0x5678))
	withCSRC := func(seq uint16, csrc ...uint32) []byte {
		b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: from, CSRC: csrc}, Payload: payloadOf(30, 1)}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ct, err := l.aSend.RTP(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	out, err = l.relay.RTP(nil, withCSRC(1, from, 0x1234))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := l.bRecv.RTP(nil, out)
	if err != nil {
		t.Fatal(err)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(plain); err != nil {
		t.Fatal(err)
	}
	if pkt.SSRC != to || len(pkt.CSRC) != 2 || pkt.CSRC[0] != to || pkt.CSRC[1] != 0x5678 {
		t.Fatalf("relayed header %+v", pkt.Header)
	}
	if _, err := l.relay.RTP(nil, withCSRC(2, 0x9999)); !errors.Is(err, ErrUnknownSSRC) {
		t.Fatalf("unknown CSRC: %v, want ErrUnknownSSRC", err)
	}
	// A CSRC count that runs past the packet.
	bad := withCSRC(3)
	bad = bad[:12]
	bad[0] |= 0x0f
	if _, err := l.relay.RTP(nil, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("CSRCs past the end: %v, want ErrMalformed", err)
	}
}

// TestRelayBothDirectionsRaceRegression: the documented use (one
// goroutine per direction, Stats from a third) under -race.
func TestRelayBothDirectionsRaceRegression(t *testing.T) {
	p := Profiles()[0]
	ab := newLegs(t, p, p, WithSSRC(1, 2))
	ba := newLegs(t, p, p, WithSSRC(3, 4))
	done := make(chan struct{})
	run := func(l legs, ssrc uint32) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 0, 1500)
		for seq := range uint16(2000) {
			ct, _ := l.aSend.RTP(nil, rtpPacket(t, ssrc, seq, 96, false, payloadOf(100, 1)))
			if _, err := l.relay.RTP(buf, ct); err != nil {
				t.Error(err)
				return
			}
			rr, _ := (&rtcp.ReceiverReport{SSRC: ssrc, Reports: []rtcp.ReceptionReport{{SSRC: 4}}}).Marshal()
			sct, _ := l.aSend.RTCP(nil, rr)
			if _, err := l.relay.RTCP(buf, sct); err != nil {
				t.Error(err)
				return
			}
		}
	}
	go run(ab, 1)
	go run(ba, 3)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = ab.relay.Stats()
				_ = ba.relay.Stats()
			}
		}
	}()
	<-done
	<-done
	close(stop)
	if s := ab.relay.Stats(); s.Out.RTP != 2000 || s.Out.RTCP != 2000 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSeqGuardIndicesUniqueRegression (Forwarder): whatever sequence
// numbers arrive (duplicates such as RTX repairs of packets that did
// arrive, reordering, jumps, rollovers), what the guard emits, encrypted
// by one sender context, is accepted by a receiver with replay
// protection: no index is used twice. The raw input is not (the test can
// fail).
func TestSeqGuardIndicesUniqueRegression(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var in []uint16
	seq := uint16(65400)
	for range 20000 {
		switch rng.IntN(20) {
		case 0:
			in = append(in, seq-uint16(rng.IntN(ForwardWindow+50))) // late or duplicate
		case 1:
			seq += uint16(1<<14 + rng.IntN(1<<14)) // a jump that the guard shortens
			in = append(in, seq)
		case 2:
			in = append(in, seq, seq) // an RTX repair of a packet that arrived
		default:
			seq += uint16(1 + rng.IntN(3))
			in = append(in, seq)
		}
	}
	deliver := func(seqs []uint16, guard bool) (sent, refused int) {
		send, recv := pair(t, Profiles()[0])
		pr, un := protector(t, send), unprotector(t, recv)
		var g seqGuard
		for i, s := range seqs {
			if guard {
				var ok bool
				if s, ok = g.next(s); !ok {
					continue
				}
			}
			ct, err := pr.RTP(nil, rtpPacket(t, 1, s, 111, false, payloadOf(20, byte(i))))
			if err != nil {
				t.Fatal(err)
			}
			sent++
			if _, err := un.RTP(nil, ct); err != nil {
				refused++
			}
		}
		return sent, refused
	}
	if _, refused := deliver(in, false); refused == 0 {
		t.Fatal("the raw input reuses no index: the test exercises nothing")
	}
	sent, refused := deliver(in, true)
	if refused != 0 {
		t.Fatalf("%d of %d packets the guard let through reused an index", refused, sent)
	}
	if sent < len(in)*3/4 {
		t.Fatalf("the guard let only %d of %d through", sent, len(in))
	}

	// Exact behaviour on a small case.
	var g seqGuard
	for i, c := range []struct {
		in, out uint16
		ok      bool
	}{
		{65534, 65534, true}, {65535, 65535, true}, {65535, 0, false}, // duplicate
		{1, 1, true}, {0, 0, true}, {0, 0, false}, // late once, then a duplicate
		{65533, 0, false},                // before the first
		{1 + 1<<14 + 5, 1 + 1<<14, true}, // a shortened jump
		{1 + 1<<14 + 4, 0, false},        // late across the shortened jump
		{1 + 1<<14 + 6, 2 + 1<<14, true},
	} {
		out, ok := g.next(c.in)
		if ok != c.ok || ok && out != c.out {
			t.Fatalf("step %d: next(%d) = %d, %v; want %d, %v", i, c.in, out, ok, c.out, c.ok)
		}
	}
}
