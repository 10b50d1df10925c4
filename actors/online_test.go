package actors

import (
	"sync"
	"testing"
	"time"
)

// onlineStep is one call on an OnlineTracker and the count expected after it.
type onlineStep struct {
	op    string // "beat", "restore" (heartbeat with zero prev) or "sweep"
	agent int
	at    time.Duration // after t0
	want  int64
}

func beat(agent int, at time.Duration, want int64) onlineStep {
	return onlineStep{"beat", agent, at, want}
}

func restoreBeat(agent int, at time.Duration, want int64) onlineStep {
	return onlineStep{"restore", agent, at, want}
}

func sweep(at time.Duration, want int64) onlineStep { return onlineStep{"sweep", 0, at, want} }

const ms = time.Millisecond

// runOnline replays steps on a tracker started at t0, keeping each agent's previous poll as its
// actor does.
func runOnline(t *testing.T, tr *OnlineTracker, steps []onlineStep) {
	t.Helper()
	prev := map[int]time.Time{}
	for i, st := range steps {
		at := t0.Add(st.at)
		switch st.op {
		case "beat":
			tr.Heartbeat(prev[st.agent], at)
			prev[st.agent] = at
		case "restore":
			tr.Heartbeat(time.Time{}, at)
			prev[st.agent] = at
		case "sweep":
			tr.Sweep(at)
		}
		if got := tr.Online(); got != st.want {
			t.Fatalf("step %d (%s agent %d at t0+%v): online = %d, want %d", i, st.op, st.agent,
				st.at, got, st.want)
		}
	}
}

func TestOnlineTracker(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name   string
		window time.Duration
		steps  []onlineStep
	}{
		{"first poll, sweep exactly at window end", time.Minute, []onlineStep{
			beat(0, 200*ms, 1), sweep(59*s, 1), sweep(59*s+999*ms, 1), sweep(60*s, 0),
			sweep(61*s, 0),
		}},
		{"repeat in the same second", time.Minute, []onlineStep{
			beat(0, 100*ms, 1), beat(0, 900*ms, 1), beat(0, 999*ms, 1), sweep(60*s, 0),
		}},
		{"repeat in a later second moves the window", time.Minute, []onlineStep{
			beat(0, 0, 1), beat(0, 30*s, 1), sweep(60*s, 1), sweep(89*s, 1), sweep(90*s, 0),
		}},
		{"poll after expiry", time.Minute, []onlineStep{
			beat(0, 0, 1), sweep(60*s, 0), beat(0, 75*s, 1), sweep(134*s, 1), sweep(135*s, 0),
		}},
		{"poll after expiry before the sweep ran", time.Minute, []onlineStep{
			beat(0, 0, 1), beat(0, 75*s, 1), sweep(100*s, 1), sweep(135*s, 0),
		}},
		{"two agents", time.Minute, []onlineStep{
			beat(0, 0, 1), beat(1, 500*ms, 2), beat(1, 10*s, 2), sweep(60*s, 1), sweep(69*s, 1),
			sweep(70*s, 0),
		}},
		{"window of 1s", time.Second, []onlineStep{
			beat(0, 500*ms, 1), sweep(1*s, 0), beat(0, 1500*ms, 1), beat(0, 2200*ms, 1),
			sweep(2*s, 1), sweep(3*s, 0), beat(0, 3100*ms, 1), sweep(4*s, 0),
		}},
		{"window under 1s counts as 1s", 300 * ms, []onlineStep{
			beat(0, 0, 1), sweep(999*ms, 1), sweep(1*s, 0),
		}},
		{"restore-like heartbeat with zero prev", time.Minute, []onlineStep{
			restoreBeat(0, -20*s, 1), restoreBeat(1, -59*s, 2), sweep(1*s, 1), sweep(39*s, 1),
			beat(0, 30*s, 1), sweep(40*s, 1), sweep(89*s, 1), sweep(90*s, 0),
		}},
		{"sweep behind by more than the slots", 10 * s, []onlineStep{
			beat(0, 0, 1), beat(1, 130*s, 1), beat(0, 131*s, 2), sweep(140*s, 1),
			sweep(141*s, 0),
		}},
		{"sweep in the past does nothing", time.Minute, []onlineStep{
			beat(0, 0, 1), sweep(-10*s, 1), sweep(0, 1), sweep(59*s, 1), sweep(30*s, 1),
			sweep(60*s, 0),
		}},
		{"many agents in one second", time.Minute, []onlineStep{
			beat(0, 0, 1), beat(1, 0, 2), beat(2, 0, 3), beat(3, 999*ms, 4), beat(1, 5*s, 4),
			sweep(60*s, 1), sweep(65*s, 0),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runOnline(t, NewOnlineTracker(tc.window, t0), tc.steps)
		})
	}
}

