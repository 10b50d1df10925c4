package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestNewStatusResult(t *testing.T) {
	run := func(requests, errs int64, seconds float64) seriesSummary {
		return seriesSummary{Requests: requests, Errors: errs, Seconds: seconds}
	}
	tests := []struct {
		name            string
		polls, statuses []seriesSummary
		wantRatios      []float64
		wantMean        float64
		wantMet         bool
	}{
		{"one round at half", []seriesSummary{run(1000, 0, 1)},
			[]seriesSummary{run(500, 0, 1)}, []float64{0.5}, 0.5, true},
		{"mean of ratios, not ratio of means", []seriesSummary{run(1000, 0, 1), run(100, 0, 1)},
			[]seriesSummary{run(200, 0, 1), run(100, 0, 1)}, []float64{0.2, 1}, 0.6, true},
		{"below target", []seriesSummary{run(1000, 0, 2)}, []seriesSummary{run(400, 0, 2)},
			[]float64{0.4}, 0.4, false},
		{"failed requests do not count", []seriesSummary{run(1000, 0, 1)},
			[]seriesSummary{run(900, 500, 1)}, []float64{0.4}, 0.4, false},
		{"different phase lengths", []seriesSummary{run(1000, 0, 2)},
			[]seriesSummary{run(300, 0, 0.5)}, []float64{1.2}, 1.2, true},
		{"no poll throughput", []seriesSummary{run(0, 0, 1)}, []seriesSummary{run(5, 0, 1)},
			[]float64{0}, 0, false},
		{"incomplete round dropped", []seriesSummary{run(100, 0, 1), run(100, 0, 1)},
			[]seriesSummary{run(60, 0, 1)}, []float64{0.6}, 0.6, true},
		{"no rounds", nil, nil, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStatusResult(tt.polls, tt.statuses)
			if len(r.Rounds) != len(tt.wantRatios) {
				t.Fatalf("%d rounds, want %d", len(r.Rounds), len(tt.wantRatios))
			}
			for i, rd := range r.Rounds {
				if !near(rd.Ratio, tt.wantRatios[i]) {
					t.Errorf("round %d ratio %v, want %v", i+1, rd.Ratio, tt.wantRatios[i])
				}
			}
			if !near(r.MeanRatio, tt.wantMean) || r.TargetMet != tt.wantMet ||
				r.Target != statusTarget {
				t.Errorf("mean %v met %v target %v; want %v %v %v", r.MeanRatio, r.TargetMet,
					r.Target, tt.wantMean, tt.wantMet, statusTarget)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestStatusReport(t *testing.T) {
	phase := func(name string, rate float64) seriesSummary {
		return seriesSummary{Name: name, Requests: int64(rate), Seconds: 1, Rate: rate,
			ErrorsBy: map[string]int64{}}
	}
	polls := []seriesSummary{phase("poll-1", 1000), phase("poll-2", 800)}
	statuses := []seriesSummary{phase("status-1", 300), phase("status-2", 200)}
	r := &report{Mode: "status", Settings: map[string]string{"rounds": "2"},
		Runs:   []seriesSummary{polls[0], statuses[0], polls[1], statuses[1]},
		Status: newStatusResult(polls, statuses)}

	var table bytes.Buffer
	if err := r.write(&table, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"poll-1", "status-2", "throughput: 0.28, mean of 2 rounds",
		"target >= 0.50: not met", "round 1 0.30 (300/1000 ok/s)", "round 2 0.25"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var js bytes.Buffer
	if err := r.write(&js, true); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Status map[string]any `json:"status"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rounds", "mean_ratio", "target_ratio", "target_met"} {
		if _, ok := got.Status[key]; !ok {
			t.Errorf("status lacks %q: %v", key, got.Status)
		}
	}
	if rounds := got.Status["rounds"].([]any); len(rounds) != 2 ||
		rounds[0].(map[string]any)["status_ok_per_second"] != 300.0 {
		t.Errorf("rounds %v, want 2 with status_ok_per_second 300 first", rounds)
	}
}

// TestStatusShot checks what a status worker sends: POST /status with the agent's own progress
// body and its content type, the keys rotated over every agent, and that a 200 counts as success.
func TestStatusShot(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	auths := map[string]int{}
	addr := serveTest(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		defer mu.Unlock()
		auth := string(ctx.Request.Header.Peek("Authorization"))
		want := string(progressBody("ord_" + strings.TrimPrefix(auth, "Bearer sk_")))
		if m, p, ct := string(ctx.Method()), string(ctx.Path()),
			string(ctx.Request.Header.ContentType()); m != "POST" || p != "/status" ||
			ct != "application/json" || string(ctx.PostBody()) != want {
			bad = append(bad, m+" "+p+" "+ct+" "+string(ctx.PostBody()))
		}
		auths[auth]++
		ctx.SetBodyString(`{"agent_id":"a","status":"active"}`)
	})

	keys := []agentKey{{"a", "sk_a"}, {"b", "sk_b"}, {"c", "sk_c"}}
	const conns = 2
	ep := newEndpoint(addr, conns, time.Second)
	defer ep.hc.CloseIdleConnections()
	bodies := [][]byte{progressBody("ord_a"), progressBody("ord_b"), progressBody("ord_c")}
	setup, fire := statusShot(bodies)(ep, bearerHeaders(keys), conns)
	for id := range conns {
		w := &worker{id: id, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
		setup(w)
		for range 3 { // the body must survive being sent
			if class := fire(w); class != "" {
				t.Fatalf("worker %d: class %q, want success", id, class)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("unexpected requests: %q", bad)
	}
	for _, k := range keys {
		if auths["Bearer "+k.Key] == 0 {
			t.Errorf("key %s never used: %v", k.Key, auths)
		}
	}
}

func TestStatusOptions(t *testing.T) {
	o, err := parseOptions("status", []string{"--spawn", "x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.conns != 256 || o.rounds != 2 || o.rate != 0 || o.duration != 10*time.Second {
		t.Errorf("defaults: connections %d rounds %d rate %v duration %s; want 256, 2, 0, 10s",
			o.conns, o.rounds, o.rate, o.duration)
	}
	if s := o.settings(); s["rounds"] != "2" || s["loop"] != "closed" {
		t.Errorf("settings %v: want rounds 2 and a closed loop", s)
	}
	if o, _ := parseOptions("poll", []string{"--spawn", "x"}, io.Discard); o.conns != 64 ||
		o.rssEvery != 10*time.Second {
		t.Errorf("poll defaults changed: connections %d, rss-every %s", o.conns, o.rssEvery)
	}
}
