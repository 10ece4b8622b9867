package gateway

import (
	"slices"
	"sync"
	"time"
)

// Bounds of the file channel (implementation constants). Every count a
// peer can raise is capped; a stranger (not on the roster) gets less.
const (
	maxLiveTransfers    = 16 // transfers whose session lives (failed ones waiting for a resume included), both directions
	maxTransfersPerPeer = 4  // live transfers with one peer account
	maxPendingOffers    = 8  // incoming offers waiting for a decision, all peers
	maxStrangerOffers   = 2  // of those, from accounts not on the roster, all strangers together
	maxTransferHistory  = 64 // ended transfers kept for Transfers()
	xferQueueSize       = 64
	fileSendTimeout     = 15 * time.Second // one signaling stanza and its response
	filePendingTimeout  = 24 * time.Hour   // an offer nobody decided on is declined (timeout)
	fileConnectTimeout  = 60 * time.Second // accepted or replaced → byte pipe up
	fileChecksumTimeout = 60 * time.Second // all bytes in → the sender's checksum
	fileReceivedTimeout = 5 * time.Minute  // all bytes out → the receiver's <received/> (it verifies the hash)
	fileResumeKeep      = time.Hour        // a failed transfer's session waits this long for a resume
	maxAutoResumes      = 4                // automatic resumes of one transfer after a cut
	// The peer's transport-replaces of one transfer: each sets up a
	// transport (a registration, goroutines, a data channel's
	// PeerConnection). An honest receiver sends one per cut and one per
	// fallback (maxAutoResumes cuts times the transports), more only when
	// its user resumes.
	maxPeerReplaces          = 32
	maxPeerReplacesPerMinute = 8
	fileStallTimeout         = 2 * time.Minute // bytes flowing → no progress: the pipe is cut (and resumed)
	progressEventSpacing     = 250 * time.Millisecond
)

// fileTable holds the transfers of a gateway.
type fileTable struct {
	mu    sync.Mutex
	xs    map[string]*transfer
	order []string       // ids, oldest first
	wg    sync.WaitGroup // transfer goroutines
	stop  bool
	sent  sentHistory // files we offered, for requests (file_request.go)
	kept  keptTable   // verified prefixes of failed incoming transfers
}

func newFileTable() *fileTable { return &fileTable{xs: map[string]*transfer{}} }

// begin accounts for a new transfer goroutine; false once the gateway
// stops.
func (t *fileTable) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop {
		return false
	}
	t.wg.Add(1)
	return true
}

// shutdown ends every transfer (they say goodbye while the stream is up)
// and waits for their goroutines; none starts after it.
func (t *fileTable) shutdown() {
	t.mu.Lock()
	t.stop = true
	xs := make([]*transfer, 0, len(t.xs))
	for _, x := range t.xs {
		xs = append(xs, x)
	}
	t.mu.Unlock()
	for _, x := range xs {
		x.cancel()
	}
	t.wg.Wait()
	t.kept.clear()
}

// room returns the live transfers, all and with the account peer (a
// bare JID), against maxLiveTransfers and maxTransfersPerPeer: what a
// caller that will add one later checks first (the front's upgrades).
func (t *fileTable) room(peer string) (live, perPeer int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range t.xs {
		if o.isOver() {
			continue
		}
		live++
		if o.peer == peer {
			perPeer++
		}
	}
	return live, perPeer
}

// add registers x unless a bound is reached or the id is taken; it drops
// the oldest ended transfers beyond the history bound.
func (t *fileTable) add(x *transfer, stranger bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop {
		return ErrOffline
	}
	if _, ok := t.xs[x.id]; ok || t.kept.has(x.id) {
		// An id the API still answers to (a kept transfer's, once it
		// left the table) is not taken again: CancelTransfer and
		// ResumeTransfer would act on the kept one.
		return ErrTransferState
	}
	live, perPeer, pending, strangers := 0, 0, 0, 0
	for _, o := range t.xs {
		if o.isOver() {
			continue
		}
		live++
		if o.peer == x.peer {
			perPeer++
		}
		if !o.outgoing && o.snapshotState() == TransferPending {
			pending++
			if o.stranger {
				strangers++
			}
		}
	}
	switch {
	case live >= maxLiveTransfers, perPeer >= maxTransfersPerPeer:
		return ErrTooManyTransfers
	case !x.outgoing && pending >= maxPendingOffers:
		return ErrTooManyTransfers
	case !x.outgoing && stranger && strangers >= maxStrangerOffers:
		return ErrTooManyTransfers
	}
	x.stranger = stranger
	x.mu.Lock()
	x.info.Stranger = stranger
	x.mu.Unlock()
	t.xs[x.id] = x
	t.order = append(t.order, x.id)
	ended := 0
	for _, id := range t.order {
		if t.xs[id].isOver() {
			ended++
		}
	}
	for i := 0; ended > maxTransferHistory && i < len(t.order); {
		if t.xs[t.order[i]].isOver() {
			delete(t.xs, t.order[i])
			t.order = slices.Delete(t.order, i, i+1)
			ended--
			continue
		}
		i++
	}
	return nil
}

func (t *fileTable) get(id string) *transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.xs[id]
}

// remove forgets a transfer that never started.
func (t *fileTable) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.xs, id)
	if i := slices.Index(t.order, id); i >= 0 {
		t.order = slices.Delete(t.order, i, i+1)
	}
}

func (t *fileTable) list() []*transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*transfer, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, t.xs[id])
	}
	return out
}

func (t *fileTable) snapshots() []TransferInfo {
	xs := t.list()
	out := make([]TransferInfo, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.snapshot())
	}
	return out
}

// incomingBytes is the total size of the incoming transfers whose session
// lives, for the quota.
func (t *fileTable) incomingBytes() uint64 {
	var n uint64
	for _, x := range t.list() {
		if !x.outgoing && !x.isOver() {
			n += x.snapshot().BytesTotal
		}
	}
	return n
}
