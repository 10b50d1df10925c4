package transport

import (
	"log/slog"
	"sync"
	"time"
)

// throttledLog writes at most one line per second for each key and reports how many it
// suppressed in between, so an overloaded server does not also drown its log. Every suppressed
// failure is still counted in heepr_http_requests_total.
type throttledLog struct {
	log *slog.Logger
	mu  sync.Mutex
	by  map[string]*throttleState
}

type throttleState struct {
	last       time.Time
	suppressed int
}

func newThrottledLog(log *slog.Logger) *throttledLog {
	return &throttledLog{log: log, by: make(map[string]*throttleState)}
}

// warn logs msg under key unless a line for key was written less than a second ago.
func (t *throttledLog) warn(key, msg string, attrs ...any) {
	now := time.Now()
	t.mu.Lock()
	st := t.by[key]
	if st == nil {
		st = &throttleState{}
		t.by[key] = st
	}
	if now.Sub(st.last) < time.Second {
		st.suppressed++
		t.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	t.mu.Unlock()

	if suppressed > 0 {
		attrs = append(attrs, "suppressed_since_last", suppressed)
	}
	t.log.Warn(msg, attrs...)
}
