package access

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a manual clock; it only moves when told to.
type clock struct{ ns atomic.Int64 }

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *clock) now() time.Time          { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func newController(t testing.TB, cfg Config) (*Controller, *clock) {
	t.Helper()
	c := new(clock)
	ctl, err := New(cfg, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return ctl, c
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if zero := (Config{}); zero.Mode != RosterOnly || DefaultConfig().Mode != RosterOnly {
		t.Error("zero and default Mode must be RosterOnly")
	}
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	bad := map[string]Config{
		"zero":               {},
		"mode":               mod(func(c *Config) { c.Mode = 3 }),
		"rate 0":             mod(func(c *Config) { c.Rate = 0 }),
		"rate negative":      mod(func(c *Config) { c.Rate = -1 }),
		"rate NaN":           mod(func(c *Config) { c.Rate = math.NaN() }),
		"rate Inf":           mod(func(c *Config) { c.Rate = math.Inf(1) }),
		"global rate 0":      mod(func(c *Config) { c.GlobalRate = 0 }),
		"burst 0":            mod(func(c *Config) { c.Burst = 0 }),
		"global burst 0":     mod(func(c *Config) { c.GlobalBurst = 0 }),
		"max pending 0":      mod(func(c *Config) { c.MaxPending = 0 }),
		"max tracked 0":      mod(func(c *Config) { c.MaxTracked = -1 }),
		"domain empty":       mod(func(c *Config) { c.Domains = []string{""} }),
		"domain star only":   mod(func(c *Config) { c.Domains = []string{"*."} }),
		"domain inner star":  mod(func(c *Config) { c.Domains = []string{"a.*.org"} }),
		"domain two stars":   mod(func(c *Config) { c.Domains = []string{"*.*.org"} }),
		"domain bare star":   mod(func(c *Config) { c.Domains = []string{"*"} }),
		"domain empty label": mod(func(c *Config) { c.Domains = []string{"a..org"} }),
		"domain with user":   mod(func(c *Config) { c.Domains = []string{"user@example.org"} }),
		"domain with slash":  mod(func(c *Config) { c.Domains = []string{"example.org/r"} }),
	}
	for name, cfg := range bad {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, cfg)
		}
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: New accepted an invalid config", name)
		}
	}
	good := mod(func(c *Config) {
		c.Domains = []string{"example.org", "*.Example.ORG", "trailing.dot.", "xn--caf-dma.example"}
	})
	if err := good.Validate(); err != nil {
		t.Errorf("valid domains: %v", err)
	}
}

