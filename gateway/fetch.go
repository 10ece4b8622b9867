package gateway

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/e2e"
)

// Bounds of fetching (bundles, and whatever else is asked of a peer by IQ
// or PEP): no fetch runs on the worker, each has a deadline, and what
// strangers can start is capped apart from what contacts start, so that
// nothing a stranger does delays anybody else.
const (
	// fetchTimeout bounds one fetch: the IQ to the device and the PEP
	// fallback together.
	fetchTimeout = 15 * time.Second
	// maxFetchers is how many fetches for contacts (and the own account)
	// run at once; maxStrangerFetchers the same for strangers.
	maxFetchers         = 4
	maxStrangerFetchers = 2
	// maxFetches caps the distinct fetches in flight or waiting for a
	// fetcher, maxStrangerFetches those started for strangers. Beyond,
	// a request is refused (nothing waits on it).
	maxFetches         = 64
	maxStrangerFetches = 16
	// maxFetchWaiters caps the callbacks waiting on one fetch.
	maxFetchWaiters = 16
	// maxParkedPerSender caps the stanzas of one sender held back while a
	// bundle they need is fetched; maxParked all of them.
	maxParkedPerSender = 32
	maxParked          = 512
)

// errFetchRefused is passed to a fetch callback when the fetch could not
// be started (too many in flight).
var errFetchRefused = errors.New("gateway: too many fetches in flight; try again later")

// A fetchCall is one fetch in flight, shared by every request for its key.
type fetchCall struct {
	key      string
	stranger bool
	waiters  []func(any, error)
	val      any
	err      error
}

// fetchState is the gateway's table of fetches in flight and of the
// stanzas waiting for them.
type fetchState struct {
	mu        sync.Mutex // guards calls and strangers
	calls     map[string]*fetchCall
	strangers int           // calls started for strangers
	sem       chan struct{} // contacts' fetchers
	strSem    chan struct{} // strangers' fetchers
	done      chan *fetchCall
	// Worker-only: stanzas held back per sender while a bundle they need
	// is fetched, in arrival order.
	parked  map[string][]*parkedStanza
	nParked int
	cur     *parkedStanza // the stanza the worker is processing
}

func newFetchState() *fetchState {
	return &fetchState{
		calls:  map[string]*fetchCall{},
		sem:    make(chan struct{}, maxFetchers),
		strSem: make(chan struct{}, maxStrangerFetchers),
		done:   make(chan *fetchCall, maxFetchers+maxStrangerFetchers),
		parked: map[string][]*parkedStanza{},
	}
}

// fetchAsync runs fn on a fetch goroutine with a context bounded by the
// fetch timeout, unless a fetch under key is already in flight, and calls
// then with its result on the worker. stranger says whether the peer is
// a stranger (not a roster contact, not the own account): strangers' fetches
// are capped apart. It reports false (and then is not called) when the
// fetch was refused. It never blocks and may be called from any goroutine;
// then always runs on the worker. This is the one way the gateway asks
// peers for anything in the background (bundles; device lists next).
func (g *Gateway) fetchAsync(key string, stranger bool, fn func(ctx context.Context) (any, error), then func(any, error)) bool {
	fs := g.fetches
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if c := fs.calls[key]; c != nil {
		if len(c.waiters) >= maxFetchWaiters {
			return false
		}
		c.waiters = append(c.waiters, then)
		return true
	}
	if len(fs.calls) >= maxFetches || (stranger && fs.strangers >= maxStrangerFetches) {
		g.log.Info("fetch refused: too many in flight", "key", key)
		return false
	}
	c := &fetchCall{key: key, stranger: stranger, waiters: []func(any, error){then}}
	fs.calls[key] = c
	sem := fs.sem
	if stranger {
		fs.strangers++
		sem = fs.strSem
	}
	ctx := g.runCtx
	go func() {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			c.err = ctx.Err()
			g.fetchFinished(c)
			return
		}
		fctx, cancel := context.WithTimeout(ctx, g.fetchTimeout)
		c.val, c.err = fn(fctx)
		cancel()
		<-sem
		g.fetchFinished(c)
	}()
	return true
}

// fetchFinished hands a finished fetch to the worker.
func (g *Gateway) fetchFinished(c *fetchCall) {
	select {
	case g.fetches.done <- c:
	case <-g.stopped:
	}
}

// completeFetch runs on the worker: it removes the call from the table
// and runs its callbacks.
func (g *Gateway) completeFetch(c *fetchCall) {
	fs := g.fetches
	fs.mu.Lock()
	delete(fs.calls, c.key)
	if c.stranger {
		fs.strangers--
	}
	waiters := c.waiters
	fs.mu.Unlock()
	for _, w := range waiters {
		w(c.val, c.err)
	}
}

// bundleKey names the fetch of one device's bundle (device 0: whatever
// device answers at full).
func bundleKey(full jid.JID, device uint32) string {
	if device == 0 {
		return "bundle " + full.String()
	}
	return "bundle " + full.Bare().String() + "/" + strconv.FormatUint(uint64(device), 10)
}

