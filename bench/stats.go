package main

import (
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: microsecond resolution, values up to an hour, 3 significant digits.
const (
	histMinMicros = 1
	histMaxMicros = int64(time.Hour / time.Microsecond)
	histSigFigs   = 3
)

// recorder collects one worker's results for one series. Only its worker records into it; the
// progress line reads its atomic counters; the histogram and the error tally are read only after
// the worker has finished. No lock is taken per request.
type recorder struct {
	hist   *hdrhistogram.Histogram
	errs   map[string]int64
	done   atomic.Int64
	failed atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{
		hist: hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs),
		errs: map[string]int64{},
	}
}

// record counts one finished request that took d; class is "" on success, else its error class.
// Failed requests are in the histogram too: a timeout is latency the client saw.
func (r *recorder) record(d time.Duration, class string) {
	us := min(max(d.Microseconds(), histMinMicros), histMaxMicros)
	_ = r.hist.RecordValue(us) // in range by construction
	r.done.Add(1)
	if class != "" {
		r.errs[class]++
		r.failed.Add(1)
	}
}

// fail counts an error that has no latency (such as an order never seen).
func (r *recorder) fail(class string, n int64) {
	r.errs[class] += n
	r.failed.Add(n)
}

// series is one measured quantity (poll latency, order placed→seen, ...) with one recorder per
// worker. Recorders are added before the workers start and merged after they stop.
type series struct {
	name    string
	recs    []*recorder
	elapsed time.Duration // the measured window, set by the run
}

func newSeries(name string) *series { return &series{name: name} }

// recorder adds a recorder for one more worker. Call it before the workers start.
func (s *series) recorder() *recorder {
	r := newRecorder()
	s.recs = append(s.recs, r)
	return r
}

// counts sums the live counters; safe while workers run.
func (s *series) counts() (done, failed int64) {
	for _, r := range s.recs {
		done += r.done.Load()
		failed += r.failed.Load()
	}
	return done, failed
}

// latencyMicros is a latency summary in microseconds.
type latencyMicros struct {
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p99_9"`
	Max  int64   `json:"max"`
	Mean float64 `json:"mean"`
}

// seriesSummary is a series as reported: counts, rate, latency percentiles and error tally.
type seriesSummary struct {
	Name     string           `json:"name"`
	Requests int64            `json:"requests"` // finished, failed ones included
	Errors   int64            `json:"errors"`
	Seconds  float64          `json:"seconds"`
	Rate     float64          `json:"rate_per_second"`
	Latency  latencyMicros    `json:"latency_us"`
	ErrorsBy map[string]int64 `json:"errors_by_class"`
}

// summary merges the recorders. Call it only after every worker has stopped.
func (s *series) summary() seriesSummary {
	h := hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
	sum := seriesSummary{Name: s.name, Seconds: s.elapsed.Seconds(), ErrorsBy: map[string]int64{}}
	for _, r := range s.recs {
		h.Merge(r.hist)
		for class, n := range r.errs {
			sum.ErrorsBy[class] += n
			sum.Errors += n
		}
	}
	sum.Requests = h.TotalCount()
	if sum.Seconds > 0 {
		sum.Rate = float64(sum.Requests) / sum.Seconds
	}
	return summarize(sum, h)
}

func summarize(sum seriesSummary, h *hdrhistogram.Histogram) seriesSummary {
	if h.TotalCount() == 0 {
		return sum
	}
	sum.Latency = latencyMicros{
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max(), Mean: h.Mean(),
	}
	return sum
}
