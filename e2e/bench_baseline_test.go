package e2e

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
)

// Baselines: the raw library operations the engine's costs are compared
// with, in the same run (`go test -bench . ./e2e`).

// BenchmarkBaselineHPKESealOpen is one HPKE base-mode exchange of the
// suite's KEM (sender setup + seal, recipient setup + open), the floor of a
// handshake's public-key work per encapsulation.
func BenchmarkBaselineHPKESealOpen(b *testing.B) {
	for _, sid := range []SuiteID{SuiteXWingAES, SuiteX25519AES} {
		b.Run(sid.String(), func(b *testing.B) {
			kem, kdf, aead := LookupSuite(sid).hpke()
			k, err := kem.GenerateKey()
			if err != nil {
				b.Fatal(err)
			}
			pub := k.PublicKey()
			msg := []byte(oneLine)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				enc, s, err := hpke.NewSender(pub, kdf, aead, nil)
				if err != nil {
					b.Fatal(err)
				}
				ct, err := s.Seal(nil, msg)
				if err != nil {
					b.Fatal(err)
				}
				r, err := hpke.NewRecipient(enc, k, kdf, aead, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Open(nil, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaselineEd25519SignVerify is one Ed25519 signature and its
// check, the unit of the device-key and certificate work.
func BenchmarkBaselineEd25519SignVerify(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub := priv.Public().(ed25519.PublicKey)
	msg := make([]byte, 64)
	for i := 0; i < b.N; i++ {
		sig := ed25519.Sign(priv, msg)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

// BenchmarkBaselineAESGCM is the AEAD seal and open of a one-line
// message, the floor of a chat message.
func BenchmarkBaselineAESGCM(b *testing.B) {
	key := make([]byte, 32)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	nonce := make([]byte, g.NonceSize())
	msg := []byte(oneLine)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ct := g.Seal(nil, nonce, msg, nil)
		if _, err := g.Open(nil, nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstContact is everything one side does at first contact with
// certified devices: verify and store the peer's bundle (bundle and prekey
// signatures, the device certificate, the embedded device list, trust and
// list checks), then the full handshake (first message and reply). The
// metric µs/side is the total divided by two.
func BenchmarkFirstContact(b *testing.B) {
	for _, sid := range []SuiteID{SuiteXWingAES, SuiteX25519AES} {
		b.Run(sid.String(), func(b *testing.B) {
			clk := newClock()
			x := newTestEngine(b, "alice@example.org", clk, sid)
			y := newTestEngine(b, "bob@example.net", clk, sid)
			bx, by := x.Bundle(), y.Bundle()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for _, e := range []*testEngine{x, y} {
					e.store.Update(func(tx store.Tx) error {
						for _, bk := range []string{bucketSessions, bucketPeers, bucketDevLists} {
							for _, k := range []string{dev(x).key(), dev(y).key(), x.JID(), y.JID()} {
								if k != e.JID() {
									tx.Delete(bk, k)
								}
							}
						}
						return nil
					})
				}
				b.StartTimer()
				if err := x.AddBundle(y.JID(), by); err != nil {
					b.Fatal(err)
				}
				if err := y.AddBundle(x.JID(), bx); err != nil {
					b.Fatal(err)
				}
				handshakeOnce(b, x, y)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/2, "µs/side")
		})
	}
}