func TestAllowReasons(t *testing.T) {
	domains := []string{"Example.org", "*.corp.example", "dot.example."}
	tests := []struct {
		name      string
		mode      Mode
		domains   []string
		requester string
		onRoster  bool
		want      Reason
	}{
		{"invalid empty", Anyone, nil, "", false, ReasonInvalidRequester},
		{"invalid resource", Anyone, nil, "a@example.org/phone", false, ReasonInvalidRequester},
		{"invalid resource on roster", Anyone, nil, "a@example.org/phone", true, ReasonInvalidRequester},
		{"invalid empty localpart", Anyone, nil, "@example.org", false, ReasonInvalidRequester},
		{"invalid empty domain", Anyone, nil, "a@", false, ReasonInvalidRequester},
		{"invalid two ats", Anyone, nil, "a@b@example.org", false, ReasonInvalidRequester},
		{"invalid space", Anyone, nil, "a b@example.org", false, ReasonInvalidRequester},
		{"invalid utf8", Anyone, nil, "a@\xff", false, ReasonInvalidRequester},

		{"roster-only stranger", RosterOnly, nil, "a@example.org", false, ReasonNotOnRoster},
		{"roster-only contact", RosterOnly, nil, "a@example.org", true, ReasonAllowed},
		{"roster-only ignores domains", RosterOnly, domains, "a@example.org", false, ReasonNotOnRoster},

		{"domains empty is roster-only", AllowedDomains, nil, "a@example.org", false, ReasonNotOnRoster},
		{"domains empty contact", AllowedDomains, nil, "a@example.org", true, ReasonAllowed},
		{"domains exact", AllowedDomains, domains, "a@example.org", false, ReasonAllowed},
		{"domains case-insensitive", AllowedDomains, domains, "a@EXAMPLE.Org", false, ReasonAllowed},
		{"domains trailing dot in JID", AllowedDomains, domains, "a@example.org.", false, ReasonAllowed},
		{"domains trailing dot in pattern", AllowedDomains, domains, "a@dot.example", false, ReasonAllowed},
		{"domains domain-only JID", AllowedDomains, domains, "example.org", false, ReasonAllowed},
		{"domains exact excludes subdomain", AllowedDomains, domains, "a@sub.example.org", false, ReasonDomainNotAllowed},
		{"domains wildcard subdomain", AllowedDomains, domains, "a@x.corp.example", false, ReasonAllowed},
		{"domains wildcard deep subdomain", AllowedDomains, domains, "a@y.x.Corp.Example", false, ReasonAllowed},
		{"domains wildcard excludes apex", AllowedDomains, domains, "a@corp.example", false, ReasonDomainNotAllowed},
		{"domains wildcard label boundary", AllowedDomains, domains, "a@evilcorp.example", false, ReasonDomainNotAllowed},
		{"domains suffix trick", AllowedDomains, domains, "a@example.org.evil.net", false, ReasonDomainNotAllowed},
		{"domains other", AllowedDomains, domains, "a@other.net", false, ReasonDomainNotAllowed},
		{"domains localpart is not domain", AllowedDomains, domains, "example.org@other.net", false, ReasonDomainNotAllowed},
		{"domains contact elsewhere", AllowedDomains, domains, "a@other.net", true, ReasonAllowed},

		{"anyone stranger", Anyone, nil, "a@anywhere.net", false, ReasonAllowed},
		{"anyone contact", Anyone, nil, "a@anywhere.net", true, ReasonAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Mode, cfg.Domains = tc.mode, tc.domains
			ctl, _ := newController(t, cfg)
			d := ctl.Allow(tc.requester, tc.onRoster)
			if d.Reason != tc.want || d.Allowed != (tc.want == ReasonAllowed) {
				t.Errorf("Allow(%q, %v) = %+v (%v), want %v", tc.requester, tc.onRoster, d, d.Reason, tc.want)
			}
		})
	}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Mode = Anyone
	cfg.Rate, cfg.Burst = 1, 3
	cfg.GlobalRate, cfg.GlobalBurst = 10, 20
	return cfg
}

