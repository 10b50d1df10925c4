package transport

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

// adminOnly lets a request through only with the admin token (compared as hashes, in constant
// time) and only once the server is ready.
func (s *Server) adminOnly(h handler) handler {
	return func(ctx *fasthttp.RequestCtx) error {
		if err := s.checkAdmin(ctx); err != nil {
			return err
		}
		if !s.Ready() {
			return fmt.Errorf("%w: not ready", actors.ErrUnavailable)
		}
		if err := readBody(ctx, func() error { return nil }); err != nil { // token checked
			return err
		}
		return h(ctx)
	}
}

// checkAdmin checks the request's bearer token against the admin token, in constant time.
func (s *Server) checkAdmin(ctx *fasthttp.RequestCtx) error {
	token, ok := credentialView(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization),
		schemeBearer)
	if !ok {
		return fmt.Errorf("%w: send Authorization: Bearer <admin token>", ErrMissingCredentials)
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) != 1 {
		return fmt.Errorf("%w: it is not the admin token", actors.ErrKeyUnknown)
	}
	return nil
}

// askOwned forwards an admin message to the agent named in the path.
func (s *Server) askOwned(agentID string, msg any) (any, error) {
	if !actors.ValidAgentID(agentID) {
		return nil, notFound("no agent %q", agentID)
	}
	return s.ask(agentID, msg, notFound("no agent %q", agentID))
}

type createAgentBody struct {
	Name                string `json:"name"`
	Owner               string `json:"owner"`
	PollMinutes         *int   `json:"poll_minutes"`
	RevisionCap         *int   `json:"revision_cap"`
	ManualAcceptance    bool   `json:"manual_acceptance"`
	KeyTTLSeconds       int64  `json:"key_ttl_seconds"`
	BootstrapTTLSeconds *int64 `json:"bootstrap_ttl_seconds"`
}

type bootstrapReply struct {
	AgentID            string    `json:"agent_id"`
	BootstrapToken     string    `json:"bootstrap_token"`
	BootstrapExpiresAt time.Time `json:"bootstrap_expires_at"`
}

func (s *Server) createAgent(ctx *fasthttp.RequestCtx) error {
	var b createAgentBody
	if err := decodeJSON(ctx.PostBody(), &b, false); err != nil {
		return err
	}
	settings, err := b.settings()
	if err != nil {
		return err
	}
	ttl, err := s.bootstrapTTL(b.BootstrapTTLSeconds)
	if err != nil {
		return err
	}

	r, err := s.fleet.CreateAgent(settings, ttl, s.cfg.AskTimeout)
	if err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusCreated, newBootstrapReply(r))
}

func newBootstrapReply(r *actors.BootstrapResult) bootstrapReply {
	return bootstrapReply{AgentID: r.AgentID, BootstrapToken: r.BootstrapToken,
		BootstrapExpiresAt: r.BootstrapExpires}
}

// settings checks a new agent's settings and fills in the defaults.
func (b *createAgentBody) settings() (actors.Settings, error) {
	st := actors.Settings{Name: b.Name, Owner: b.Owner, PollMinutes: 20, RevisionCap: 2,
		ManualAcceptance: b.ManualAcceptance, KeyTTLSeconds: b.KeyTTLSeconds}
	if b.PollMinutes != nil {
		st.PollMinutes = *b.PollMinutes
	}
	if b.RevisionCap != nil {
		st.RevisionCap = *b.RevisionCap
	}
	switch {
	case st.PollMinutes < 1 || st.PollMinutes > 60:
		return st, invalid("field \"poll_minutes\" must be 1 to 60")
	case st.RevisionCap < 0 || st.RevisionCap > 100:
		return st, invalid("field \"revision_cap\" must be 0 to 100")
	case st.KeyTTLSeconds < 0 || st.KeyTTLSeconds > 100*365*24*3600:
		return st, invalid("field \"key_ttl_seconds\" must be 0 (never expires) to 100 years")
	}
	if err := checkName("name", st.Name, true); err != nil {
		return st, err
	}
	return st, checkName("owner", st.Owner, false)
}

