package actors

import (
	"sync/atomic"
	"time"
)

// OnlineTracker counts the agents that polled within the online window, exactly and with O(1)
// work per poll: no scan over agents, no lock.
//
// Each online agent is counted in the slot of the second its window ends. A sweep, once a second,
// subtracts the slots whose second has come. A slot packs that second (high 32 bits) with its
// count (low 32 bits), so a poll can move its agent out of a slot only if the sweep has not taken
// the slot yet: whoever changes the word first wins, and the other side sees it.
type OnlineTracker struct {
	window int64 // seconds
	slots  []atomic.Uint64
	online atomic.Int64
	swept  atomic.Int64 // every second up to this one has been swept
}

// sweepSlack is how many seconds the sweep may fall behind before a poll would reuse a slot it
// has not swept; a poll that finds such a slot sweeps it itself.
const sweepSlack = 120

// NewOnlineTracker returns a tracker for the given window (at least a second) starting at now.
func NewOnlineTracker(window time.Duration, now time.Time) *OnlineTracker {
	secs := max(int64(window/time.Second), 1)
	t := &OnlineTracker{window: secs, slots: make([]atomic.Uint64, secs+sweepSlack)}
	t.swept.Store(now.Unix())
	return t
}

// Online is the number of agents online as of the last sweep.
func (t *OnlineTracker) Online() int64 { return t.online.Load() }

// Heartbeat records a poll at now by an agent whose previous poll was at prev (zero if none).
// Calls for one agent must not overlap; its actor makes them in order.
func (t *OnlineTracker) Heartbeat(prev, now time.Time) {
	end := now.Unix() + t.window
	if !prev.IsZero() && prev.Unix()+t.window == end {
		return // same second: already counted in this slot
	}
	if end <= t.swept.Load() {
		// The window of this poll has already ended (a stale poll time, as restored at start-up):
		// the agent is offline, and counted no more if it was before.
		if !prev.IsZero() && t.remove(prev.Unix()+t.window) {
			t.online.Add(-1)
		}
		return
	}

	t.add(end)
	if prev.IsZero() || !t.remove(prev.Unix()+t.window) {
		t.online.Add(1) // it was offline, or the sweep already subtracted it
	}
}

func pack(second int64, count uint32) uint64 { return uint64(uint32(second))<<32 | uint64(count) }

func unpack(w uint64) (second uint32, count uint32) { return uint32(w >> 32), uint32(w) }

func (t *OnlineTracker) slot(second int64) *atomic.Uint64 {
	return &t.slots[uint64(second)%uint64(len(t.slots))]
}

func (t *OnlineTracker) add(end int64) {
	s := t.slot(end)
	for {
		w := s.Load()
		sec, n := unpack(w)
		next := pack(end, n+1)
		if sec != uint32(end) {
			next = pack(end, 1)
		}
		if s.CompareAndSwap(w, next) {
			if sec != uint32(end) && n > 0 {
				t.online.Add(-int64(n)) // an unswept older second: those agents went offline
			}
			return
		}
	}
}

// remove takes one agent out of the slot of end; it reports false if the slot was swept.
func (t *OnlineTracker) remove(end int64) bool {
	s := t.slot(end)
	for {
		w := s.Load()
		sec, n := unpack(w)
		if sec != uint32(end) || n == 0 {
			return false
		}
		if s.CompareAndSwap(w, pack(end, n-1)) {
			return true
		}
	}
}

// Sweep takes every second up to now: the agents whose window ended then are offline. It is
// called once a second by one goroutine.
func (t *OnlineTracker) Sweep(now time.Time) {
	until := now.Unix()
	for sec := t.swept.Load() + 1; sec <= until; sec++ {
		t.take(sec)
		t.swept.Store(sec)
	}
}

func (t *OnlineTracker) take(second int64) {
	s := t.slot(second)
	for {
		w := s.Load()
		sec, n := unpack(w)
		if sec != uint32(second) {
			return
		}
		if s.CompareAndSwap(w, 0) {
			t.online.Add(-int64(n))
			return
		}
	}
}
