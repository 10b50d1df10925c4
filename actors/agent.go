package actors

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// AgentStatus is the agent's own availability: a paused agent gets no new orders.
type AgentStatus string

// Agent statuses.
const (
	Active AgentStatus = "active"
	Paused AgentStatus = "paused"
)

// KeyState is the state of an agent's API key as the owner sees it.
type KeyState string

// Key states.
const (
	KeyNone    KeyState = "none"
	KeyActive  KeyState = "active"
	KeyRevoked KeyState = "revoked"
	KeyExpired KeyState = "expired"
)

// Settings are the owner's choices for an agent.
type Settings struct {
	Name             string `json:"name"`
	Owner            string `json:"owner"`
	PollMinutes      int    `json:"poll_minutes"`
	RevisionCap      int    `json:"revision_cap"`
	ManualAcceptance bool   `json:"manual_acceptance"`
	KeyTTLSeconds    int64  `json:"key_ttl_seconds"`
}

// MarshalText encodes the hash as hex, so stored records stay readable.
func (h SecretHash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText decodes a hash written by MarshalText.
func (h *SecretHash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("secret hash: want %d hex digits, got %d", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// APIKey is the stored form of an agent's key: its hash, never the key.
type APIKey struct {
	Hash      SecretHash `json:"hash"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at,omitzero"` // zero: never
	Revoked   bool       `json:"revoked,omitempty"`

	// Previous is the key this one replaced, revoked or expired, with its own Previous: at
	// most MaxPreviousKeys of them. An agent still using one is told why it stopped working
	// (key_revoked or key_expired) rather than key_unknown. Keys are never changed in place,
	// so keys share their predecessors. The pointer fits in the space the allocator gives an
	// APIKey anyway.
	Previous *APIKey `json:"previous,omitempty"`
}

// MaxPreviousKeys is how many replaced keys an agent's key remembers.
const MaxPreviousKeys = 3

// withPrevious returns k, not yet stored, with prev and prev's predecessors, up to
// MaxPreviousKeys in all, as its predecessors. The ones kept are copied, so that the oldest
// can be cut off without changing a key stored before.
func (k *APIKey) withPrevious(prev *APIKey) *APIKey {
	at := &k.Previous // where the next copy goes
	for n := 0; prev != nil && n < MaxPreviousKeys; n++ {
		c := *prev
		*at = &c
		at = &c.Previous
		prev = prev.Previous
	}
	*at = nil
	return k
}

// previous finds a replaced key by its hash.
func (k *APIKey) previous(h SecretHash) *APIKey {
	for p := k.Previous; p != nil; p = p.Previous {
		if sameHash(p.Hash, h) {
			return p
		}
	}
	return nil
}

// BootstrapToken is the stored form of the agent's current bootstrap token.
type BootstrapToken struct {
	Hash      SecretHash `json:"hash"`
	ExpiresAt time.Time  `json:"expires_at"`
	Used      bool       `json:"used,omitempty"`
}

// AgentState is an agent's own record, apart from its orders, events, skill files and heartbeat,
// which are stored on their own so that changing one does not rewrite the rest.
type AgentState struct {
	Key       *APIKey         `json:"key,omitempty"` // first: every poll reads it (see agent)
	ID        string          `json:"id"`
	Settings  Settings        `json:"settings"`
	Status    AgentStatus     `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
	Bootstrap *BootstrapToken `json:"bootstrap,omitempty"`
	LastOrder uint64          `json:"last_order"` // sequence of the newest order id
	LastEvent uint64          `json:"last_event"` // sequence of the newest event id
}

// Snapshot is everything stored for one agent, as restored at start-up.
type Snapshot struct {
	State    AgentState
	LastPoll time.Time
	Orders   []*Order
	Events   []Event // oldest first
	Skill    map[string]string

	Remembered []*Remembered // answers to idempotent requests, any order
}

// agent is the state one agent actor owns. Only that actor touches it.
type agent struct {
	// A poll reads the fields from env to state.Key, and little else of the agent: they lead,
	// right after the Ref's own (see Ref), so that a poll touches two cache lines of them.
	env    *Env
	ref    *Ref
	events []Event
	budget bucket

	leasedUpTo uint64 // events up to this sequence were handed to a poll that may still drain them
	leaseUntil int64  // unix nanoseconds after which leased events are handed out again

	state  AgentState
	orders map[string]*Order
	skill  map[string]string // replaced, never modified, so it can be handed out

	answers *answers // idempotent answers; nil until the agent sends an Idempotency-Key
}

// init sets the agent up from its snapshot. The agent lives inside its Ref (see newRef).
func (a *agent) init(env *Env, ref *Ref, snap *Snapshot) {
	*a = agent{
		env: env, ref: ref, state: snap.State,
		events: snap.Events, skill: snap.Skill,
	}
	if len(snap.Orders) > 0 { // most agents are idle: no map until the first order
		a.orders = make(map[string]*Order, len(snap.Orders))
	}
	for _, o := range snap.Orders {
		a.orders[o.ID] = o
		a.scheduleDeadlines(o)
	}
	a.restoreRemembered(snap.Remembered)
}

func (a *agent) restoreRemembered(records []*Remembered) {
	if len(records) == 0 {
		return
	}
	a.answers = &answers{
		byKey: make(map[string]*Remembered, len(records)),
		oldest: slices.SortedFunc(slices.Values(records), func(x, y *Remembered) int {
			return x.At.Compare(y.At)
		}),
	}
	for _, r := range records {
		a.answers.byKey[r.Key] = r
	}
}

// lastPolled is the agent's last poll time (zero if it never polled). The time lives in the ref,
// where the snapshot loop reads it, and nowhere else.
func (a *agent) lastPolled() time.Time {
	if n := a.ref.lastPoll.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

func sameHash(a, b SecretHash) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// keyState reports the state of the agent's key at now.
func (a *agent) keyState(now time.Time) KeyState {
	k := a.state.Key
	switch {
	case k == nil:
		return KeyNone
	case k.Revoked:
		return KeyRevoked
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return KeyExpired
	default:
		return KeyActive
	}
}

// authenticate checks a presented key against the agent's own, in constant time.
func (a *agent) authenticate(h SecretHash, now time.Time) error {
	if a.state.Key == nil {
		return ErrKeyUnknown
	}
	if !sameHash(a.state.Key.Hash, h) {
		return replacedKeyError(a.state.Key.previous(h))
	}
	switch a.keyState(now) {
	case KeyRevoked:
		return ErrKeyRevoked
	case KeyExpired:
		return ErrKeyExpired
	}
	return nil
}

// replacedKeyError is the answer to a key that a later registration replaced: it was revoked
// or it had expired, or it is not known at all.
func replacedKeyError(k *APIKey) error {
	switch {
	case k == nil:
		return ErrKeyUnknown
	case k.Revoked:
		return ErrKeyRevoked
	default:
		return ErrKeyExpired
	}
}

// order finds one of the agent's orders; another agent's order is as unknown as a missing one.
func (a *agent) order(id string) (*Order, error) {
	if o, ok := a.orders[id]; ok {
		return o, nil
	}
	return nil, fmt.Errorf("%w: no order %q", ErrNotFound, id)
}

// enqueue queues an event about an order and returns the changes that store it.
func (a *agent) enqueue(kind EventKind, o *Order, now time.Time, fill func(*Event)) []Change {
	a.state.LastEvent++
	ev := Event{
		ID: idWithSeq(EventPrefix, a.state.ID, a.state.LastEvent), Seq: a.state.LastEvent,
		Kind: kind, CreatedAt: now, OrderID: o.ID, Order: o.View(),
	}
	if fill != nil {
		fill(&ev)
	}
	a.events = append(a.events, ev)
	a.env.Observer.EventQueued(kind)
	return []Change{PutEvent{AgentID: a.state.ID, Event: &ev}, PutAgent{State: a.state}}
}

// move changes an order's state and tells the observer.
func (a *agent) move(o *Order, to OrderState, by, reason string, now time.Time) {
	from := o.State
	o.moveTo(to, by, reason, now)
	a.env.Observer.OrderMoved(from, to)
}
