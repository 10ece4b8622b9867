package policy

import (
	"context"
	"sync"
	"sync/atomic"
)

// AsyncSink decouples a slow [Sink] (a command hook, a network sender) from
// the gateway: Send queues the alert and returns at once; one goroutine
// delivers queued alerts in order. When the queue is full the alert is
// dropped and counted. Create with [NewAsyncSink]; the zero value is not
// usable. Safe for concurrent use.
type AsyncSink struct {
	next    Sink
	q       chan Alert
	onErr   func(error)
	dropped atomic.Uint64
	mu      sync.RWMutex // guards closed against Send racing with Close
	closed  bool
	done    chan struct{}
}

// NewAsyncSink starts the delivery goroutine for next with a queue of
// buffer alerts (at least 1). Errors from next go to onErr, which may be nil.
// Call Close to stop it.
func NewAsyncSink(next Sink, buffer int, onErr func(error)) *AsyncSink {
	s := &AsyncSink{next: next, q: make(chan Alert, max(buffer, 1)), onErr: onErr, done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *AsyncSink) loop() {
	defer close(s.done)
	for a := range s.q {
		if err := s.next.Send(context.Background(), a); err != nil && s.onErr != nil {
			s.onErr(err)
		}
	}
}

// Send queues a without blocking; it always returns nil.
func (s *AsyncSink) Send(_ context.Context, a Alert) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return nil
	}
	select {
	case s.q <- a:
	default:
		s.dropped.Add(1)
	}
	return nil
}

// Dropped returns how many alerts were lost to a full queue or after Close.
func (s *AsyncSink) Dropped() uint64 { return s.dropped.Load() }

// Close stops accepting alerts and waits until the queued ones have been
// delivered or ctx is done, in which case it returns ctx.Err() and delivery
// continues in the background.
func (s *AsyncSink) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.q)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
