package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Metrics the harness reads from heeprd's /metrics.
const (
	metricRSS    = "process_resident_memory_bytes"
	metricAgents = "heepr_agents"
)

// rssEveryDefault is how often poll and mixed sample the server's resident memory: often
// enough that a 30-minute run shows a trend, rarely enough to cost the server nothing.
const rssEveryDefault = 10 * time.Second

// metricValue finds the sample of the metric name in a Prometheus text exposition: the first
// line whose metric name is name exactly (labels, if any, are ignored), with a finite value.
func metricValue(body []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' || !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		switch {
		case len(rest) > 0 && rest[0] == '{':
			end := bytes.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		case len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t'):
			continue // a longer name that starts with name, such as heepr_agents_online
		}
		fields := bytes.Fields(rest) // value, then an optional timestamp
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		return v, true
	}
	return 0, false
}

// scrapeMetrics fetches /metrics from the ops listener ep and returns the named metrics; a
// metric that is missing is an error.
func scrapeMetrics(ep *endpoint, names ...string) (map[string]float64, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(ep.base + "/metrics")
	if err := ep.hc.Do(req, resp); err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: %w",
			newHTTPError(resp.StatusCode(), resp.Body()))
	}
	out := make(map[string]float64, len(names))
	for _, name := range names {
		v, ok := metricValue(resp.Body(), name)
		if !ok {
			return nil, fmt.Errorf("scrape /metrics: no %s in the answer", name)
		}
		out[name] = v
	}
	return out, nil
}

// rssResult sums up the server's resident memory sampled during a measured run.
type rssResult struct {
	EverySeconds float64 `json:"every_seconds"`
	Samples      int     `json:"samples"`
	Failed       int     `json:"failed"`
	First        int64   `json:"first_bytes"`
	Last         int64   `json:"last_bytes"`
	Min          int64   `json:"min_bytes"`
	Max          int64   `json:"max_bytes"`
	FirstError   string  `json:"first_error,omitempty"`
}

// add counts one sample: its value, or the error that kept it from being read.
func (r *rssResult) add(n int64, err error) {
	if err != nil {
		if r.Failed == 0 {
			r.FirstError = err.Error()
		}
		r.Failed++
		return
	}
	if r.Samples == 0 {
		r.First, r.Min, r.Max = n, n, n
	}
	r.Samples++
	r.Last = n
	r.Min, r.Max = min(r.Min, n), max(r.Max, n)
}

// rssSampler reads the server's RSS from /metrics once the warmup is over, then every
// interval, and a last time when stopped, on a connection of its own.
type rssSampler struct {
	ep   *endpoint
	stop chan struct{}
	wg   sync.WaitGroup
	res  rssResult // written by the sampling goroutine only, read after it has ended
}

// startRSSSampler starts sampling the ops listener at opsAddr; every 0 samples nothing and
// returns nil, which finish accepts.
func startRSSSampler(ctx context.Context, opsAddr string, timeout, warmup,
	every time.Duration) *rssSampler {
	if every <= 0 {
		return nil
	}
	s := &rssSampler{ep: newEndpoint(opsAddr, 1, timeout), stop: make(chan struct{}),
		res: rssResult{EverySeconds: every.Seconds()}}
	s.wg.Go(func() { s.loop(ctx, warmup, every) })
	return s
}

// loop samples until stop or ctx ends. On stop it takes a last sample, unless ctx has ended
// too: an interrupted run (Ctrl-C) samples nothing more, whichever channel select picks.
func (s *rssSampler) loop(ctx context.Context, warmup, every time.Duration) {
	last := func() {
		if ctx.Err() == nil {
			s.sample()
		}
	}
	wait := time.NewTimer(warmup)
	defer wait.Stop()
	select {
	case <-wait.C:
		s.sample()
	case <-s.stop:
		last() // the run ended within its warmup: one sample still tells the size
		return
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.sample()
		case <-s.stop:
			last()
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *rssSampler) sample() {
	m, err := scrapeMetrics(s.ep, metricRSS)
	s.res.add(int64(m[metricRSS]), err)
}

// finish takes the last sample and returns the summary; nil for a nil sampler.
func (s *rssSampler) finish() *rssResult {
	if s == nil {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	s.ep.hc.CloseIdleConnections()
	return &s.res
}

// line is the table's RSS summary.
func (r *rssResult) line() string {
	if r.Samples == 0 {
		return fmt.Sprintf("rss: no sample read (%d failed: %s)", r.Failed, r.FirstError)
	}
	s := fmt.Sprintf("rss: first %s, last %s, min %s, max %s (%d samples, every %s)",
		byteSize(r.First), byteSize(r.Last), byteSize(r.Min), byteSize(r.Max), r.Samples,
		time.Duration(r.EverySeconds*float64(time.Second)))
	if r.Failed > 0 {
		s += fmt.Sprintf("; %d failed: %s", r.Failed, r.FirstError)
	}
	return s
}

// byteSize formats a byte count for the table: "512 B", "3.5 KiB", "45.2 MiB", "1.2 GiB".
func byteSize(b int64) string {
	const unit = 1 << 10
	if b < unit && b > -unit {
		return fmt.Sprintf("%d B", b)
	}
	v, prefix := float64(b)/unit, "Ki"
	for _, p := range []string{"Mi", "Gi", "Ti"} {
		if math.Abs(v) < unit {
			break
		}
		v, prefix = v/unit, p
	}
	return fmt.Sprintf("%.1f %sB", v, prefix)
}
