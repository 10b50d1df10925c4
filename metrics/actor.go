package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heepr/heeprd/actors"
)

// ActorOther is the kind label of any message not in ActorMessageKinds.
const ActorOther = "other"

// ActorMessageKinds are the label values of heepr_actor_message_duration_seconds: one per
// message an agent actor handles (actors.MessageKinds), plus ActorOther.
var ActorMessageKinds = append(slices.Clone(actors.MessageKinds), ActorOther)

func (m *Metrics) newActors(reg *prometheus.Registry) {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "actor", Name: "message_duration_seconds",
		Help: "Time an agent actor spends handling one message, by message kind; the wait " +
			"for storage is not included.",
		// 10µs to 156ms in 7 buckets: handlers touch memory only, and 22 kinds × 10 series
		// keep the metric near the series budget.
		Buckets: prometheus.ExponentialBuckets(0.00001, 5, 7),
	}, []string{"kind"})
	m.deadLetters = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "actor", Name: "dead_letters_total",
		Help: "Messages that reached no actor (sent to an agent actor after it stopped).",
	})
	m.actorMessages = make(map[string]prometheus.Observer, len(ActorMessageKinds))
	for _, k := range ActorMessageKinds {
		m.actorMessages[k] = vec.WithLabelValues(k)
	}
	reg.MustRegister(vec, m.deadLetters)
}

// ActorMessage records how long an agent actor took to handle one message of a kind from
// ActorMessageKinds; any other kind is counted as ActorOther. Safe for concurrent use.
func (m *Metrics) ActorMessage(kind string, seconds float64) {
	o, ok := m.actorMessages[kind]
	if !ok {
		o = m.actorMessages[ActorOther]
	}
	o.Observe(seconds)
}

// DeadLetter counts one message protoactor could not deliver; call it from a subscription to
// the actor system's event stream (*actor.DeadLetterEvent). Safe for concurrent use.
func (m *Metrics) DeadLetter() { m.deadLetters.Inc() }
