package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
	"weak"

	"github.com/pion/webrtc/v4"
	"mellium.im/xmpp/jid"

	"github.com/securejingle/securejingle/internal/extdisco"
)

// ErrNoExternalServices is wrapped by [Gateway.ExternalServices] when the
// account's server does not implement XEP-0215, refuses the request, or
// lists no STUN or TURN server that pion can use. Such an answer is kept
// for extdiscoTTL, like a good one.
var ErrNoExternalServices = errors.New("gateway: the server announces no usable STUN or TURN server (XEP-0215)")

const (
	// extdiscoTimeout bounds one discovery (the services request and the
	// credentials request), whatever the caller's context allows.
	extdiscoTimeout = 15 * time.Second
	// extdiscoTTL is how long an answer without expiring credentials, or
	// an [ErrNoExternalServices] answer, is kept.
	extdiscoTTL = 5 * time.Minute
	// extdiscoMargin: credentials are fetched anew this long before the
	// first of them expires, so that a call never starts with credentials
	// about to lapse.
	extdiscoMargin = time.Minute
)

// ExternalServices returns the STUN and TURN servers that the account's
// server (the domain of the account JID) announces through XEP-0215
// external service discovery — Prosody's mod_turn_external, ejabberd's
// mod_stun_disco — as pion ICE servers with their short-term credentials,
// at most 16 of them. Restricted services listed without credentials get
// them through a credentials request (XEP-0215 §3.3).
//
// The answer is cached until one minute before the first credentials it
// holds expire, or for five minutes when none expire; concurrent callers
// share one discovery. ctx bounds the wait: when it ends, ExternalServices
// returns its error while the discovery, bounded on its own, may still
// complete and fill the cache. Errors wrap [ErrNoExternalServices] when the
// server has nothing to offer, or are [ErrOffline], an *[IQError] for a
// transient stanza error, or a parse error wrapping extdisco.ErrMalformed
// or extdisco.ErrLimit. The returned slice is the caller's.
func (g *Gateway) ExternalServices(ctx context.Context) ([]webrtc.ICEServer, error) {
	return g.iceCache().get(ctx, g.now, g.discoverExternalServices)
}

// discoverExternalServices asks the account's server for its services,
// fetches missing credentials, and returns the ICE servers with the time
// until which they may be cached.
func (g *Gateway) discoverExternalServices(ctx context.Context) ([]webrtc.ICEServer, time.Time, error) {
	domain := g.cfg.JID.Domain()
	resp, err := g.extdiscoIQ(ctx, domain, extdisco.ServicesRequest(""), "services")
	if err != nil {
		return nil, g.now().Add(extdiscoTTL), err
	}
	svcs, err := extdisco.ParseServices(resp)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("gateway: external services from %s: %w", domain, err)
	}
	svcs = slices.DeleteFunc(svcs, func(s extdisco.Service) bool {
		return s.Type != extdisco.TypeSTUN && s.Type != extdisco.TypeTURN && s.Type != extdisco.TypeTURNS
	})
	var need []extdisco.Service
	for _, s := range svcs {
		if s.NeedsCredentials() {
			need = append(need, s)
		}
	}
	if len(need) > 0 {
		if err := g.fetchCredentials(ctx, domain, svcs, need); err != nil {
			// STUN may still help; the restricted TURN servers are left
			// out by extdisco.ICEServers.
			g.log.Warn("TURN credentials not obtained (XEP-0215 §3.3)", "server", domain.String(), "err", err)
		}
	}
	now := g.now()
	servers := extdisco.ICEServers(now, svcs)
	until := now.Add(extdiscoTTL)
	if exp := extdisco.Expiry(now, svcs); !exp.IsZero() {
		until = exp.Add(-extdiscoMargin)
	}
	if len(servers) == 0 {
		return nil, until, fmt.Errorf("%w: %s lists %d STUN/TURN services, none usable", ErrNoExternalServices, domain, len(svcs))
	}
	return servers, until, nil
}

// fetchCredentials requests credentials for need and fills them into the
// matching services of svcs (same type and host, and port when the answer
// names one).
func (g *Gateway) fetchCredentials(ctx context.Context, domain jid.JID, svcs, need []extdisco.Service) error {
	req, err := extdisco.CredentialsRequest(need)
	if err != nil {
		return err
	}
	resp, err := g.extdiscoIQ(ctx, domain, req, "credentials")
	if err != nil {
		return err
	}
	creds, err := extdisco.ParseCredentials(resp)
	if err != nil {
		return fmt.Errorf("gateway: credentials from %s: %w", domain, err)
	}
	for _, c := range creds {
		if !c.HasCredentials() {
			continue
		}
		for i := range svcs {
			s := &svcs[i]
			if s.NeedsCredentials() && s.Type == c.Type && s.Host == c.Host && (c.Port == 0 || c.Port == s.Port) {
				s.Username, s.Password = c.Username, c.Password
				if !c.Expires.IsZero() {
					s.Expires = c.Expires
				}
			}
		}
	}
	return nil
}

