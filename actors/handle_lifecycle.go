package actors

import (
	"cmp"
	"fmt"
	"time"
)

// Handlers for the finer order transitions: revisions, scope changes, unflagging and the
// system's deadlines.

// Reasons the system records when it ends an order by itself.
const (
	ReasonApprovalTimeout = "approval_timeout"
	ReasonMissedDeadline  = "missed_deadline"
	ReasonOwnerDenied     = "owner_denied"
	ReasonOwnerRefund     = "owner_refund"
)

// requestRevision reopens a delivered order: at once within the agent's revision cap, otherwise
// after the owner approves.
func (a *agent) requestRevision(m *RequestRevision, now time.Time) (any, []Change, error) {
	o, err := a.checkedOrder(m.OrderID, ActRevision)
	if err != nil {
		return nil, nil, err
	}

	note := &Note{Reason: "revision", Message: m.Note, At: now}
	if o.RevisionsUsed >= o.RevisionsAllowed {
		o.PendingRevision = note
		a.move(o, RevisionReview, ByCustomer, "revision beyond the cap", now)
		return &OrderResult{OrderID: o.ID, State: o.State}, []Change{PutOrder{Order: o}}, nil
	}
	changes := a.startRevision(o, note, ByCustomer, now)
	return &OrderResult{OrderID: o.ID, State: o.State}, changes, nil
}

// startRevision puts the order back in progress and tells the agent what to change.
func (a *agent) startRevision(o *Order, note *Note, by string, now time.Time) []Change {
	o.RevisionsUsed++
	o.PendingRevision = nil
	a.move(o, InProgress, by, "revision "+fmt.Sprint(o.RevisionsUsed), now)
	return append([]Change{PutOrder{Order: o}}, a.enqueue(RevisionRequest, o, now, func(e *Event) {
		e.Note, e.Revision = note.Message, o.RevisionsUsed
	})...)
}

// changeScope updates an open order's terms and tells the agent.
func (a *agent) changeScope(m *ChangeScope, now time.Time) (any, []Change, error) {
	o, err := a.checkedOrder(m.OrderID, ActScope)
	if err != nil {
		return nil, nil, err
	}
	if m.Deadline != nil && !m.Deadline.After(now) {
		return nil, nil, fmt.Errorf("%w: deadline %s is not in the future",
			ErrInvalidRequest, m.Deadline.Format(time.RFC3339))
	}

	if m.Scope != nil {
		o.Scope = *m.Scope
	}
	if m.Brief != nil {
		o.Brief = *m.Brief
	}
	if m.Deadline != nil {
		o.Deadline = *m.Deadline
		a.env.Deadlines.Schedule(o.Deadline, a.state.ID, o.ID)
	}
	o.UpdatedAt = now
	o.History = append(o.History, Transition{At: now, From: o.State, To: o.State, By: ByOwner,
		Reason: "scope changed"})

	changes := append([]Change{PutOrder{Order: o}}, a.enqueue(ScopeChange, o, now, nil)...)
	return &OrderResult{OrderID: o.ID, State: o.State}, changes, nil
}

// checkDeadline ends an order whose approval window or delivery deadline has passed. A reminder
// that comes early (clocks differ) is scheduled again; one made stale by a change does nothing.
func (a *agent) checkDeadline(m *CheckDeadline, now time.Time) (any, []Change, error) {
	o := a.orders[m.OrderID]
	switch {
	case o == nil:
		return nil, nil, nil
	case o.State == AwaitingApproval && !now.Before(o.ApprovalDue):
		return nil, a.deny(o, BySystem, ReasonApprovalTimeout, "", now), nil
	case o.deadlineApplies() && !now.Before(o.Deadline):
		o.Refund = &Note{Reason: ReasonMissedDeadline, At: now}
		a.move(o, Refunded, BySystem, ReasonMissedDeadline, now)
		return nil, []Change{PutOrder{Order: o}}, nil
	}
	a.scheduleDeadlines(o)
	return nil, nil, nil
}

// deny refuses an order awaiting approval: the customer is refunded and the agent told why. The
// refund records the cause (the owner, or the approval window) and the owner's words apart.
func (a *agent) deny(o *Order, by, cause, message string, now time.Time) []Change {
	o.Refund = &Note{Reason: cause, Message: message, At: now}
	reason := cmp.Or(message, cause)
	a.move(o, Denied, by, reason, now)
	return append([]Change{PutOrder{Order: o}}, a.enqueue(OwnerDeniedOrder, o, now, func(e *Event) {
		e.Reason = reason
	})...)
}

// scheduleDeadlines asks for a reminder at the order's next deadline, if one applies now.
func (a *agent) scheduleDeadlines(o *Order) {
	switch {
	case o.State == AwaitingApproval && !o.ApprovalDue.IsZero():
		a.env.Deadlines.Schedule(o.ApprovalDue, a.state.ID, o.ID)
	case o.deadlineApplies():
		a.env.Deadlines.Schedule(o.Deadline, a.state.ID, o.ID)
	}
}

// checkedOrder finds an order and checks that the action is allowed in its state.
func (a *agent) checkedOrder(id string, act Action) (*Order, error) {
	o, err := a.order(id)
	if err != nil {
		return nil, err
	}
	return o, o.check(act)
}
