package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/securejingle/securejingle/e2e/store"
)

// TestCheckDeviceCacheFollowsStore: CheckDevice reuses the verification
// of a stored bundle only while the stored bytes are the same. A record
// changed under it (here a bundle whose certificate signature no longer
// verifies, written straight into the store) is verified again and
// refused, and an expired certificate is refused on a cached bundle.
func TestCheckDeviceCacheFollowsStore(t *testing.T) {
	clk := newClock()
	x := newTestEngine(t, "alice@example.org", clk)
	y := newTestEngine(t, "bob@example.net", clk)
	introduce(t, x, y)
	d := dev(y)
	for range 2 { // the second call is served from the cache
		if err := x.CheckDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	var stored []byte
	if err := x.store.View(func(tx store.Tx) error {
		v, err := tx.Get(bucketPeers, d.key())
		stored = append([]byte(nil), v...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	bu, err := ParseBundle(stored)
	if err != nil {
		t.Fatal(err)
	}
	bu.CertSignature = append([]byte(nil), bu.CertSignature...)
	bu.CertSignature[0] ^= 1
	if err := x.store.Update(func(tx store.Tx) error { return tx.Put(bucketPeers, d.key(), bu.Marshal()) }); err != nil {
		t.Fatal(err)
	}
	var ue *UncertifiedDeviceError
	if err := x.CheckDevice(d); !errors.As(err, &ue) {
		t.Fatalf("CheckDevice on a stored bundle whose certificate signature does not verify: %v", err)
	}
	if err := x.store.Update(func(tx store.Tx) error { return tx.Put(bucketPeers, d.key(), stored) }); err != nil {
		t.Fatal(err)
	}
	if err := x.CheckDevice(d); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(181 * 24 * time.Hour) // past the certificate's lifetime
	if err := x.CheckDevice(d); !errors.As(err, &ue) {
		t.Fatalf("CheckDevice on an expired certificate: %v", err)
	}
}
