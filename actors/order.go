package actors

import (
	"fmt"
	"slices"
	"time"
)

// OrderState is where an order stands in its life. The zero value is not a state.
type OrderState string

// Order states. Released, declined, denied and refunded are final.
const (
	AwaitingApproval OrderState = "awaiting_approval"
	InProgress       OrderState = "in_progress"
	Delivered        OrderState = "delivered"
	RevisionReview   OrderState = "revision_review"
	Released         OrderState = "released"
	Declined         OrderState = "declined"
	Denied           OrderState = "denied"
	Flagged          OrderState = "flagged"
	Refunded         OrderState = "refunded"
)

// OrderStates lists every state, for metrics that must show each one from start-up.
var OrderStates = []OrderState{
	AwaitingApproval, InProgress, Delivered, RevisionReview,
	Released, Declined, Denied, Flagged, Refunded,
}

// Final reports whether no action can move the order any more.
func (s OrderState) Final() bool {
	return s == Released || s == Declined || s == Denied || s == Refunded
}

// Action is something an agent, owner or the system does to an order.
type Action string

// Actions on orders. Each is allowed only from the states in allowedFrom.
const (
	ActDeliver  Action = "deliver"
	ActDecline  Action = "decline"
	ActFlag     Action = "flag"
	ActProgress Action = "progress"
	ActApprove  Action = "approve"
	ActDeny     Action = "deny"
	ActRelease  Action = "release"
	ActRefund   Action = "refund"
	ActRevision Action = "revision"
	ActScope    Action = "scope"
	ActUnflag   Action = "unflag"
	// ActExpire is the system's: an approval window or a delivery deadline ran out.
	ActExpire Action = "expire"
)

// Actions lists every action, for tests that walk the whole state machine.
var Actions = []Action{
	ActDeliver, ActDecline, ActFlag, ActProgress, ActApprove, ActDeny, ActRelease, ActRefund,
	ActRevision, ActScope, ActUnflag, ActExpire,
}

// openStates are the states in which work on an order can still change.
var openStates = []OrderState{AwaitingApproval, InProgress, Delivered, RevisionReview}

// allowedFrom is the order state machine: the states each action may start from. Adding a
// transition is adding a row here and a method that performs it.
var allowedFrom = map[Action][]OrderState{
	ActDeliver:  {InProgress},
	ActDecline:  {AwaitingApproval, InProgress},
	ActFlag:     openStates,
	ActProgress: {InProgress},
	ActApprove:  {AwaitingApproval, RevisionReview},
	ActDeny:     {AwaitingApproval, RevisionReview},
	ActRelease:  {Delivered},
	ActRefund:   append(slices.Clone(openStates), Flagged),
	ActRevision: {Delivered},
	ActScope:    openStates,
	ActUnflag:   {Flagged},
	ActExpire:   {AwaitingApproval, InProgress},
}

// Actor names who caused a transition, as recorded in an order's history.
const (
	ByAgent    = "agent"
	ByOwner    = "owner"
	ByCustomer = "customer"
	BySystem   = "system"
)

// Order is one customer order, owned by the actor of the agent it was placed with.
type Order struct {
	ID               string       `json:"id"`
	AgentID          string       `json:"agent_id"`
	Gig              string       `json:"gig"`
	Scope            string       `json:"scope"`
	Tier             string       `json:"tier"`
	Price            int64        `json:"price"`
	Deadline         time.Time    `json:"deadline"`
	Brief            string       `json:"brief"`
	State            OrderState   `json:"state"`
	RevisionsAllowed int          `json:"revisions_allowed"`
	RevisionsUsed    int          `json:"revisions_used"`
	CreatedAt        time.Time    `json:"created_at"`
	UpdatedAt        time.Time    `json:"updated_at"`
	Progress         *Progress    `json:"progress,omitempty"`
	Deliveries       []Delivery   `json:"deliveries"`
	Decline          *Note        `json:"decline,omitempty"`
	Flag             *Note        `json:"flag,omitempty"`
	FlaggedFrom      OrderState   `json:"flagged_from,omitempty"`
	Refund           *Note        `json:"refund,omitempty"`
	PendingRevision  *Note        `json:"pending_revision,omitempty"`
	ApprovalDue      time.Time    `json:"approval_due,omitzero"`
	History          []Transition `json:"history"`
}

// Progress is the agent's latest report on an order in progress.
type Progress struct {
	Percent int       `json:"percent"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// deadlineApplies reports whether the delivery deadline can still refund the order: only while it
// is in progress and nothing was delivered yet. Revisions are judged by the owner, not the clock.
func (o *Order) deadlineApplies() bool { return o.State == InProgress && len(o.Deliveries) == 0 }

// Note is a structured reason with free text, as given for a decline, flag, denial or refund.
type Note struct {
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// Delivery is one submission of work for an order; files are kept by metadata here and by
// content in storage.
type Delivery struct {
	N     int        `json:"n"`
	At    time.Time  `json:"at"`
	Text  string     `json:"text,omitempty"`
	URLs  []string   `json:"urls,omitempty"`
	Files []FileMeta `json:"files,omitempty"`
}

// FileMeta describes one delivered file.
type FileMeta struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Transition is one entry of an order's history.
type Transition struct {
	At     time.Time  `json:"at"`
	From   OrderState `json:"from,omitempty"`
	To     OrderState `json:"to"`
	By     string     `json:"by"`
	Reason string     `json:"reason,omitempty"`
}

// OrderView is the order as its agent may see it in an event.
type OrderView struct {
	ID               string     `json:"id"`
	Gig              string     `json:"gig"`
	Scope            string     `json:"scope"`
	Tier             string     `json:"tier"`
	Price            int64      `json:"price"`
	Deadline         time.Time  `json:"deadline"`
	Brief            string     `json:"brief"`
	State            OrderState `json:"state"`
	RevisionsAllowed int        `json:"revisions_allowed"`
	RevisionsUsed    int        `json:"revisions_used"`
}

// View returns the agent's view of the order.
func (o *Order) View() OrderView {
	return OrderView{
		ID: o.ID, Gig: o.Gig, Scope: o.Scope, Tier: o.Tier, Price: o.Price,
		Deadline: o.Deadline, Brief: o.Brief, State: o.State,
		RevisionsAllowed: o.RevisionsAllowed, RevisionsUsed: o.RevisionsUsed,
	}
}

// check returns ErrInvalidState, naming the current state, unless the action is allowed now.
func (o *Order) check(a Action) error {
	if slices.Contains(allowedFrom[a], o.State) {
		return nil
	}
	return o.refusal(a)
}

// checkAt is check for an agent's work, which also ends at the deadline: a delivery that arrives
// after it is refused even if the refund has not run yet.
func (o *Order) checkAt(a Action, now time.Time) error {
	if err := o.check(a); err != nil {
		return err
	}
	if o.deadlineApplies() && !now.Before(o.Deadline) && a != ActDecline && a != ActFlag {
		return fmt.Errorf("%w: order %s missed its deadline %s and is being refunded",
			ErrInvalidState, o.ID, o.Deadline.Format(time.RFC3339))
	}
	return nil
}

func (o *Order) refusal(a Action) error {
	return fmt.Errorf("%w: order %s is %s; %s is allowed only from %v",
		ErrInvalidState, o.ID, o.State, a, allowedFrom[a])
}

// moveTo changes the state and records the transition in the history.
func (o *Order) moveTo(to OrderState, by, reason string, now time.Time) {
	o.History = append(o.History, Transition{At: now, From: o.State, To: to, By: by, Reason: reason})
	o.State = to
	o.UpdatedAt = now
}
