package actors

import "github.com/asynkron/protoactor-go/actor"

// shell is what protoactor holds for each running agent actor. Every agent actor is spawned from
// one shared Props, whose producer cannot know which agent it makes, so activation sends the
// agent's state to the shell as its first user message (bind). One Props instead of one per
// agent saves about 200 bytes of heap per agent. Lifecycle messages before the binding (Started)
// are not the agent's business. A shell that lost its binding (a restarted actor, which heeprd's
// handlers never cause since they recover panics) finds its agent again by its name.
type shell struct {
	fleet   *Fleet
	agent   *agent
	mailbox *mailbox // this actor's own: an agent's next actor gets a new one
}

// bind hands a shell its agent and mailbox; activation sends it before anything else.
type bind struct {
	agent   *agent
	mailbox *mailbox
}

// Receive hands every request to the agent, and reports the actor's stop to StopAll.
func (s *shell) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *bind:
		s.agent, s.mailbox = msg.agent, msg.mailbox
		return
	case *actor.Stopped:
		if s.mailbox != nil {
			if g := s.mailbox.draining.Load(); g != nil {
				g.stopped()
			}
		}
		return
	}
	if s.agent == nil {
		if _, request := c.Message().(*envelope); !request {
			return
		}
		if s.agent = s.fleet.agentNamed(c.Self().Id); s.agent == nil {
			return
		}
	}
	s.agent.Receive(c)
}

// agentNamed returns the state of the agent with the id, if it is in the fleet.
func (f *Fleet) agentNamed(id string) *agent {
	s, k, ok := f.route(id)
	if !ok {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ref := s.refs[k]; ref != nil {
		return &ref.agent
	}
	return nil
}
