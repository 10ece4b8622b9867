package e2e

import (
	"fmt"
	"testing"

	"github.com/securejingle/securejingle/e2e/store"
)

// TestPeerReportsSkippedAndLate: an opened message says how many earlier
// messages of the sender it showed to be missing, and one read with a
// stored key says it arrived late, within a chain and across a new chain
// (the gateway's withheld-message report is built on these counts).
func TestPeerReportsSkippedAndLate(t *testing.T) {
	clk := newClock()
	a, b := newTestEngine(t, "alice@example.test", clk), newTestEngine(t, "bob@example.test", clk)
	introduce(t, a, b)
	recv(t, a, b, send(t, a, b, "hello"), "hello")
	recv(t, b, a, send(t, b, a, "reply"), "reply")

	m1, m2, m3 := send(t, a, b, "one"), send(t, a, b, "two"), send(t, a, b, "three")
	if p := recv(t, a, b, m1, "one"); p.Skipped != 0 || p.Late {
		t.Fatalf("in-order message: skipped %d, late %v", p.Skipped, p.Late)
	}
	if p := recv(t, a, b, m3, "three"); p.Skipped != 1 || p.Late {
		t.Fatalf("message after a gap of one: skipped %d, late %v", p.Skipped, p.Late)
	}
	if p := recv(t, a, b, m2, "two"); p.Skipped != 0 || !p.Late {
		t.Fatalf("late message: skipped %d, late %v", p.Skipped, p.Late)
	}

	// Two messages withheld at the end of a chain; the next one arrives on
	// a new chain (Alice's chain is full and Bob has answered).
	for i := range rotateAfter {
		recv(t, a, b, send(t, a, b, fmt.Sprint("fill ", i)), fmt.Sprint("fill ", i))
	}
	for i := range 2 {
		send(t, a, b, fmt.Sprint("withheld ", i))
	}
	for i := range rotateAfter + 1 { // Bob's chain fills and he rotates too
		recv(t, b, a, send(t, b, a, fmt.Sprint("reply ", i)), fmt.Sprint("reply ", i))
	}
	next := send(t, a, b, "new chain")
	before := bobRecvChain(t, b, a)
	if p := recv(t, a, b, next, "new chain"); p.Skipped != 2 || p.Late {
		t.Fatalf("message after two withheld ones: skipped %d, late %v", p.Skipped, p.Late)
	}
	if after := bobRecvChain(t, b, a); after != before+1 {
		t.Fatalf("receiving chain %d -> %d: the test did not cross a chain", before, after)
	}
}

func bobRecvChain(t *testing.T, b, a *testEngine) uint32 {
	t.Helper()
	var idx uint32
	if err := b.store.View(func(tx store.Tx) error {
		s, err := loadSession(tx, dev(a))
		if err == nil {
			idx = s.r.rIdx
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}
