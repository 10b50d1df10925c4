package metrics

import (
	"errors"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heepr/heeprd/actors"
)

// heeprSeries gathers every heepr_ series as `name{labels}` -> value. Histograms contribute
// their _count and _sum only, so a diff names each observation once.
func heeprSeries(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), namespace+"_") {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := seriesLabels(s)
			switch {
			case s.Counter != nil:
				out[f.GetName()+labels] = s.Counter.GetValue()
			case s.Gauge != nil:
				out[f.GetName()+labels] = s.Gauge.GetValue()
			case s.Histogram != nil:
				out[f.GetName()+"_count"+labels] = float64(s.Histogram.GetSampleCount())
				out[f.GetName()+"_sum"+labels] = s.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func seriesLabels(s *dto.Metric) string {
	var parts []string
	for _, l := range s.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// toFloat64 is testutil.ToFloat64 (see gatherAndLint for why it is copied): the value of a
// collector that yields exactly one counter or gauge.
func toFloat64(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	all := heeprSeries(t, reg)
	if len(all) != 1 {
		t.Fatalf("collector yields %d series, want 1", len(all))
	}
	for _, v := range all {
		return v
	}
	return 0
}

// changed returns the keys whose value differs between two gathers, sorted.
func changed(before, after map[string]float64) []string {
	var out []string
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestPrecreatedAtZero proves that every labelled series exists before anything happens, at
// zero, so that dashboards and alerts see idle zeros rather than missing series.
func TestPrecreatedAtZero(t *testing.T) {
	m := newTestMetrics()
	got := heeprSeries(t, m.Registry)
	var want []string
	for _, o := range PollOutcomes {
		want = append(want, `heepr_polls_total{outcome="`+o+`"}`)
	}
	for _, r := range Routes {
		want = append(want, `heepr_http_request_duration_seconds_count{route="`+r+`"}`)
		for _, c := range []string{"200", "404", "503"} {
			want = append(want, `heepr_http_requests_total{code="`+c+`",route="`+r+`"}`)
		}
	}
	for _, c := range AuthCodes {
		want = append(want, `heepr_auth_failures_total{code="`+c+`"}`)
	}
	for _, k := range actors.EventKinds {
		want = append(want, `heepr_events_queued_total{kind="`+string(k)+`"}`,
			`heepr_events_delivered_total{kind="`+string(k)+`"}`)
	}
	for _, s := range actors.OrderStates {
		want = append(want, `heepr_orders{state="`+string(s)+`"}`)
	}
	for _, k := range ActorMessageKinds {
		want = append(want, `heepr_actor_message_duration_seconds_count{kind="`+k+`"}`)
	}
	for _, l := range Listeners {
		want = append(want, `heepr_http_connections_refused_total{listener="`+l+`"}`)
	}
	for _, c := range []string{"405", "431"} { // answered only before or instead of a route
		want = append(want, `heepr_http_requests_total{code="`+c+`",route="unmatched"}`)
	}
	want = append(want, "heepr_poll_duration_seconds_count{}",
		"heepr_store_commit_duration_seconds_count{}", "heepr_store_committed_records_total{}",
		"heepr_store_commit_failures_total{}", "heepr_store_last_commit_timestamp_seconds{}",
		"heepr_ready{}", "heepr_rate_limited_total{}",
		"heepr_actor_dead_letters_total{}")
	for _, k := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
		} else if v != 0 {
			t.Errorf("%s = %v, want 0", k, v)
		}
	}
}

// TestBuildInfo proves that heepr_build_info is one series at 1 naming the Go version.
func TestBuildInfo(t *testing.T) {
	m := newTestMetrics()
	var info []string
	for k, v := range heeprSeries(t, m.Registry) {
		if strings.HasPrefix(k, "heepr_build_info{") {
			info = append(info, k)
			if v != 1 {
				t.Errorf("%s = %v, want 1", k, v)
			}
		}
	}
	if len(info) != 1 || !strings.Contains(info[0], `goversion="`+runtime.Version()+`"`) ||
		!strings.Contains(info[0], `revision="`) || !strings.Contains(info[0], `version="`) {
		t.Fatalf("build info series = %v", info)
	}
}

// TestChanges proves that each recording method changes exactly the series it should.
func TestChanges(t *testing.T) {
	cases := []struct {
		name string
		do   func(m *Metrics)
		want []string
	}{
		{"poll empty", func(m *Metrics) { m.Poll(PollEmpty, 0.002) }, []string{
			"heepr_poll_duration_seconds_count{}", "heepr_poll_duration_seconds_sum{}",
			`heepr_polls_total{outcome="empty"}`,
		}},
		{"order placed", func(m *Metrics) { m.OrderMoved("", actors.InProgress) }, []string{
			`heepr_orders{state="in_progress"}`,
		}},
		{"order moved", func(m *Metrics) { m.OrderMoved(actors.InProgress, actors.Delivered) },
			[]string{`heepr_orders{state="delivered"}`, `heepr_orders{state="in_progress"}`}},
		{"commit", func(m *Metrics) { m.Committed(5, 0.01, nil) }, []string{
			"heepr_store_commit_duration_seconds_count{}",
			"heepr_store_commit_duration_seconds_sum{}",
			"heepr_store_committed_records_total{}", "heepr_store_last_commit_timestamp_seconds{}",
		}},
		{"commit failed", func(m *Metrics) { m.Committed(5, 0.01, errors.New("io")) }, []string{
			"heepr_store_commit_duration_seconds_count{}",
			"heepr_store_commit_duration_seconds_sum{}",
			"heepr_store_commit_failures_total{}",
		}},
		{"actor message", func(m *Metrics) { m.ActorMessage("nonsense", 0.001) }, []string{
			`heepr_actor_message_duration_seconds_count{kind="other"}`,
			`heepr_actor_message_duration_seconds_sum{kind="other"}`,
		}},
		{"ready", func(m *Metrics) { m.SetReady(true) }, []string{"heepr_ready{}"}},
		{"dead letter", func(m *Metrics) { m.DeadLetter() },
			[]string{"heepr_actor_dead_letters_total{}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newTestMetrics()
			before := heeprSeries(t, m.Registry)
			c.do(m)
			got := changed(before, heeprSeries(t, m.Registry))
			if !slices.Equal(got, c.want) {
				t.Errorf("changed series:\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestValues proves the values the methods set, read back with toFloat64.
func TestValues(t *testing.T) {
	healthy := true
	m := New(Sources{Online: func() float64 { return 7 }, Agents: func() float64 { return 9 },
		Actors:     func() float64 { return 4 },
		Registered: func() float64 { return 8 }, Healthy: func() bool { return healthy }})
	m.Poll(PollEmpty, 0.001)
	m.Poll(PollEmpty, 0.001)
	m.Poll(PollEvents, 0.001)
	m.OrderMoved("", actors.InProgress)
	m.OrderMoved("", actors.InProgress)
	m.OrderMoved(actors.InProgress, actors.Delivered)
	start := float64(time.Now().Unix())
	m.Committed(5, 0.01, nil)
	m.Committed(2, 0.01, nil)
	m.Committed(4, 0.01, errors.New("io"))

	want := map[string]float64{"empty": 2, "events": 1, "unauthorized": 0, "unavailable": 0}
	for o, v := range want {
		if got := toFloat64(t, m.polls[o]); got != v {
			t.Errorf("polls{%s} = %v, want %v", o, got, v)
		}
	}
	for s, v := range map[actors.OrderState]float64{actors.InProgress: 1, actors.Delivered: 1} {
		if got := toFloat64(t, m.orders[s]); got != v {
			t.Errorf("orders{%s} = %v, want %v", s, got, v)
		}
	}
	if got := toFloat64(t, m.commitRecords); got != 7 {
		t.Errorf("committed records = %v, want 7", got)
	}
	if got := toFloat64(t, m.commitFailures); got != 1 {
		t.Errorf("commit failures = %v, want 1", got)
	}
	if got := toFloat64(t, m.lastCommit); got < start || got > start+60 {
		t.Errorf("last commit timestamp = %v, want about %v", got, start)
	}
	gauges := heeprSeries(t, m.Registry)
	for k, v := range map[string]float64{"heepr_agents_online{}": 7, "heepr_agents{}": 9,
		"heepr_agents_registered{}": 8, "heepr_agent_actors{}": 4} {
		if gauges[k] != v {
			t.Errorf("%s = %v, want %v", k, gauges[k], v)
		}
	}
	checkReady(t, m, &healthy)
}

// checkReady proves heepr_ready follows SetReady and the storage health, as /readyz does.
func checkReady(t *testing.T, m *Metrics, healthy *bool) {
	t.Helper()
	steps := []struct {
		ready, healthy bool
		want           float64
	}{{false, true, 0}, {true, true, 1}, {true, false, 0}, {true, true, 1}, {false, true, 0}}
	for _, s := range steps {
		m.SetReady(s.ready)
		*healthy = s.healthy
		if got := heeprSeries(t, m.Registry)["heepr_ready{}"]; got != s.want {
			t.Errorf("ready=%v healthy=%v: heepr_ready = %v, want %v", s.ready, s.healthy, got,
				s.want)
		}
	}
}

// TestActorKindsUnique guards the closed label set against duplicates.
func TestActorKindsUnique(t *testing.T) {
	m := newTestMetrics()
	if len(m.actorMessages) != len(ActorMessageKinds) {
		t.Fatalf("duplicate kinds in %v", slices.Sorted(maps.Keys(m.actorMessages)))
	}
}

// TestRefusedIsCountedNotTimed: a request refused before any route counts under "unmatched"
// and adds nothing to that route's latency histogram, which a zero would drag down.
func TestRefusedIsCountedNotTimed(t *testing.T) {
	m := newTestMetrics()
	m.Refused(413)
	m.Refused(431)
	m.Refused(418) // a code not pre-created
	got := heeprSeries(t, m.Registry)
	for _, k := range []string{
		`heepr_http_requests_total{code="413",route="unmatched"}`,
		`heepr_http_requests_total{code="431",route="unmatched"}`,
		`heepr_http_requests_total{code="418",route="unmatched"}`,
	} {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1", k, got[k])
		}
	}
	if k := `heepr_http_request_duration_seconds_count{route="unmatched"}`; got[k] != 0 {
		t.Errorf("%s = %v, want 0", k, got[k])
	}
}

// TestRequestOutsidePrecreatedSeries: a route or status code not pre-created is still counted
// and timed, through a series made on the spot.
func TestRequestOutsidePrecreatedSeries(t *testing.T) {
	m := newTestMetrics()
	m.Request("/nope", 200, 0.1)
	m.Request("/events", 299, 0.1)
	got := heeprSeries(t, m.Registry)
	for _, k := range []string{
		`heepr_http_requests_total{code="200",route="/nope"}`,
		`heepr_http_requests_total{code="299",route="/events"}`,
		`heepr_http_request_duration_seconds_count{route="/nope"}`,
	} {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1", k, got[k])
		}
	}
}
