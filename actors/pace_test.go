package actors

import (
	"testing"
	"time"
)

// TestPacer checks that a walk pauses once per full chunk of agents, however it counts them.
func TestPacer(t *testing.T) {
	tests := []struct {
		name   string
		walks  []int
		pauses int
	}{
		{"nothing", nil, 0},
		{"under a chunk", []int{PaceChunk - 1}, 0},
		{"a chunk at once", []int{PaceChunk}, 1},
		{"a chunk in steps", []int{PaceChunk / 2, PaceChunk / 2}, 1},
		{"one over", []int{PaceChunk / 2, PaceChunk/2 + 1, PaceChunk - 2}, 1},
		{"and the rest", []int{PaceChunk / 2, PaceChunk/2 + 1, PaceChunk - 1}, 2},
		{"one agent at a time", repeat(1, 3*PaceChunk), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pauses []time.Duration
			p := Pacer{sleep: func(d time.Duration) { pauses = append(pauses, d) }}
			for _, n := range tt.walks {
				p.Walked(n)
			}
			if len(pauses) != tt.pauses {
				t.Fatalf("paused %d times, want %d", len(pauses), tt.pauses)
			}
			for _, d := range pauses {
				if d != PacePause {
					t.Errorf("paused for %v, want %v", d, PacePause)
				}
			}
		})
	}
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}
