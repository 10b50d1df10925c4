package metrics

import "github.com/prometheus/client_golang/prometheus"

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
	reg.MustRegister(m.commitDuration, m.commitRecords, m.commitFailures)
}

// Committed implements persistence.Observer.
func (m *Metrics) Committed(records int, seconds float64, err error) {
	m.commitDuration.Observe(seconds)
	if err != nil {
		m.commitFailures.Inc()
		return
	}
	m.commitRecords.Add(float64(records))
}