// TestOnlineTrackerRestoreAtWindowEdge: restore (cmd/heeprd/run.go) feeds Heartbeat(zero,
// lastPoll) for agents that polled within the window (sub-second comparison). If the last poll's
// window ended in the very second the tracker started, its slot is one the sweep has already
// passed, so the agent must not be counted online (or must be subtracted again by a later sweep).
func TestOnlineTrackerRestoreAtWindowEdge(t *testing.T) {
	tr := NewOnlineTracker(time.Minute, t0.Add(500*ms))
	// Its window ends at t0+600ms, in the second the tracker started; run.go would feed it.
	lastPoll := t0.Add(-time.Minute + 600*ms)
	if now := t0.Add(550 * ms); now.Sub(lastPoll) >= time.Minute {
		t.Fatal("test setup: restore would not feed this heartbeat")
	}
	tr.Heartbeat(time.Time{}, lastPoll)
	tr.Sweep(t0.Add(time.Second))
	tr.Sweep(t0.Add(5 * time.Minute))
	if got := tr.Online(); got != 0 {
		t.Errorf("online = %d five minutes after the agent's window ended, want 0", got)
	}
}

// TestOnlineTrackerConcurrent has goroutines that own distinct agents heartbeat in phases while a
// sweeper sweeps the same seconds, so sweeps race with heartbeats moving agents out of the slots
// being swept. Between phases every agent is online; after the last window the count is 0.
func TestOnlineTrackerConcurrent(t *testing.T) {
	const (
		workers   = 16
		perWorker = 64
		agents    = workers * perWorker
		window    = 2 * time.Second
	)
	tr := NewOnlineTracker(window, t0)
	// Gaps of 1s keep the previous window open; gaps of 3s let it end in the second the
	// sweeper sweeps, while the heartbeat tries to take the agent out of it.
	prev := make([]time.Time, agents) // each worker touches only its own range
	phase := t0
	for p := range 40 {
		if p > 0 {
			phase = phase.Add([]time.Duration{time.Second, 3 * time.Second}[p%3/2])
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w * perWorker; i < (w+1)*perWorker; i++ {
					at := phase.Add(time.Duration(i%1000) * time.Millisecond / 2)
					tr.Heartbeat(prev[i], at)
					if i%3 == 0 { // a second poll in the same second
						tr.Heartbeat(at, at.Add(time.Millisecond))
						at = at.Add(time.Millisecond)
					}
					prev[i] = at
				}
			}()
		}
		wg.Add(1)
		go func() { // the sweeper, racing with the heartbeats
			defer wg.Done()
			for k := range 50 {
				tr.Sweep(phase.Add(time.Duration(k) * 10 * time.Millisecond))
				_ = tr.Online()
			}
		}()
		wg.Wait()
		tr.Sweep(phase.Add(999 * time.Millisecond))
		if got := tr.Online(); got != agents {
			t.Fatalf("phase %d (t0+%v): online = %d, want %d", p, phase.Sub(t0), got, agents)
		}
	}
	tr.Sweep(phase.Add(window - time.Second + 999*time.Millisecond))
	if got := tr.Online(); got != agents {
		t.Fatalf("before the last window ends: online = %d, want %d", got, agents)
	}
	tr.Sweep(phase.Add(window))
	if got := tr.Online(); got != 0 {
		t.Fatalf("after the last window: online = %d, want 0", got)
	}
}

func BenchmarkOnlineHeartbeat(b *testing.B) {
	b.Run("same second", func(b *testing.B) {
		tr := NewOnlineTracker(time.Hour, t0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			prev := time.Time{}
			for pb.Next() {
				tr.Heartbeat(prev, t0)
				prev = t0
			}
		})
	})
	b.Run("new second", func(b *testing.B) {
		tr := NewOnlineTracker(time.Hour, t0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var prev time.Time
			at := t0
			for pb.Next() {
				at = at.Add(time.Second)
				tr.Heartbeat(prev, at)
				prev = at
			}
		})
	})
}
