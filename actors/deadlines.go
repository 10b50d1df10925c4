package actors

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Deadlines wakes agents when one of their orders reaches a deadline: an approval window or a
// delivery deadline. All deadlines share one heap and one goroutine, whatever their number, and
// are rebuilt from the orders when agents are restored, so deadlines that passed while the
// server was down fire as soon as it runs again. It is safe for concurrent use.
//
// An entry is only a reminder: the agent checks the order's state and times itself, so an entry
// made stale by a later change (a scope change moving the deadline, a delivery) does nothing.
type Deadlines struct {
	mu      sync.Mutex
	pending deadlineHeap
	wake    chan struct{}
}

type deadline struct {
	at               time.Time
	agentID, orderID string
}

// NewDeadlines returns an empty schedule.
func NewDeadlines() *Deadlines { return &Deadlines{wake: make(chan struct{}, 1)} }

// Schedule asks for the agent to check the order at (or soon after) at.
// A nil schedule ignores the request, for tests that do not need deadlines.
func (d *Deadlines) Schedule(at time.Time, agentID, orderID string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	heap.Push(&d.pending, deadline{at: at, agentID: agentID, orderID: orderID})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}: // the loop recomputes its sleep
	default:
	}
}

// Len is the number of scheduled reminders.
func (d *Deadlines) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

// Run fires due reminders through fire until ctx ends. fire must not block for long.
func (d *Deadlines) Run(ctx context.Context, fire func(agentID, orderID string)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		for _, due := range d.takeDue(time.Now()) {
			fire(due.agentID, due.orderID)
		}
		timer.Reset(d.untilNext(time.Now()))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-d.wake:
		}
	}
}

func (d *Deadlines) takeDue(now time.Time) []deadline {
	d.mu.Lock()
	defer d.mu.Unlock()
	var due []deadline
	for len(d.pending) > 0 && !d.pending[0].at.After(now) {
		due = append(due, heap.Pop(&d.pending).(deadline))
	}
	return due
}

// untilNext is how long to sleep: until the earliest reminder, at most a minute.
func (d *Deadlines) untilNext(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		return time.Minute
	}
	return min(max(d.pending[0].at.Sub(now), 0), time.Minute)
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
