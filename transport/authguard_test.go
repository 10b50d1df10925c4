package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/heepr/heeprd/actors"
)

func TestAuthGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	g := newAuthGuard(actors.Budget{Rate: 1, Burst: 3})
	addr := func(a string) func() string { return func() string { return a } }

	for i := range 2 {
		g.failed("10.0.0.1", t0)
		if err := g.allow(addr("10.0.0.1"), t0); err != nil {
			t.Fatalf("refused after %d failures, burst is 3", i+1)
		}
	}
	g.failed("10.0.0.1", t0)
	err := g.allow(addr("10.0.0.1"), t0)
	var limited *actors.RateLimitError
	if !errors.As(err, &limited) || !errors.Is(err, actors.ErrRateLimited) {
		t.Fatalf("after 3 failures: err = %v, want a RateLimitError", err)
	}
	if limited.RetryAfter <= 0 || limited.RetryAfter > time.Second {
		t.Errorf("RetryAfter = %v, want (0, 1s]", limited.RetryAfter)
	}
	if err := g.allow(addr("10.0.0.2"), t0); err != nil {
		t.Errorf("another address was refused: %v", err)
	}
	if err := g.allow(addr("10.0.0.1"), t0.Add(1100*time.Millisecond)); err != nil {
		t.Errorf("still refused after the bucket refilled: %v", err)
	}
	if g.blocked.Load() != 0 {
		t.Errorf("blocked = %d after unblocking, want 0", g.blocked.Load())
	}

	g.forgetIdle(t0.Add(time.Hour))
	if n := len(g.shard("10.0.0.1").sources); n != 0 {
		t.Errorf("%d idle entries kept, want 0", n)
	}
}

func TestAuthGuardOffAllowsEverything(t *testing.T) {
	g := newAuthGuard(actors.Budget{})
	for range 100 {
		g.failed("10.0.0.1", time.Unix(0, 0))
	}
	if err := g.allow(func() string { return "10.0.0.1" }, time.Unix(0, 0)); err != nil {
		t.Fatalf("a guard with rate 0 refused: %v", err)
	}
}