func TestRateLimits(t *testing.T) {
	t.Run("per requester", func(t *testing.T) {
		ctl, clk := newController(t, testConfig())
		for i := range 3 {
			if d := ctl.Allow("a@x.net", false); !d.Allowed {
				t.Fatalf("request %d: %v", i, d.Reason)
			}
		}
		if d := ctl.Allow("a@x.net", false); d.Reason != ReasonRateLimited {
			t.Fatalf("request 4: %v, want rate-limited", d.Reason)
		}
		// Other spellings of the same JID share the bucket.
		if d := ctl.Allow("A@X.net", false); d.Reason != ReasonRateLimited {
			t.Errorf("case variant: %v, want rate-limited", d.Reason)
		}
		// Others are not affected.
		if d := ctl.Allow("b@x.net", false); !d.Allowed {
			t.Errorf("other requester: %v", d.Reason)
		}
		clk.advance(999 * time.Millisecond)
		if d := ctl.Allow("a@x.net", false); d.Reason != ReasonRateLimited {
			t.Errorf("before one token refilled: %v", d.Reason)
		}
		clk.advance(time.Millisecond)
		if d := ctl.Allow("a@x.net", false); !d.Allowed {
			t.Errorf("after one token refilled: %v", d.Reason)
		}
		if d := ctl.Allow("a@x.net", false); d.Reason != ReasonRateLimited {
			t.Errorf("after using the refilled token: %v", d.Reason)
		}
	})
	t.Run("global", func(t *testing.T) {
		ctl, clk := newController(t, testConfig())
		for i := range 20 {
			if d := ctl.Allow(fmt.Sprintf("s%d@x.net", i), false); !d.Allowed {
				t.Fatalf("stranger %d: %v", i, d.Reason)
			}
		}
		if d := ctl.Allow("late@x.net", false); d.Reason != ReasonGlobalRateLimited {
			t.Fatalf("stranger 21: %v, want global-rate-limited", d.Reason)
		}
		// Contacts are exempt from the global bucket.
		if d := ctl.Allow("friend@x.net", true); !d.Allowed {
			t.Errorf("contact during global limit: %v", d.Reason)
		}
		clk.advance(100 * time.Millisecond) // one global token
		if d := ctl.Allow("late@x.net", false); !d.Allowed {
			t.Errorf("after global refill: %v", d.Reason)
		}
		if d := ctl.Allow("later@x.net", false); d.Reason != ReasonGlobalRateLimited {
			t.Errorf("second after one refill: %v", d.Reason)
		}
	})
	t.Run("rate-limited requests consume no global token", func(t *testing.T) {
		ctl, _ := newController(t, testConfig())
		for range 1000 {
			ctl.Allow("hammer@x.net", false)
		}
		for i := range 17 { // 20 - the 3 hammer got
			if d := ctl.Allow(fmt.Sprintf("s%d@x.net", i), false); !d.Allowed {
				t.Fatalf("stranger %d after hammering: %v", i, d.Reason)
			}
		}
	})
	t.Run("roster burst", func(t *testing.T) {
		ctl, clk := newController(t, testConfig())
		for i := range 2 * 3 {
			if d := ctl.Allow("friend@x.net", true); !d.Allowed {
				t.Fatalf("contact request %d: %v", i, d.Reason)
			}
		}
		if d := ctl.Allow("friend@x.net", true); d.Reason != ReasonRateLimited {
			t.Fatalf("contact request 7: %v, want rate-limited", d.Reason)
		}
		clk.advance(time.Second)
		if d := ctl.Allow("friend@x.net", true); !d.Allowed {
			t.Errorf("contact after refill: %v", d.Reason)
		}
	})
	t.Run("clock going back", func(t *testing.T) {
		ctl, clk := newController(t, testConfig())
		clk.advance(time.Hour)
		for range 3 {
			ctl.Allow("a@x.net", false)
		}
		clk.advance(-time.Hour)
		if d := ctl.Allow("a@x.net", false); d.Reason != ReasonRateLimited {
			t.Errorf("after the clock went back: %v", d.Reason)
		}
		clk.advance(time.Hour + time.Second)
		if d := ctl.Allow("a@x.net", false); !d.Allowed {
			t.Errorf("after the clock came back: %v", d.Reason)
		}
	})
}

func TestTrackedTableFull(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTracked = 2
	ctl, clk := newController(t, cfg)
	for _, r := range []string{"a@x.net", "b@x.net"} {
		if d := ctl.Allow(r, false); !d.Allowed {
			t.Fatal(d.Reason)
		}
	}
	// Both tracked buckets are below full: a new stranger is refused
	// rather than evicting one.
	if d := ctl.Allow("c@x.net", false); d.Reason != ReasonGlobalRateLimited {
		t.Fatalf("new stranger with a full table: %v, want global-rate-limited", d.Reason)
	}
	// Known strangers are still served.
	if d := ctl.Allow("a@x.net", false); !d.Allowed {
		t.Errorf("tracked stranger: %v", d.Reason)
	}
	// Once b's bucket has refilled (1 token at 1/s), it can be evicted.
	clk.advance(time.Second)
	if d := ctl.Allow("c@x.net", false); !d.Allowed {
		t.Errorf("new stranger after refill: %v", d.Reason)
	}
	if s := ctl.Stats(); s.Strangers != 2 {
		t.Errorf("tracked strangers = %d, want 2", s.Strangers)
	}
}

