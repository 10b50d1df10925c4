package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// exposition is a slice of heeprd's /metrics as the Prometheus client writes it.
const exposition = `# HELP heepr_agents Agents known to the server.
# TYPE heepr_agents gauge
heepr_agents 30
# TYPE heepr_agents_online gauge
heepr_agents_online 7
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.3760896e+07
heepr_requests_total{route="/events",code="200"} 12 1712345678000
heepr_bad NaN
heepr_bad 5
`

func TestMetricValue(t *testing.T) {
	tests := []struct {
		name, metric string
		body         string
		want         float64
		found        bool
	}{
		{"plain", "heepr_agents", exposition, 30, true},
		{"not a longer name", "heepr_agents_online", exposition, 7, true},
		{"scientific notation", "process_resident_memory_bytes", exposition, 23760896, true},
		{"labels and timestamp", "heepr_requests_total", exposition, 12, true},
		{"non-finite skipped", "heepr_bad", exposition, 5, true},
		{"prefix of a name only", "heepr_agent", exposition, 0, false},
		{"only in a comment", "Agents", exposition, 0, false},
		{"missing", "go_goroutines", exposition, 0, false},
		{"empty body", "heepr_agents", "", 0, false},
		{"no value", "heepr_agents", "heepr_agents \n", 0, false},
		{"unclosed labels", "x", "x{a=\"b\" 3\n", 0, false},
		{"tab separated", "x", "x\t4\n", 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := metricValue([]byte(tt.body), tt.metric)
			if got != tt.want || ok != tt.found {
				t.Errorf("metricValue(%q) = %v, %v; want %v, %v", tt.metric, got, ok, tt.want,
					tt.found)
			}
		})
	}
}

func TestRSSResultAdd(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name   string
		values []int64 // -1: a failed sample
		want   rssResult
	}{
		{"none", nil, rssResult{}},
		{"one", []int64{5}, rssResult{Samples: 1, First: 5, Last: 5, Min: 5, Max: 5}},
		{"flat", []int64{7, 7, 7}, rssResult{Samples: 3, First: 7, Last: 7, Min: 7, Max: 7}},
		{"dip and peak", []int64{10, 4, 30, 12},
			rssResult{Samples: 4, First: 10, Last: 12, Min: 4, Max: 30}},
		{"failures counted apart", []int64{-1, 9, -1, 3},
			rssResult{Samples: 2, Failed: 2, First: 9, Last: 3, Min: 3, Max: 9,
				FirstError: "boom"}},
		{"only failures", []int64{-1}, rssResult{Failed: 1, FirstError: "boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r rssResult
			for _, v := range tt.values {
				if v < 0 {
					r.add(0, boom)
					continue
				}
				r.add(v, nil)
			}
			if r != tt.want {
				t.Errorf("got %+v, want %+v", r, tt.want)
			}
		})
	}
}

func TestRSSLine(t *testing.T) {
	r := rssResult{EverySeconds: 10, Samples: 3, First: 40 << 20, Last: 41 << 20,
		Min: 40 << 20, Max: 45 << 20, Failed: 1, FirstError: "timeout"}
	line := r.line()
	for _, want := range []string{"first 40.0 MiB", "last 41.0 MiB", "min 40.0 MiB",
		"max 45.0 MiB", "3 samples, every 10s", "1 failed: timeout"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if line := (&rssResult{Failed: 2, FirstError: "refused"}).line(); !strings.Contains(line,
		"no sample") || !strings.Contains(line, "refused") {
		t.Errorf("line without samples: %q", line)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{45 << 20, "45.0 MiB"}, {3 << 30, "3.0 GiB"}, {-2048, "-2.0 KiB"}}
	for _, tt := range tests {
		if got := byteSize(tt.in); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeOps serves /metrics with an RSS that grows by 1000 bytes per scrape, or fails with
// status 500 when fail is set; scrapes counts the requests.
type fakeOps struct {
	addr    string
	scrapes atomic.Int64
	fail    atomic.Bool
}

// serveTest serves handler on a free loopback port until the test ends and returns the address.
func serveTest(t *testing.T, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := errors.Join(srv.Shutdown(), <-done); err != nil {
			t.Errorf("test server: %v", err)
		}
	})
	return ln.Addr().String()
}

func startFakeOps(t *testing.T) *fakeOps {
	t.Helper()
	f := &fakeOps{}
	f.addr = serveTest(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/metrics" {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		n := f.scrapes.Add(1)
		if f.fail.Load() {
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetBodyString("heepr_agents 3\n" + metricRSS + " " + strconv.FormatInt(n*1000, 10) +
			"\n")
	})
	return f
}

func TestRSSSampler(t *testing.T) {
	tests := []struct {
		name        string
		every       time.Duration
		waitScrapes int64 // finish once this many scrapes were served
		wantSamples int64 // 0: as many as were scraped
	}{
		// With an interval longer than the run: one sample at its start, one at its end.
		{"start and end", time.Hour, 1, 2},
		{"every interval", 10 * time.Millisecond, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeOps(t)
			s := startRSSSampler(t.Context(), f.addr, time.Second, 0, tt.every)
			waitFor(t, func() bool { return f.scrapes.Load() >= tt.waitScrapes })
			res := s.finish()
			n := f.scrapes.Load()
			if tt.wantSamples != 0 && n != tt.wantSamples {
				t.Errorf("%d scrapes, want %d", n, tt.wantSamples)
			}
			// Every scrape is a sample; the fake's RSS grows by 1000 each time.
			want := rssResult{EverySeconds: tt.every.Seconds(), Samples: int(n), First: 1000,
				Last: n * 1000, Min: 1000, Max: n * 1000}
			if *res != want {
				t.Errorf("after %d scrapes: %+v, want %+v", n, *res, want)
			}
		})
	}
	if startRSSSampler(t.Context(), "127.0.0.1:1", time.Second, 0, 0).finish() != nil {
		t.Error("--rss-every 0 sampled")
	}
}

// waitFor polls cond until it holds, failing the test after a minute (an event that never
// comes), so that no test depends on how fast this machine is.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRSSSamplerWarmupAndFailures(t *testing.T) {
	f := startFakeOps(t)
	f.fail.Store(true)
	s := startRSSSampler(t.Context(), f.addr, time.Second, time.Hour, time.Millisecond)
	res := s.finish() // stopped within the warmup: one sample, which fails
	if f.scrapes.Load() != 1 || res.Samples != 0 || res.Failed != 1 ||
		!strings.Contains(res.FirstError, "500") {
		t.Errorf("%d scrapes, result %+v: want one failed sample naming status 500",
			f.scrapes.Load(), *res)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s = startRSSSampler(ctx, f.addr, time.Second, time.Hour, time.Millisecond)
	if res := s.finish(); res.Samples+res.Failed != 0 {
		t.Errorf("cancelled run sampled: %+v", *res)
	}
}

func TestScrapeMetrics(t *testing.T) {
	f := startFakeOps(t)
	ep := newEndpoint(f.addr, 1, time.Second)
	defer ep.hc.CloseIdleConnections()
	m, err := scrapeMetrics(ep, metricAgents, metricRSS)
	if err != nil || m[metricAgents] != 3 || m[metricRSS] != 1000 {
		t.Errorf("scrape = %v, %v; want agents 3 and RSS 1000", m, err)
	}
	if _, err := scrapeMetrics(ep, "heepr_missing"); err == nil ||
		!strings.Contains(err.Error(), "heepr_missing") {
		t.Errorf("missing metric: error %v, want one naming it", err)
	}
}
