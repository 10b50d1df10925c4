// Package metrics defines every Prometheus collector heeprd exports, on a registry of its own,
// with label values from closed sets only (routes, codes, kinds, states; never an agent id).
// Every labelled series is created at start-up so that dashboards and alerts see idle zeros.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heepr/heeprd/actors"
)

const namespace = "heepr"

// Poll outcomes, the label values of heepr_polls_total.
const (
	PollEvents       = "events"       // the poll returned events
	PollEmpty        = "empty"        // nothing was queued
	PollUnauthorized = "unauthorized" // missing, unknown, revoked or expired key
	PollRateLimited  = "rate_limited" // over the agent's budget, or its address failed too often
	PollUnavailable  = "unavailable"  // no answer in time, not ready, or an internal error
)

// PollOutcomes lists every poll outcome.
var PollOutcomes = []string{
	PollEvents, PollEmpty, PollUnauthorized, PollRateLimited, PollUnavailable,
}

// Sources are the live values gauges read at scrape time.
type Sources struct {
	Online     func() float64 // agents that polled within the online window
	Agents     func() float64 // agents known to the server
	Actors     func() float64 // agents whose actor is running (the rest are passive)
	Registered func() float64 // agents holding a key that was not revoked

	// Healthy, if set, reports whether storage still accepts writes; heepr_ready is 1 only
	// while it holds and SetReady(true) was the last call, matching /readyz.
	Healthy func() bool
}

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	polls           map[string]prometheus.Counter
	pollDuration    prometheus.Histogram
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	authFailures    *prometheus.CounterVec
	rateLimited     prometheus.Counter
	connsRefused    *prometheus.CounterVec
	routes          map[string]*routeMetrics // read-only after New
	eventsQueued    map[actors.EventKind]prometheus.Counter
	eventsDelivered map[actors.EventKind]prometheus.Counter
	orders          map[actors.OrderState]prometheus.Gauge
	commitDuration  prometheus.Histogram
	commitRecords   prometheus.Counter
	commitFailures  prometheus.Counter
	lastCommit      prometheus.Gauge
	actorMessages   map[string]prometheus.Observer
	deadLetters     prometheus.Counter
	ready           atomic.Bool
}

// New creates and registers every collector, with the Go and process collectors beside them.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	m.newAgentAPI(reg)
	m.newDomain(reg)
	m.newPersistence(reg)
	m.newActors(reg)
	m.newProcess(reg, src.Healthy)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gaugeFunc("agents_online", "Agents whose last poll is within the online window.",
			src.Online),
		gaugeFunc("agents", "Agents known to the server.", src.Agents),
		gaugeFunc("agent_actors",
			"Agents whose actor is running; the others are passive until their next message.",
			src.Actors),
		gaugeFunc("agents_registered",
			"Agents that redeemed a bootstrap token and hold a key that was not revoked.",
			src.Registered),
	)
	return m
}

func gaugeFunc(name, help string, f func() float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: name, Help: help,
	}, f)
}

func counters[K ~string](vec *prometheus.CounterVec, values []K) map[K]prometheus.Counter {
	out := make(map[K]prometheus.Counter, len(values))
	for _, v := range values {
		out[v] = vec.WithLabelValues(string(v))
	}
	return out
}