// TestNoResetByChurn checks the property that matters: whatever other
// strangers do, one requester never gets more than Burst + Rate*elapsed.
func TestNoResetByChurn(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTracked = 8
	cfg.GlobalRate, cfg.GlobalBurst = 1000, 1000
	ctl, clk := newController(t, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	allowed := 0
	const steps = 20000
	step := 10 * time.Millisecond
	for i := range steps {
		if rng.IntN(4) == 0 {
			if ctl.Allow("attacker@x.net", false).Allowed {
				allowed++
			}
		} else {
			ctl.Allow(fmt.Sprintf("churn%d@x.net", rng.IntN(1000)), false)
		}
		if n := ctl.Stats().Strangers; n > cfg.MaxTracked {
			t.Fatalf("step %d: %d tracked > MaxTracked", i, n)
		}
		clk.advance(step)
	}
	elapsed := (steps * step).Seconds()
	limit := float64(cfg.Burst) + cfg.Rate*elapsed
	if float64(allowed) > limit {
		t.Errorf("attacker allowed %d times, limit %.0f", allowed, limit)
	}
	if float64(allowed) < limit/2 {
		t.Errorf("attacker allowed only %d times (limit %.0f): test not exercising the limit", allowed, limit)
	}
}

// TestFlood: 100,000 requests from 50,000 distinct strangers. The tracked
// table stays bounded, strangers as a whole stay within the global rate,
// and a roster contact is served afterwards. The "table-bound" variant has
// a global rate high enough that the table cap, not the global bucket, is
// what holds the flood.
func TestFlood(t *testing.T) {
	small := DefaultConfig()
	small.MaxTracked, small.GlobalRate, small.GlobalBurst = 256, 1000, 1000
	for name, cfg := range map[string]Config{"default": DefaultConfig(), "table-bound": small} {
		t.Run(name, func(t *testing.T) {
			cfg.Mode = Anyone
			ctl, clk := newController(t, cfg)
			const calls, distinct = 100000, 50000
			step := time.Millisecond
			allowed, maxTracked := 0, 0
			for i := range calls {
				if ctl.Allow(fmt.Sprintf("bot%d@flood.example", i%distinct), false).Allowed {
					allowed++
				}
				n := ctl.Stats().Strangers
				if n > cfg.MaxTracked {
					t.Fatalf("call %d: %d tracked > MaxTracked %d", i, n, cfg.MaxTracked)
				}
				maxTracked = max(maxTracked, n)
				clk.advance(step)
			}
			elapsed := (calls * step).Seconds()
			if limit := float64(cfg.GlobalBurst) + cfg.GlobalRate*elapsed; float64(allowed) > limit {
				t.Errorf("%d stranger requests allowed, global limit %.0f", allowed, limit)
			}
			// A tracked stranger can be evicted only once its bucket is
			// full again, at least 1/Rate after its last allowed request,
			// so the table admits at most MaxTracked strangers per 1/Rate.
			if limit := float64(cfg.MaxTracked) * (1 + elapsed*cfg.Rate); float64(allowed) > limit {
				t.Errorf("%d stranger requests allowed, table limit %.0f", allowed, limit)
			}
			if allowed == 0 {
				t.Error("no stranger allowed at all")
			}
			for i := range 2 * cfg.Burst {
				if d := ctl.Allow("friend@example.org", true); !d.Allowed {
					t.Fatalf("roster contact request %d after the flood: %v", i, d.Reason)
				}
			}
			t.Logf("allowed %d of %d, max tracked %d", allowed, calls, maxTracked)
		})
	}
}

func TestBeginHandshake(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPending = 8 // 2 per peer
	ctl, _ := newController(t, cfg)
	var dones []func()
	for i := range 8 {
		done, err := ctl.BeginHandshake(fmt.Sprintf("p%d@x.net", i/2))
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		dones = append(dones, done)
	}
	if _, err := ctl.BeginHandshake("other@x.net"); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("handshake 9: %v, want ErrTooManyPending", err)
	}
	dones[0]()
	dones[0]() // idempotent: releases one slot only
	if got := ctl.Stats().Pending; got != 7 {
		t.Fatalf("pending = %d after one done called twice, want 7", got)
	}
	if _, err := ctl.BeginHandshake("p1@x.net"); !errors.Is(err, ErrTooManyPending) {
		t.Errorf("third handshake of one peer: %v, want ErrTooManyPending", err)
	}
	done, err := ctl.BeginHandshake("other@x.net")
	if err != nil {
		t.Fatalf("after a slot was freed: %v", err)
	}
	if _, err := ctl.BeginHandshake("other2@x.net"); !errors.Is(err, ErrTooManyPending) {
		t.Errorf("over cap again: %v", err)
	}
	done()
	for _, d := range dones {
		d()
	}
	if got := ctl.Stats().Pending; got != 0 {
		t.Errorf("pending = %d after all done, want 0", got)
	}
	// MaxPending 1: the per-peer share is at least one.
	cfg.MaxPending = 1
	ctl, _ = newController(t, cfg)
	if _, err := ctl.BeginHandshake("a@x.net"); err != nil {
		t.Errorf("MaxPending 1: %v", err)
	}
}

