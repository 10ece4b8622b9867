package identity

import (
	"context"
	"net"
	"sync"

	"golang.org/x/crypto/ssh/agent"
)

// Serve serves the ssh-agent protocol on l with the keys held by keys, one
// goroutine per connection, until ctx is done or l fails. keys must be safe
// for concurrent use, as agent.NewKeyring is.
//
// On Linux, connections over a Unix socket from a process of another user
// (other than root) are closed without being served, as OpenSSH's ssh-agent
// does; the socket's own permissions remain the first line of defence.
//
// When ctx is done, Serve closes l and every open connection, waits for the
// connection goroutines to return and returns nil. If Accept fails for
// another reason, Serve does the same and returns that error. Serve always
// closes l.
func Serve(ctx context.Context, l net.Listener, keys agent.Agent) error {
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	shutdown := func() {
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		l.Close()
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer func() {
		stop()
		shutdown()
		wg.Wait()
	}()

	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !peerAllowed(c) {
			c.Close()
			continue
		}
		mu.Lock()
		if closed {
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// ServeAgent returns when the peer hangs up or the
			// connection is closed on shutdown; either way the
			// error carries nothing to act on.
			_ = agent.ServeAgent(keys, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}
