package actors

import (
	"slices"
	"time"
)

// Handlers for what an agent does with its own key. Each returns the reply, the changes to make
// durable before the reply is sent, or an error; none of them blocks.

func (a *agent) register(m *Register, now time.Time) (any, []Change, error) {
	b := a.state.Bootstrap
	switch {
	case b == nil || !sameHash(b.Hash, m.Bootstrap):
		return nil, nil, ErrBootstrapUnknown
	case b.Used:
		return nil, nil, ErrBootstrapUsed
	case !now.Before(b.ExpiresAt):
		return nil, nil, ErrBootstrapExpired
	case a.keyState(now) == KeyActive:
		return nil, nil, ErrActiveKeyExists
	}

	if a.state.Key == nil || a.state.Key.Revoked {
		a.env.Registered.Add(1)
	}
	secret := NewSecret()
	key := &APIKey{Hash: HashSecret(secret), IssuedAt: now}
	if ttl := a.state.Settings.KeyTTLSeconds; ttl > 0 {
		key.ExpiresAt = now.Add(time.Duration(ttl) * time.Second)
	}
	a.state.Key = key.withPrevious(a.state.Key)
	a.state.Bootstrap = &BootstrapToken{Hash: b.Hash, ExpiresAt: b.ExpiresAt, Used: true}

	reply := &RegisterResult{AgentID: a.state.ID, APIKey: FormatCredential(KeyPrefix, a.state.ID, secret)}
	return reply, []Change{PutAgent{State: a.state}}, nil
}

// poll records the heartbeat and returns the queued events without removing them: the caller
// removes them with Drain once it holds the answer. A poll whose caller gave up (a timeout) thus
// loses nothing: its events are leased, not handed over, and a poll after the lease ends gets
// them again with the same ids. A concurrent poll within the lease gets only newer events. The
// reply waits behind a Barrier, so an agent never sees an event whose order could still vanish.
func (a *agent) poll(m *Poll, now time.Time) (any, []Change, error) {
	if err := a.admit(m.Key, now); err != nil {
		return nil, nil, err
	}

	a.env.Online.Heartbeat(a.lastPolled(), now)
	a.ref.heartbeat(now)
	fresh := a.events
	if now.UnixNano() < a.leaseUntil {
		for len(fresh) > 0 && fresh[0].Seq <= a.leasedUpTo {
			fresh = fresh[1:]
		}
	}
	if len(fresh) == 0 {
		return emptyPoll, nil, nil
	}

	events := slices.Clone(fresh[:min(len(fresh), MaxEventsPerPoll)])
	a.leasedUpTo, a.leaseUntil = events[len(events)-1].Seq, now.Add(a.env.pollLease()).UnixNano()
	return &PollResult{Events: events, Rules: a.env.Rules(a.skillSource())}, []Change{Barrier{}}, nil
}

// drain removes the events a poll handed out, up to and including sequence UpTo. Their removal
// need not be waited for: an event returned again after a crash keeps its id.
func (a *agent) drain(m *Drain, now time.Time) (any, []Change, error) {
	if err := a.authenticate(m.Key, now); err != nil {
		return nil, nil, err
	}
	n := 0
	for n < len(a.events) && a.events[n].Seq <= m.UpTo {
		n++
	}
	changes := make([]Change, n)
	for i, ev := range a.events[:n] {
		changes[i] = DeleteEvent{AgentID: a.state.ID, Seq: ev.Seq}
		a.env.Observer.EventDelivered(ev.Kind)
	}
	a.events = slices.Delete(a.events, 0, n)
	return nil, changes, nil
}

// MaxEventsPerPoll bounds one poll's answer; an agent that gets this many polls again at once.
// Without a bound a backlog would go out as one answer of any size, and be lost whole if the
// connection broke while it was being read.
const MaxEventsPerPoll = 100

// emptyPoll is shared by every empty poll: it is never modified.
var emptyPoll = &PollResult{}

