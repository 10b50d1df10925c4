package main

import (
	"testing"
	"time"
)

// fakeClock is a simulated clock: sleeping jumps to the wake-up time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleepUntil(t time.Time) bool {
	if t.After(c.t) {
		c.t = t
	}
	return true
}

func TestScheduleDueAt(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name string
		rate float64
		seq  int64
		want time.Duration
	}{
		{"first request at start", 1000, 0, 0},
		{"1000/s spaces by 1ms", 1000, 5, 5 * time.Millisecond},
		{"fractional interval does not drift", 3, 3, time.Second},
		{"high rate", 1e6, 1_000_000, time.Second},
		{"slow rate", 0.5, 2, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule(start, start.Add(time.Hour), tt.rate, 1<<40)
			if got := s.dueAt(tt.seq).Sub(start); got != tt.want {
				t.Errorf("dueAt(%d) = %v after start, want %v", tt.seq, got, tt.want)
			}
		})
	}
}

// TestRunOpenLatencyFromSchedule drives one open-loop worker on a simulated clock: each
// request takes its service time, and latency is measured from the scheduled time, so a stall
// delays (and shows in) every request scheduled during it.
func TestRunOpenLatencyFromSchedule(t *testing.T) {
	ms := time.Millisecond
	us := time.Microsecond
	tests := []struct {
		name    string
		end     time.Duration // schedule ends this long after start
		max     int64
		service []time.Duration // per request; the last one repeats
		want    []time.Duration
	}{
		{"keeping up: latency is the service time", 4 * ms, 100,
			[]time.Duration{100 * us}, []time.Duration{100 * us, 100 * us, 100 * us, 100 * us}},
		{"a 5ms stall delays the requests scheduled behind it", 5 * ms, 100,
			[]time.Duration{100 * us, 5 * ms, 100 * us},
			[]time.Duration{100 * us, 5 * ms, 4100 * us, 3200 * us, 2300 * us}},
		{"a slow server falls further behind each request", 3 * ms, 100,
			[]time.Duration{2 * ms}, []time.Duration{2 * ms, 3 * ms, 4 * ms}},
		{"request cap", time.Hour, 2, []time.Duration{us}, []time.Duration{us, us}},
		{"nothing scheduled before the end", 0, 100, []time.Duration{us}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			clk := &fakeClock{t: start}
			sched := newSchedule(start, start.Add(tt.end), 1000, tt.max) // one per ms
			var got []time.Duration
			runOpen(sched, clk, func(due time.Time) {
				i := min(len(got), len(tt.service)-1)
				clk.t = clk.t.Add(tt.service[i])
				got = append(got, clk.now().Sub(due))
			})
			if len(got) != len(tt.want) {
				t.Fatalf("latencies %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("request %d: latency %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestNextInterval(t *testing.T) {
	tests := []struct {
		name   string
		jitter float64
		u      float64
		want   time.Duration
	}{
		{"no jitter", 0, 0.9, time.Minute},
		{"lowest", 0.2, 0, 48 * time.Second},
		{"middle", 0.2, 0.5, time.Minute},
		{"near highest", 0.5, 0.75, 75 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextInterval(time.Minute, tt.jitter, tt.u); got != tt.want {
				t.Errorf("nextInterval = %v, want %v", got, tt.want)
			}
		})
	}
}
