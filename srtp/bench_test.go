package srtp

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	pionsrtp "github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The packet-level benchmarks run ours next to the raw pion/srtp calls in
// the same run, for 160-byte (an Opus frame) and 1200-byte (a video
// fragment) payloads and every allowed profile:
//
//	go test -run '^$' -bench 'Protect|RawPion|Relay' -benchmem ./srtp/
//
// BenchmarkRelay and BenchmarkRawPionRelay also report "pkts/s", packets
// relayed (decrypted from one leg, re-encrypted for the other) per second
// on one core.
var benchSizes = []int{160, 1200}

func benchCases(b *testing.B, f func(b *testing.B, p piondtls.SRTPProtectionProfile, size int)) {
	for _, p := range Profiles() {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", ProfileName(p), size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				f(b, p, size)
			})
		}
	}
}

// BenchmarkProtect: Protector.RTP, one RTP packet encrypted per op.
func BenchmarkProtect(b *testing.B) {
	benchCases(b, func(b *testing.B, p piondtls.SRTPProtectionProfile, size int) {
		send, _ := pair(b, p)
		pr := protector(b, send)
		plain := rtpPacket(b, 1, 0, 111, false, payloadOf(size, 1))
		dst := make([]byte, 0, len(plain)+32)
		var err error
		seq := uint16(0)
		for b.Loop() {
			seq++
			binary.BigEndian.PutUint16(plain[2:4], seq)
			if dst, err = pr.RTP(dst, plain); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRawPionEncryptRTP: pion/srtp Context.EncryptRTP with a reused
// header and buffer, the baseline of BenchmarkProtect.
func BenchmarkRawPionEncryptRTP(b *testing.B) {
	benchCases(b, func(b *testing.B, p piondtls.SRTPProtectionProfile, size int) {
		send, _ := pionPair(b, p)
		plain := rtpPacket(b, 1, 0, 111, false, payloadOf(size, 1))
		dst := make([]byte, 0, len(plain)+32)
		var hdr rtp.Header
		var err error
		seq := uint16(0)
		for b.Loop() {
			seq++
			binary.BigEndian.PutUint16(plain[2:4], seq)
			if dst, err = send.EncryptRTP(dst, plain, &hdr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// srtpFeed hands out fresh SRTP packets (every one new to the replay
// window), made in batches with the timer stopped.
type srtpFeed struct {
	b     *testing.B
	send  *pionsrtp.Context
	plain []byte
	batch [][]byte
	next  int
	seq   uint16
}

const feedBatch = 4096

func newFeed(b *testing.B, send *pionsrtp.Context, size int) *srtpFeed {
	f := &srtpFeed{b: b, send: send, plain: rtpPacket(b, 0xa, 0, 111, false, payloadOf(size, 1))}
	f.batch = make([][]byte, feedBatch)
	for i := range f.batch {
		f.batch[i] = make([]byte, 0, size+64)
	}
	f.fill()
	return f
}

func (f *srtpFeed) fill() {
	for i := range f.batch {
		f.seq++
		binary.BigEndian.PutUint16(f.plain[2:4], f.seq)
		var err error
		if f.batch[i], err = f.send.EncryptRTP(f.batch[i][:0], f.plain, nil); err != nil {
			f.b.Fatal(err)
		}
	}
	f.next = 0
}

func (f *srtpFeed) packet() []byte {
	if f.next == len(f.batch) {
		f.b.StopTimer()
		f.fill()
		f.b.StartTimer()
	}
	f.next++
	return f.batch[f.next-1]
}

// BenchmarkRelay: Relay.RTP, with an SSRC and a payload type rewrite, one
// packet decrypted from leg A and encrypted for leg B per op.
func BenchmarkRelay(b *testing.B) {
	benchCases(b, func(b *testing.B, p piondtls.SRTPProtectionProfile, size int) {
		k := newKeys(b, p)
		pp, _ := PionProfile(p)
		aSend, err := pionsrtp.CreateContext(k.key, k.salt, pp)
		if err != nil {
			b.Fatal(err)
		}
		relayIn, err := NewContext(k.key, k.salt, p)
		if err != nil {
			b.Fatal(err)
		}
		relayOut, _ := pair(b, p)
		r, err := NewRelay(relayIn, relayOut, WithSSRC(0xa, 0xb), WithPayloadType(111, 109))
		if err != nil {
			b.Fatal(err)
		}
		feed := newFeed(b, aSend, size)
		dst := make([]byte, 0, size+64)
		for b.Loop() {
			if dst, err = r.RTP(dst, feed.packet()); err != nil {
				b.Fatal(err)
			}
		}
		reportPacketRate(b)
	})
}

// BenchmarkRawPionRelay: pion/srtp DecryptRTP then EncryptRTP with reused
// headers and buffers and the same contexts (replay protection on), the
// baseline of BenchmarkRelay.
func BenchmarkRawPionRelay(b *testing.B) {
	benchCases(b, func(b *testing.B, p piondtls.SRTPProtectionProfile, size int) {
		aSend, relayIn := pionPair(b, p)
		relayOut, _ := pionPair(b, p)
		feed := newFeed(b, aSend, size)
		plain := make([]byte, 0, size+64)
		dst := make([]byte, 0, size+64)
		var hdr rtp.Header
		var err error
		for b.Loop() {
			if plain, err = relayIn.DecryptRTP(plain, feed.packet(), &hdr); err != nil {
				b.Fatal(err)
			}
			if dst, err = relayOut.EncryptRTP(dst, plain, &hdr); err != nil {
				b.Fatal(err)
			}
		}
		reportPacketRate(b)
	})
}

// reportPacketRate reports packets relayed per second ("pkts/s"): one
// packet per op, on one goroutine, so this is the rate of one core. The
// feed's refills run with the timer stopped and are not counted.
func reportPacketRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "pkts/s")
	}
}

// lockstep sends one packet at a time from src's track and waits for it on
// dst's remote track, so that each op is one packet through pion end to
// end. Its ns/op is latency (goroutine hand-offs and loopback UDP), not
// throughput; its allocs/op counts every goroutine involved.
func lockstep(b *testing.B, src *rtcPeer, remote *webrtc.TrackRemote, size int) {
	buf := make([]byte, 1500)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1}, Payload: payloadOf(size, 1)}
	raw, err := pkt.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	seq := uint16(1000)
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint16(raw[2:4], seq)
		if _, err := src.track.Write(raw); err != nil {
			b.Fatal(err)
		}
		for {
			_ = remote.SetReadDeadline(time.Now().Add(connectTimeout))
			n, _, err := remote.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			if n >= 4 && binary.BigEndian.Uint16(buf[2:4]) == seq {
				break
			}
		}
	}
}

// firstTrack primes a connection with packets until the remote track
// appears, and drains what is queued.
func firstTrack(b *testing.B, src, dst *rtcPeer) *webrtc.TrackRemote {
	stop := make(chan struct{})
	wg := sendMedia(b, src, stop)
	var tr *webrtc.TrackRemote
	select {
	case tr = <-dst.Tracks:
	case <-time.After(connectTimeout):
		b.Fatalf("%s got no track", dst.Name)
	}
	close(stop)
	wg.Wait()
	return tr
}

// BenchmarkPionDirect: one audio packet from A's local track to B's remote
// track over one pion PeerConnection pair (no interceptors), the baseline
// of BenchmarkForwarder.
func BenchmarkPionDirect(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			a, c := newRTCPeer(b, "A", Configure), newRTCPeer(b, "B", Configure)
			rtcSignal(b, a, c)
			rtcWaitConnected(b, a, c)
			lockstep(b, a, firstTrack(b, a, c), size)
		})
	}
}

// BenchmarkForwarder: one audio packet from A through a Forwarder between
// two PeerConnections of a gateway (A -> R1, R2 -> B) to B.
func BenchmarkForwarder(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			a, r1 := newRTCPeer(b, "A", Configure), newRTCPeer(b, "R1", Configure)
			r2, c := newRTCPeer(b, "R2", Configure), newRTCPeer(b, "B", Configure)
			rtcSignal(b, a, r1)
			rtcSignal(b, r2, c)
			rtcWaitConnected(b, a, r1, r2, c)
			f, err := NewForwarder(firstTrack(b, a, r1), r2.track)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			lockstep(b, a, firstTrack(b, a, c), size)
			cancel()
			<-done
		})
	}
}
