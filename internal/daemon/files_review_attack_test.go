package daemon

// Attacks on the daemon's file bookkeeping found in review (issue 9).

import (
	"fmt"
	"sync"
	"testing"

	"github.com/securejingle/securejingle/internal/api"
)

// TestAttackQuotaFailedResumable: the quota forgets a transfer as soon
// as it is failed, but a failed transfer stays resumable for an hour
// (gateway fileResumeKeep) and the sender resumes it with a
// transport-replace that the receiver takes without a decision. A
// contact with an auto-accept rule offers the quota's worth, makes it
// fail (rejects the transports), offers the quota's worth again (taken:
// the first no longer counts), then resumes the first: the directory
// receives twice the quota (up to 4x per contact, 16x in all). Expected:
// a failed transfer that can still be resumed keeps its share of the
// quota until its session ends.
func TestAttackQuotaFailedResumable(t *testing.T) {
	dir := t.TempDir()
	b, f := fileBackend(t, fileSettings{download: dir, quota: 1000})
	pinPeers(t, b)
	b.fileCfg.rules = []autoAccept{{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", dir: dir}}
	accept := b.accepter()
	t1 := f.offer(offerOf("t1", "bob@example.test", 1000), accept)
	if t1.State != api.TransferConnecting {
		t.Fatalf("t1 not auto-accepted: %s", t1.State)
	}
	// t1 fails resumably with nothing received (the gateway's state for
	// "the peer rejected every transport offered: resume the transfer").
	t1.State, t1.Detail, t1.Resumable = api.TransferFailed, "the peer rejected every transport offered: resume the transfer later", true
	f.set(t1)
	t2 := f.offer(offerOf("t2", "bob@example.test", 1000), accept)
	if t2.State == api.TransferConnecting {
		t.Fatalf("a second quota's worth was auto-accepted while the first transfer can still be resumed: %d bytes may arrive into a 1000-byte quota", t1.total()+t2.total())
	}
	// Once the resume wait ran out (failed, not resumable), the share is
	// given back.
	t1.Resumable = false
	f.set(t1)
	if t3 := f.offer(offerOf("t3", "bob@example.test", 1000), accept); t3.State != api.TransferConnecting {
		t.Fatalf("the quota still counts a transfer that failed for good: %s", t3.State)
	}
}

// TestAttackQuotaRace: the accepter checks the quota (checkIncoming)
// and records the accepted transfer (noteDir) without holding a lock
// across both; the gateway calls it from each transfer's goroutine, so
// offers that arrive together are each measured against a directory
// that does not count the others. Expected: check and record under one
// lock. The test repeats a round of concurrent offers until two of them
// are taken together over the quota (it shows the race; a run that never
// hits the window passes).
func TestAttackQuotaRace(t *testing.T) {
	for round := 0; round < 200; round++ {
		dir := t.TempDir()
		b, _ := fileBackend(t, fileSettings{download: dir, quota: 1000})
		pinPeers(t, b)
		b.fileCfg.rules = []autoAccept{{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", dir: dir}}
		accept := b.accepter()
		var wg sync.WaitGroup
		var mu sync.Mutex
		taken := 0
		start := make(chan struct{})
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, ok := accept(offerOf(fmt.Sprintf("r%d-%d", round, i), "bob@example.test", 1000)); ok {
					mu.Lock()
					taken++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if taken > 1 {
			t.Fatalf("round %d: %d offers of 1000 bytes auto-accepted together into a 1000-byte quota", round, taken)
		}
	}
}

// TestFileAccepterRosterOnly: a rule takes strangers' offers only when
// its roster_only is false (the default is true): a stranger whose
// account matches the pattern and trust still waits for the user.
func TestFileAccepterRosterOnly(t *testing.T) {
	dir := t.TempDir()
	b, _ := fileBackend(t, fileSettings{download: dir})
	pinPeers(t, b)
	b.fileCfg.rules = []autoAccept{{peer: mustPattern(t, "bob@example.test"), minTrust: "verified", dir: dir, rosterOnly: true}}
	accept := b.accepter()
	stranger := offerOf("s1", "bob@example.test", 10)
	stranger.Stranger = true
	if _, ok := accept(stranger); ok {
		t.Fatal("a roster_only rule took a stranger's offer")
	}
	if d, ok := accept(offerOf("c1", "bob@example.test", 10)); !ok || d != dir {
		t.Fatalf("a contact's offer: %q %v", d, ok)
	}
	b.fileCfg.rules[0].rosterOnly = false
	accept = b.accepter()
	stranger.ID = "s2"
	if _, ok := accept(stranger); !ok {
		t.Fatal("roster_only = false did not take the stranger's offer")
	}
}
