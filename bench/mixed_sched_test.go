package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestSchedulePolls(t *testing.T) {
	tests := []struct {
		name     string
		agents   int
		max      int64
		minPolls int // per agent
	}{
		{"every agent keeps its cadence", 3, 1 << 20, 4},
		{"request cap", 3, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			start := time.Now()
			cadence := 20 * time.Millisecond
			h := newPollHeap(tt.agents, start, cadence, rng)
			jobs := make(chan pollJob, 1024)
			plan := pollPlan{cadence: cadence, jitter: 0.2, end: start.Add(150 * time.Millisecond),
				stopAt: start.Add(time.Second), max: tt.max, done: func() bool { return true }}
			schedulePolls(t.Context(), h, plan, rng, jobs)

			polls, total, last := make([]int, tt.agents), int64(0), map[int]time.Time{}
			for job := range jobs { // closed by schedulePolls
				polls[job.idx]++
				total++
				if prev, ok := last[job.idx]; ok {
					gap := job.due.Sub(prev)
					if gap < 16*time.Millisecond || gap > 24*time.Millisecond {
						t.Errorf("agent %d: %v between polls, want 20ms ±20%%", job.idx, gap)
					}
				}
				last[job.idx] = job.due
			}
			if total > tt.max {
				t.Errorf("%d polls, cap %d", total, tt.max)
			}
			for i, n := range polls {
				if n < tt.minPolls {
					t.Errorf("agent %d polled %d times, want at least %d", i, n, tt.minPolls)
				}
			}
		})
	}
}
