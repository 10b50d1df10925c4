package actors

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrNoAgent is returned by Fleet.Ask when the fleet has no agent with the id. Callers decide
// what that means to their client (an unknown key, an unknown agent).
var ErrNoAgent = errors.New("actors: no such agent")

// shardCount is the number of routing shards. At a million agents a shard holds about 4,000,
// which a walk over the fleet visits in a millisecond or so before it pauses (Pacer).
const shardCount = 256

// Fleet is the routing table from agent id to agent, and the keeper of agents' actors. It is
// safe for concurrent use.
//
// An agent is either active, with a protoactor actor that owns its state and handles its
// messages, or passive: its state waits in the fleet and no actor exists. The first message
// to a passive agent spawns an actor for it (activation); an actor that got no message for a
// while is stopped again (Passivate). A restart thus loads state without spawning an actor per
// stored agent, and idle agents cost only their state.
//
// Messages are sent while holding the shard's read lock, and actors are spawned, and detached
// before they are stopped, under its write lock. No message can reach an actor after its stop
// was decided: every request is either answered or refused with ErrNoAgent, never dropped.
type Fleet struct {
	system *actor.ActorSystem
	env    *Env
	seed   maphash.Seed
	shards [shardCount]shard
	size   atomic.Int64
	active atomic.Int64 // agents with a running actor
	clock  atomic.Int64 // unix seconds, as of the newest Passivate; stamps Ref.lastUsed

	calls sync.Pool    // of *call, ready for reuse
	props *actor.Props // shared by every agent actor

	// spawnMu serialises spawns so that the mailbox protoactor's spawner makes for an actor
	// (through props, which sets spawned) can be picked up by activate for its Ref.
	spawnMu sync.Mutex
	spawned *mailbox

	dirtyMu sync.Mutex
	dirty   []*Ref // agents whose heartbeat changed since the last flush
	spare   []*Ref // the array of the flush before, emptied, for dirty to fill next
}

type shard struct {
	mu   sync.RWMutex
	refs map[routeKey]*Ref
}

// routeKey is an agent id as the routing table keys it: the characters after the prefix, held
// inline, so a lookup compares them inside the table instead of following a string pointer to
// another cache line (at a million agents, a likely miss on every request).
type routeKey [agentIDChars]byte

// route returns the shard and key of an agent id. ok is false for a malformed id, which no
// agent has.
func (f *Fleet) route(id string) (s *shard, k routeKey, ok bool) {
	if !ValidAgentID(id) {
		return nil, k, false
	}
	copy(k[:], id[len(AgentPrefix):])
	return &f.shards[maphash.String(f.seed, id)%shardCount], k, true
}

// Ref is a fleet entry: the agent's state, its actor while it is active, and its heartbeat,
// published for the snapshot loop.
//
// Messages are posted to the actor's mailbox directly. protoactor's Send would reach the same
// mailbox through the PID, the process it caches and the process itself: three dependent loads
// per message, each a likely cache miss once the fleet outgrows the CPU caches, and a check for
// a dead process that the routing lock already makes.
type Ref struct {
	// What every poll touches comes first, so that it shares the cache lines of the state the
	// poll reads (agent's leading fields): at a million agents each line is a likely miss.
	mailbox  *mailbox     // the running actor's, nil while the agent is passive
	lastUsed atomic.Int64 // fleet clock when the newest message was sent to the agent
	lastPoll atomic.Int64 // unix nanoseconds; written only by the owning actor
	fleet    *Fleet
	dirty    atomic.Bool // queued in fleet.dirty and not yet flushed
	agent    agent       // the state; only the agent's actor touches it

	// The running actor's PID (nil while the agent is passive) and, while its last actor
	// stops, a channel closed once it has (nil otherwise). Like mailbox, both are written under
	// the shard's write lock.
	pid      *actor.PID
	stopping chan struct{}
	id       string
}

// resumeOnFailure supervises agent actors: a panic that escapes Receive (handlers recover their
// own, so only the plumbing around them could) drops the message that caused it and lets the
// actor go on with the same shell and state. protoactor's default, a restart, would make a new
// shell that knows neither its agent nor its mailbox.
var resumeOnFailure = actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive {
	return actor.ResumeDirective
})

