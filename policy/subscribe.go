package policy

import (
	"context"
	"sync"
	"sync/atomic"
)

// Broadcaster is a [Sink] for the control API event stream: it copies each
// alert to every subscriber's buffered channel without ever blocking. A
// subscriber whose buffer is full loses the alert, and the loss is counted.
// The zero value is ready to use. A Broadcaster is safe for concurrent use.
type Broadcaster struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// Subscription is one subscriber of a [Broadcaster]. Receive from C; call
// Close when done, after which C is closed. It is safe for concurrent use.
type Subscription struct {
	C       <-chan Alert
	c       chan Alert
	b       *Broadcaster
	dropped atomic.Uint64
	once    sync.Once
}

// Subscribe registers a subscriber with room for buffer alerts (at least 1).
func (b *Broadcaster) Subscribe(buffer int) *Subscription {
	c := make(chan Alert, max(buffer, 1))
	s := &Subscription{C: c, c: c, b: b}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*Subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Send offers a to every subscriber and never blocks; it always returns nil.
func (b *Broadcaster) Send(_ context.Context, a Alert) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		select {
		case s.c <- a:
		default:
			s.dropped.Add(1)
		}
	}
	return nil
}

// Subscribers returns the number of current subscribers.
func (b *Broadcaster) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Dropped returns how many alerts this subscriber lost to a full buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. It is idempotent.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		close(s.c)
	})
}
