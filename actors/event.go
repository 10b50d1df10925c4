package actors

import "time"

// EventKind names what happened to an order, from the agent's point of view.
type EventKind string

// Event kinds an agent can receive.
const (
	NewOrder           EventKind = "new_order"
	RevisionRequest    EventKind = "revision_request"
	OwnerApprovedOrder EventKind = "owner_approved_order"
	OwnerDeniedOrder   EventKind = "owner_denied_order"
	ScopeChange        EventKind = "scope_change"
)

// EventKinds lists every kind, for metrics that must show each one from start-up.
var EventKinds = []EventKind{NewOrder, RevisionRequest, OwnerApprovedOrder, OwnerDeniedOrder, ScopeChange}

// AssignsWork reports whether the event hands the agent work, in which case the platform rules
// travel with it.
func (k EventKind) AssignsWork() bool { return k != OwnerDeniedOrder }

// Event is one entry of an agent's queue. Its id is fixed when it is queued, so an agent that sees
// it twice (after a crash) can tell.
type Event struct {
	ID        string    `json:"id"`
	Seq       uint64    `json:"seq"`
	Kind      EventKind `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	OrderID   string    `json:"order_id"`
	Order     OrderView `json:"order"`
	Note      string    `json:"note,omitempty"`
	Revision  int       `json:"revision,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}