// NewFleet returns an empty fleet whose actors run in system and share env.
func NewFleet(system *actor.ActorSystem, env *Env) *Fleet {
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Observer == nil {
		env.Observer = NopObserver{}
	}
	f := &Fleet{system: system, env: env, seed: maphash.MakeSeed()}
	f.clock.Store(time.Now().Unix())
	f.props = actor.PropsFromProducer(func() actor.Actor { return &shell{} },
		actor.WithMailbox(func() actor.Mailbox {
			f.spawned = &mailbox{} // under spawnMu: protoactor calls this inside SpawnNamed
			return f.spawned
		}),
		actor.WithDispatcher(NewWorkerDispatcher(0, 300)),
		actor.WithGuardian(resumeOnFailure))
	for i := range f.shards {
		f.shards[i].refs = make(map[routeKey]*Ref)
	}
	f.calls.New = func() any { return &call{envelope: envelope{reply: make(chan result, 1)}} }
	return f
}

// Size is the number of agents in the fleet.
func (f *Fleet) Size() int64 { return f.size.Load() }

// Active is the number of agents whose actor is running.
func (f *Fleet) Active() int64 { return f.active.Load() }

// Env returns the environment the fleet's actors share.
func (f *Fleet) Env() *Env { return f.env }

// Grow makes room for n more agents, so that a restore fills the routing table without
// rehashing it over and over.
func (f *Fleet) Grow(n int) {
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		grown := make(map[routeKey]*Ref, len(s.refs)+n/shardCount+n/(8*shardCount))
		for k, ref := range s.refs {
			grown[k] = ref
		}
		s.refs = grown
		s.mu.Unlock()
	}
}

// Add puts a stored or new agent into the fleet, passive: its actor starts with its first
// message. It fails if the id is already taken.
func (f *Fleet) Add(snap *Snapshot) error {
	id := snap.State.ID
	s, k, ok := f.route(id)
	if !ok {
		return fmt.Errorf("add agent %q: not an agent id", id)
	}
	ref := newRef(f, snap)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.refs[k]; taken {
		return fmt.Errorf("add agent %s: id already taken", id)
	}
	s.refs[k] = ref
	f.size.Add(1)
	if k := snap.State.Key; k != nil && !k.Revoked {
		f.env.Registered.Add(1)
	}
	return nil
}

// newRef makes an agent's fleet entry with the agent's state inside it: one heap object instead
// of two per agent, and the state a poll reads next to the entry that routed it.
func newRef(f *Fleet, snap *Snapshot) *Ref {
	ref := &Ref{fleet: f, id: snap.State.ID}
	if !snap.LastPoll.IsZero() {
		ref.lastPoll.Store(snap.LastPoll.UnixNano())
	}
	ref.agent.init(f.env, ref, snap)
	return ref
}

// send posts e to the agent's actor, activating the agent first if it is passive. It reports
// false if there is no such agent. The caller runs e.runWoken next, holding no lock.
func (f *Fleet) send(agentID string, e *envelope) (bool, error) {
	s, k, ok := f.route(agentID)
	if !ok {
		return false, nil
	}
	s.mu.RLock()
	ref := s.refs[k]
	if ref != nil && ref.mailbox != nil {
		ref.post(e)
		s.mu.RUnlock()
		return true, nil
	}
	s.mu.RUnlock()
	if ref == nil {
		return false, nil
	}
	return f.activateAndSend(s, k, e)
}

// stopWait bounds how long a request waits for an agent's previous actor to stop before it can
// start the next one. A stop takes microseconds unless the dispatcher is swamped.
const stopWait = 2 * time.Second

