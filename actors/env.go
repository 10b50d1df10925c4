package actors

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Env is what every agent actor shares: the clock, the journal and the process-wide counters.
type Env struct {
	Now          func() time.Time
	Journal      Journal
	Online       *OnlineTracker
	OnlineWindow time.Duration
	Observer     Observer
	Log          *slog.Logger

	// Deadlines reminds agents of their orders' approval windows and delivery deadlines.
	Deadlines *Deadlines
	// ApprovalWindow is how long an order may wait for the owner's approval before it is denied.
	ApprovalWindow time.Duration

	// Budget limits each agent's requests; IdempotencyTTL is how long idempotent answers are kept
	// (DefaultIdempotencyTTL when zero).
	Budget         Budget
	IdempotencyTTL time.Duration
	// PollLease is how long events handed to a poll are withheld from other polls while the
	// first one's caller drains them (DefaultPollLease when zero). It should exceed the time a
	// caller waits for its answer.
	PollLease time.Duration

	// Rules renders the agent's RULES.md text, attached to work events.
	Rules func(SkillSource) string

	// Registered counts agents holding a key that was not revoked.
	Registered atomic.Int64
}

// Observer is told about changes worth counting. Implementations must be safe for concurrent use
// and must not block: they run inside agent actors.
type Observer interface {
	EventQueued(EventKind)
	EventDelivered(EventKind)
	// OrderMoved reports a transition; from is "" for a new order.
	OrderMoved(from, to OrderState)
	// ActorMessage reports how long the actor spent on one message (see MessageKind).
	ActorMessage(kind string, seconds float64)
}

// NopObserver counts nothing.
type NopObserver struct{}

// EventQueued does nothing.
func (NopObserver) EventQueued(EventKind) {}

// EventDelivered does nothing.
func (NopObserver) EventDelivered(EventKind) {}

// OrderMoved does nothing.
func (NopObserver) OrderMoved(from, to OrderState) {}

// ActorMessage does nothing.
func (NopObserver) ActorMessage(string, float64) {}

// DefaultPollLease is the poll lease when Env.PollLease is zero.
const DefaultPollLease = 15 * time.Second

func (e *Env) pollLease() time.Duration {
	if e.PollLease <= 0 {
		return DefaultPollLease
	}
	return e.PollLease
}
