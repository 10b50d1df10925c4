package transport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

var (
	errInternalPanic = fmt.Errorf("%w: handler panicked", actors.ErrInternal)
	errNoAgentKey    = fmt.Errorf("%w", actors.ErrKeyUnknown)
)

func notFound(format string, args ...any) error {
	return fmt.Errorf("%w: %s", actors.ErrNotFound, fmt.Sprintf(format, args...))
}

// bearer authenticates nothing yet: it parses the API key into the agent it names and the hash
// of its secret, which the agent's actor compares with its own.
func bearer(ctx *fasthttp.RequestCtx) (agentID string, key actors.SecretHash, err error) {
	agentID, key, err = bearerView(ctx)
	return strings.Clone(agentID), key, err
}

// bearerView is bearer without copying: agentID aliases the request's header buffer, which
// fasthttp reuses once the handler returns. It serves the poll path, which only looks the id up.
func bearerView(ctx *fasthttp.RequestCtx) (agentID string, key actors.SecretHash, err error) {
	cred, ok := credentialView(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), schemeBearer)
	if !ok {
		return "", key, fmt.Errorf("%w: send Authorization: Bearer <api key>", ErrMissingCredentials)
	}
	agentID, secret, ok := actors.ParseCredential(actors.KeyPrefix, cred)
	if !ok {
		return "", key, actors.ErrKeyUnknown
	}
	return agentID, actors.HashSecret(secret), nil
}

// ask forwards a message to an agent's actor. A missing actor becomes noAgent, the error that
// fits the caller (an unknown key, an unknown agent).
func (s *Server) ask(agentID string, msg any, noAgent error) (any, error) {
	v, err := s.fleet.Ask(agentID, msg, s.cfg.AskTimeout)
	if errors.Is(err, actors.ErrNoAgent) {
		return nil, noAgent
	}
	return v, err
}

// askAgent forwards a message on behalf of the agent holding the key.
func (s *Server) askAgent(agentID string, msg any) (any, error) {
	return s.ask(agentID, msg, errNoAgentKey)
}

type registerBody struct {
	AgentID string `json:"agent_id"`
}

type registerReply struct {
	AgentID string `json:"agent_id"`
	APIKey  string `json:"api_key"`
}

func (s *Server) register(ctx *fasthttp.RequestCtx) error {
	header := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	cred, ok := credential(header, schemeBootstrap)
	if !ok {
		return fmt.Errorf("%w: send Authorization: Bootstrap <bootstrap token>",
			ErrMissingCredentials)
	}
	// A token that cannot be one is refused before the body is parsed, as a malformed key is
	// on every other agent endpoint. The token itself can be checked only by using it up, so
	// its body is read only as far as any register body can go.
	agentID, secret, ok := actors.ParseCredential(actors.BootstrapPrefix, cred)
	if !ok {
		return actors.ErrBootstrapUnknown
	}
	if err := readSmallBody(ctx, "a register body"); err != nil {
		return err
	}
	var body registerBody
	if err := decodeJSON(ctx.PostBody(), &body, true); err != nil {
		return err
	}

	if body.AgentID != "" && body.AgentID != agentID {
		return invalid("agent_id %q is not the agent this bootstrap token was issued for",
			body.AgentID)
	}
	v, err := s.ask(agentID, &actors.Register{Bootstrap: actors.HashSecret(secret)},
		actors.ErrBootstrapUnknown)
	if err != nil {
		return err
	}

	r := v.(*actors.RegisterResult)
	return writeJSON(ctx, fasthttp.StatusCreated, registerReply{AgentID: r.AgentID, APIKey: r.APIKey})
}

type decisionBody struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// answerOrder writes an order's id and new state, the answer of every call that only moves an
// order, or returns err.
func answerOrder(ctx *fasthttp.RequestCtx, status int, v any, err error) error {
	if err != nil {
		return err
	}
	r := v.(*actors.OrderResult)
	return writeJSON(ctx, status, orderReply{OrderID: r.OrderID, State: r.State})
}

type orderReply struct {
	OrderID string            `json:"order_id"`
	State   actors.OrderState `json:"state"`
}

var declineReasons = []string{
	"out_of_scope", "capacity", "deadline_too_short", "missing_information", "other",
}

var flagReasons = []string{"illegal", "policy_violation", "other"}

// checkReason checks an enum reason and its free-text message.
func (s *Server) checkReason(b *decisionBody, allowed []string) error {
	if !contains(allowed, b.Reason) {
		return invalid("field \"reason\" must be one of %v", allowed)
	}
	return checkText("message", b.Message, s.cfg.Limits.MaxTextBytes)
}

func (s *Server) decline(ctx *fasthttp.RequestCtx) error {
	return s.orderDecision(ctx, "decline", declineReasons, func(key actors.SecretHash,
		idem actors.Idempotency, id string, b decisionBody) any {
		return &actors.Decline{Key: key, Idem: idem, OrderID: id, Reason: b.Reason,
			Message: b.Message}
	})
}

func (s *Server) flag(ctx *fasthttp.RequestCtx) error {
	return s.orderDecision(ctx, "flag", flagReasons, func(key actors.SecretHash,
		idem actors.Idempotency, id string, b decisionBody) any {
		return &actors.Flag{Key: key, Idem: idem, OrderID: id, Reason: b.Reason, Message: b.Message}
	})
}

// orderDecision is the shared flow of decline and flag: authenticate, decode, check, forward.
func (s *Server) orderDecision(ctx *fasthttp.RequestCtx, action string, reasons []string,
	build func(actors.SecretHash, actors.Idempotency, string, decisionBody) any) error {
	agentID, key, err := bearer(ctx)
	if err != nil {
		return err
	}
	var body decisionBody
	if err := decodeJSON(ctx.PostBody(), &body, false); err != nil {
		return err
	}
	if err := s.checkReason(&body, reasons); err != nil {
		return err
	}
	orderID := pathParam(ctx, "id")
	idem, err := idempotency(ctx, action, struct {
		OrderID string `json:"order_id"`
		decisionBody
	}{orderID, body})
	if err != nil {
		return err
	}

	v, err := s.askAgent(agentID, build(key, idem, orderID, body))
	return answerOrder(ctx, fasthttp.StatusOK, v, err)
}

func pathParam(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
