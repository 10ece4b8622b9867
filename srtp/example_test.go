package srtp_test

import (
	"bytes"
	"errors"
	"fmt"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtp"

	"github.com/securejingle/securejingle/srtp"
)

func ExampleRelay() {
	// Each leg has its own keys; in a gateway they come from each leg's
	// DTLS handshake (srtp.ContextsFromDTLS).
	keyA, saltA := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 12)
	keyB, saltB := bytes.Repeat([]byte{3}, 16), bytes.Repeat([]byte{4}, 14)
	aSends, _ := srtp.NewContext(keyA, saltA, piondtls.SRTP_AEAD_AES_256_GCM)
	fromA, _ := srtp.NewContext(keyA, saltA, piondtls.SRTP_AEAD_AES_256_GCM)
	toB, _ := srtp.NewContext(keyB, saltB, piondtls.SRTP_AES128_CM_HMAC_SHA1_80)
	bReceives, _ := srtp.NewContext(keyB, saltB, piondtls.SRTP_AES128_CM_HMAC_SHA1_80)

	relay, err := srtp.NewRelay(fromA, toB, srtp.WithSSRC(0x1111, 0x2222))
	if err != nil {
		panic(err)
	}
	aSender, _ := srtp.NewProtector(aSends)
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 1, SSRC: 0x1111}, Payload: []byte("opus frame")}).Marshal()
	fromAWire, _ := aSender.RTP(nil, pkt)

	buf := make([]byte, 0, 1500) // reused for every packet
	toBWire, err := relay.RTP(buf, fromAWire)
	if err != nil {
		panic(err)
	}
	bReceiver, _ := srtp.NewUnprotector(bReceives)
	plain, _ := bReceiver.RTP(nil, toBWire)
	var got rtp.Packet
	_ = got.Unmarshal(plain)
	fmt.Printf("ssrc %#x payload %q\n", got.SSRC, got.Payload)

	_, err = relay.RTP(buf, fromAWire) // the same packet again
	fmt.Println(err, relay.Stats().In.Replays)

	// A source the relay was not configured with is dropped unread.
	other, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 1, SSRC: 0x3333}, Payload: []byte("?")}).Marshal()
	otherWire, _ := aSender.RTP(nil, other)
	_, err = relay.RTP(buf, otherWire)
	fmt.Println(err, relay.Stats().In.UnknownSSRC)

	// Each context has one owner.
	_, err = srtp.NewRelay(fromA, bReceives, srtp.WithSSRC(0x1111, 0x2222))
	fmt.Println(errors.Is(err, srtp.ErrContextInUse))
	// Output:
	// ssrc 0x2222 payload "opus frame"
	// srtp: replayed packet 1
	// srtp: packet from an SSRC not accepted 1
	// true
}
