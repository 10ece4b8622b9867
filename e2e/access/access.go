// Package access decides which entities may obtain this device's bundle and
// start an opportunistic end-to-end handshake with it.
//
// Support for the protocol is public (disco#info), but serving bundles and
// running handshakes costs CPU and reveals devices, so a [Controller] gates
// them: a [Mode] says who may ask at all (roster contacts only, contacts
// plus configured domains, or anyone), per-requester and global token
// buckets limit the rate, and a cap bounds the handshakes in progress. See
// docs/protocol.md, "Opportunistic encryption" and the security
// considerations on denial of service and privacy probes.
//
// The package has no XMPP dependency: requesters are bare JIDs as strings,
// and the caller says whether a requester is on the roster.
package access

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// A Mode says which requesters pass the policy check before rate limits.
type Mode uint8

const (
	// RosterOnly admits roster contacts only. It is the zero Mode.
	RosterOnly Mode = iota
	// AllowedDomains admits roster contacts and requesters whose domain
	// matches Config.Domains. With no Domains it behaves as RosterOnly.
	AllowedDomains
	// Anyone admits every requester, subject to the rate limits.
	Anyone
)

// String returns the name of m.
func (m Mode) String() string {
	switch m {
	case RosterOnly:
		return "roster-only"
	case AllowedDomains:
		return "allowed-domains"
	case Anyone:
		return "anyone"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// A Reason explains a [Decision]. The zero Reason is not used.
type Reason uint8

const (
	_ Reason = iota
	// ReasonAllowed: the request may proceed.
	ReasonAllowed
	// ReasonNotOnRoster: the mode admits roster contacts only.
	ReasonNotOnRoster
	// ReasonDomainNotAllowed: the requester's domain matches no allowed
	// domain.
	ReasonDomainNotAllowed
	// ReasonRateLimited: the requester exceeded its own rate.
	ReasonRateLimited
	// ReasonGlobalRateLimited: strangers as a whole exceeded the global
	// rate, or too many strangers are being tracked to admit a new one.
	ReasonGlobalRateLimited
	// ReasonInvalidRequester: the requester is not a bare JID.
	ReasonInvalidRequester
)

var reasonNames = [...]string{"", "allowed", "not-on-roster", "domain-not-allowed", "rate-limited", "global-rate-limited", "invalid-requester"}

// String returns the name of r.
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// A Decision is the answer of [Controller.Allow]. The zero Decision refuses.
type Decision struct {
	Allowed bool
	Reason  Reason
}

// ErrTooManyPending is returned by [Controller.BeginHandshake] when the cap
// on pending handshakes is reached.
var ErrTooManyPending = errors.New("access: too many pending handshakes")

var errConfig = errors.New("access: invalid config")

// Config is the access policy. A Config is a plain value; [New] copies it.
type Config struct {
	Mode Mode
	// Domains are the allowed domains for AllowedDomains: "example.org"
	// matches that domain exactly, "*.example.org" matches its subdomains
	// (not example.org itself). Matching is ASCII case-insensitive and
	// ignores one trailing dot.
	Domains []string
	// Rate (tokens per second) and Burst limit each requester.
	Rate  float64
	Burst int
	// GlobalRate and GlobalBurst limit all non-roster requesters together.
	GlobalRate  float64
	GlobalBurst int
	// MaxPending caps handshakes begun and not yet done.
	MaxPending int
	// MaxTracked caps the requesters whose rate state is kept, separately
	// for strangers and for roster contacts.
	MaxTracked int
}

// DefaultConfig returns the default policy: roster contacts only, 0.2
// requests per second with a burst of 5 per requester, 20 per second with a
// burst of 50 for all strangers, 64 pending handshakes, 4096 tracked
// requesters.
func DefaultConfig() Config {
	return Config{
		Mode:        RosterOnly,
		Rate:        0.2,
		Burst:       5,
		GlobalRate:  20,
		GlobalBurst: 50,
		MaxPending:  64,
		MaxTracked:  4096,
	}
}

// Validate reports whether c is usable: a known Mode, positive finite
// rates, positive bursts and caps, and well-formed domain patterns.
func (c Config) Validate() error {
	if c.Mode > Anyone {
		return fmt.Errorf("%w: mode %d", errConfig, c.Mode)
	}
	validRate := func(r float64) bool { return r > 0 && !math.IsInf(r, 0) && !math.IsNaN(r) }
	if !validRate(c.Rate) || !validRate(c.GlobalRate) {
		return fmt.Errorf("%w: rates must be positive and finite", errConfig)
	}
	if c.Burst < 1 || c.GlobalBurst < 1 || c.MaxPending < 1 || c.MaxTracked < 1 {
		return fmt.Errorf("%w: bursts and caps must be at least 1", errConfig)
	}
	for _, d := range c.Domains {
		if err := checkPattern(d); err != nil {
			return err
		}
	}
	return nil
}

// checkPattern accepts "domain" or "*.domain" where domain is a non-empty
// sequence of non-empty labels without '*', '@', '/' or spaces.
func checkPattern(p string) error {
	d := strings.TrimPrefix(p, "*.")
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 1023 || !utf8.ValidString(d) || strings.ContainsAny(d, "*@/ \t\r\n") {
		return fmt.Errorf("%w: domain pattern %q", errConfig, p)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" {
			return fmt.Errorf("%w: domain pattern %q", errConfig, p)
		}
	}
	return nil
}

// rosterBurstFactor multiplies Burst for roster contacts: a contact opening
// a session from several devices at once should not be refused, while a
// misbehaving contact's account is still limited.
const rosterBurstFactor = 2

// A Controller applies a [Config]. It is safe for concurrent use. The zero
// Controller is not usable: create one with [New].
//
// Roster contacts always pass the Mode check and are exempt from the global
// limit, so a flood of strangers cannot lock contacts out. They are still
// limited per requester, at Rate with a burst of twice Burst, in their own
// table of at most MaxTracked entries (least recently used evicted: the
// roster is under the user's control, not an attacker's).
//
// Strangers are limited per requester and globally. A stranger's state is
// only created when a request of it is allowed, and only full buckets are
// ever evicted: when the stranger table is full and its least recently
// used entry has not refilled completely, a new stranger is refused with
// [ReasonGlobalRateLimited] instead of evicting. Evicting a full bucket
// loses nothing (a new requester starts with a full bucket), so no amount
// of churn lets a requester reset its own limit, and the table never
// exceeds MaxTracked.
type Controller struct {
	cfg      Config
	now      func() time.Time
	exact    map[string]bool // lower-cased exact domains
	suffixes []string        // lower-cased ".example.org" for "*.example.org"

	mu          sync.Mutex
	global      bucket
	strangers   table
	roster      table
	pending     int
	peerPending map[string]int
}

// New returns a Controller for cfg, which must pass [Config.Validate]. now
// is the clock; nil means time.Now.
func New(cfg Config, now func() time.Time) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	cfg.Domains = append([]string(nil), cfg.Domains...)
	c := &Controller{
		cfg:         cfg,
		now:         now,
		exact:       make(map[string]bool),
		global:      bucket{tokens: float64(cfg.GlobalBurst), last: now()},
		strangers:   newTable(),
		roster:      newTable(),
		peerPending: make(map[string]int),
	}
	for _, d := range cfg.Domains {
		d = strings.TrimSuffix(strings.ToLower(d), ".")
		if s, ok := strings.CutPrefix(d, "*."); ok {
			c.suffixes = append(c.suffixes, "."+s)
		} else {
			c.exact[d] = true
		}
	}
	return c, nil
}

