package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func (m *Metrics) newPersistence(reg *prometheus.Registry) {
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "store", Name: "commit_duration_seconds",
		Help:    "Time to commit one group of writes to badger, sync included.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
	})
	m.commitRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "committed_records_total",
		Help: "Records written or deleted by successful commits.",
	})
	m.commitFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "commit_failures_total",
		Help: "Commits that failed; after one the server refuses writes until restarted.",
	})
	m.lastCommit = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "store", Name: "last_commit_timestamp_seconds",
		Help: "Unix time of the last successful commit; 0 until the first one. Heartbeats " +
			"commit every snapshot interval while agents poll, so this stays fresh under load.",
	})
	reg.MustRegister(m.commitDuration, m.commitRecords, m.commitFailures, m.lastCommit)
}

// Committed implements persistence.Observer.
func (m *Metrics) Committed(records int, seconds float64, err error) {
	m.commitDuration.Observe(seconds)
	if err != nil {
		m.commitFailures.Inc()
		return
	}
	m.commitRecords.Add(float64(records))
	m.lastCommit.Set(float64(time.Now().UnixNano()) / 1e9)
}
