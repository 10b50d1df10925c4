package actors

// Change is one durable effect of handling a message. Agents describe their changes with these
// plain values; persistence decides how they are stored.
type Change interface{ isChange() }

// PutAgent stores an agent's own record (settings, credentials, status, counters).
type PutAgent struct{ State AgentState }

// PutOrder stores an order in full, its progress included.
type PutOrder struct{ Order *Order }

// PutProgress stores an agent's latest progress report on an order, which also became the
// order's update time. It is the one order change agents send in a stream, so it is stored on
// its own rather than by rewriting the whole order; the next PutOrder of the order replaces it.
type PutProgress struct {
	AgentID, OrderID string
	Progress         Progress
}

// PutEvent stores a queued event.
type PutEvent struct {
	AgentID string
	Event   *Event
}

// DeleteEvent removes an event that a poll returned.
type DeleteEvent struct {
	AgentID string
	Seq     uint64
}

// PutSkillFile stores an owner's replacement for one skill file.
type PutSkillFile struct {
	AgentID, File, Content string
}

// PutFile stores the bytes of one delivered file. Data is never modified after it is sent.
type PutFile struct {
	OrderID  string
	Delivery int
	Name     string
	Data     []byte
}

// PutRemembered stores the answer to an idempotent request.
type PutRemembered struct {
	AgentID string
	Record  *Remembered
}

// DeleteRemembered forgets an idempotent request past its retention.
type DeleteRemembered struct{ AgentID, Key string }

// Barrier stores nothing: it holds a reply back until every change appended before it is durable,
// and fails if the journal can no longer make changes durable.
type Barrier struct{}

func (Barrier) isChange()          {}
func (PutRemembered) isChange()    {}
func (DeleteRemembered) isChange() {}
func (PutAgent) isChange()         {}
func (PutOrder) isChange()         {}
func (PutProgress) isChange()      {}
func (PutEvent) isChange()         {}
func (DeleteEvent) isChange()      {}
func (PutSkillFile) isChange()     {}
func (PutFile) isChange()          {}

// Journal makes agents' changes durable.
type Journal interface {
	// Append encodes changes before it returns, so the caller may modify what they point to
	// afterwards, and never blocks on storage. It commits them after everything appended before
	// them, all together or not at all, and then calls done exactly once on another goroutine
	// (nil when they are durable).
	Append(changes []Change, done func(error))
}
