package gateway

import (
	"crypto/sha256"
	"testing"
	"time"
)

// Review PoCs (h/rvfileup) of the gateway's upgrade of a client's plain
// file offer (front_files_up.go).

// rvUpload returns the one upgrade of the front of u.
func rvUpload(t *testing.T, u *upTest) *frontUpload {
	t.Helper()
	f := u.a.Front()
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	for _, x := range f.up.byJingle {
		return x
	}
	t.Fatal("no upgrade in the table")
	return nil
}

// TestRVUploadCloseRacesIdleFail: the client's IBB <close/> is being
// handled (its result waits in forward: the client's queue is full, a
// client that reads slowly) when the upgrade fails (the idle timer, or
// the client disconnecting, in run). onIBB then sets the phase back to
// checksum without looking at it again and, the offer having a hash,
// calls complete on the ended upgrade: Sync on the nil spool file fails,
// abort runs a second time, close(u.done) panics (close of closed
// channel) in the client's reader goroutine and the whole daemon dies;
// dropUpload also subtracts the file's size from reserved a second time
// (an underflow). The test binary crashes on the unfixed code.
func TestRVUploadCloseRacesIdleFail(t *testing.T) {
	data := []byte("hello, race")
	sum := sha256.Sum256(data)
	u := startUpTestIdle(t, false, 300*time.Millisecond, nil)
	s, ans := u.start(t, "rv-race", "race.txt", len(data), sum[:])
	if ans.Type != "result" {
		t.Fatalf("offer answered %s", stanzaText(ans))
	}
	if st := s.open(); st.Type != "result" {
		t.Fatalf("open: %s", stanzaText(st))
	}
	if st := s.data(data); st.Type != "result" {
		t.Fatalf("data: %s", stanzaText(st))
	}
	up := rvUpload(t, u)
	c := up.c
	// The client's queue is full: forward waits for the writer.
	c.queued.Add(frontQueueBytes)
	s.c.send(t, `<iq type="set" id="rv-close" to="`+s.to+`"><close xmlns="http://jabber.org/protocol/ibb" sid="`+s.ibb+`"/></iq>`)
	// The idle timer fails the upgrade while the reader waits.
	deadline := time.Now().Add(10 * time.Second)
	for {
		up.mu.Lock()
		ended := up.phase == upEnded
		up.mu.Unlock()
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upgrade did not time out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The client reads again.
	c.queued.Add(-frontQueueBytes)
	select {
	case c.space <- struct{}{}:
	default:
	}
	u.ac.wait(t, "the result of the close", func(st *Stanza) bool { return st.Kind == "iq" && st.ID == "rv-close" })
	// Whatever the outcome, the accounting is whole and the daemon alive.
	time.Sleep(200 * time.Millisecond)
	f := u.a.Front()
	f.up.mu.Lock()
	reserved, total := f.up.reserved, f.up.total
	f.up.mu.Unlock()
	if reserved != 0 || total != 0 {
		t.Errorf("after the upgrade ended: reserved %d bytes, %d receiving; want 0, 0", reserved, total)
	}
	u.spoolEmpty(t)
}
