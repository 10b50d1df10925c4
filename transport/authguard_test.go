package transport

import (
	"errors"
	"log/slog"
	"strings"
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

func TestThrottledLogSuppressesRepeats(t *testing.T) {
	var buf strings.Builder
	tl := newThrottledLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 50 {
		tl.warn("unavailable", "request failed")
	}
	tl.warn("internal", "request failed")
	if n := strings.Count(buf.String(), "request failed"); n != 2 {
		t.Fatalf("%d lines written for 50 repeats of one key and 1 of another, want 2", n)
	}
	tl.by["unavailable"].last = time.Now().Add(-2 * time.Second)
	tl.warn("unavailable", "request failed")
	if !strings.Contains(buf.String(), "suppressed_since_last=49") {
		t.Errorf("the next line does not report 49 suppressed:\n%s", buf.String())
	}
}
