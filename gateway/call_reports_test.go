package gateway

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/localpeer"
)

// ntpMiddle is the middle 32 bits of the NTP time of t (RFC 3550 §4),
// the unit of a report block's LSR and DLSR: 1/65536 s.
func ntpMiddle(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := uint64(ns%1e9) << 32 / 1e9
	return uint32(sec<<16 | frac>>16)
}

// reportRTTs returns the round trips (RFC 3550 §6.4.1: arrival − LSR −
// DLSR) of the report blocks p received about the tracks it sends.
func reportRTTs(p *localpeer.Peer) []time.Duration {
	own := map[uint32]bool{}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if s, ok := p.SenderSSRC(k); ok {
			own[s] = true
		}
	}
	var out []time.Duration
	for _, r := range p.RTCP() {
		var blocks []rtcp.ReceptionReport
		switch pkt := r.Packet.(type) {
		case *rtcp.ReceiverReport:
			blocks = pkt.Reports
		case *rtcp.SenderReport:
			blocks = pkt.Reports
		}
		for _, b := range blocks {
			if own[b.SSRC] && b.LastSenderReport != 0 {
				d := ntpMiddle(r.At) - b.LastSenderReport - b.Delay
				out = append(out, time.Duration(d)*time.Second/65536)
			}
		}
	}
	return out
}

// TestLocalCallReportsEndToEnd: with 100 ms each way between the two
// daemons, the round trip a browser stand-in computes from the receiver
// reports it gets about its media is at least the 200 ms the daemons'
// leg adds: the reports are the other browser's, relayed end to end (the
// daemons send none of their own), not the local leg's.
func TestLocalCallReportsEndToEnd(t *testing.T) {
	noLeaks(t)
	link := newVnetLink(t, 0, 1)
	_, a, b := callPair(t, onVnet(link.nets[0]), onVnet(link.nets[1]))
	sa, sb, _ := localCall(t, a, b)
	sa.StartPlayback()
	sb.StartPlayback()
	sb.Received(t)
	sa.Received(t)
	for _, p := range []*localpeer.Peer{sa, sb} {
		deadline := time.Now().Add(localpeer.Wait)
		var rtts []time.Duration
		for len(rtts) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no receiver report with an LSR about the stand-in's media: %v", rtts)
			}
			time.Sleep(100 * time.Millisecond)
			rtts = reportRTTs(p)
		}
		t.Logf("round trips from the receiver reports: %v", rtts)
		for _, rtt := range rtts {
			if rtt < 2*vnetDelay {
				t.Errorf("a receiver report gives a round trip of %v, under the %v of the daemons' leg", rtt, 2*vnetDelay)
			}
		}
	}
}

// TestLocalCallReportsBounded: what a hostile remote leg sends in RTCP
// reaches the browser only as well-formed reports about the browser's
// own tracks, rebuilt (no SDES, BYE, APP, profile extensions, foreign
// SSRCs), and at most one report of each kind and type per reportEvery
// however many arrive.
func TestLocalCallReportsBounded(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, sb, id := localCall(t, a, b)
	sa.StartPlayback()
	sb.StartPlayback()
	sa.Received(t)

	cb := b.calls.get(id)
	cb.mu.Lock()
	remote, lb := cb.leg.peer, cb.local
	cb.mu.Unlock()
	lb.mu.Lock()
	theirs := lb.peerSSRC[kindVideo] // alice's daemon's video sender on the daemons' leg
	lb.mu.Unlock()
	ours, ok := remote.SenderSSRC(webrtc.RTPCodecTypeVideo) // the video alice's daemon takes from bob's
	if theirs == 0 || !ok {
		t.Fatalf("SSRCs %d %d", theirs, ours)
	}
	const (
		foreign = 0xdeadbeef
		marker  = 0x123456 // TotalLost of the flood's blocks
		ntp     = 0x1111222233334444
		flood   = 500
	)
	junk := []rtcp.Packet{
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: ours, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "hostile"}}}}},
		&rtcp.Goodbye{Sources: []uint32{foreign}, Reason: "hostile"},
		&rtcp.ApplicationDefined{SSRC: theirs, Name: "EVIL", Data: []byte("hostile!")},
		&rtcp.ReceiverReport{SSRC: foreign, Reports: []rtcp.ReceptionReport{{SSRC: foreign, TotalLost: marker}}},
		&rtcp.SenderReport{SSRC: foreign, NTPTime: ntp},
		&rtcp.SenderReport{SSRC: ours, NTPTime: ntp, ProfileExtensions: []byte{1, 2, 3, 4},
			Reports: []rtcp.ReceptionReport{{SSRC: foreign, TotalLost: marker}}},
	}
	start := time.Now()
	if err := remote.WriteRTCP(junk); err != nil {
		t.Fatal(err)
	}
	for range flood {
		if err := remote.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: ours,
			Reports: []rtcp.ReceptionReport{{SSRC: theirs, TotalLost: marker, LastSenderReport: 1}}}}); err != nil {
			t.Fatal(err)
		}
	}
	own, _ := sa.SenderSSRC(webrtc.RTPCodecTypeVideo)
	deadline := time.Now().Add(localpeer.Wait)
	for {
		time.Sleep(200 * time.Millisecond)
		var blocks, srs int
		for _, r := range sa.RTCP() {
			switch p := r.Packet.(type) {
			case *rtcp.ReceiverReport:
				for _, blk := range p.Reports {
					if blk.TotalLost == marker {
						blocks++
						if blk.SSRC != own || p.SSRC == foreign {
							t.Fatalf("a flood report reached the browser as %+v", p)
						}
					}
				}
			case *rtcp.SenderReport:
				if p.NTPTime == ntp {
					srs++
					if len(p.ProfileExtensions) != 0 || len(p.Reports) != 0 || p.SSRC == foreign {
						t.Fatalf("the browser got %+v: a sender report is forwarded rebuilt, sender information only", p)
					}
				}
			case *rtcp.SourceDescription, *rtcp.Goodbye, *rtcp.ApplicationDefined:
				t.Fatalf("the browser got %T from the remote leg: %+v", p, p)
			}
			for _, s := range r.Packet.DestinationSSRC() {
				if s == foreign {
					t.Fatalf("the browser got %+v about an SSRC of no track", r.Packet)
				}
			}
		}
		bound := int(time.Since(start)/reportEvery) + 1
		if blocks > bound {
			t.Fatalf("%d of %d flooded reports reached the browser in %v: at most %d should", blocks, flood, time.Since(start), bound)
		}
		if blocks > 0 && srs == 1 {
			t.Logf("%d of %d flooded reports and the sender report reached the browser in %v", blocks, flood, time.Since(start))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flooded reports and %d sender reports reached the browser: want the well-formed ones relayed", blocks, srs)
		}
	}
}

