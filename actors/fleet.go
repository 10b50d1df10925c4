package actors

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrNoAgent is returned by Fleet.Ask when no actor runs for the agent id. Callers decide what
// that means to their client (an unknown key, an unknown agent).
var ErrNoAgent = errors.New("actors: no such agent")

const shardCount = 64

// Fleet is the routing table from agent id to agent actor. It is safe for concurrent use.
//
// Messages are sent while holding the shard's read lock, and an actor is removed from its shard
// under the write lock before it is poisoned, so no message can reach an actor after its stop was
// decided: every request is either answered or refused with ErrNoAgent, never silently dropped.
type Fleet struct {
	system *actor.ActorSystem
	env    *Env
	seed   maphash.Seed
	shards [shardCount]shard
	size   atomic.Int64

	calls sync.Pool    // of *call, ready for reuse
	props *actor.Props // shared by every agent actor

	// spawnMu serialises spawns so that the mailbox protoactor's spawner makes for an actor
	// (through props, which sets spawned) can be picked up by Spawn for its Ref.
	spawnMu sync.Mutex
	spawned *mailbox

	dirtyMu sync.Mutex
	dirty   []*Ref // agents whose heartbeat changed since the last flush
}

type shard struct {
	mu   sync.RWMutex
	refs map[string]*Ref
}

// Ref is a fleet entry: the actor's PID and mailbox, and its heartbeat, published for the
// snapshot loop.
//
// Messages are posted to the mailbox directly. protoactor's Send would reach the same mailbox
// through the PID, the process it caches and the process itself: three dependent loads per
// message, each a likely cache miss once the fleet outgrows the CPU caches, and a check for a
// dead process that the routing lock already makes (an actor leaves the table before it stops).
type Ref struct {
	fleet    *Fleet
	id       string
	pid      *actor.PID
	mailbox  *mailbox
	lastPoll atomic.Int64               // unix nanoseconds; written only by the owning actor
	dirty    atomic.Bool                // queued in fleet.dirty and not yet flushed
	draining atomic.Pointer[drainGroup] // set when StopAll poisons it and waits for it
	agent    *agent                     // the state its actor owns; set before the actor starts
}

// NewFleet returns an empty fleet whose actors run in system and share env.
func NewFleet(system *actor.ActorSystem, env *Env) *Fleet {
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Observer == nil {
		env.Observer = NopObserver{}
	}
	f := &Fleet{system: system, env: env, seed: maphash.MakeSeed()}
	f.props = actor.PropsFromProducer(func() actor.Actor { return &shell{fleet: f} },
		actor.WithMailbox(func() actor.Mailbox {
			f.spawned = &mailbox{} // under spawnMu: protoactor calls this inside SpawnNamed
			return f.spawned
		}),
		actor.WithDispatcher(NewWorkerDispatcher(0, 300)))
	for i := range f.shards {
		f.shards[i].refs = make(map[string]*Ref)
	}
	f.calls.New = func() any { return &call{envelope: envelope{reply: make(chan result, 1)}} }
	return f
}

func (f *Fleet) shard(id string) *shard {
	return &f.shards[maphash.String(f.seed, id)%shardCount]
}

// Size is the number of agents in the fleet.
func (f *Fleet) Size() int64 { return f.size.Load() }

// Env returns the environment the fleet's actors share.
func (f *Fleet) Env() *Env { return f.env }

// Spawn starts the actor of one agent from its snapshot. It fails if the id is already taken.
func (f *Fleet) Spawn(snap *Snapshot) error {
	id := snap.State.ID
	ref := &Ref{fleet: f, id: id}
	if !snap.LastPoll.IsZero() {
		ref.lastPoll.Store(snap.LastPoll.UnixNano())
	}
	ref.agent = newAgent(f.env, ref, snap)

	s := f.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.refs[id]; taken {
		return fmt.Errorf("spawn agent %s: id already taken", id)
	}
	f.spawnMu.Lock()
	pid, err := f.system.Root.SpawnNamed(f.props, id)
	mb := f.spawned
	f.spawned = nil
	f.spawnMu.Unlock()
	if err != nil {
		return fmt.Errorf("spawn agent %s: %w", id, err)
	}
	mb.PostUserMessage(&bind{agent: ref.agent}) // the first user message, before any other
	ref.pid, ref.mailbox = pid, mb
	s.refs[id] = ref
	f.size.Add(1)
	if k := snap.State.Key; k != nil && !k.Revoked {
		f.env.Registered.Add(1)
	}
	return nil
}

