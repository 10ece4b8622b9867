package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/securejingle/securejingle/internal/api"
)

// hub fans API events out to subscribers without ever blocking the
// publisher (the gateway pump, or the trust store inside a transaction): a
// subscriber whose buffer is full loses the event, and the loss is counted.
// It is safe for concurrent use.
type hub struct {
	mu      sync.Mutex
	subs    map[int]chan api.Event
	next    int
	dropped atomic.Uint64
}

func newHub() *hub { return &hub{subs: map[int]chan api.Event{}} }

func (h *hub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.subs {
		select {
		case c <- ev:
		default:
			h.dropped.Add(1)
		}
	}
}

func (h *hub) subscribe(n int) (<-chan api.Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.next
	h.next++
	c := make(chan api.Event, n)
	h.subs[id] = c
	var once sync.Once
	return c, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, id)
			h.mu.Unlock()
			close(c)
		})
	}
}
