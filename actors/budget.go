package actors

import (
	"math"
	"time"
)

// Budget is the per-agent request budget, a token bucket: Rate requests per second on average,
// up to Burst at once. A zero Rate means no limit.
type Budget struct {
	Rate  float64
	Burst float64
}

// bucket is one agent's share of its budget.
type bucket struct {
	tokens float64
	at     int64 // unix nanoseconds of the last refill; zero: full
}

// take spends one token, or says how long until one is available.
func (b *bucket) take(budget Budget, now time.Time) error {
	if budget.Rate <= 0 {
		return nil
	}
	burst := math.Max(budget.Burst, 1)
	if b.at == 0 {
		b.tokens = burst
	} else if elapsed := time.Duration(now.UnixNano() - b.at).Seconds(); elapsed > 0 {
		b.tokens = math.Min(burst, b.tokens+elapsed*budget.Rate)
	}
	b.at = now.UnixNano()

	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) / budget.Rate * float64(time.Second))
		return &RateLimitError{RetryAfter: wait}
	}
	b.tokens--
	return nil
}

// admit authenticates an agent's own request and charges it to the agent's budget.
func (a *agent) admit(key SecretHash, now time.Time) error {
	if err := a.authenticate(key, now); err != nil {
		return err
	}
	return a.budget.take(a.env.Budget, now)
}