// TestLocalCallMutedNoSenderReports: once alice mutes, her browser's
// sender reports about the muted media (packet and octet counts that
// follow what the page still sends: speech activity, motion) no longer
// cross her daemon's relay: bob's browser gets no more sender reports
// about the tracks that relay alice's media, while alice's still gets
// bob's.
func TestLocalCallMutedNoSenderReports(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, sb, id := localCall(t, a, b)
	sa.StartPlayback()
	sb.StartPlayback()
	sa.Received(t)
	sb.Received(t)
	ssrcs := func(g *testGateway) map[uint32]bool {
		c := g.calls.get(id)
		c.mu.Lock()
		l := c.local
		c.mu.Unlock()
		out := map[uint32]bool{}
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			s, ok := l.peer.SenderSSRC(k)
			if !ok {
				t.Fatalf("%s's local leg sends no %s", g.bare(), k)
			}
			out[s] = true
		}
		return out
	}
	toAlice, toBob := ssrcs(a), ssrcs(b)
	count := func(p *localpeer.Peer, of map[uint32]bool) (n int) {
		for _, r := range p.RTCP() {
			if sr, ok := r.Packet.(*rtcp.SenderReport); ok && of[sr.SSRC] {
				n++
			}
		}
		return n
	}
	// pion's report interceptors send a sender report a second per track.
	wait := func(p *localpeer.Peer, of map[uint32]bool, n int, what string) {
		t.Helper()
		deadline := time.Now().Add(localpeer.Wait)
		for count(p, of) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s got %d sender reports, want %d", what, count(p, of), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait(sb, toBob, 2, "bob's browser, before the mute")
	if err := a.MuteCall(testCtx(t), id, true, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // what was in flight
	before := count(sb, toBob)
	wait(sa, toAlice, count(sa, toAlice)+6, "alice's browser, while she is muted")
	if n := count(sb, toBob) - before; n != 0 {
		t.Errorf("bob's browser got %d sender reports about alice's muted media", n)
	}
}

// TestLocalCallReportCounts: the packet and octet counts of the sender
// reports that cross the relay are what the relay forwarded, not what the
// page says it sent: after a mute, the page's counts include what it sent
// while muted (its speech activity, its motion), and a page's count is
// never checked. The page's report here claims far more than was sent.
func TestLocalCallReportCounts(t *testing.T) {
	noLeaks(t)
	_, a, b := callPair(t, nil, nil)
	sa, sb, id := localCall(t, a, b)
	sa.StartPlayback()
	sb.Received(t)
	la := a.calls.get(id).local
	cb := b.calls.get(id)
	cb.mu.Lock()
	lb := cb.local
	cb.mu.Unlock()
	toBob, ok := lb.peer.SenderSSRC(webrtc.RTPCodecTypeAudio)
	if !ok {
		t.Fatal("bob's local leg sends no audio")
	}
	la.mu.Lock()
	src := la.localSSRC[kindAudio]
	la.mu.Unlock()
	const claimed, ntp = 1 << 30, 0x5555666677778888
	deadline := time.Now().Add(localpeer.Wait)
	for {
		// alice's page: "I sent 2^30 packets".
		la.sourceFromLocal(webrtc.RTPCodecTypeAudio, src, []rtcp.Packet{&rtcp.SenderReport{SSRC: src, NTPTime: ntp,
			PacketCount: claimed, OctetCount: claimed}})
		time.Sleep(50 * time.Millisecond)
		for _, r := range sb.RTCP() {
			sr, ok := r.Packet.(*rtcp.SenderReport)
			if !ok || sr.SSRC != toBob || sr.NTPTime != ntp {
				continue
			}
			var fwd, bytes uint64
			la.mu.Lock()
			for _, f := range la.fwd[0][kindAudio] {
				fwd += f.Stats().Packets
				bytes += f.Stats().Bytes
			}
			la.mu.Unlock()
			if uint64(sr.PacketCount) > fwd || uint64(sr.OctetCount) > bytes {
				t.Fatalf("bob's browser got a sender report of %d packets, %d octets of alice's audio; her daemon forwarded %d packets, %d bytes",
					sr.PacketCount, sr.OctetCount, fwd, bytes)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the page's sender report did not reach bob's browser")
		}
	}
}
