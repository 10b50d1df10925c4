package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// loadSpec bounds one run: closed loop over conns workers, or open loop at rate requests/s
// served by conns workers. Requests started (closed) or scheduled (open) during warmup are not
// counted. A run stops by itself after warmup+duration or maxRequests requests.
type loadSpec struct {
	conns            int
	warmup, duration time.Duration
	rate             float64 // 0: closed loop
	maxRequests      int64
}

// worker is one load goroutine with its own request and response, reused for every request.
type worker struct {
	id   int
	req  *fasthttp.Request
	resp *fasthttp.Response
	rec  *recorder
	next int // rotates over the keys
}

// shot sends one request with w.req into w.resp and returns its error class, "" on success.
type shot func(w *worker) string

// runLoad runs spec with fire and records into s; setup prepares each worker's request once.
func runLoad(ctx context.Context, spec loadSpec, s *series, setup func(*worker), fire shot) {
	workers := make([]*worker, spec.conns)
	for i := range workers {
		workers[i] = &worker{id: i, req: fasthttp.AcquireRequest(),
			resp: fasthttp.AcquireResponse(), rec: s.recorder()}
		setup(workers[i])
	}
	start := time.Now()
	measure := start.Add(spec.warmup)
	end := measure.Add(spec.duration)
	sched := newSchedule(start, end, spec.rate, spec.maxRequests)
	perWorker := (spec.maxRequests + int64(spec.conns) - 1) / int64(spec.conns)

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if spec.rate > 0 {
				openWorker(ctx, sched, measure, w, fire)
			} else {
				closedWorker(ctx, end, measure, perWorker, w, fire)
			}
		}()
	}
	wg.Wait()
	s.elapsed = time.Since(measure)
	for _, w := range workers {
		fasthttp.ReleaseRequest(w.req)
		fasthttp.ReleaseResponse(w.resp)
	}
}

// closedWorker sends one request after another until end or its budget.
func closedWorker(ctx context.Context, end, measure time.Time, budget int64, w *worker,
	fire shot) {
	for n := int64(0); n < budget && ctx.Err() == nil; n++ {
		began := time.Now()
		if !began.Before(end) {
			return
		}
		class := fire(w)
		if !began.Before(measure) {
			w.rec.record(time.Since(began), class)
		}
	}
}

// openWorker sends the requests it claims from the schedule at their scheduled times and
// measures each from that time, so a stalled server shows as latency (coordinated omission).
func openWorker(ctx context.Context, sched *schedule, measure time.Time, w *worker, fire shot) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	clock := realClock{ctx: ctx, timer: timer}
	runOpen(sched, clock, func(due time.Time) {
		class := fire(w)
		if !due.Before(measure) {
			w.rec.record(clock.now().Sub(due), class)
		}
	})
}

// clock is what the open-loop worker needs of time; tests use a simulated one.
type clock interface {
	now() time.Time
	sleepUntil(t time.Time) bool // false when the run is cancelled
}

// runOpen claims scheduled requests until the schedule ends or the clock is cancelled, and
// sends each at its scheduled time, or at once when the worker is already late.
func runOpen(sched *schedule, c clock, send func(due time.Time)) {
	for {
		due, ok := sched.claim()
		if !ok {
			return
		}
		if due.After(c.now()) && !c.sleepUntil(due) {
			return
		}
		send(due)
	}
}

// schedule hands out the send times of an open-loop run: start + seq/rate for seq = 0, 1, ...,
// until end or max requests. Safe for concurrent use (one atomic add per claim).
type schedule struct {
	start, end time.Time
	interval   float64 // nanoseconds between requests
	max        int64
	next       atomic.Int64
}

func newSchedule(start, end time.Time, rate float64, max int64) *schedule {
	s := &schedule{start: start, end: end, max: max}
	if rate > 0 {
		s.interval = float64(time.Second) / rate
	}
	return s
}

// dueAt is the scheduled send time of request seq (0-based).
func (s *schedule) dueAt(seq int64) time.Time {
	return s.start.Add(time.Duration(float64(seq) * s.interval))
}

// claim takes the next request; ok is false once the run is over.
func (s *schedule) claim() (due time.Time, ok bool) {
	seq := s.next.Add(1) - 1
	if seq >= s.max {
		return time.Time{}, false
	}
	due = s.dueAt(seq)
	return due, due.Before(s.end)
}

type realClock struct {
	ctx   context.Context
	timer *time.Timer
}

func (c realClock) now() time.Time { return time.Now() }

func (c realClock) sleepUntil(t time.Time) bool {
	c.timer.Reset(time.Until(t))
	select {
	case <-c.timer.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}
