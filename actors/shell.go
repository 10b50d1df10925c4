package actors

import "github.com/asynkron/protoactor-go/actor"

// shell is what protoactor holds for each running agent actor. Every agent actor is spawned from
// one shared Props, whose producer cannot know which agent it makes, so activation sends the
// agent's state and the actor's mailbox to the shell as its first user message (bind). One Props
// instead of one per agent saves about 200 bytes of heap per agent. Lifecycle messages before the
// binding (Started) are not the agent's business. The actor is never restarted (see
// resumeOnFailure), so a shell keeps its binding for life.
type shell struct {
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
		s.reportStopped()
		return
	}
	if s.agent != nil {
		s.agent.Receive(c)
	}
}

// reportStopped tells whoever waits for this actor to stop: StopAll, or a request that wants to
// start the agent's next actor after a passivation.
func (s *shell) reportStopped() {
	if s.mailbox == nil {
		return
	}
	if g := s.mailbox.draining.Load(); g != nil {
		g.stopped()
	}
}