// call is the reusable part of one Ask: the envelope with its reply channel, and the timer.
// It goes back to the pool only once its answer was received, so a late answer can never
// reach a later caller.
type call struct {
	envelope
	timer *time.Timer
}

// Ask sends msg to the agent's actor and waits up to timeout for its result. It returns
// ErrNoAgent if there is no such actor, and ErrUnavailable if no answer came in time. The
// caller may reuse msg once Ask returned anything but ErrUnavailable.
func (f *Fleet) Ask(agentID string, msg any, timeout time.Duration) (any, error) {
	c := f.calls.Get().(*call)
	c.msg = msg

	s := f.shard(agentID)
	s.mu.RLock()
	ref := s.refs[agentID]
	if ref != nil {
		ref.mailbox.PostUserMessage(&c.envelope)
	}
	s.mu.RUnlock()
	if ref == nil {
		c.msg = nil
		f.calls.Put(c)
		return nil, ErrNoAgent
	}
	c.runWoken()

	select { // answered while this goroutine ran the actor: no timer needed
	case r := <-c.reply:
		c.msg = nil
		f.calls.Put(c)
		return r.value, r.err
	default:
	}
	if c.timer == nil {
		c.timer = time.NewTimer(timeout)
	} else {
		c.timer.Reset(timeout)
	}
	select {
	case r := <-c.reply:
		c.timer.Stop()
		c.msg = nil
		f.calls.Put(c)
		return r.value, r.err
	case <-c.timer.C:
		return nil, fmt.Errorf("%w: agent %s did not answer within %s",
			ErrUnavailable, agentID, timeout)
	}
}

// Tell sends msg to the agent's actor without waiting for an answer. It reports false if there is
// no such actor.
func (f *Fleet) Tell(agentID string, msg any) bool {
	e := &envelope{msg: msg}
	s := f.shard(agentID)
	s.mu.RLock()
	ref := s.refs[agentID]
	if ref != nil {
		ref.mailbox.PostUserMessage(e)
	}
	s.mu.RUnlock()
	e.runWoken()
	return ref != nil
}

// StopAll removes every agent from the fleet and waits, up to timeout, until each actor has
// handled the messages sent to it before. Requests after that get ErrNoAgent. It counts the
// actors down as they report stopping, so it needs no goroutine or future per agent.
func (f *Fleet) StopAll(timeout time.Duration) error {
	var refs []*Ref
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for id, ref := range s.refs {
			delete(s.refs, id)
			refs = append(refs, ref)
		}
		s.mu.Unlock()
	}
	f.size.Store(0)
	if len(refs) == 0 {
		return nil
	}

	g := &drainGroup{done: make(chan struct{})}
	g.left.Store(int64(len(refs)))
	for _, ref := range refs {
		ref.draining.Store(g)
		f.system.Root.Poison(ref.pid)
	}
	select {
	case <-g.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("stop agents: %d of %d did not stop within %s",
			g.left.Load(), len(refs), timeout)
	}
}

// drainGroup counts down the actors one StopAll call waits for.
type drainGroup struct {
	left atomic.Int64
	done chan struct{} // closed when left reaches zero
}

// stopped is called by each actor of the group once it has stopped.
func (g *drainGroup) stopped() {
	if g.left.Add(-1) == 0 {
		close(g.done)
	}
}

// heartbeat publishes a poll time. Only the owning actor calls it. The ref is queued for the
// snapshot loop at most once between flushes.
func (r *Ref) heartbeat(t time.Time) {
	r.lastPoll.Store(t.UnixNano())
	if r.dirty.Load() || !r.dirty.CompareAndSwap(false, true) {
		return
	}
	f := r.fleet
	f.dirtyMu.Lock()
	f.dirty = append(f.dirty, r)
	f.dirtyMu.Unlock()
}

// Heartbeat is an agent's last poll time as last published.
type Heartbeat struct {
	AgentID  string
	LastPoll time.Time
}

// TakeHeartbeats returns the heartbeats that changed since the previous call.
func (f *Fleet) TakeHeartbeats() []Heartbeat {
	f.dirtyMu.Lock()
	refs := f.dirty
	f.dirty = nil
	f.dirtyMu.Unlock()

	beats := make([]Heartbeat, len(refs))
	for i, r := range refs {
		r.dirty.Store(false) // a poll after this queues the ref again
		beats[i] = Heartbeat{AgentID: r.id, LastPoll: time.Unix(0, r.lastPoll.Load()).UTC()}
	}
	return beats
}
