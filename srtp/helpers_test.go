package srtp

import (
	"crypto/rand"
	"testing"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	pionsrtp "github.com/pion/srtp/v3"
)

// legKeys are the master key and salt of one direction.
type legKeys struct{ key, salt []byte }

func newKeys(t testing.TB, p piondtls.SRTPProtectionProfile) legKeys {
	t.Helper()
	pp, ok := PionProfile(p)
	if !ok {
		t.Fatalf("profile %s not allowed", ProfileName(p))
	}
	kl, _ := pp.KeyLen()
	sl, _ := pp.SaltLen()
	k := legKeys{make([]byte, kl), make([]byte, sl)}
	_, _ = rand.Read(k.key)
	_, _ = rand.Read(k.salt)
	return k
}

// pair returns a sending and a receiving context for one direction.
func pair(t testing.TB, p piondtls.SRTPProtectionProfile) (send, recv *Context) {
	t.Helper()
	k := newKeys(t, p)
	send, err := NewContext(k.key, k.salt, p)
	if err != nil {
		t.Fatal(err)
	}
	recv, err = NewContext(k.key, k.salt, p)
	if err != nil {
		t.Fatal(err)
	}
	return send, recv
}

// pionPair is pair as raw pion/srtp contexts with the same options, for
// the baselines of the benchmarks.
func pionPair(t testing.TB, p piondtls.SRTPProtectionProfile) (send, recv *pionsrtp.Context) {
	t.Helper()
	k := newKeys(t, p)
	pp, _ := PionProfile(p)
	send, err := pionsrtp.CreateContext(k.key, k.salt, pp, contextOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	recv, err = pionsrtp.CreateContext(k.key, k.salt, pp, contextOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return send, recv
}

func protector(t testing.TB, c *Context) *Protector {
	t.Helper()
	p, err := NewProtector(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func unprotector(t testing.TB, c *Context) *Unprotector {
	t.Helper()
	u, err := NewUnprotector(c)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func rtpPacket(t testing.TB, ssrc uint32, seq uint16, pt uint8, marker bool, payload []byte) []byte {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{
		Version: 2, Marker: marker, PayloadType: pt, SequenceNumber: seq,
		Timestamp: uint32(seq) * 960, SSRC: ssrc,
	}, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payloadOf(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}