// Allow decides whether requester (a bare JID) may fetch a bundle or start
// a handshake now, and if so consumes one token. onRoster says whether the
// requester is in the user's roster (with a subscription the caller deems
// sufficient).
//
// The order of checks is: requester syntax, Mode, the requester's own
// bucket, then (for strangers) the global bucket and the table capacity. A
// refused request consumes no token.
func (c *Controller) Allow(requester string, onRoster bool) Decision {
	dom, ok := domainOf(requester)
	if !ok {
		return Decision{Reason: ReasonInvalidRequester}
	}
	if !onRoster {
		switch c.cfg.Mode {
		case RosterOnly:
			return Decision{Reason: ReasonNotOnRoster}
		case AllowedDomains:
			if len(c.cfg.Domains) == 0 {
				return Decision{Reason: ReasonNotOnRoster}
			}
			if !c.domainAllowed(dom) {
				return Decision{Reason: ReasonDomainNotAllowed}
			}
		}
	}
	// JID localparts and domains are case-insensitive: one bucket for all
	// spellings, so case games do not multiply a requester's allowance.
	key := strings.ToLower(requester)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if onRoster {
		return c.allowRoster(key, now)
	}
	burst := float64(c.cfg.Burst)
	e := c.strangers.get(key)
	if e != nil && e.b.peek(now, c.cfg.Rate, burst) < 1 {
		c.strangers.touch(e)
		return Decision{Reason: ReasonRateLimited}
	}
	if c.global.peek(now, c.cfg.GlobalRate, float64(c.cfg.GlobalBurst)) < 1 {
		return Decision{Reason: ReasonGlobalRateLimited}
	}
	if e == nil {
		if c.strangers.len() >= c.cfg.MaxTracked {
			old := c.strangers.oldest()
			if old.b.peek(now, c.cfg.Rate, burst) < burst {
				return Decision{Reason: ReasonGlobalRateLimited}
			}
			c.strangers.remove(old)
		}
		e = c.strangers.add(key, bucket{tokens: burst, last: now})
	}
	c.global.take(now, c.cfg.GlobalRate, float64(c.cfg.GlobalBurst))
	e.b.take(now, c.cfg.Rate, burst)
	c.strangers.touch(e)
	return Decision{Allowed: true, Reason: ReasonAllowed}
}

