package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heepr/heeprd/actors"
)

func (m *Metrics) newDomain(reg *prometheus.Registry) {
	queued := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "events_queued_total",
		Help: "Events queued for agents, by kind.",
	}, []string{"kind"})
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "events_delivered_total",
		Help: "Events handed to agents by a poll, by kind.",
	}, []string{"kind"})
	orders := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "orders",
		Help: "Orders by current state.",
	}, []string{"state"})

	m.eventsQueued = counters(queued, actors.EventKinds)
	m.eventsDelivered = counters(delivered, actors.EventKinds)
	m.orders = make(map[actors.OrderState]prometheus.Gauge, len(actors.OrderStates))
	for _, s := range actors.OrderStates {
		m.orders[s] = orders.WithLabelValues(string(s))
	}
	reg.MustRegister(queued, delivered, orders)
}

// EventQueued implements actors.Observer.
func (m *Metrics) EventQueued(k actors.EventKind) { m.eventsQueued[k].Inc() }

// EventDelivered implements actors.Observer.
func (m *Metrics) EventDelivered(k actors.EventKind) { m.eventsDelivered[k].Inc() }

// OrderMoved implements actors.Observer.
func (m *Metrics) OrderMoved(from, to actors.OrderState) {
	if from != "" {
		m.orders[from].Dec()
	}
	m.orders[to].Inc()
}

// OrdersRestored sets the order gauges from the orders restored at start-up.
func (m *Metrics) OrdersRestored(snaps []*actors.Snapshot) {
	for _, s := range snaps {
		for _, o := range s.Orders {
			m.orders[o.State].Inc()
		}
	}
}
