package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// CreateAgent spawns a new agent with its first bootstrap token and returns once the agent is
// durable. If it cannot be stored the actor is stopped again, so nothing half-made remains.
func (f *Fleet) CreateAgent(s Settings, bootstrapTTL, timeout time.Duration) (*BootstrapResult, error) {
	now := f.env.Now()
	secret := NewSecret()
	state := AgentState{
		ID: NewAgentID(), Settings: s, Status: Active, CreatedAt: now,
		Bootstrap: &BootstrapToken{Hash: HashSecret(secret), ExpiresAt: now.Add(bootstrapTTL)},
	}
	if err := f.Add(&Snapshot{State: state}); err != nil {
		return nil, err
	}

	if _, err := f.Ask(state.ID, &Create{}, timeout); err != nil {
		f.stop(state.ID)
		return nil, fmt.Errorf("create agent %s: %w", state.ID, err)
	}
	return &BootstrapResult{
		AgentID:          state.ID,
		BootstrapToken:   FormatCredential(BootstrapPrefix, state.ID, secret),
		BootstrapExpires: state.Bootstrap.ExpiresAt,
	}, nil
}

// stop removes one agent from the fleet, then poisons its actor if it runs: messages sent
// before the removal are still handled, and none can be sent after it.
func (f *Fleet) stop(id string) {
	s, k, ok := f.route(id)
	if !ok {
		return
	}
	s.mu.Lock()
	ref := s.refs[k]
	delete(s.refs, k)
	var pid *actor.PID
	if ref != nil {
		pid = ref.pid
	}
	s.mu.Unlock()
	if ref == nil {
		return
	}
	f.size.Add(-1)
	if pid != nil {
		f.active.Add(-1)
		f.system.Root.Poison(pid)
	}
}