func (c *Controller) allowRoster(key string, now time.Time) Decision {
	burst := float64(rosterBurstFactor * c.cfg.Burst)
	e := c.roster.get(key)
	if e == nil {
		if c.roster.len() >= c.cfg.MaxTracked {
			c.roster.remove(c.roster.oldest())
		}
		e = c.roster.add(key, bucket{tokens: burst, last: now})
	}
	c.roster.touch(e)
	if e.b.peek(now, c.cfg.Rate, burst) < 1 {
		return Decision{Reason: ReasonRateLimited}
	}
	e.b.take(now, c.cfg.Rate, burst)
	return Decision{Allowed: true, Reason: ReasonAllowed}
}

// domainOf returns the lower-cased domain of a bare JID without its
// trailing dot, and whether requester is a plausible bare JID.
func domainOf(requester string) (string, bool) {
	if requester == "" || len(requester) > 3071 || !utf8.ValidString(requester) ||
		strings.ContainsAny(requester, "/ \t\r\n") {
		return "", false
	}
	dom := requester
	if i := strings.IndexByte(requester, '@'); i >= 0 {
		if i == 0 {
			return "", false
		}
		dom = requester[i+1:]
	}
	dom = strings.TrimSuffix(dom, ".")
	if dom == "" || strings.ContainsRune(dom, '@') {
		return "", false
	}
	return strings.ToLower(dom), true
}

func (c *Controller) domainAllowed(dom string) bool {
	if c.exact[dom] {
		return true
	}
	for _, s := range c.suffixes {
		if len(dom) > len(s) && strings.HasSuffix(dom, s) {
			return true
		}
	}
	return false
}

// BeginHandshake reserves a pending-handshake slot for peer. It fails with
// [ErrTooManyPending] when MaxPending handshakes are pending, or when peer
// alone holds a quarter of MaxPending (at least one), so that one peer
// cannot take every slot. The caller must call done when the handshake
// completes, fails or times out; done is idempotent and safe for concurrent
// use. A slot whose done is never called is never released.
func (c *Controller) BeginHandshake(peer string) (done func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending >= c.cfg.MaxPending || c.peerPending[peer] >= c.perPeerPending() {
		return nil, ErrTooManyPending
	}
	c.pending++
	c.peerPending[peer]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.pending--
			if c.peerPending[peer]--; c.peerPending[peer] == 0 {
				delete(c.peerPending, peer)
			}
		})
	}, nil
}

func (c *Controller) perPeerPending() int {
	return max(1, c.cfg.MaxPending/4)
}

// Stats is a snapshot of a Controller's state, for monitoring.
type Stats struct {
	Pending   int // handshakes begun and not done
	Strangers int // strangers whose rate state is tracked
	Roster    int // roster contacts whose rate state is tracked
}

// Stats returns the current counts.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Pending: c.pending, Strangers: c.strangers.len(), Roster: c.roster.len()}
}

// A bucket is a token bucket; tokens is the level at time last.
type bucket struct {
	tokens float64
	last   time.Time
}

// peek returns the tokens available at now without changing the bucket. A
// clock going backwards refills nothing.
func (b *bucket) peek(now time.Time, rate, burst float64) float64 {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed <= 0 {
		return b.tokens
	}
	return min(burst, b.tokens+elapsed*rate)
}

// take refills the bucket to now and removes one token; the caller has
// checked that one is available.
func (b *bucket) take(now time.Time, rate, burst float64) {
	b.tokens = b.peek(now, rate, burst) - 1
	if now.After(b.last) {
		b.last = now
	}
}

// table is a map of buckets in least-recently-used order.
type table struct {
	m   map[string]*list.Element
	lru *list.List // front: most recent; values are *entry
}

type entry struct {
	key string
	b   bucket
}

func newTable() table {
	return table{m: make(map[string]*list.Element), lru: list.New()}
}

func (t *table) len() int { return t.lru.Len() }

func (t *table) get(key string) *entry {
	if el, ok := t.m[key]; ok {
		return el.Value.(*entry)
	}
	return nil
}

func (t *table) add(key string, b bucket) *entry {
	e := &entry{key: key, b: b}
	t.m[key] = t.lru.PushFront(e)
	return e
}

func (t *table) touch(e *entry) { t.lru.MoveToFront(t.m[e.key]) }

func (t *table) oldest() *entry { return t.lru.Back().Value.(*entry) }

func (t *table) remove(e *entry) {
	t.lru.Remove(t.m[e.key])
	delete(t.m, e.key)
}

// Mode returns the configured access mode.
func (c *Controller) Mode() Mode { return c.cfg.Mode }