// TestConcurrent runs many goroutines against one Controller with a frozen
// clock, then checks the counts that no interleaving may break.
func TestConcurrent(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTracked = 64
	cfg.MaxPending = 16
	ctl, _ := newController(t, cfg)
	const workers, perWorker, contacts = 16, 500, 4
	var strangerOK, contactOK [contacts]atomic.Int64
	var strangersAllowed, maxPending atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				c := rng.IntN(contacts)
				if ctl.Allow(fmt.Sprintf("contact%d@x.net", c), true).Allowed {
					contactOK[c].Add(1)
				}
				if ctl.Allow(fmt.Sprintf("s%d@x.net", rng.IntN(200)), false).Allowed {
					strangersAllowed.Add(1)
				}
				if i%4 == 0 {
					if ctl.Allow(fmt.Sprintf("hot%d@x.net", c), false).Allowed {
						strangerOK[c].Add(1)
						strangersAllowed.Add(1)
					}
				}
				done, err := ctl.BeginHandshake(fmt.Sprintf("p%d@x.net", w))
				if err == nil {
					if p := int64(ctl.Stats().Pending); p > maxPending.Load() {
						maxPending.Store(p)
					}
					done()
					done()
				} else if !errors.Is(err, ErrTooManyPending) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := strangersAllowed.Load(); got != int64(cfg.GlobalBurst) {
		t.Errorf("strangers allowed %d times with a frozen clock, want exactly GlobalBurst %d", got, cfg.GlobalBurst)
	}
	for c := range contacts {
		if got := contactOK[c].Load(); got != int64(2*cfg.Burst) {
			t.Errorf("contact %d allowed %d times, want exactly %d", c, got, 2*cfg.Burst)
		}
		if got := strangerOK[c].Load(); got > int64(cfg.Burst) {
			t.Errorf("stranger hot%d allowed %d times > Burst", c, got)
		}
	}
	s := ctl.Stats()
	if s.Pending != 0 || s.Strangers > cfg.MaxTracked || s.Roster != contacts {
		t.Errorf("final stats %+v", s)
	}
	if maxPending.Load() > int64(cfg.MaxPending) {
		t.Errorf("observed %d pending > MaxPending", maxPending.Load())
	}
}

func BenchmarkAllow(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Mode = Anyone
	b.Run("contact", func(b *testing.B) {
		ctl, clk := newController(b, cfg)
		for b.Loop() {
			ctl.Allow("friend@example.org", true)
			clk.advance(time.Millisecond)
		}
	})
	b.Run("strangers", func(b *testing.B) {
		ctl, clk := newController(b, cfg)
		names := make([]string, 10000)
		for i := range names {
			names[i] = fmt.Sprintf("s%d@example.net", i)
		}
		i := 0
		for b.Loop() {
			ctl.Allow(names[i%len(names)], false)
			clk.advance(time.Millisecond)
			i++
		}
	})
}