func (a *agent) deliver(m *Deliver, now time.Time) (any, []Change, error) {
	o, err := a.authorizedOrder(m.Key, m.OrderID, ActDeliver, now)
	if err != nil {
		return nil, nil, err
	}

	d := Delivery{N: len(o.Deliveries) + 1, At: now, Text: m.Text, URLs: m.URLs}
	changes := make([]Change, 0, len(m.Files)+1)
	for _, f := range m.Files {
		d.Files = append(d.Files, f.FileMeta)
		changes = append(changes, PutFile{OrderID: o.ID, Delivery: d.N, Name: f.Name, Data: f.Data})
	}
	o.Deliveries = append(o.Deliveries, d)
	o.Progress = nil
	a.move(o, Delivered, ByAgent, "", now)

	reply := &DeliverResult{OrderID: o.ID, Delivery: d.N, State: o.State}
	return reply, append(changes, PutOrder{Order: o}), nil
}

func (a *agent) decline(m *Decline, now time.Time) (any, []Change, error) {
	o, err := a.authorizedOrder(m.Key, m.OrderID, ActDecline, now)
	if err != nil {
		return nil, nil, err
	}

	o.Decline = &Note{Reason: m.Reason, Message: m.Message, At: now}
	a.move(o, Declined, ByAgent, m.Reason, now)
	return &OrderResult{OrderID: o.ID, State: o.State}, []Change{PutOrder{Order: o}}, nil
}

func (a *agent) flag(m *Flag, now time.Time) (any, []Change, error) {
	o, err := a.authorizedOrder(m.Key, m.OrderID, ActFlag, now)
	if err != nil {
		return nil, nil, err
	}

	o.Flag = &Note{Reason: m.Reason, Message: m.Message, At: now}
	o.FlaggedFrom = o.State
	a.move(o, Flagged, ByAgent, m.Reason, now)
	return &OrderResult{OrderID: o.ID, State: o.State}, []Change{PutOrder{Order: o}}, nil
}

// setStatus checks everything before it changes anything, so a rejected request has no effect.
func (a *agent) setStatus(m *SetStatus, now time.Time) (any, []Change, error) {
	if err := a.admit(m.Key, now); err != nil {
		return nil, nil, err
	}
	var o *Order
	if m.OrderID != "" {
		var err error
		if o, err = a.order(m.OrderID); err != nil {
			return nil, nil, err
		}
		if err := o.checkAt(ActProgress, now); err != nil {
			return nil, nil, err
		}
	}

	reply := &SetStatusResult{AgentID: a.state.ID}
	var changes []Change
	if m.Status != "" {
		a.state.Status = m.Status
		changes = append(changes, PutAgent{State: a.state})
	}
	if o != nil {
		o.Progress = &Progress{Percent: m.Progress, Message: m.Message, At: now}
		o.UpdatedAt = now
		p := *o.Progress
		reply.OrderID, reply.Progress = o.ID, &p
		changes = append(changes, PutProgress{AgentID: o.AgentID, OrderID: o.ID, Progress: p})
	}
	reply.Status = a.state.Status
	return reply, changes, nil
}

func (a *agent) getSkill(m *GetSkill, now time.Time) (any, []Change, error) {
	if !m.Owner {
		if err := a.admit(m.Key, now); err != nil {
			return nil, nil, err
		}
	}
	src := a.skillSource()
	return &src, nil, nil
}

func (a *agent) skillSource() SkillSource {
	s := a.state.Settings
	return SkillSource{
		AgentID: a.state.ID, Name: s.Name, PollMinutes: s.PollMinutes, Overrides: a.skill,
	}
}

// authorizedOrder authenticates the key, finds the order and checks the action is allowed.
func (a *agent) authorizedOrder(key SecretHash, id string, act Action, now time.Time) (*Order, error) {
	if err := a.admit(key, now); err != nil {
		return nil, err
	}
	o, err := a.order(id)
	if err != nil {
		return nil, err
	}
	return o, o.checkAt(act, now)
}
