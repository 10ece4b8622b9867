package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/securejingle/securejingle/internal/api"
)

// backlogSize is how many recent events the hub keeps for subscribers
// that connect later.
const backlogSize = 256

// hub fans API events out to subscribers without ever blocking the
// publisher (the gateway pump, or the trust store inside a transaction): a
// subscriber whose buffer is full loses the event, and the loss is counted.
// It keeps the last backlogSize events for new subscribers and gives every
// event an id, "<run>-<seq>": run is random per hub, so that ids of an
// earlier daemon run are never taken for ids of this one, and seq counts
// from 1. It is safe for concurrent use.
type hub struct {
	run     string
	mu      sync.Mutex
	subs    map[int]chan api.Event
	next    int
	seq     uint64
	ring    [backlogSize]api.Event // ring[(seq-1) % backlogSize] is event seq
	dropped atomic.Uint64
}

func newHub() *hub {
	var b [4]byte
	rand.Read(b[:])
	return &hub{run: hex.EncodeToString(b[:]), subs: map[int]chan api.Event{}}
}

// publish gives ev its id, keeps it in the backlog and hands it to
// every subscriber; it returns ev with its id.
func (h *hub) publish(ev api.Event) api.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ev.ID = h.run + "-" + strconv.FormatUint(h.seq, 10)
	h.ring[(h.seq-1)%backlogSize] = ev
	for _, c := range h.subs {
		select {
		case c <- ev:
		default:
			h.dropped.Add(1)
		}
	}
	return ev
}

// subscribe returns the buffered events after the one with id after (all
// of them when after is "" or not buffered), and a channel of later events
// with a buffer of n.
func (h *hub) subscribe(n int, after string) ([]api.Event, <-chan api.Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	oldest := uint64(1)
	if h.seq > backlogSize {
		oldest = h.seq - backlogSize + 1
	}
	from := oldest
	if seq, ok := h.seqOf(after); ok && seq >= oldest-1 && seq <= h.seq {
		from = seq + 1
	}
	var backlog []api.Event
	for s := from; s <= h.seq; s++ {
		backlog = append(backlog, h.ring[(s-1)%backlogSize])
	}
	id := h.next
	h.next++
	c := make(chan api.Event, n)
	h.subs[id] = c
	var once sync.Once
	return backlog, c, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, id)
			h.mu.Unlock()
			close(c)
		})
	}
}

// seqOf returns the sequence number of an event id of this hub's run.
func (h *hub) seqOf(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, h.run+"-")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}
