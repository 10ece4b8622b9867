package daemon

// Attacks on the daemon's file bookkeeping found in the second review
// (issue 9), now regression tests.

import (
	"context"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
)

// TestFileReview2AcceptTwiceForgetsQuota: AcceptTransfer recorded the
// transfer's directory for the quota before the gateway decided, and
// forgot the record when the gateway refused. Accepting a transfer that
// is already under way (the auto-accept took it, or a second accept from
// a script or another client) was refused, and the refusal dropped the
// quota's record of a transfer still bringing its bytes: the next offer
// was measured against a directory that no longer counted it, and
// auto-accepted over the quota. Expected: a refused accept leaves the
// bookkeeping as it was.
func TestFileReview2AcceptTwiceForgetsQuota(t *testing.T) {
	dir := t.TempDir()
	b, f := fileBackend(t, fileSettings{download: dir, quota: 1000})
	pinPeers(t, b)
	b.fileCfg.rules = []autoAccept{{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", dir: dir}}
	accept := b.accepter()
	t1 := f.offer(offerOf("t1", "bob@example.test", 1000), accept)
	if t1.State != api.TransferConnecting {
		t.Fatalf("t1 not auto-accepted: %s", t1.State)
	}
	if _, err := b.AcceptTransfer(context.Background(), "t1", ""); err == nil {
		t.Fatal("a second accept of a transfer under way succeeded")
	}
	if t2 := f.offer(offerOf("t2", "bob@example.test", 1000), accept); t2.State == api.TransferConnecting {
		t.Fatal("after a refused second accept of t1 the quota no longer counts it: t2 was auto-accepted over the quota")
	}
}