// activateAndSend is send's path to a passive agent: under the write lock, so that one actor
// is spawned for it however many messages race to it. If the agent's previous actor is still
// stopping (it holds the agent's name in protoactor's registry until it has), the request waits
// for it with no lock held, so that no other agent waits too.
func (f *Fleet) activateAndSend(s *shard, k routeKey, e *envelope) (bool, error) {
	for {
		s.mu.Lock()
		ref := s.refs[k]
		if ref == nil {
			s.mu.Unlock()
			return false, nil
		}
		if stopping := ref.stopping; ref.mailbox == nil && stopping != nil && !closed(stopping) {
			s.mu.Unlock()
			if !waitClosed(stopping, stopWait) {
				return true, fmt.Errorf("%w: agent %s: its previous actor did not stop within %s",
					ErrUnavailable, ref.id, stopWait)
			}
			continue
		}
		var err error
		if ref.mailbox == nil {
			err = f.activate(ref)
		}
		if err == nil {
			ref.post(e)
		}
		s.mu.Unlock()
		return true, err
	}
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(ch chan struct{}, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// key is the ref's key in its shard.
func (r *Ref) key() (k routeKey) {
	copy(k[:], r.id[len(AgentPrefix):])
	return k
}

// post hands e to the running actor; the caller holds the shard lock.
func (r *Ref) post(e *envelope) {
	if now := r.fleet.clock.Load(); r.lastUsed.Load() != now {
		r.lastUsed.Store(now)
	}
	r.mailbox.PostUserMessage(e)
}

// activate spawns an actor for a passive agent whose previous actor, if any, has stopped; the
// caller holds the shard's write lock.
func (f *Fleet) activate(ref *Ref) error {
	f.spawnMu.Lock()
	pid, err := f.system.Root.SpawnNamed(f.props, ref.id)
	mb := f.spawned
	f.spawned = nil
	f.spawnMu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: activate agent %s: %w", ErrUnavailable, ref.id, err)
	}

	mb.PostUserMessage(&bind{agent: &ref.agent, mailbox: mb}) // the first user message
	ref.pid, ref.mailbox, ref.stopping = pid, mb, nil
	f.active.Add(1)
	return nil
}

// Passivate stops the actors of agents that were sent no message for idle, as of now. Their
// state stays in the fleet, and their next message activates a fresh actor. An actor with
// work queued or in hand is left running. It walks the fleet at a pace (Pacer), so a sweep of a
// million agents takes a few hundred milliseconds. It returns how many actors it stopped.
func (f *Fleet) Passivate(now time.Time, idle time.Duration) int {
	f.clock.Store(now.Unix())
	cutoff := now.Add(-idle).Unix()
	stopped := 0
	var pace Pacer
	for i := range f.shards {
		stopped += f.passivateShard(&f.shards[i], cutoff, &pace)
	}
	f.active.Add(-int64(stopped))
	return stopped
}

func (f *Fleet) passivateShard(s *shard, cutoff int64, pace *Pacer) int {
	var idle []*Ref
	s.mu.RLock() // look for candidates without holding up the shard's senders
	for _, ref := range s.refs {
		if ref.mailbox != nil && ref.lastUsed.Load() < cutoff {
			idle = append(idle, ref)
		}
	}
	walked := len(s.refs)
	s.mu.RUnlock()
	pace.Walked(walked)
	if len(idle) == 0 {
		return 0
	}

	var pids []*actor.PID
	s.mu.Lock()
	for _, ref := range idle {
		// Nothing can be posted while the write lock is held, so an idle mailbox stays idle.
		if s.refs[ref.key()] != ref || ref.mailbox == nil || ref.lastUsed.Load() >= cutoff ||
			!ref.mailbox.idle() {
			continue
		}
		g := newDrainGroup(1) // the agent's next actor waits for this one to stop
		ref.mailbox.draining.Store(g)
		pids = append(pids, ref.pid)
		ref.pid, ref.mailbox, ref.stopping = nil, nil, g.done
	}
	s.mu.Unlock()
	for _, pid := range pids {
		f.system.Root.Stop(pid)
	}
	return len(pids)
}

// call is the reusable part of one Ask: the envelope with its reply channel, and the timer.
// It goes back to the pool only once its answer was received, so a late answer can never
// reach a later caller.
type call struct {
	envelope
	timer *time.Timer
}

// Ask sends msg to the agent's actor and waits up to timeout for its result. It returns
// ErrNoAgent if there is no such agent, and ErrUnavailable if no answer came in time. The
// caller may reuse msg once Ask returned anything but ErrUnavailable.
func (f *Fleet) Ask(agentID string, msg any, timeout time.Duration) (any, error) {
	c := f.calls.Get().(*call)
	c.msg = msg
	found, err := f.send(agentID, &c.envelope)
	if !found || err != nil {
		c.msg = nil
		f.calls.Put(c)
		return nil, cmp.Or(err, ErrNoAgent)
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
// no such agent or its actor could not be started.
func (f *Fleet) Tell(agentID string, msg any) bool {
	e := &envelope{msg: msg}
	found, err := f.send(agentID, e)
	if err != nil {
		f.env.Log.Warn("message to agent not sent", "agent_id", agentID, "error", err)
		return false
	}
	e.runWoken()
	return found
}

// StopAll removes every agent from the fleet and waits, up to timeout, until each running actor
// has handled the messages sent to it before. Requests after that get ErrNoAgent. It counts the
// actors down as they report stopping, so it needs no goroutine or future per agent.
func (f *Fleet) StopAll(timeout time.Duration) error {
	var running []*Ref
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for k, ref := range s.refs {
			delete(s.refs, k)
			if ref.mailbox != nil {
				running = append(running, ref)
			}
		}
		s.mu.Unlock()
	}
	f.size.Store(0)
	f.active.Add(-int64(len(running))) // a concurrent Passivate subtracts only its own
	if len(running) == 0 {
		return nil
	}

	g := newDrainGroup(len(running))
	for _, ref := range running {
		ref.mailbox.draining.Store(g)
		f.system.Root.Poison(ref.pid)
	}
	select {
	case <-g.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("stop agents: %d of %d did not stop within %s",
			g.left.Load(), len(running), timeout)
	}
}

// drainGroup counts down the actors one StopAll or Passivate call stops.
type drainGroup struct {
	left atomic.Int64
	done chan struct{} // closed when left reaches zero
}

func newDrainGroup(n int) *drainGroup {
	g := &drainGroup{done: make(chan struct{})}
	g.left.Store(int64(n))
	return g
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

// beat is the agent's heartbeat for a poll at Unix nanoseconds at.
func (r *Ref) beat(at int64) Heartbeat {
	return Heartbeat{AgentID: r.id, LastPoll: time.Unix(0, at).UTC()}
}

// HeartbeatParts is the number of parts AppendHeartbeats splits the fleet into.
func (f *Fleet) HeartbeatParts() int { return shardCount }

// AppendHeartbeats appends the last poll time of every agent in one part of the fleet that has
// polled to into, for a checkpoint of them all, and reports how many agents it visited, polled
// or not: what a walk's pace is counted in (see Pacer). A checkpoint reads the parts one by one
// rather than the whole fleet at once.
func (f *Fleet) AppendHeartbeats(part int, into []Heartbeat) (out []Heartbeat, visited int) {
	s := &f.shards[part]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.refs {
		if at := r.lastPoll.Load(); at != 0 {
			into = append(into, r.beat(at))
		}
	}
	return into, len(s.refs)
}

// TakeHeartbeats appends the heartbeats that changed since the previous call to into and
// returns it. A caller that flushes on a period passes its previous result back in, emptied:
// with the fleet's own list of changed agents, which it also reuses, a flush then allocates
// nothing, where at a million agents it allocated megabytes every few seconds. It visits the
// changed agents at a pace (Pacer).
func (f *Fleet) TakeHeartbeats(into []Heartbeat) []Heartbeat {
	f.dirtyMu.Lock()
	refs := f.dirty
	f.dirty, f.spare = f.spare[:0], nil
	f.dirtyMu.Unlock()

	var pace Pacer
	for chunk := range slices.Chunk(refs, PaceChunk) {
		for _, r := range chunk {
			r.dirty.Store(false) // a poll after this queues the ref again
			into = append(into, r.beat(r.lastPoll.Load()))
		}
		pace.Walked(len(chunk))
	}

	clear(refs)
	f.dirtyMu.Lock()
	f.spare = refs[:0]
	f.dirtyMu.Unlock()
	return into
}
