package gateway

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/securejingle/securejingle/internal/pionpair"
)

// echoPeer is a pion peer with one audio track, standing in for a
// browser in the latency benchmark.
type echoPeer struct {
	*pionpair.Peer
	track *webrtc.TrackLocalStaticRTP
}

func newEchoPeer(b *testing.B, name string) *echoPeer {
	b.Helper()
	p := &echoPeer{Peer: pionpair.New(b, name, nil)}
	var err error
	if p.track, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", name); err != nil {
		b.Fatal(err)
	}
	if _, err := p.PC.AddTrack(p.track); err != nil {
		b.Fatal(err)
	}
	return p
}

// echo sends back, on its own track, every packet p receives.
func (p *echoPeer) echo(b *testing.B) {
	go func() {
		tr, ok := <-p.Tracks
		if !ok {
			return
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			pkt.Header.Extension, pkt.Header.Extensions = false, nil
			if err := p.track.WriteRTP(pkt); err != nil {
				return
			}
		}
	}()
}

// measureRTT sends b.N probes from a (each its sequence number and send
// time) and times each until it comes back; a probe lost (the relay
// drops what arrives before its binding check) is sent again.
func measureRTT(b *testing.B, a *echoPeer) {
	b.Helper()
	var tr *webrtc.TrackRemote
	echoes := make(chan uint16, 64)
	seq := uint16(0)
	send := func() {
		seq++
		payload := make([]byte, 80)
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		if err := a.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq,
			Timestamp: uint32(seq) * 960}, Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	// The first probes open the path (and the echo's track).
	deadline := time.Now().Add(pionpair.ConnectTimeout)
	for tr == nil {
		send()
		select {
		case tr = <-a.Tracks:
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatal("no echo")
		}
	}
	go func() {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				close(echoes)
				return
			}
			select {
			case echoes <- pkt.SequenceNumber:
			default:
			}
		}
	}()
	// The relay renumbers: an echo is matched by arrival, not number.
	for len(echoes) > 0 {
		<-echoes
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		send()
		select {
		case <-echoes:
			total += time.Since(start)
		case <-time.After(time.Second):
			b.Fatal("a probe was lost on an open path")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-rtt")
}

// BenchmarkLocalCallRTT: the round trip of an audio packet between two
// browser stand-ins (pion peers with pion's default codecs, echoing
// what they receive), directly on loopback and through two gateways
// (browser → daemon → daemon → browser and back), in the same run. The
// difference of the µs-rtt metrics is what the relay adds (twice the
// one-way path: four SRTP decryptions, four re-encryptions and the
// hops). BenchmarkBrowserCallRTT (internal/webapp) measures the same
// path between two Chromiums, from the RTCP reports the relay forwards.
func BenchmarkLocalCallRTT(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		a, e := newEchoPeer(b, "A"), newEchoPeer(b, "B")
		pionpair.Signal(b, a.Peer, e.Peer, nil)
		pionpair.WaitConnected(b, a.Peer, e.Peer)
		e.echo(b)
		measureRTT(b, a)
	})
	b.Run("relayed", func(b *testing.B) {
		_, ga, gb := callPair(b, nil, nil)
		a, e := newEchoPeer(b, "A"), newEchoPeer(b, "B")
		ctx := b.Context()
		info, answer, err := ga.PlaceLocalCall(ctx, bobJID, LocalOffer{SDP: pionpair.LocalDescription(b, a.PC, true).SDP})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			b.Fatal(err)
		}
		gb.waitCall(b, info.ID, "ringing", func(in CallInfo) bool { return in.State == CallRinging })
		answer, err = gb.AnswerLocalCall(ctx, info.ID, LocalOffer{SDP: pionpair.LocalDescription(b, e.PC, true).SDP})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			b.Fatal(err)
		}
		ga.waitCall(b, info.ID, "connected and relayed", connectedLocal)
		gb.waitCall(b, info.ID, "connected and relayed", connectedLocal)
		e.echo(b)
		measureRTT(b, a)
	})
}
