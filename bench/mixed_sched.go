package main

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"time"
)

// pollJob asks a poller to poll as agent idx; due is when the agent meant to poll, the time its
// latency is measured from.
type pollJob struct {
	idx int
	due time.Time
}

// pollHeap orders agents by their next poll; heap.Fix on the root never allocates.
type pollHeap []pollJob

func (h pollHeap) Len() int           { return len(h) }
func (h pollHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h pollHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pollHeap) Push(x any)        { *h = append(*h, x.(pollJob)) }
func (h *pollHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// newPollHeap spreads the first polls of n agents evenly at random over one cadence.
func newPollHeap(n int, start time.Time, cadence time.Duration, rng *rand.Rand) *pollHeap {
	h := make(pollHeap, n)
	for i := range h {
		h[i] = pollJob{idx: i, due: start.Add(time.Duration(rng.Float64() * float64(cadence)))}
	}
	heap.Init(&h)
	return &h
}

// nextInterval is the time to an agent's next poll: cadence varied by up to ±jitter, for u
// drawn uniformly from [0, 1).
func nextInterval(cadence time.Duration, jitter, u float64) time.Duration {
	return time.Duration(float64(cadence) * (1 + jitter*(2*u-1)))
}

// pollPlan bounds the scheduler: polls are planned until end, then until done reports true or
// stopAt passes, and never more than max in all.
type pollPlan struct {
	cadence     time.Duration
	jitter      float64
	end, stopAt time.Time
	max         int64
	done        func() bool
}

// schedulePolls sends every agent's polls to jobs at their due times, the next one a jittered
// cadence after the previous due time (not after the answer: the agents keep their rhythm when
// the server is slow, so a stall shows as latency). It closes jobs when the plan ends.
func schedulePolls(ctx context.Context, h *pollHeap, plan pollPlan, rng *rand.Rand,
	jobs chan<- pollJob) {
	defer close(jobs)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for sent := int64(0); sent < plan.max; {
		now := time.Now()
		if !now.Before(plan.stopAt) || (!now.Before(plan.end) && plan.done()) {
			return
		}
		// At most a batch at a time, so that the bounds are checked even when far behind.
		for batch := 0; batch < 1024 && sent < plan.max && !(*h)[0].due.After(now); batch++ {
			select {
			case jobs <- (*h)[0]:
			case <-ctx.Done():
				return
			}
			(*h)[0].due = (*h)[0].due.Add(nextInterval(plan.cadence, plan.jitter, rng.Float64()))
			heap.Fix(h, 0)
			sent++
		}
		timer.Reset(min(time.Until((*h)[0].due), 50*time.Millisecond))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}
