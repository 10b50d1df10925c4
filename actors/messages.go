package actors

import "time"

// Messages an agent actor handles. They are plain data so that they could cross processes; the
// reply channel travels beside them in an envelope (see Fleet.Ask). Messages that act for the
// agent itself carry the hash of the presented key, which the actor checks before anything else.

// Create persists a freshly spawned agent and returns its BootstrapResult.
type Create struct{}

// BootstrapResult answers Create and MintBootstrap: the token to hand to the agent.
type BootstrapResult struct {
	AgentID          string
	BootstrapToken   string
	BootstrapExpires time.Time
}

// Register redeems a bootstrap token (by the hash of its secret) for a new API key.
type Register struct{ Bootstrap SecretHash }

// RegisterResult answers Register.
type RegisterResult struct {
	AgentID string
	APIKey  string
}

// Poll fetches and drains the queued events; it is also the agent's heartbeat.
type Poll struct{ Key SecretHash }

// Authenticate checks a key and changes nothing, not even the heartbeat or the request budget.
// The agent listener asks it before it reads a large request body, so that only a key of the
// agent makes the server hold one.
type Authenticate struct{ Key SecretHash }

// Drain removes the events up to sequence UpTo, once a poll's answer reached its caller.
type Drain struct {
	Key  SecretHash
	UpTo uint64
}

// PollResult answers Poll. Rules is the RULES.md text, set only when Events is not empty.
type PollResult struct {
	Events []Event
	Rules  string
}

// Deliver submits work for an order.
type Deliver struct {
	Key     SecretHash
	Idem    Idempotency
	OrderID string
	Text    string
	URLs    []string
	Files   []File
}

// File is one uploaded file with its bytes, size and SHA-256 (lowercase hex) computed on arrival.
type File struct {
	FileMeta
	Data []byte
}

// DeliverResult answers Deliver.
type DeliverResult struct {
	OrderID  string     `json:"order_id"`
	Delivery int        `json:"delivery"`
	State    OrderState `json:"state"`
}

// Decline turns an order down with a reason from DeclineReasons.
type Decline struct {
	Key                      SecretHash
	Idem                     Idempotency
	OrderID, Reason, Message string
}

// Flag parks an order for the owner's review with a reason from FlagReasons.
type Flag struct {
	Key                      SecretHash
	Idem                     Idempotency
	OrderID, Reason, Message string
}

// OrderResult answers the actions that only change an order's state.
type OrderResult struct {
	OrderID string     `json:"order_id"`
	State   OrderState `json:"state"`
}

// SetStatus changes the agent's status and/or reports progress on one order. Status is "" to
// leave it unchanged; OrderID is "" when no progress is reported.
type SetStatus struct {
	Key      SecretHash
	Idem     Idempotency
	Status   AgentStatus
	OrderID  string
	Progress int
	Message  string
}

// SetStatusResult answers SetStatus.
type SetStatusResult struct {
	AgentID  string      `json:"agent_id"`
	Status   AgentStatus `json:"status"`
	OrderID  string      `json:"order_id,omitempty"`
	Progress *Progress   `json:"progress,omitempty"`
}

// GetSkill returns what is needed to render the agent's skill package. With Key unset it is the
// owner asking.
type GetSkill struct {
	Key   SecretHash
	Owner bool
}

// SkillSource answers GetSkill.
type SkillSource struct {
	AgentID, Name string
	PollMinutes   int
	Overrides     map[string]string // never modified after it is sent
}

// GetAgent returns the owner's view of the agent.
type GetAgent struct{}

// AgentInfo answers GetAgent.
type AgentInfo struct {
	AgentID      string
	Settings     Settings
	Status       AgentStatus
	CreatedAt    time.Time
	Online       bool
	LastPoll     time.Time // zero if never
	KeyState     KeyState
	KeyExpires   time.Time // zero if never or no key
	EventsQueued int
	Orders       map[OrderState]int
}

// MintBootstrap issues a new bootstrap token, retiring any earlier unused one.
type MintBootstrap struct{ TTL time.Duration }

// RevokeKey revokes the agent's key so that it may register again.
type RevokeKey struct{}

// RevokeKeyResult answers RevokeKey.
type RevokeKeyResult struct{ AgentID string }

// PutSkill replaces one of the agent's skill files with the owner's content.
type PutSkill struct{ File, Content string }

// PlaceOrder places a customer's order with the agent.
type PlaceOrder struct {
	Gig, Scope, Tier, Brief string
	Price                   int64
	Deadline                time.Time
}

// GetOrder returns a copy of one order.
type GetOrder struct{ OrderID string }

// GetFile returns a delivered file's metadata, to be read from storage by the caller.
type GetFile struct {
	OrderID  string
	Delivery int
	Name     string
}

// OwnerDecision is an owner's action on an order: approve, deny, release or refund.
type OwnerDecision struct {
	OrderID string
	Action  Action
	Reason  string
}

// RequestRevision is a customer asking for a revision of a delivered order.
type RequestRevision struct{ OrderID, Note string }

// ChangeScope is the owner changing an open order's terms. Nil fields stay as they are.
type ChangeScope struct {
	OrderID      string
	Scope, Brief *string
	Deadline     *time.Time
}

// CheckDeadline wakes the agent to check an order's approval window and delivery deadline.
type CheckDeadline struct{ OrderID string }
