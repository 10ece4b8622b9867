package srtp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtcp"
)

func TestProtectRoundTrip(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(ProfileName(p), func(t *testing.T) {
			send, recv := pair(t, p)
			pr, un := protector(t, send), unprotector(t, recv)
			var ct, pt []byte
			seq := uint16(65500) // across a rollover of the sequence number
			for range 20 {
				for _, n := range []int{0, 1, 160, 1200} {
					seq++
					plain := rtpPacket(t, 0x1234, seq, 111, seq%2 == 0, payloadOf(n, byte(seq)))
					var err error
					if ct, err = pr.RTP(ct, plain); err != nil {
						t.Fatal(err)
					}
					if bytes.Contains(ct, plain[12:]) && n >= 16 {
						t.Fatal("payload in clear in the SRTP packet")
					}
					if pt, err = un.RTP(pt, ct); err != nil {
						t.Fatalf("seq %d len %d: %v", seq, n, err)
					}
					if !bytes.Equal(pt, plain) {
						t.Fatalf("seq %d len %d: round trip changed the packet", seq, n)
					}
				}
			}
			if s := un.Stats(); s.RTP == 0 || s.Replays+s.AuthFailures+s.MalformedPacket != 0 {
				t.Fatalf("stats %+v", s)
			}

			// RTCP.
			sr := &rtcp.SenderReport{SSRC: 0x1234, NTPTime: 1 << 40, RTPTime: 960, PacketCount: 3, OctetCount: 480}
			plain, err := sr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if ct, err = pr.RTCP(ct, plain); err != nil {
					t.Fatal(err)
				}
				if pt, err = un.RTCP(pt, ct); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pt, plain) {
					t.Fatal("RTCP round trip changed the packet")
				}
			}
			if s := un.Stats(); s.RTCP != 3 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestProtectInPlace(t *testing.T) {
	for _, p := range Profiles() {
		send, recv := pair(t, p)
		pr, un := protector(t, send), unprotector(t, recv)
		plain := rtpPacket(t, 7, 1, 96, false, payloadOf(160, 3))
		buf := make([]byte, len(plain), len(plain)+32)
		copy(buf, plain)
		ct, err := pr.RTP(buf, buf)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := un.RTP(ct, ct)
		if err != nil {
			t.Fatal(err)
		}
		if &pt[0] != &buf[0] || !bytes.Equal(pt, plain) {
			t.Fatalf("%s: in-place round trip failed", ProfileName(p))
		}
	}
}

func TestTamperRefused(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(ProfileName(p), func(t *testing.T) {
			send, recv := pair(t, p)
			pr, un := protector(t, send), unprotector(t, recv)
			seq := uint16(1)
			fresh := func() []byte {
				ct, err := pr.RTP(nil, rtpPacket(t, 42, seq, 111, false, payloadOf(160, 9)))
				if err != nil {
					t.Fatal(err)
				}
				seq++
				return ct
			}
			n := len(fresh())
			// A flipped bit in the payload, in the tag, in the authenticated
			// header (timestamp, marker/payload type) is refused.
			for _, pos := range []int{1, 4, 20, n / 2, n - 1} {
				ct := fresh()
				ct[pos] ^= 0x01
				if _, err := un.RTP(nil, ct); !errors.Is(err, ErrAuth) {
					t.Fatalf("bit flip at %d of %d: %v, want ErrAuth", pos, n, err)
				}
			}
			// Under another key.
			other, _ := pair(t, p)
			ct, err := protector(t, other).RTP(nil, rtpPacket(t, 42, seq, 111, false, payloadOf(160, 9)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := un.RTP(nil, ct); !errors.Is(err, ErrAuth) {
				t.Fatalf("other key: %v, want ErrAuth", err)
			}
			// A good packet still passes after the refusals.
			if _, err := un.RTP(nil, fresh()); err != nil {
				t.Fatalf("good packet after tampering: %v", err)
			}
			if s := un.Stats(); s.AuthFailures != 6 || s.RTP != 1 {
				t.Fatalf("stats %+v, want 6 auth failures and 1 packet", s)
			}

			// SRTCP.
			rr, _ := (&rtcp.ReceiverReport{SSRC: 5}).Marshal()
			ctr, err := pr.RTCP(nil, rr)
			if err != nil {
				t.Fatal(err)
			}
			ctr[len(ctr)/2] ^= 0x40
			if _, err := un.RTCP(nil, ctr); !errors.Is(err, ErrAuth) {
				t.Fatalf("SRTCP bit flip: %v, want ErrAuth", err)
			}
		})
	}
}

func TestReplayRefused(t *testing.T) {
	if pionReplay() == nil {
		t.Fatal("could not learn pion/srtp's replay error")
	}
	for _, p := range Profiles() {
		t.Run(ProfileName(p), func(t *testing.T) {
			send, recv := pair(t, p)
			pr, un := protector(t, send), unprotector(t, recv)
			var pkts [][]byte
			for seq := uint16(100); seq < 100+ReplayWindowSRTP+10; seq++ {
				ct, err := pr.RTP(nil, rtpPacket(t, 9, seq, 111, false, payloadOf(20, 1)))
				if err != nil {
					t.Fatal(err)
				}
				pkts = append(pkts, ct)
			}
			// Out of order within the window is fine once.
			for _, i := range []int{1, 0, 2} {
				if _, err := un.RTP(nil, pkts[i]); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
			}
			if _, err := un.RTP(nil, pkts[1]); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay: %v, want ErrReplay", err)
			}
			// Jump ahead; a packet older than the window is refused too.
			for _, ct := range pkts[3:] {
				if _, err := un.RTP(nil, ct); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := un.RTP(nil, pkts[len(pkts)-1]); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay of the newest: %v, want ErrReplay", err)
			}
			// pkts[5] is both replayed and outside the window now.
			if _, err := un.RTP(nil, pkts[5]); !errors.Is(err, ErrReplay) {
				t.Fatalf("old packet: %v, want ErrReplay", err)
			}
			if s := un.Stats(); s.Replays != 3 {
				t.Fatalf("stats %+v, want 3 replays", s)
			}

			sr, _ := (&rtcp.SenderReport{SSRC: 9}).Marshal()
			ctr, err := pr.RTCP(nil, sr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := un.RTCP(nil, ctr); err != nil {
				t.Fatal(err)
			}
			if _, err := un.RTCP(nil, ctr); !errors.Is(err, ErrReplay) {
				t.Fatalf("SRTCP replay: %v, want ErrReplay", err)
			}
			if s := un.Stats(); s.Replays != 4 {
				t.Fatalf("stats %+v, want 4 replays", s)
			}
		})
	}
}

func TestMalformedRefused(t *testing.T) {
	send, recv := pair(t, Profiles()[0])
	pr, un := protector(t, send), unprotector(t, recv)
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short header":  {0x80, 0x6f, 0, 1},
		"header only":   rtpPacket(t, 1, 1, 96, false, nil),
		"oversize":      make([]byte, MaxPacketSize+1),
		"csrc past end": {0x8f, 0x6f, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0},
	} {
		if _, err := un.RTP(nil, b); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v, want ErrMalformed or ErrAuth", name, err)
		}
	}
	if _, err := un.RTCP(nil, []byte{0x80, 200, 0, 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short SRTCP: %v, want ErrMalformed", err)
	}
	if _, err := pr.RTP(nil, []byte{0x80}); err == nil {
		t.Error("Protector accepted a 1-byte RTP packet")
	}
}
