package actors

import "github.com/asynkron/protoactor-go/actor"

// shell is what protoactor holds for each agent. Every agent actor is spawned from one shared
// Props, whose producer cannot know which agent it makes, so Spawn sends the agent's state to the
// shell as its first user message (bind). One Props instead of one per agent saves about 200
// bytes of heap per agent. Lifecycle messages before the binding (Started) are not the agent's
// business. A shell that lost its binding (a restarted actor, which heeprd's handlers never
// cause since they recover panics) finds its agent again by its name when a request comes.
type shell struct {
	fleet *Fleet
	agent *agent
}

// bind hands a shell its agent; Spawn sends it before the actor is reachable by anyone else.
type bind struct{ agent *agent }

// Receive hands every message to the agent.
func (s *shell) Receive(c actor.Context) {
	if b, ok := c.Message().(*bind); ok {
		s.agent = b.agent
		return
	}
	if s.agent == nil {
		if _, request := c.Message().(*envelope); !request {
			return
		}
		// Looked up only for a request: on Started, Spawn still holds the shard's lock, and at
		// start-up every actor would wait on it.
		if s.agent = s.fleet.agentNamed(c.Self().Id); s.agent == nil {
			return
		}
	}
	s.agent.Receive(c)
}

// agentNamed returns the state of the agent with the id, if it is in the fleet.
func (f *Fleet) agentNamed(id string) *agent {
	s := f.shard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ref := s.refs[id]; ref != nil {
		return ref.agent
	}
	return nil
}
