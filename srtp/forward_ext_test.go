package srtp

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
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

// TestForwarderPause: a paused Forwarder forwards nothing and counts what
// it drops; resumed, it forwards again.
func TestForwarderPause(t *testing.T) {
	a, r1 := newRTCPeer(t, "A", Configure), newRTCPeer(t, "R1", Configure)
	r2, b := newRTCPeer(t, "R2", Configure), newRTCPeer(t, "B", Configure)
	rtcSignal(t, a, r1)
	rtcSignal(t, r2, b)
	rtcWaitConnected(t, a, r1, r2, b)
	stop := make(chan struct{})
	wa := sendMedia(t, a, stop)
	defer func() { close(stop); wa.Wait() }()
	var remote *webrtc.TrackRemote
	select {
	case remote = <-r1.Tracks:
	case <-time.After(connectTimeout):
		t.Fatal("R1 got no track")
	}
	f, err := NewForwarder(remote, r2.track)
	if err != nil {
		t.Fatal(err)
	}
	f.SetPaused(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(connectTimeout)
	for f.Stats().Dropped < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("paused: %+v", f.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := f.Stats(); s.Packets != 0 {
		t.Fatalf("a paused forwarder forwarded: %+v", s)
	}
	f.SetPaused(false)
	receiveMedia(t, b, 20)
}