// requestBundle fetches a device's bundle off the worker (by IQ to full,
// then from PEP) and calls then with it on the worker. Concurrent requests
// for one device share one fetch. It reports false when the fetch was
// refused: by access control (strangers under the access policy), or
// because too many are in flight.
func (g *Gateway) requestBundle(full jid.JID, device uint32, then func(*e2e.Bundle, error)) bool {
	bare := full.Bare().String()
	if !g.mayFetch(bare) {
		return false
	}
	return g.fetchAsync(bundleKey(full, device), g.isStranger(bare), func(ctx context.Context) (any, error) {
		return g.fetchBundle(ctx, full, device)
	}, func(v any, err error) {
		bu, _ := v.(*e2e.Bundle)
		if err == nil && bu == nil {
			err = errors.New("gateway: empty bundle fetch")
		}
		then(bu, err)
	})
}

// isStranger reports whether bare is neither the own account nor a roster
// contact.
func (g *Gateway) isStranger(bare string) bool {
	return bare != g.bare() && !g.onRoster(bare)
}

// mayFetch reports whether the gateway may fetch state of bare on a
// stanza's account: always for the own account, and otherwise as access
// control admits bare (without an access controller: roster contacts
// only). A refused stranger makes us fetch and store nothing.
func (g *Gateway) mayFetch(bare string) bool {
	if bare == g.bare() {
		return true
	}
	onRoster := g.onRoster(bare)
	if g.cfg.Access == nil {
		return onRoster
	}
	d := g.cfg.Access.Allow(bare, onRoster)
	if !d.Allowed {
		g.log.Debug("fetch refused by access control", "peer", bare, "reason", d.Reason.String())
	}
	return d.Allowed
}

// storeFetched stores a fetched bundle unless the same bundle is stored
// already, and reports what the trust store said (see addBundle).
func (g *Gateway) storeFetched(bare string, bu *e2e.Bundle) error {
	if old, err := g.eng.PeerBundle(e2e.Device{JID: bare, ID: bu.Device}); err == nil && old.Hash() == bu.Hash() {
		return nil
	}
	return g.addBundle(bare, bu)
}

// A parkedStanza is a stanza the worker holds back until a bundle it needs
// is fetched, with how often it was held back already.
type parkedStanza struct {
	st    *Stanza
	tries int
}

// senderKey groups stanzas whose order must be kept: those of one account.
func senderKey(st *Stanza) string { return st.From.Bare().String() }

// dispatch processes one stanza on the worker, or holds it back behind
// earlier stanzas of the same sender that wait for a bundle, so that a
// sender's stanzas are processed in order and nobody else waits.
func (g *Gateway) dispatch(ctx context.Context, st *Stanza) {
	fs := g.fetches
	k := senderKey(st)
	if q, ok := fs.parked[k]; ok {
		if len(q) >= maxParkedPerSender || fs.nParked >= maxParked {
			g.log.Warn("dropping stanza: too many of this sender wait for a bundle", "from", st.From.String())
			return
		}
		fs.parked[k] = append(q, &parkedStanza{st: st})
		fs.nParked++
		return
	}
	g.process(ctx, &parkedStanza{st: st})
}

func (g *Gateway) process(ctx context.Context, p *parkedStanza) {
	g.fetches.cur = p
	defer func() { g.fetches.cur = nil }()
	switch p.st.Kind {
	case "message":
		g.handleMessage(ctx, p.st)
	case "presence":
		g.handlePresence(ctx, p.st)
	}
}

// waitForBundle is called by a stanza handler on the worker when the
// stanza needs a bundle that is not stored: it starts the fetch and holds
// the stanza (and later ones of its sender) back until the fetch is done,
// then processes them again. It reports false when the stanza cannot wait
// (it waited once already, the fetch was refused, or the handler does not
// run for a worker stanza): the handler then reports the failure.
func (g *Gateway) waitForBundle(from jid.JID, need *e2e.NeedBundleError) bool {
	fs := g.fetches
	p := fs.cur
	if p == nil || p.tries > 0 || fs.nParked >= maxParked {
		return false
	}
	k := senderKey(p.st)
	if _, busy := fs.parked[k]; busy {
		return false
	}
	ok := g.requestBundle(from, need.Device, func(bu *e2e.Bundle, err error) {
		if err != nil {
			g.log.Info("bundle fetch failed", "from", from.String(), "device", need.Device, "err", err)
		} else if err := g.storeFetched(need.JID, bu); err == nil {
			g.noteStored(need.JID)
		}
		g.unpark(k)
	})
	if !ok {
		return false
	}
	p.tries++
	fs.parked[k] = []*parkedStanza{p}
	fs.nParked++
	return true
}

// unpark processes the stanzas held back for sender k, in order, until one
// has to wait again.
func (g *Gateway) unpark(k string) {
	fs := g.fetches
	q := fs.parked[k]
	delete(fs.parked, k)
	fs.nParked -= len(q)
	for i, p := range q {
		g.process(g.runCtx, p)
		if rest, ok := fs.parked[k]; ok {
			// p waits again: the rest stay behind it, in order.
			for _, r := range q[i+1:] {
				rest = append(rest, r)
			}
			fs.parked[k] = rest
			fs.nParked += len(q) - i - 1
			return
		}
	}
}
