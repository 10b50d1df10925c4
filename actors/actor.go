package actors

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// envelope carries a message and the channel its result goes to. Keeping the channel out of the
// message keeps messages plain data.
//
// Envelopes are sent only by the Fleet, which honours woke: when the envelope woke an idle
// mailbox, the mailbox leaves it to the sender to run, once the sender let go of its locks.
type envelope struct {
	msg   any
	reply chan result
	woke  *mailbox
}

// runWoken runs the mailbox the envelope woke, if it woke one. The sender calls it right after
// the send, without holding any lock a handler might need.
func (e *envelope) runWoken() {
	if m := e.woke; m != nil {
		e.woke = nil
		m.runInline()
	}
}

type result struct {
	value any
	err   error
}

// Receive dispatches messages to the agent's handlers and sends their results: at once when there
// is nothing to store, or once the journal has made the changes durable.
func (a *agent) Receive(c actor.Context) {
	env, ok := c.Message().(*envelope)
	if !ok {
		return // lifecycle messages: state lives in the fleet and the journal, not the actor
	}

	start := time.Now()
	value, changes, err := a.handleSafely(env.msg)
	a.env.Observer.ActorMessage(MessageKind(env.msg), time.Since(start).Seconds())
	if err != nil || len(changes) == 0 {
		env.respond(value, err)
		return
	}
	a.env.Journal.Append(changes, func(err error) {
		if err != nil {
			env.respond(nil, fmt.Errorf("%w: %w", ErrUnavailable, err))
			return
		}
		env.respond(value, nil)
	})
}

// respond sends the result, if anyone waits for one. The channel has room for it, so this never
// blocks.
func (e *envelope) respond(value any, err error) {
	if e.reply != nil {
		e.reply <- result{value: value, err: err}
	}
}

// handleSafely turns a panic in a handler into an error reply: an escaped panic would restart the
// actor and leave the caller waiting for its whole timeout.
func (a *agent) handleSafely(msg any) (value any, changes []Change, err error) {
	defer func() {
		if p := recover(); p != nil {
			a.env.Log.Error("agent handler panicked", slog.String("agent_id", a.state.ID),
				slog.String("message", fmt.Sprintf("%T", msg)), slog.Any("panic", p),
				slog.String("stack", string(debug.Stack())))
			value, changes, err = nil, nil, ErrInternal
		}
	}()
	return a.handle(msg, a.env.Now())
}

func (a *agent) handle(msg any, now time.Time) (any, []Change, error) {
	switch m := msg.(type) {
	case *Poll:
		return a.poll(m, now)
	case *Drain:
		return a.drain(m, now)
	case *Authenticate:
		return nil, nil, a.authenticate(m.Key, now)
	case *Register:
		return a.register(m, now)
	case *Deliver:
		return a.once(m.Idem, m.Key, now, func() (any, []Change, error) { return a.deliver(m, now) })
	case *Decline:
		return a.once(m.Idem, m.Key, now, func() (any, []Change, error) { return a.decline(m, now) })
	case *Flag:
		return a.once(m.Idem, m.Key, now, func() (any, []Change, error) { return a.flag(m, now) })
	case *SetStatus:
		return a.once(m.Idem, m.Key, now, func() (any, []Change, error) {
			return a.setStatus(m, now)
		})
	case *GetSkill:
		return a.getSkill(m, now)
	case *Create:
		return a.create(now)
	case *GetAgent:
		return a.info(now)
	case *MintBootstrap:
		return a.mintBootstrap(m, now)
	case *RevokeKey:
		return a.revokeKey(now)
	case *PutSkill:
		return a.putSkill(m)
	case *PlaceOrder:
		return a.placeOrder(m, now)
	case *GetOrder:
		return a.getOrder(m)
	case *GetFile:
		return a.getFile(m)
	case *OwnerDecision:
		return a.decide(m, now)
	case *RequestRevision:
		return a.requestRevision(m, now)
	case *ChangeScope:
		return a.changeScope(m, now)
	case *CheckDeadline:
		return a.checkDeadline(m, now)
	default:
		panic(fmt.Sprintf("BUG: agent actor got %T", msg))
	}
}

// MessageKinds lists every name MessageKind gives, but "other": the label values of a metric
// by message kind.
var MessageKinds = []string{
	"poll", "drain", "authenticate", "register", "deliver", "decline", "flag", "set_status",
	"get_skill", "create", "get_agent", "mint_bootstrap", "revoke_key", "put_skill",
	"place_order", "get_order", "get_file", "owner_decision", "request_revision",
	"change_scope", "check_deadline",
}

// MessageKind names a message in snake case, for metrics; unknown types are "other".
func MessageKind(msg any) string {
	switch msg.(type) {
	case *Poll:
		return "poll"
	case *Drain:
		return "drain"
	case *Authenticate:
		return "authenticate"
	case *Register:
		return "register"
	case *Deliver:
		return "deliver"
	case *Decline:
		return "decline"
	case *Flag:
		return "flag"
	case *SetStatus:
		return "set_status"
	case *GetSkill:
		return "get_skill"
	case *Create:
		return "create"
	case *GetAgent:
		return "get_agent"
	case *MintBootstrap:
		return "mint_bootstrap"
	case *RevokeKey:
		return "revoke_key"
	case *PutSkill:
		return "put_skill"
	case *PlaceOrder:
		return "place_order"
	case *GetOrder:
		return "get_order"
	case *GetFile:
		return "get_file"
	case *OwnerDecision:
		return "owner_decision"
	case *RequestRevision:
		return "request_revision"
	case *ChangeScope:
		return "change_scope"
	case *CheckDeadline:
		return "check_deadline"
	}
	return "other"
}
