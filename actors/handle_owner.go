package actors

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Handlers for what the owner, a customer or the platform does to an agent and its orders,
// through the admin API.

func (a *agent) create(now time.Time) (any, []Change, error) {
	return nil, []Change{PutAgent{State: a.state}}, nil
}

func (a *agent) info(now time.Time) (any, []Change, error) {
	info := &AgentInfo{
		AgentID: a.state.ID, Settings: a.state.Settings, Status: a.state.Status,
		CreatedAt: a.state.CreatedAt, LastPoll: a.lastPolled(), KeyState: a.keyState(now),
		EventsQueued: len(a.events), Orders: make(map[OrderState]int, len(OrderStates)),
		Online: a.ref.lastPoll.Load() != 0 && now.Sub(a.lastPolled()) < a.env.OnlineWindow,
	}
	if a.state.Key != nil {
		info.KeyExpires = a.state.Key.ExpiresAt
	}
	for _, s := range OrderStates {
		info.Orders[s] = 0
	}
	for _, o := range a.orders {
		info.Orders[o.State]++
	}
	return info, nil, nil
}

// mintBootstrap replaces the bootstrap token: an earlier unused one stops matching.
func (a *agent) mintBootstrap(m *MintBootstrap, now time.Time) (any, []Change, error) {
	secret := NewSecret()
	a.state.Bootstrap = &BootstrapToken{Hash: HashSecret(secret), ExpiresAt: now.Add(m.TTL)}

	reply := &BootstrapResult{
		AgentID:          a.state.ID,
		BootstrapToken:   FormatCredential(BootstrapPrefix, a.state.ID, secret),
		BootstrapExpires: a.state.Bootstrap.ExpiresAt,
	}
	return reply, []Change{PutAgent{State: a.state}}, nil
}

func (a *agent) revokeKey(now time.Time) (any, []Change, error) {
	switch a.keyState(now) {
	case KeyNone, KeyRevoked:
		return nil, nil, fmt.Errorf("%w: agent %s has no key to revoke (key is %s)",
			ErrInvalidState, a.state.ID, a.keyState(now))
	}

	k := *a.state.Key
	k.Revoked = true
	a.state.Key = &k
	a.env.Registered.Add(-1)
	return &RevokeKeyResult{AgentID: a.state.ID}, []Change{PutAgent{State: a.state}}, nil
}

func (a *agent) putSkill(m *PutSkill) (any, []Change, error) {
	skill := maps.Clone(a.skill)
	if skill == nil {
		skill = make(map[string]string, 1)
	}
	skill[m.File] = m.Content
	a.skill = skill

	change := PutSkillFile{AgentID: a.state.ID, File: m.File, Content: m.Content}
	return nil, []Change{change}, nil
}

func (a *agent) placeOrder(m *PlaceOrder, now time.Time) (any, []Change, error) {
	if a.state.Status == Paused {
		return nil, nil, fmt.Errorf("%w: agent %s", ErrAgentPaused, a.state.ID)
	}
	if !m.Deadline.After(now) {
		return nil, nil, fmt.Errorf("%w: deadline %s is not in the future",
			ErrInvalidRequest, m.Deadline.Format(time.RFC3339))
	}

	a.state.LastOrder++
	o := &Order{
		ID: idWithSeq(OrderPrefix, a.state.ID, a.state.LastOrder), AgentID: a.state.ID,
		Gig: m.Gig, Scope: m.Scope, Tier: m.Tier, Price: m.Price, Deadline: m.Deadline,
		Brief: m.Brief, RevisionsAllowed: a.state.Settings.RevisionCap,
		CreatedAt: now, Deliveries: []Delivery{},
	}
	first := InProgress
	if a.state.Settings.ManualAcceptance {
		first = AwaitingApproval
		o.ApprovalDue = now.Add(a.env.ApprovalWindow)
	}
	a.move(o, first, ByCustomer, "placed", now)
	if a.orders == nil {
		a.orders = make(map[string]*Order)
	}
	a.orders[o.ID] = o
	a.scheduleDeadlines(o)

	changes := append([]Change{PutOrder{Order: o}}, a.enqueue(NewOrder, o, now, nil)...)
	return &OrderResult{OrderID: o.ID, State: o.State}, changes, nil
}

