package actors

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// mailbox is the agents' mailbox: two queues under one mutex. protoactor's unbounded mailboxes
// keep two lock-free queues with a stub node each (about ten heap objects per actor) and
// allocate a node per message and a closure per wake-up. An agent is idle almost always, so its
// mailbox should cost little when empty: here the queues are slices that keep their capacity
// between polls, and the function handed to the dispatcher is made once.
//
// It implements protoactor's mailbox contract: system messages before user messages, user
// messages held while suspended, at most the dispatcher's throughput per turn, and a panic
// escalated to the actor's supervisor with the message that caused it. Message batches are not
// unpacked: agents are never sent any.
//
// A request that wakes an idle mailbox is handled on its sender's goroutine (runInline): the
// actor still handles one message at a time, but an empty poll no longer costs two goroutine
// switches and a worker wake-up.
type mailbox struct {
	mu        sync.Mutex
	user      queue
	system    queue
	running   bool // scheduled on the dispatcher, or processing
	suspended bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher

	// draining is set when the actor is stopped by someone who waits for it: StopAll, or
	// Passivate on behalf of the agent's next actor.
	draining atomic.Pointer[drainGroup]
}

// queue is a FIFO. Its oldest message sits in a field of its own, so a queue that never holds
// more than one message at a time, as an agent's almost always does, never allocates: at a
// million active agents, backing arrays kept for reuse were two heap objects per agent for the
// collector to walk. Longer queues spill into a slice, dropped once it empties.
type queue struct {
	first any // the oldest message, when the queue is not empty
	rest  []any
	head  int // rest[:head] are taken
	n     int
}

func (q *queue) push(v any) {
	if q.n == 0 {
		q.first = v
	} else {
		q.rest = append(q.rest, v)
	}
	q.n++
}

func (q *queue) len() int { return q.n }

func (q *queue) pop() any {
	v := q.first
	q.n--
	if q.n == 0 {
		q.first, q.rest, q.head = nil, nil, 0
		return v
	}
	q.first = q.rest[q.head]
	q.rest[q.head] = nil
	q.head++
	return v
}

// PostUserMessage queues a message and, if the mailbox was idle, starts it: a request envelope
// takes the turn home to its sender (runInline), anything else goes to the dispatcher.
func (m *mailbox) PostUserMessage(msg any) {
	m.mu.Lock()
	m.user.push(msg)
	start := !m.running && !m.suspended
	m.running = m.running || start
	m.mu.Unlock()
	if !start {
		return
	}
	if e, ok := msg.(*envelope); ok {
		e.woke = m
		return
	}
	m.dispatcher.Schedule(m.run)
}

// runInline is the turn a sender owes the mailbox it woke. Nobody else runs the mailbox until
// then, since it is marked running. The sender handles one message, its own (the mailbox was
// empty when it woke it), and hands whatever arrived meanwhile to the dispatcher, so that other
// requests never hold its answer back.
func (m *mailbox) runInline() {
	msg, system, ok := m.next()
	if !ok {
		return
	}
	m.invoke(msg, system)
	if m.pending() {
		m.dispatcher.Schedule(m.run)
	}
}

// pending reports whether messages are waiting, and marks the mailbox idle if none are.
func (m *mailbox) pending() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	more := m.system.len() > 0 || (!m.suspended && m.user.len() > 0)
	m.running = more
	return more
}

// PostSystemMessage queues a system message and schedules the mailbox if it was idle.
func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.system.push(msg)
	start := !m.running
	m.running = true
	m.mu.Unlock()
	if start {
		m.dispatcher.Schedule(m.run)
	}
}

// RegisterHandlers is called once, before any message is posted.
func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
}

// Start does nothing: the mailbox has no middleware to start.
func (m *mailbox) Start() {}

// idle reports whether the mailbox has nothing queued and nothing in hand.
func (m *mailbox) idle() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.running && m.user.len() == 0 && m.system.len() == 0
}

// UserMessageCount is the number of user messages waiting.
func (m *mailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user.len()
}

// run handles messages until the queues are empty (then the mailbox is idle again) or the
// turn's throughput is spent (then it is scheduled again, so other mailboxes get a worker).
func (m *mailbox) run() {
	for range max(m.dispatcher.Throughput(), 1) {
		msg, system, ok := m.next()
		if !ok {
			return
		}
		m.invoke(msg, system)
	}
	m.dispatcher.Schedule(m.run)
}

// next takes the next message to handle, or marks the mailbox idle if there is none.
func (m *mailbox) next() (msg any, system, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.system.len() > 0:
		return m.system.pop(), true, true
	case !m.suspended && m.user.len() > 0:
		return m.user.pop(), false, true
	}
	m.running = false
	return nil, false, false
}

func (m *mailbox) invoke(msg any, system bool) {
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	if !system {
		m.invoker.InvokeUserMessage(msg)
		return
	}
	switch msg.(type) {
	case *actor.SuspendMailbox:
		m.setSuspended(true)
	case *actor.ResumeMailbox:
		m.setSuspended(false)
	default:
		m.invoker.InvokeSystemMessage(msg)
	}
}

func (m *mailbox) setSuspended(s bool) {
	m.mu.Lock()
	m.suspended = s
	m.mu.Unlock()
}
