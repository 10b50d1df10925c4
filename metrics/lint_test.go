package metrics

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/heepr/heeprd/actors"
)

// newTestMetrics returns Metrics whose gauge functions answer fixed values.
func newTestMetrics() *Metrics {
	return New(Sources{
		Online:     func() float64 { return 2 },
		Agents:     func() float64 { return 3 },
		Actors:     func() float64 { return 1 },
		Registered: func() float64 { return 3 },
		Healthy:    func() bool { return true },
	})
}

// touchAll calls every recording method once, with every label value.
func touchAll(m *Metrics) {
	for _, o := range PollOutcomes {
		m.Poll(o, 0.001)
	}
	for _, r := range Routes {
		m.Request(r, 200, 0.001)
	}
	for _, c := range AuthCodes {
		m.AuthFailure(c)
	}
	for _, k := range actors.EventKinds {
		m.EventQueued(k)
		m.EventDelivered(k)
	}
	for _, s := range actors.OrderStates {
		m.OrderMoved("", s)
	}
	for _, k := range ActorMessageKinds {
		m.ActorMessage(k, 0.0001)
	}
	for _, l := range Listeners {
		m.ConnectionRefused(l)
	}
	m.Refused(413)
	m.DeadLetter()
	m.Committed(3, 0.002, nil)
	m.Committed(3, 0.002, errors.New("disk full"))
	m.SetReady(true)
}

// gatherAndLint is testutil.GatherAndLint: gather, then run promlint on the families. The
// testutil package itself needs github.com/kylelemons/godebug in go.mod, which this module does
// not list yet; once it does, this helper can go.
func gatherAndLint(g prometheus.Gatherer) ([]promlint.Problem, error) {
	families, err := g.Gather()
	if err != nil {
		return nil, err
	}
	return promlint.NewWithMetricFamilies(families).Lint()
}

// TestLint proves that every exported metric, idle or touched, passes Prometheus's linter:
// conventional names, base units, _total counters and help text.
func TestLint(t *testing.T) {
	m := newTestMetrics()
	check := func(when string) {
		t.Helper()
		problems, err := gatherAndLint(m.Registry)
		if err != nil {
			t.Fatalf("%s: gather: %v", when, err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", when, p.Metric, p.Text)
		}
	}
	check("idle")
	touchAll(m)
	check("touched")
}