// bootstrapTTL checks a token lifetime in seconds; nil means the longest allowed.
func (s *Server) bootstrapTTL(seconds *int64) (time.Duration, error) {
	if seconds == nil {
		return s.cfg.MaxBootstrapTTL, nil
	}
	limit := int64(s.cfg.MaxBootstrapTTL / time.Second)
	if *seconds < 1 || *seconds > limit {
		return 0, invalid("the bootstrap TTL must be 1 to %d seconds", limit)
	}
	return time.Duration(*seconds) * time.Second, nil
}

type agentReply struct {
	AgentID      string                    `json:"agent_id"`
	Name         string                    `json:"name"`
	Owner        string                    `json:"owner"`
	Status       actors.AgentStatus        `json:"status"`
	CreatedAt    time.Time                 `json:"created_at"`
	Online       bool                      `json:"online"`
	LastPollAt   *time.Time                `json:"last_poll_at"`
	KeyState     actors.KeyState           `json:"key_state"`
	KeyExpiresAt *time.Time                `json:"key_expires_at"`
	Settings     settingsReply             `json:"settings"`
	EventsQueued int                       `json:"events_queued"`
	Orders       map[actors.OrderState]int `json:"orders"`
}

type settingsReply struct {
	PollMinutes      int   `json:"poll_minutes"`
	RevisionCap      int   `json:"revision_cap"`
	ManualAcceptance bool  `json:"manual_acceptance"`
	KeyTTLSeconds    int64 `json:"key_ttl_seconds"`
}

func (s *Server) getAgent(ctx *fasthttp.RequestCtx) error {
	v, err := s.askOwned(pathParam(ctx, "id"), &actors.GetAgent{})
	if err != nil {
		return err
	}
	a := v.(*actors.AgentInfo)
	st := a.Settings
	return writeJSON(ctx, fasthttp.StatusOK, agentReply{
		AgentID: a.AgentID, Name: st.Name, Owner: st.Owner, Status: a.Status,
		CreatedAt: a.CreatedAt, Online: a.Online, LastPollAt: timeOrNil(a.LastPoll),
		KeyState: a.KeyState, KeyExpiresAt: timeOrNil(a.KeyExpires),
		Settings: settingsReply{PollMinutes: st.PollMinutes, RevisionCap: st.RevisionCap,
			ManualAcceptance: st.ManualAcceptance, KeyTTLSeconds: st.KeyTTLSeconds},
		EventsQueued: a.EventsQueued, Orders: a.Orders,
	})
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

type mintBody struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
}

func (s *Server) mintBootstrap(ctx *fasthttp.RequestCtx) error {
	var b mintBody
	if err := decodeJSON(ctx.PostBody(), &b, true); err != nil {
		return err
	}
	ttl, err := s.bootstrapTTL(b.TTLSeconds)
	if err != nil {
		return err
	}
	v, err := s.askOwned(pathParam(ctx, "id"), &actors.MintBootstrap{TTL: ttl})
	if err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusCreated, newBootstrapReply(v.(*actors.BootstrapResult)))
}

type revokeReply struct {
	AgentID  string          `json:"agent_id"`
	KeyState actors.KeyState `json:"key_state"`
}

func (s *Server) revokeKey(ctx *fasthttp.RequestCtx) error {
	if err := decodeJSON(ctx.PostBody(), &struct{}{}, true); err != nil {
		return err
	}
	v, err := s.askOwned(pathParam(ctx, "id"), &actors.RevokeKey{})
	if err != nil {
		return err
	}
	r := v.(*actors.RevokeKeyResult)
	return writeJSON(ctx, fasthttp.StatusOK, revokeReply{AgentID: r.AgentID, KeyState: actors.KeyRevoked})
}