func (a *agent) getOrder(m *GetOrder) (any, []Change, error) {
	o, err := a.order(m.OrderID)
	if err != nil {
		return nil, nil, err
	}
	return o.clone(), nil, nil
}

func (a *agent) getFile(m *GetFile) (any, []Change, error) {
	o, err := a.order(m.OrderID)
	if err != nil {
		return nil, nil, err
	}
	if m.Delivery < 1 || m.Delivery > len(o.Deliveries) {
		return nil, nil, fmt.Errorf("%w: order %s has no delivery %d", ErrNotFound, o.ID, m.Delivery)
	}
	for _, f := range o.Deliveries[m.Delivery-1].Files {
		if f.Name == m.Name {
			meta := f
			return &meta, nil, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: delivery %d of order %s has no file %q",
		ErrNotFound, m.Delivery, o.ID, m.Name)
}

// ownerDecisions are the actions OwnerDecision may carry.
var ownerDecisions = []Action{ActApprove, ActDeny, ActRelease, ActRefund, ActUnflag}

// decide carries out an owner's decision on an order.
func (a *agent) decide(m *OwnerDecision, now time.Time) (any, []Change, error) {
	if !slices.Contains(ownerDecisions, m.Action) {
		return nil, nil, fmt.Errorf("%w: %q is not an owner decision", ErrInvalidRequest, m.Action)
	}
	o, err := a.checkedOrder(m.OrderID, m.Action)
	if err != nil {
		return nil, nil, err
	}

	changes := []Change{PutOrder{Order: o}}
	switch {
	case m.Action == ActApprove && o.State == RevisionReview:
		changes = a.startRevision(o, o.PendingRevision, ByOwner, now)
	case m.Action == ActApprove:
		a.move(o, InProgress, ByOwner, m.Reason, now)
		a.scheduleDeadlines(o)
		changes = append(changes, a.enqueue(OwnerApprovedOrder, o, now, nil)...)
	case m.Action == ActDeny && o.State == RevisionReview:
		o.PendingRevision = nil
		a.move(o, Delivered, ByOwner, m.Reason, now)
	case m.Action == ActDeny:
		changes = a.deny(o, ByOwner, ReasonOwnerDenied, m.Reason, now)
	case m.Action == ActRelease:
		a.move(o, Released, ByOwner, m.Reason, now)
	case m.Action == ActRefund:
		o.Refund = &Note{Reason: ReasonOwnerRefund, Message: m.Reason, At: now}
		o.PendingRevision = nil
		a.move(o, Refunded, ByOwner, m.Reason, now)
	case m.Action == ActUnflag:
		back := o.FlaggedFrom
		o.FlaggedFrom = ""
		a.move(o, back, ByOwner, m.Reason, now)
		a.scheduleDeadlines(o)
	}
	return &OrderResult{OrderID: o.ID, State: o.State}, changes, nil
}

// clone deep-copies an order so it can be read on another goroutine while the actor goes on.
func (o *Order) clone() *Order {
	c := *o
	c.Deliveries = make([]Delivery, len(o.Deliveries))
	for i, d := range o.Deliveries {
		d.URLs = append([]string(nil), d.URLs...)
		d.Files = append([]FileMeta(nil), d.Files...)
		c.Deliveries[i] = d
	}
	c.History = append([]Transition(nil), o.History...)
	c.Progress, c.Decline, c.Flag, c.Refund = clonePtr(o.Progress), clonePtr(o.Decline),
		clonePtr(o.Flag), clonePtr(o.Refund)
	c.PendingRevision = clonePtr(o.PendingRevision)
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