// extdiscoIQ sends an IQ-get with payload to the server and returns the
// response's {urn:xmpp:extdisco:2}local child. Stanza errors that say the
// server has nothing for us wrap [ErrNoExternalServices].
func (g *Gateway) extdiscoIQ(ctx context.Context, domain jid.JID, payload []byte, local string) ([]byte, error) {
	resp, err := g.sendIQ(ctx, build("iq", map[string]string{"type": "get", "id": randomID(), "to": domain.String()}, payload))
	var iqErr *IQError
	if errors.As(err, &iqErr) {
		switch c := iqErr.Condition(); c {
		case "service-unavailable", "feature-not-implemented", "item-not-found", "forbidden", "not-allowed":
			return nil, fmt.Errorf("%w: %s answers %s", ErrNoExternalServices, domain, c)
		}
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: external service discovery at %s: %w", domain, err)
	}
	// An answer from anyone but our server (RFC 6120 §8.1.2.1: no 'from'
	// is the server itself) is not the server's list.
	if !resp.From.Equal(jid.JID{}) && !resp.From.Equal(domain) {
		return nil, fmt.Errorf("gateway: external services answered by %s, not %s: %w", resp.From, domain, extdisco.ErrMalformed)
	}
	c := resp.Child(extdisco.NS, local)
	if c == nil || len(resp.Children) != 1 {
		return nil, fmt.Errorf("gateway: %s answered without one <%s/>: %w", domain, local, extdisco.ErrMalformed)
	}
	return c.Raw, nil
}

// iceCache caches the answer of external service discovery and lets
// concurrent callers share one discovery. The zero value is ready; it is
// safe for concurrent use.
type iceCache struct {
	mu      sync.Mutex
	servers []webrtc.ICEServer
	err     error     // a cached ErrNoExternalServices answer
	until   time.Time // the cached answer is good before this
	flight  *iceFlight
}

// iceFlight is one discovery in progress.
type iceFlight struct {
	done    chan struct{} // closed when servers and err are set
	servers []webrtc.ICEServer
	err     error
}

// iceFetch runs one discovery and returns the servers and until when the
// answer may be cached (zero: not at all).
type iceFetch func(ctx context.Context) ([]webrtc.ICEServer, time.Time, error)

// get returns the cached answer, or waits for a discovery, starting one
// when none is in progress. The discovery runs on its own goroutine under
// extdiscoTimeout, detached from ctx, so that a caller giving up does not
// fail the others.
func (c *iceCache) get(ctx context.Context, now func() time.Time, fetch iceFetch) ([]webrtc.ICEServer, error) {
	c.mu.Lock()
	if now().Before(c.until) {
		servers, err := cloneICEServers(c.servers), c.err
		c.mu.Unlock()
		return servers, err
	}
	f := c.flight
	if f == nil {
		f = &iceFlight{done: make(chan struct{})}
		c.flight = f
		go c.run(context.WithoutCancel(ctx), now, fetch, f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return cloneICEServers(f.servers), f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *iceCache) run(ctx context.Context, now func() time.Time, fetch iceFetch, f *iceFlight) {
	ctx, cancel := context.WithTimeout(ctx, extdiscoTimeout)
	defer cancel()
	servers, until, err := fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flight = nil
	f.servers, f.err = servers, err
	close(f.done)
	if err == nil || errors.Is(err, ErrNoExternalServices) {
		c.servers, c.err, c.until = servers, err, until
	}
}

// cloneICEServers copies servers deeply enough that callers may modify
// the result (the URL slices; credentials are strings).
func cloneICEServers(in []webrtc.ICEServer) []webrtc.ICEServer {
	if in == nil {
		return nil
	}
	out := make([]webrtc.ICEServer, len(in))
	for i, s := range in {
		s.URLs = slices.Clone(s.URLs)
		out[i] = s
	}
	return out
}

// iceCaches holds each gateway's iceCache without a field in Gateway (this
// file was written alongside others that own the struct): keyed by a weak
// pointer, removed when the gateway is collected. Replacing it with an
// `ice iceCache` field and `return &g.ice` below is a one-line change.
var iceCaches = struct {
	mu sync.Mutex
	m  map[weak.Pointer[Gateway]]*iceCache
}{m: map[weak.Pointer[Gateway]]*iceCache{}}

// iceCache returns g's cache, creating it on first use.
func (g *Gateway) iceCache() *iceCache {
	wp := weak.Make(g)
	iceCaches.mu.Lock()
	defer iceCaches.mu.Unlock()
	c := iceCaches.m[wp]
	if c == nil {
		c = new(iceCache)
		iceCaches.m[wp] = c
		runtime.AddCleanup(g, func(wp weak.Pointer[Gateway]) {
			iceCaches.mu.Lock()
			delete(iceCaches.m, wp)
			iceCaches.mu.Unlock()
		}, wp)
	}
	return c
}
