package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSeriesPercentiles(t *testing.T) {
	all := latencyMicros{P50: 500_000, P90: 900_000, P99: 990_000, P999: 999_000, Max: 1_000_000}
	tests := []struct {
		name      string
		perWorker [][]time.Duration // one list per worker; merged at the end
		want      latencyMicros
	}{
		{"one worker, 1..1000ms", [][]time.Duration{durations(1, 1000, time.Millisecond)}, all},
		{"two workers merge", [][]time.Duration{
			durations(1, 500, time.Millisecond), durations(501, 1000, time.Millisecond)}, all},
		{"sub-microsecond counts as 1µs", [][]time.Duration{{100 * time.Nanosecond}},
			latencyMicros{P50: 1, P90: 1, P99: 1, P999: 1, Max: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeries("poll")
			var n int64
			for _, ds := range tt.perWorker {
				r := s.recorder()
				for _, d := range ds {
					r.record(d, "")
					n++
				}
			}
			s.elapsed = 2 * time.Second
			sum := s.summary()
			if sum.Requests != n || sum.Rate != float64(n)/2 {
				t.Errorf("requests %d rate %v, want %d and %v", sum.Requests, sum.Rate, n,
					float64(n)/2)
			}
			for _, c := range []struct {
				name      string
				got, want int64
			}{{"p50", sum.Latency.P50, tt.want.P50}, {"p90", sum.Latency.P90, tt.want.P90},
				{"p99", sum.Latency.P99, tt.want.P99}, {"p99.9", sum.Latency.P999, tt.want.P999},
				{"max", sum.Latency.Max, tt.want.Max}} {
				if !within(c.got, c.want, 0.001) { // 3 significant digits
					t.Errorf("%s = %dµs, want %dµs ±0.1%%", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestSeriesErrors(t *testing.T) {
	s := newSeries("poll")
	a, b := s.recorder(), s.recorder()
	a.record(time.Millisecond, "")
	a.record(time.Millisecond, "503 unavailable")
	b.record(time.Millisecond, "503 unavailable")
	b.record(time.Millisecond, "net timeout")
	b.fail("not_seen_by_end", 2)

	sum := s.summary()
	want := map[string]int64{"503 unavailable": 2, "net timeout": 1, "not_seen_by_end": 2}
	if sum.Requests != 4 || sum.Errors != 5 || len(sum.ErrorsBy) != len(want) {
		t.Fatalf("requests %d errors %d by %v, want 4, 5, %v", sum.Requests, sum.Errors,
			sum.ErrorsBy, want)
	}
	for class, n := range want {
		if sum.ErrorsBy[class] != n {
			t.Errorf("%s: %d, want %d", class, sum.ErrorsBy[class], n)
		}
	}
	if done, failed := s.counts(); done != 4 || failed != 5 {
		t.Errorf("live counts %d/%d, want 4/5", done, failed)
	}
}

func TestReportJSONShape(t *testing.T) {
	heeprd := seriesSummary{Name: "heeprd", Requests: 80, Rate: 80, Seconds: 1,
		Latency: latencyMicros{P99: 300}, ErrorsBy: map[string]int64{"429 rate_limited": 1}}
	ceil := seriesSummary{Name: "ceiling-before", Requests: 100, Rate: 100, Seconds: 1,
		Latency: latencyMicros{P99: 100}, ErrorsBy: map[string]int64{}}
	after := ceil
	after.Name, after.Rate, after.Latency.P99 = "ceiling-after", 60, 200
	r := &report{Mode: "poll", Target: "http://127.0.0.1:1", Settings: map[string]string{"a": "b"},
		Runs: []seriesSummary{ceil, heeprd, after}, Ceiling: newCeilingResult(heeprd, ceil, after)}

	var buf bytes.Buffer
	if err := r.write(&buf, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	run := got["runs"].([]any)[1].(map[string]any)
	for _, key := range []string{"name", "requests", "errors", "seconds", "rate_per_second",
		"latency_us", "errors_by_class"} {
		if _, ok := run[key]; !ok {
			t.Errorf("run lacks %q: %v", key, run)
		}
	}
	lat := run["latency_us"].(map[string]any)
	for _, key := range []string{"p50", "p90", "p99", "p99_9", "max", "mean"} {
		if _, ok := lat[key]; !ok {
			t.Errorf("latency_us lacks %q", key)
		}
	}
	c := got["ceiling"].(map[string]any)
	if c["throughput_ratio"] != 1.0 || c["p99_ratio"] != 2.0 {
		t.Errorf("ratios %v / %v, want 1 (80 against mean 80) and 2 (300 against mean 150)",
			c["throughput_ratio"], c["p99_ratio"])
	}
	if _, ok := got["orders"]; ok {
		t.Error("orders present in a poll report")
	}
}

func TestReportTable(t *testing.T) {
	r := &report{Mode: "poll", Settings: map[string]string{"connections": "64"},
		Runs: []seriesSummary{{Name: "heeprd", Requests: 10, Errors: 1,
			ErrorsBy: map[string]int64{"503 unavailable": 1}, Latency: latencyMicros{P50: 1500}}}}
	var buf bytes.Buffer
	if err := r.write(&buf, false); err != nil {
		t.Fatal(err)
	}
	wants := []string{"p99.9", "heeprd", "1.50ms", "503 unavailable", "connections 64"}
	for _, want := range wants {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestFormatMicros(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{0, "-"}, {850, "850µs"}, {1240, "1.24ms"}, {2_500_000, "2.50s"}}
	for _, tt := range tests {
		if got := us(tt.in); got != tt.want {
			t.Errorf("us(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func durations(from, to int, unit time.Duration) []time.Duration {
	var ds []time.Duration
	for i := from; i <= to; i++ {
		ds = append(ds, time.Duration(i)*unit)
	}
	return ds
}

func within(got, want int64, frac float64) bool {
	return math.Abs(float64(got-want)) <= frac*float64(want)+1
}
