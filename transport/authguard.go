package transport

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heepr/heeprd/actors"
)

// authGuard limits failed authentications per source address, with one token bucket per address
// that failed recently. An address whose bucket is empty gets 429 on every credentialed request
// until it refills, before its credentials are even looked at.
//
// Requests that authenticate never touch the guard's maps: while no address is blocked, allow is
// one atomic load, so the poll path pays nothing for it.
type authGuard struct {
	budget  actors.Budget
	seed    maphash.Seed
	shards  [16]guardShard
	blocked atomic.Int64 // addresses currently refused
}

type guardShard struct {
	mu      sync.Mutex
	sources map[string]*guardEntry
}

type guardEntry struct {
	tokens  float64
	at      time.Time
	blocked bool
}

func newAuthGuard(b actors.Budget) *authGuard {
	g := &authGuard{budget: b, seed: maphash.MakeSeed()}
	for i := range g.shards {
		g.shards[i].sources = make(map[string]*guardEntry)
	}
	return g
}

func (g *authGuard) shard(addr string) *guardShard {
	return &g.shards[maphash.String(g.seed, addr)%uint64(len(g.shards))]
}

// allow returns a RateLimitError if addr has used up its failures.
func (g *authGuard) allow(addr func() string, now time.Time) error {
	if g.budget.Rate <= 0 || g.blocked.Load() == 0 {
		return nil
	}
	source := addr()
	s := g.shard(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.sources[source]
	if e == nil || !e.blocked {
		return nil
	}
	g.refill(e, now)
	if e.tokens >= 1 {
		e.blocked = false
		g.blocked.Add(-1)
		return nil
	}
	return g.refusal(e)
}

// failed charges one failed authentication to addr.
func (g *authGuard) failed(source string, now time.Time) {
	if g.budget.Rate <= 0 {
		return
	}
	s := g.shard(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.sources[source]
	if e == nil {
		e = &guardEntry{tokens: g.burst(), at: now}
		s.sources[source] = e
	}
	g.refill(e, now)
	e.tokens = math.Max(e.tokens-1, 0)
	if e.tokens < 1 && !e.blocked {
		e.blocked = true
		g.blocked.Add(1)
	}
}

func (g *authGuard) burst() float64 { return math.Max(g.budget.Burst, 1) }

func (g *authGuard) refill(e *guardEntry, now time.Time) {
	if elapsed := now.Sub(e.at).Seconds(); elapsed > 0 {
		e.tokens = math.Min(g.burst(), e.tokens+elapsed*g.budget.Rate)
		e.at = now
	}
}

func (g *authGuard) refusal(e *guardEntry) error {
	wait := time.Duration((1 - e.tokens) / g.budget.Rate * float64(time.Second))
	return &actors.RateLimitError{RetryAfter: wait,
		Reason: "too many failed authentications from this address"}
}

// forgetIdle drops addresses whose bucket is full again, so the maps hold only recent failures.
func (g *authGuard) forgetIdle(now time.Time) {
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for source, e := range s.sources {
			g.refill(e, now)
			if e.tokens >= g.burst() {
				if e.blocked {
					g.blocked.Add(-1)
				}
				delete(s.sources, source)
			}
		}
		s.mu.Unlock()
	}
}

// RunMaintenance forgets idle failed-authentication records every minute until ctx ends.
func (s *Server) RunMaintenance(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.guard.forgetIdle(now)
		}
	}
}
